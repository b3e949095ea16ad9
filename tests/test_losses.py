import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from geounet.train.losses import LossConfig, SegmentationLoss, class_balance
from geounet.train.weights import border_weight_map


def _reference(inst: np.ndarray, w0: float, sigma: float) -> np.ndarray:
    ids = [i for i in np.unique(inst) if i]
    dist = np.stack([ndimage.distance_transform_edt(inst != i) for i in ids])
    dist.sort(axis=0)
    w = w0 * np.exp(-((dist[0] + dist[1]) ** 2) / (2 * sigma**2))
    return np.where(inst == 0, w, 0.0)


def test_border_weight_two_buildings_by_hand() -> None:
    inst = np.zeros((9, 13), dtype=np.int64)
    inst[2:7, 0:5] = 1  # building 1: columns 0-4
    inst[2:7, 7:12] = 2  # building 2: columns 7-11, a 2-pixel gap (columns 5 and 6)
    w = border_weight_map(inst, w0=10.0, sigma=5.0)
    # Column 5 is 1 px from building 1 and 2 px from building 2 (and vice versa for column 6).
    expected = 10.0 * math.exp(-((1 + 2) ** 2) / (2 * 25.0))
    assert w[4, 5] == pytest.approx(expected, rel=1e-6)
    assert w[4, 6] == pytest.approx(expected, rel=1e-6)
    assert (w[inst > 0] == 0).all()  # no border weight inside buildings
    assert w[4, 5] > w[0, 5] > w[0, 12] >= 0  # largest in the gap, decaying away from it
    np.testing.assert_allclose(w, _reference(inst, 10.0, 5.0), rtol=1e-5, atol=1e-5)


def test_border_weight_matches_brute_force_and_single_building_is_zero() -> None:
    rng = np.random.default_rng(3)
    inst = np.zeros((67, 45), dtype=np.int64)
    for k in range(1, 7):
        r, c = rng.integers(0, 60), rng.integers(0, 38)
        inst[r : r + rng.integers(3, 8), c : c + rng.integers(3, 8)] = k
    present = np.unique(inst)
    if len(present) >= 3:
        np.testing.assert_allclose(
            border_weight_map(inst, 10, 5), _reference(inst, 10, 5), atol=1e-3
        )
    one = np.zeros((20, 20), dtype=np.int64)
    one[5:10, 5:10] = 1
    assert border_weight_map(one).max() == 0.0


def test_loss_ignores_invalid_pixels_and_rewards_the_truth() -> None:
    torch.manual_seed(0)
    target = (torch.rand(2, 1, 16, 16) > 0.5).float()
    valid = torch.ones(2, 16, 16, dtype=torch.bool)
    valid[:, :, :8] = False
    loss = SegmentationLoss(LossConfig())
    good = (target * 2 - 1) * 8
    bad = -good
    assert loss(good, target, None, valid) < 0.05 < loss(bad, target, None, valid)
    # Changing logits where pixels are invalid changes nothing.
    noisy = good.clone()
    noisy[:, :, :, :8] = torch.randn(2, 1, 16, 8) * 10
    assert torch.allclose(loss(good, target, None, valid), loss(noisy, target, None, valid))
    border = torch.zeros(2, 16, 16)
    border[:, :, 12] = 10.0
    assert loss(bad, target, border, valid) > loss(bad, target, None, valid)


def test_loss_is_per_channel() -> None:
    target = torch.zeros(1, 2, 8, 8)
    target[:, 0, 2:6, 2:6] = 1
    logits = (target * 2 - 1) * 8
    cfg = LossConfig(pos_weight=(1.0, 1.0), neg_weight=(1.0, 1.0))
    assert SegmentationLoss(cfg)(logits, target).item() < 0.05


def test_class_balance() -> None:
    pos, neg = class_balance(0.25)
    assert pos == pytest.approx(2.0) and neg == pytest.approx(2 / 3)
    assert 0.25 * pos + 0.75 * neg == pytest.approx(1.0)
    assert class_balance(1e-9)[0] == 5.0  # capped
