"""Copy-paste augmentation: pack training chips with extra, touching buildings.

Dense settlements (roofs sharing walls) are what the body and contact channels must
learn to separate, and a suburban training scene has few of them. This augmentation
(after Ghiasi et al. 2021, "Simple Copy-Paste is a Strong Data Augmentation Method for
Instance Segmentation") takes whole buildings from another chip of the same batch, with
their pixels, turns them by a multiple of 90 degrees, and pastes them into a chip, most
of them right beside a building already there. Each pasted roof keeps its own instance
id, so the targets (building, body, contact, border weights) are derived again from the
new instance map: touching roofs get the wall between them as contact pixels and two
separate bodies.

Pure NumPy on one chip; the training loop calls :func:`paste_batch`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from scipy import ndimage

#: Buildings pasted into one chip at most.
MAX_PASTED = 6
#: Smallest building taken from a donor chip, in pixels.
MIN_PIXELS = 64


@dataclass(frozen=True)
class Building:
    """One building cut out of a chip: its pixels inside its bounding box.

    Attributes:
        ident: Instance id (unique over the training footprints).
        image: (bands, h, w) pixel values.
        mask: (h, w) pixels of the building.
    """

    ident: int
    image: npt.NDArray[np.float32]
    mask: npt.NDArray[np.bool_]


def whole_buildings(
    image: npt.NDArray[np.float32],
    instances: npt.NDArray[np.int64],
    valid: npt.NDArray[np.bool_],
    min_pixels: int = MIN_PIXELS,
) -> list[Building]:
    """Buildings lying wholly inside a chip, on valid pixels.

    A building cut by the chip's edge or by no-data is left out: pasting half a roof
    would teach an outline that is not there.

    Args:
        image: (bands, H, W) chip.
        instances: (H, W) instance ids (0 = background).
        valid: (H, W) valid pixels.
        min_pixels: Smaller buildings are left out.

    Returns:
        The buildings, in instance-id order.
    """
    height, width = instances.shape
    found = []
    for ident, box in enumerate(ndimage.find_objects(instances), start=1):
        if box is None:
            continue
        rows, cols = box
        if rows.start == 0 or cols.start == 0 or rows.stop == height or cols.stop == width:
            continue
        mask = instances[box] == ident
        if mask.sum() < min_pixels or not valid[box][mask].all():
            continue
        found.append(Building(ident, image[:, rows, cols].copy(), mask))
    return found


def _turned(building: Building, rng: np.random.Generator) -> Building:
    k = int(rng.integers(4))
    image = np.rot90(building.image, k, axes=(1, 2))
    mask = np.rot90(building.mask, k)
    if rng.random() < 0.5:
        image, mask = image[:, :, ::-1], mask[:, ::-1]
    return Building(building.ident, np.ascontiguousarray(image), np.ascontiguousarray(mask))


def _beside(
    instances: npt.NDArray[np.int64], shape: tuple[int, int], rng: np.random.Generator
) -> tuple[int, int] | None:
    """Top-left corner that puts a box of ``shape`` against a random building's side."""
    boxes = [b for b in ndimage.find_objects(instances) if b is not None]
    if not boxes:
        return None
    rows, cols = boxes[int(rng.integers(len(boxes)))]
    h, w = shape
    gap = int(rng.integers(0, 3))  # 0: sharing a wall, 1-2 px: a narrow gap
    side = int(rng.integers(4))
    if side == 0:  # above
        return rows.start - h - gap, int(rng.integers(cols.start - w // 2, cols.stop - w // 2 + 1))
    if side == 1:  # below
        return rows.stop + gap, int(rng.integers(cols.start - w // 2, cols.stop - w // 2 + 1))
    if side == 2:  # left
        return int(rng.integers(rows.start - h // 2, rows.stop - h // 2 + 1)), cols.start - w - gap
    return int(rng.integers(rows.start - h // 2, rows.stop - h // 2 + 1)), cols.stop + gap


def paste_buildings(
    image: npt.NDArray[np.float32],
    instances: npt.NDArray[np.int64],
    valid: npt.NDArray[np.bool_],
    donors: list[Building],
    rng: np.random.Generator,
    count: int = MAX_PASTED,
    beside_p: float = 0.75,
    tries: int = 4,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Paste up to ``count`` donor buildings into a chip.

    Each donor is turned by a random multiple of 90 degrees (and maybe mirrored) and
    placed, with probability ``beside_p``, against a side of a building already in the
    chip (sharing a wall or 1-2 px apart), else anywhere. A placement must fit inside the
    chip, on valid pixels (``tries`` placements are tried); it may cover part of another
    roof, which then loses those pixels (one roof seen partly over another). Donors whose
    id is already in the chip are skipped, so every instance keeps one id.

    Args:
        image: (bands, H, W) chip; not modified.
        instances: (H, W) instance ids; not modified.
        valid: (H, W) valid pixels.
        donors: Buildings to choose from.
        rng: Random generator.
        count: Most buildings pasted.
        beside_p: Probability of placing a building against another one.
        tries: Placements tried per donor before it is skipped.

    Returns:
        The new ``(image, instances)``.
    """
    image, instances = image.copy(), instances.copy()
    height, width = instances.shape
    present = set(np.unique(instances).tolist())
    order = rng.permutation(len(donors))[: count * 2]
    pasted = 0
    for index in order:
        if pasted == count:
            break
        donor = donors[int(index)]
        if donor.ident in present:
            continue
        donor = _turned(donor, rng)
        h, w = donor.mask.shape
        if h >= height or w >= width:
            continue
        for _ in range(tries):
            corner = _beside(instances, (h, w), rng) if rng.random() < beside_p else None
            if corner is None:
                corner = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
            r, c = corner
            inside = min(r, c) >= 0 and r + h <= height and c + w <= width
            if inside and valid[r : r + h, c : c + w][donor.mask].all():
                break
        else:
            continue
        image[:, r : r + h, c : c + w][:, donor.mask] = donor.image[:, donor.mask]
        instances[r : r + h, c : c + w][donor.mask] = donor.ident
        present.add(donor.ident)
        pasted += 1
    return image, instances


def paste_batch(
    batch: dict[str, torch.Tensor],
    probability: float,
    targets: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    rng: np.random.Generator,
) -> dict[str, torch.Tensor]:
    """Apply copy-paste to a training batch.

    Each chip, with probability ``probability``, receives buildings cut from the other
    chips of the batch (as they were before any pasting); its targets and border weights
    are then derived again from its new instance map by ``targets``. The input batch is
    left as it is.

    Args:
        batch: Collated batch with ``image`` (N, bands, H, W), ``instances`` (N, H, W),
            ``valid`` (N, H, W), ``target`` (N, C, H, W) and ``weight`` (N, H, W).
        probability: Chance that a chip receives pasted buildings.
        targets: Instance map (H, W) to ``(target (C, H, W), weight (H, W))``, as the
            dataset makes them.
        rng: Random generator.

    Returns:
        ``batch`` itself when no chip was chosen, else a new batch whose chosen chips
        carry the pasted roofs.
    """
    n = batch["image"].shape[0]
    chosen = [i for i in range(n) if rng.random() < probability]
    if not chosen or n < 2:
        return batch
    images = batch["image"].numpy()
    instances = batch["instances"].numpy()
    valid = batch["valid"].numpy()
    cut = [whole_buildings(images[i], instances[i], valid[i]) for i in range(n)]
    out = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    for i in chosen:
        donors = [b for j in range(n) if j != i for b in cut[j]]
        if not donors:
            continue
        image, inst = paste_buildings(images[i], instances[i], valid[i], donors, rng)
        target, weight = targets(torch.from_numpy(inst))
        out["image"][i] = torch.from_numpy(image)
        out["instances"][i] = torch.from_numpy(inst)
        out["target"][i] = target
        out["weight"][i] = weight
    return out
