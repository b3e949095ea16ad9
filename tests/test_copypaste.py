"""Copy-paste augmentation: whole buildings moved between chips, targets derived again."""

import numpy as np
import torch

from geounet.train.copypaste import Building, paste_batch, paste_buildings, whole_buildings
from geounet.train.targets import ChipTransform, SceneLayout
from geounet.train.weights import contact_map


def _chip(size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = np.zeros((3, size, size), dtype=np.float32)
    instances = np.zeros((size, size), dtype=np.int64)
    valid = np.ones((size, size), dtype=bool)
    return image, instances, valid


def _donor(ident: int, h: int = 10, w: int = 14, value: float = 200.0) -> Building:
    mask = np.ones((h, w), dtype=bool)
    mask[:3, :4] = False  # an L: turning must move the notch with the pixels
    image = np.full((3, h, w), value, dtype=np.float32)
    image[0] += np.arange(w, dtype=np.float32)  # a gradient, to check pixels move together
    return Building(ident, image, mask)


def test_whole_buildings_leaves_out_cut_invalid_and_small_roofs() -> None:
    image, instances, valid = _chip()
    instances[10:20, 10:22] = 1  # whole
    instances[0:12, 40:50] = 2  # cut by the top edge
    instances[30:40, 30:40] = 3  # partly on no-data
    valid[35, 35] = False
    instances[50:53, 50:53] = 4  # 9 px: too small
    image[:, 10:20, 10:22] = 7.0
    found = whole_buildings(image, instances, valid, min_pixels=20)
    assert [b.ident for b in found] == [1]
    assert found[0].mask.shape == (10, 12) and found[0].mask.all()
    assert (found[0].image == 7.0).all()


def test_pasted_roofs_keep_their_pixels_and_ids_and_skip_ids_already_present() -> None:
    image, instances, valid = _chip()
    instances[20:30, 20:30] = 5
    before = image.copy(), instances.copy()
    donors = [_donor(5), _donor(8)]  # 5 is already in the chip
    new_image, new_inst = paste_buildings(
        image, instances, valid, donors, np.random.default_rng(0), beside_p=0.0
    )
    assert np.array_equal(image, before[0]) and np.array_equal(instances, before[1])
    assert set(np.unique(new_inst).tolist()) == {0, 5, 8}
    pasted = new_inst == 8
    assert pasted.sum() == donors[1].mask.sum()  # the only paste: nothing covers it
    assert (new_image[1][pasted] == 200.0).all()
    assert (new_image[:, ~pasted] == image[:, ~pasted]).all()
    # the red gradient runs along one axis of the pasted roof, whichever way it was turned
    rows, cols = np.nonzero(pasted)
    red = new_image[0][pasted]
    assert sorted(set(red.tolist())) == [200.0 + k for k in range(14)]
    assert np.ptp(red[rows == rows[0]]) == 0 or np.ptp(red[cols == cols[0]]) == 0


def test_pasting_beside_a_roof_makes_touching_roofs_and_contacts() -> None:
    image, instances, valid = _chip(96)
    instances[40:56, 40:56] = 1
    assert not contact_map(instances, 3).any()
    for seed in range(5):
        _, new_inst = paste_buildings(
            image, instances, valid, [_donor(2)], np.random.default_rng(seed), beside_p=1.0
        )
        assert (new_inst == 2).any()
        assert contact_map(new_inst, 3).any()  # at most 2 px apart: a wall or a narrow gap


def test_nothing_is_pasted_onto_no_data() -> None:
    image, instances, valid = _chip()
    valid[:, 20:] = False  # only a 20-px strip is valid: a 10 x 14 roof fits there
    for seed in range(10):
        _, new_inst = paste_buildings(
            image, instances, valid, [_donor(3)], np.random.default_rng(seed), beside_p=0.0
        )
        assert not (new_inst[~valid] > 0).any()


def _transform() -> ChipTransform:
    layout = SceneLayout(("r", "g", "b"), ("r", "g", "b"), alpha_band=None, nodata=None)
    return ChipTransform(
        layout, np.zeros(10, dtype=np.int64), 1, 10.0, 5.0, contact_radius=3, body_erosion=3
    )


def test_paste_batch_derives_targets_from_the_new_instances() -> None:
    transform = _transform()
    chips = []
    for k in range(3):
        image, instances, valid = _chip()
        instances[8 + 10 * k : 22 + 10 * k, 10:24] = k + 1
        image[:, instances > 0] = 50.0 * (k + 1)
        target, weight = transform.targets(torch.from_numpy(instances))
        chips.append((image, instances, valid, target, weight))
    batch = {
        "image": torch.stack([torch.from_numpy(c[0]) for c in chips]),
        "instances": torch.stack([torch.from_numpy(c[1]) for c in chips]),
        "valid": torch.stack([torch.from_numpy(c[2]) for c in chips]),
        "target": torch.stack([c[3] for c in chips]),
        "weight": torch.stack([c[4] for c in chips]),
    }
    same = paste_batch(batch, 0.0, transform.targets, np.random.default_rng(0))
    assert same is batch
    out = paste_batch(batch, 1.0, transform.targets, np.random.default_rng(0))
    again = paste_batch(batch, 1.0, transform.targets, np.random.default_rng(0))
    assert all(torch.equal(out[k], again[k]) for k in out)  # seeded: reproducible
    assert torch.equal(batch["instances"][0], torch.from_numpy(chips[0][1]))  # input untouched
    for i in range(3):
        ids = set(out["instances"][i].unique().tolist()) - {0}
        assert i + 1 in ids and len(ids) > 1  # every chip received a roof of another
        target, weight = transform.targets(out["instances"][i])
        assert torch.equal(out["target"][i], target)
        assert torch.equal(out["weight"][i], weight)
        # channels: building, body, contact; body lies inside the buildings
        assert bool((out["target"][i, 1] <= out["target"][i, 0]).all())
