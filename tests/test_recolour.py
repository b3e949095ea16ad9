"""Per-roof colour augmentation: buildings change colour one by one, the ground never."""

import math

import kornia.color
import numpy as np
import torch

from geounet.train.recolour import BRIGHTNESS, SATURATION, recolour_batch


def _two_red_roofs() -> tuple[torch.Tensor, torch.Tensor]:
    """A brown ground with two identical red roofs (instances 1 and 2), batch of one."""
    image = torch.empty(1, 3, 32, 32)
    image[0, 0], image[0, 1], image[0, 2] = 0.55, 0.35, 0.20  # red-brown soil
    instances = torch.zeros(1, 32, 32, dtype=torch.int64)
    instances[0, 4:14, 4:14] = 1
    instances[0, 18:28, 16:30] = 2
    roof = instances[0] > 0
    image[0, 0][roof], image[0, 1][roof], image[0, 2][roof] = 0.70, 0.25, 0.20
    return image, instances


def test_each_roof_gets_one_colour_of_its_own_and_the_ground_keeps_its_own() -> None:
    image, instances = _two_red_roofs()
    out = recolour_batch(image, instances, 1.0, np.random.default_rng(3))
    ground = instances[0] == 0
    assert torch.equal(out[0][:, ground], image[0][:, ground])
    colours = []
    for ident in (1, 2):
        pixels = out[0][:, instances[0] == ident]
        # every pixel of a roof gets the same change: a flat roof stays flat
        assert torch.allclose(pixels, pixels[:, :1].expand_as(pixels), atol=1e-5)
        colours.append(pixels[:, 0])
    assert not torch.allclose(colours[0], colours[1], atol=1e-2)  # two roofs, two colours
    assert not torch.allclose(colours[0], image[0, :, 5, 5], atol=1e-2)
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(image, _two_red_roofs()[0])  # the input batch is left as it is


def test_the_change_stays_in_the_documented_ranges() -> None:
    image, instances = _two_red_roofs()
    before = kornia.color.rgb_to_hsv(image)[0, :, 5, 5]
    for seed in range(20):
        out = recolour_batch(image, instances, 1.0, np.random.default_rng(seed))
        after = kornia.color.rgb_to_hsv(out)[0, :, 5, 5]
        sat = after[1] / before[1]
        val = after[2] / before[2]
        assert SATURATION[0] - 1e-4 <= sat <= SATURATION[1] + 1e-4 or after[1] >= 1 - 1e-4
        assert BRIGHTNESS[0] - 1e-4 <= val <= BRIGHTNESS[1] + 1e-4 or after[2] >= 1 - 1e-4
        assert 0 <= after[0] < 2 * math.pi + 1e-4


def test_chance_zero_returns_the_batch_and_other_bands_change_brightness_only() -> None:
    image, instances = _two_red_roofs()
    assert recolour_batch(image, instances, 0.0, np.random.default_rng(0)) is image
    grey = image[:, :1].repeat(1, 4, 1, 1)  # a 4-band image: no hue to turn
    out = recolour_batch(grey, instances, 1.0, np.random.default_rng(0))
    ground = instances[0] == 0
    assert torch.equal(out[0][:, ground], grey[0][:, ground])
    roof = out[0][:, instances[0] == 1]
    ratio = roof / grey[0][:, instances[0] == 1]
    assert torch.allclose(ratio, ratio[:1, :1].expand_as(ratio), atol=1e-5)  # one factor
    assert BRIGHTNESS[0] - 1e-5 <= float(ratio[0, 0]) <= BRIGHTNESS[1] + 1e-5
    assert not torch.allclose(ratio, torch.ones_like(ratio))
