import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from geounet.train.losses import LossConfig, SegmentationLoss, class_balance
from geounet.train.targets import SceneLayout
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


def test_wall_weight_marks_the_wall_two_roofs_share_and_nothing_in_a_lone_roof() -> None:
    inst = np.zeros((9, 20), dtype=np.int64)
    inst[2:7, 0:6] = 1  # roof 1: columns 0-5
    inst[2:7, 6:12] = 2  # roof 2: columns 6-11, sharing a wall with roof 1 (no gap)
    inst[2:7, 15:19] = 3  # roof 3, 3 px away from roof 2
    paper = border_weight_map(inst, w0=10.0, sigma=5.0)
    w = border_weight_map(inst, w0=10.0, sigma=5.0, wall_w0=4.0)
    # Background pixels are weighted as in the paper whatever the wall weight.
    np.testing.assert_array_equal(w[inst == 0], paper[inst == 0])
    assert (paper[inst > 0] == 0).all()
    # Column 5 (roof 1) is 1 px from roof 2: 4 * exp(-1 / 50); column 0 is 6 px away.
    assert w[4, 5] == pytest.approx(4.0 * math.exp(-1 / 50.0), rel=1e-6)
    assert w[4, 6] == pytest.approx(4.0 * math.exp(-1 / 50.0), rel=1e-6)
    assert w[4, 0] == pytest.approx(4.0 * math.exp(-36 / 50.0), rel=1e-6)
    assert w[4, 5] > w[4, 3] > w[4, 0] > 0  # largest at the wall, decaying into the roof
    # The same formula as the brute-force reference, with d1 = 0 inside a building.
    ids = [1, 2, 3]
    dist = np.sort(np.stack([ndimage.distance_transform_edt(inst != i) for i in ids]), axis=0)
    inside = 4.0 * np.exp(-(dist[1] ** 2) / (2 * 25.0))
    np.testing.assert_allclose(w[inst > 0], inside[inst > 0], rtol=1e-5)
    # A roof with no neighbour gets no wall weight; without the paper's w0 only walls weigh.
    one = np.zeros((20, 20), dtype=np.int64)
    one[5:10, 5:10] = 1
    assert border_weight_map(one, wall_w0=10.0).max() == 0.0
    walls_only = border_weight_map(inst, w0=0.0, sigma=5.0, wall_w0=4.0)
    assert (walls_only[inst == 0] == 0).all() and walls_only[4, 5] == w[4, 5]


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


def test_contact_map_marks_only_where_two_buildings_meet() -> None:
    from geounet.train.weights import contact_map

    inst = np.zeros((20, 30), dtype=np.int64)
    inst[2:10, 2:10] = 1  # touches building 2 along column 9/10
    inst[2:10, 10:18] = 2
    inst[12:18, 22:28] = 3  # alone
    c = contact_map(inst, radius=1.0)
    assert c.dtype == np.float32 and set(np.unique(c)) <= {0.0, 1.0}
    # the shared wall: the last column of 1 and the first column of 2
    assert c[2:10, 9].all() and c[2:10, 10].all()
    assert not c[2:10, 2:8].any() and not c[2:10, 12:18].any(), "roof interiors are not contacts"
    assert not c[10:, 20:].any(), "a lone building has no contact pixels"
    wider = contact_map(inst, radius=2.0)
    assert wider.sum() > c.sum() and (wider >= c).all()


def test_chip_transform_appends_a_contact_channel() -> None:
    from geounet.train.targets import ChipTransform, SceneLayout

    layout = SceneLayout(("red", "green", "blue", "alpha"), ("red", "green", "blue"), "alpha", None)
    inst = torch.zeros((1, 16, 16), dtype=torch.int64)
    inst[0, 2:8, 2:8] = 1
    inst[0, 2:8, 8:14] = 2
    image = torch.full((4, 16, 16), 255, dtype=torch.uint8)
    sample = {"image": image, "mask": inst}
    one = ChipTransform(layout, np.zeros(3, dtype=np.int64), 1, 10.0, 5.0)(dict(sample))
    two = ChipTransform(layout, np.zeros(3, dtype=np.int64), 1, 10.0, 5.0, 1.0)(dict(sample))
    assert one["target"].shape == (1, 16, 16) and two["target"].shape == (2, 16, 16)
    torch.testing.assert_close(one["target"][0], two["target"][0])
    assert two["target"][1, 2:8, 7:9].eq(1).all() and two["target"][1].sum() == 6 * 2


def _two_touching_roofs_and_an_l() -> np.ndarray:
    """Instance ids: two 10 x 10 roofs sharing a wall (1, 2) and an L-shaped roof (3)."""
    inst = np.zeros((30, 40), dtype=np.int64)
    inst[2:12, 2:12] = 1  # the wall is at column 11/12
    inst[2:12, 12:22] = 2
    inst[15:28, 25:31] = 3  # the L's bar ...
    inst[22:28, 31:39] = 3  # ... and its foot
    return inst


