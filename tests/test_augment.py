import dataclasses

import numpy as np
import torch

from geounet.train.augment import COLOUR_JITTER, AugmentConfig, Augmenter


def _blocky_image(n: int = 4, size: int = 64, block: int = 8) -> torch.Tensor:
    torch.manual_seed(1)
    coarse = torch.rand(n, 3, size // block, size // block)
    return torch.nn.functional.interpolate(coarse, scale_factor=block, mode="nearest")


def test_flips_and_rotations_keep_mask_aligned_exactly() -> None:
    torch.manual_seed(0)
    image = _blocky_image()
    mask = (image[:, :1] > 0.5).float()
    maps = torch.cat([mask, torch.ones_like(mask)], dim=1)
    aug = Augmenter(AugmentConfig(scale=None, elastic_p=0.0, color_p=0.0))
    for _ in range(4):
        out, out_maps = aug(image, maps)
        assert torch.equal(out_maps[:, :1], (out[:, :1] > 0.5).float())
        assert out_maps[:, 1].min() == 1.0


def test_all_geometric_transforms_keep_mask_a_function_of_the_image() -> None:
    torch.manual_seed(0)
    image = _blocky_image(n=6, size=96, block=16)
    mask = (image[:, :1] > 0.5).float()
    maps = torch.cat([mask, torch.ones_like(mask)], dim=1)
    cfg = AugmentConfig(scale=(0.7, 1.4), scale_p=1.0, elastic_p=1.0, color_p=0.0)
    out, out_maps = Augmenter(cfg)(image, maps)
    assert not torch.equal(out, image)  # something moved
    valid = out_maps[:, 1] > 0.5
    expected = out[:, 0] > 0.5
    agree = (expected == (out_maps[:, 0] > 0.5))[valid].float().mean().item()
    # Only pixels on block edges can differ (bilinear image vs nearest mask); a map off by
    # two pixels agrees much less.
    shifted = (expected == (out_maps[:, 0].roll(2, dims=-1) > 0.5))[valid].float().mean().item()
    assert agree > 0.97
    assert agree > shifted + 0.02
    # Pixels brought in from outside the chip are marked invalid, never counted as data.
    assert (out_maps[:, 1] < 0.5).any()


def test_colour_jitter_changes_only_the_image() -> None:
    torch.manual_seed(0)
    image = _blocky_image()
    maps = torch.rand(4, 2, 64, 64)
    cfg = AugmentConfig(flips=False, scale=None, elastic_p=0.0, color_p=1.0)
    out, out_maps = Augmenter(cfg)(image, maps)
    assert torch.equal(out_maps, maps)
    assert not torch.equal(out, image)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert np.isfinite(out.numpy()).all()


def test_strong_colour_preset_can_turn_chips_grey() -> None:
    torch.manual_seed(0)
    image = _blocky_image()
    maps = torch.rand(4, 2, 64, 64)
    strong = COLOUR_JITTER["strong"]
    assert strong.hue > COLOUR_JITTER["mild"].hue and strong.grayscale_p > 0
    grey = dataclasses.replace(strong, flips=False, scale=None, elastic_p=0.0, color_p=0.0)
    out, out_maps = Augmenter(dataclasses.replace(grey, grayscale_p=1.0))(image, maps)
    assert torch.equal(out_maps, maps)
    # every chip grey: its three bands are equal, and it is not the input
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])
    assert not torch.allclose(image[:, 0], image[:, 1])
