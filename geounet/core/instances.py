"""Building instances from probability maps: connected regions, split where seeds say so.

Pure numpy and scipy (no I/O): shared by vectorising (:mod:`geounet.footprints.vectorize`) and by
validation during training (:mod:`geounet.train.validation`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage


def split_instances(
    mask: npt.NDArray[np.bool_],
    seed_mask: npt.NDArray[np.bool_] | None,
    elevation: npt.NDArray[Any],
    min_seed_pixels: int = 4,
    components: tuple[npt.NDArray[np.int32], int] | None = None,
) -> tuple[npt.NDArray[np.int32], int]:
    """Split a building mask into instances: its components, cut where seeds say so.

    Instances are the 4-connected components of ``mask``, except that a component holding
    two or more seeds (4-connected regions of ``seed_mask`` of at least
    ``min_seed_pixels``) is divided among them by a marker-based watershed over
    ``elevation``, run on that component alone (cropped to its bounding box). A component
    with one seed or none stays whole, so nothing is cut where the model sees one roof,
    and each component's split depends on its own pixels only: the same whatever window
    holds it.

    Args:
        mask: Building pixels.
        seed_mask: Pixels that may seed a building, or ``None`` (no split).
        elevation: Flooded from low to high (e.g. ``-probability``), same shape as ``mask``.
        min_seed_pixels: Smaller seeds are ignored (their pixels join a neighbour).
        components: The components of ``mask`` if already labelled, ``(labels, n)``
            (labels may skip numbers).

    Returns:
        ``(labels, n)``: int32 labels (0 = background) up to ``n``: component ``i``
        keeps the label ``i`` for its first seed's part; further parts get labels above
        the component count.
    """
    comps, n = ndimage.label(mask) if components is None else components
    comps = comps.astype(np.int32, copy=False)
    if seed_mask is None or n == 0:
        return comps, int(n)
    seeds, n_seeds = ndimage.label(seed_mask & mask)
    if n_seeds < 2:
        return comps, int(n)
    sizes = np.bincount(seeds.ravel(), minlength=n_seeds + 1)
    good = sizes >= min_seed_pixels
    good[0] = False
    at = seeds > 0
    comp_of_seed = np.zeros(n_seeds + 1, dtype=np.int64)
    comp_of_seed[seeds[at]] = comps[at]  # a seed lies inside one component
    per_comp = np.bincount(comp_of_seed[good], minlength=n + 1)
    multi = np.flatnonzero(per_comp >= 2)
    if not len(multi):
        return comps, int(n)
    from skimage.segmentation import watershed

    boxes = ndimage.find_objects(comps)
    out = comps.copy()
    next_label = n + 1
    for c in multi:
        box = boxes[c - 1]
        if box is None:  # a label skipped by the caller's numbering
            continue
        inside = comps[box] == c
        markers = np.where(inside & good[seeds[box]], seeds[box], 0)
        parts = watershed(elevation[box], markers=markers, mask=inside, connectivity=1)
        _, index = np.unique(parts[inside], return_inverse=True)  # 0 = first seed's part
        view = out[box]
        view[inside] = np.where(index == 0, c, next_label + index - 1)
        next_label += int(index.max())
    return out, next_label - 1


def label_instances(
    prob: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    threshold: float,
    contact: npt.NDArray[np.float32] | None = None,
    contact_threshold: float = 0.5,
    min_seed_pixels: int = 4,
    body: npt.NDArray[np.float32] | None = None,
    body_threshold: float = 0.5,
) -> tuple[npt.NDArray[np.int32], int]:
    """Split the building mask of a window into instances.

    Without split channels, instances are the 4-connected regions of the mask. With a
    ``body`` channel (building interiors, shrunk away from outlines and neighbours) and/or
    a ``contact`` channel (pixels between touching buildings), seeds are the building
    pixels that are body (``body >= body_threshold``) and not contact
    (``contact < contact_threshold``), and a region holding several seeds is divided
    among them by a marker-based watershed over the building probability (see
    :func:`split_instances`). Cuts happen only where the model separates bodies or sees a
    contact, so one roof with one body stays whole.

    Args:
        prob: Building probabilities, shape (rows, cols).
        valid: Validity mask (False = no data, never a building).
        threshold: A pixel is a building where ``prob >= threshold``.
        contact: Contact probabilities, or ``None``.
        contact_threshold: Contact probability at or above which a pixel is a border.
        min_seed_pixels: Smaller seeds are ignored (their pixels join a neighbour).
        body: Body probabilities, or ``None``.
        body_threshold: Body probability at or above which a pixel can seed a building.

    Returns:
        ``(labels, n)``: int32 labels 1..n (0 = background) and the number of instances.
    """
    mask = (prob >= threshold) & valid
    seeds = seed_mask(mask, body, body_threshold, contact, contact_threshold)
    return split_instances(mask, seeds, -prob, min_seed_pixels)


def seed_mask(
    mask: npt.NDArray[np.bool_],
    body: npt.NDArray[np.float32] | None,
    body_threshold: float = 0.5,
    contact: npt.NDArray[np.float32] | None = None,
    contact_threshold: float = 0.5,
) -> npt.NDArray[np.bool_] | None:
    """The pixels that may seed a building: body and not contact (see :func:`label_instances`).

    Args:
        mask: Building pixels; a seed pixel is always one of them.
        body: Body probabilities, or ``None``.
        body_threshold: Body probability at or above which a pixel can seed a building.
        contact: Contact probabilities, or ``None``.
        contact_threshold: Contact probability at or above which a pixel is a border.

    Returns:
        The seed pixels, or ``None`` without a body or contact channel (no split).
    """
    if body is None and contact is None:
        return None
    seeds = mask.copy()
    if body is not None:
        seeds &= body >= body_threshold
    if contact is not None:
        seeds &= contact < contact_threshold
    return seeds