def test_body_map_separates_touching_buildings_and_keeps_one_roof_whole() -> None:
    from scipy import ndimage

    from geounet.train.weights import body_map

    inst = _two_touching_roofs_and_an_l()
    b = body_map(inst, erosion=2.0)
    assert b.dtype == np.float32 and set(np.unique(b)) <= {0.0, 1.0}
    assert not b[inst == 0].any(), "bodies lie inside buildings"
    _, n = ndimage.label(b > 0)
    assert n == 3, "one body per building"
    # the shared wall is not body on either side; interiors are
    assert not b[2:12, 10:14].any() and b[5:9, 5:9].all() and b[5:9, 15:19].all()
    assert b[(inst == 3)].sum() > 0 and ndimage.label(b * (inst == 3))[1] == 1
    # a larger erosion shrinks the bodies
    assert body_map(inst, erosion=3.0).sum() < b.sum()


def _two_roof_chip() -> tuple[SceneLayout, dict[str, torch.Tensor]]:
    """A 16 x 16 RGBA chip layout and sample with two 6 x 6 roofs sharing a wall."""
    layout = SceneLayout(("red", "green", "blue", "alpha"), ("red", "green", "blue"), "alpha", None)
    inst = torch.zeros((1, 16, 16), dtype=torch.int64)
    inst[0, 2:8, 2:8] = 1
    inst[0, 2:8, 8:14] = 2
    return layout, {"image": torch.full((4, 16, 16), 255, dtype=torch.uint8), "mask": inst}


def test_chip_transform_orders_body_before_contact() -> None:
    from geounet.train.targets import ChipTransform

    layout, sample = _two_roof_chip()
    out = ChipTransform(layout, np.zeros(3, dtype=np.int64), 1, 10.0, 5.0, 1.0, 1.0)(sample)
    assert out["target"].shape == (3, 16, 16)
    body, contact = out["target"][1], out["target"][2]
    assert body[3:7, 3:7].eq(1).all() and body[:, 7:9].eq(0).all()
    assert contact[2:8, 7:9].eq(1).all()


def test_chip_transform_weighs_the_shared_wall_only_when_asked() -> None:
    from geounet.train.targets import ChipTransform

    layout, sample = _two_roof_chip()
    zeros = np.zeros(3, dtype=np.int64)
    paper = ChipTransform(layout, zeros, 1, 10.0, 5.0, 1.0, 0.0, "depth")(dict(sample))
    walls = ChipTransform(layout, zeros, 1, 10.0, 5.0, 1.0, 0.0, "depth", 10.0)(dict(sample))
    roofs = sample["mask"][0] > 0
    assert paper["weight"][roofs].eq(0).all()
    assert walls["weight"][roofs].gt(0).all()  # every pixel of these roofs is near the wall
    # the wall (columns 7 and 8) weighs most, the far sides of the roofs least
    assert walls["weight"][4, 7] > walls["weight"][4, 5] > walls["weight"][4, 2]
    torch.testing.assert_close(walls["weight"][~roofs], paper["weight"][~roofs])
    torch.testing.assert_close(walls["target"], paper["target"])  # targets are unchanged
    # the weight reaches the loss: a body channel that does not dip at the wall costs more
    target = walls["target"].unsqueeze(0)
    logits = (target * 2 - 1) * 6
    logits[0, 1, 2:8, 7:9] = 6.0  # body says "middle of a roof" on the wall
    loss = SegmentationLoss(LossConfig(pos_weight=(1.0,) * 3, neg_weight=(1.0,) * 3))
    assert loss(logits, target, walls["weight"].unsqueeze(0)) > 2 * loss(
        logits, target, paper["weight"].unsqueeze(0)
    )


def test_depth_map_falls_to_zero_at_walls_and_peaks_once_per_roof() -> None:
    from scipy import ndimage

    from geounet.train.weights import depth_map

    inst = _two_touching_roofs_and_an_l()
    inst[2:5, 30:38] = 4  # a roof 3 px wide: a fixed 2 px erosion leaves it no body
    d = depth_map(inst)
    assert d.dtype == np.float32 and float(d.min()) == 0.0 and float(d.max()) == 1.0
    assert not d[inst == 0].any(), "depth only inside buildings"
    for ident in (1, 2, 3, 4):
        assert float(d[inst == ident].max()) == 1.0, "every roof reaches depth 1"
    # the wall between the touching roofs is depth 0 on both sides, their middles 1
    assert not d[2:12, 11:13].any() and d[6, 6] == 1.0 and d[6, 16] == 1.0
    # seeds at half depth: one per roof, the two touching ones apart, the L whole
    seeds, n = ndimage.label(d >= 0.5)
    assert n == 4
    assert len(np.unique(seeds[inst == 3])) == 2  # one seed (and background)
    from geounet.train.weights import body_map

    assert not body_map(inst, erosion=2.0)[inst == 4].any()


def test_chip_transform_makes_a_depth_body_channel() -> None:
    from geounet.train.targets import ChipTransform
    from geounet.train.weights import depth_map

    layout, sample = _two_roof_chip()
    zeros = np.zeros(3, dtype=np.int64)
    out = ChipTransform(layout, zeros, 1, 10.0, 5.0, 1.0, 0.0, "depth")(dict(sample))
    assert out["target"].shape == (3, 16, 16)  # building, body (depth), contact
    torch.testing.assert_close(
        out["target"][1], torch.from_numpy(depth_map(sample["mask"][0].numpy()))
    )
    eroded = ChipTransform(layout, zeros, 1, 10.0, 5.0, 1.0, 1.0)(dict(sample))
    assert not torch.equal(eroded["target"][1], out["target"][1])
