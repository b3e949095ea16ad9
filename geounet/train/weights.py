"""The U-Net border weight map (Ronneberger et al. 2015) that separates touching buildings.

``w(x) = w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))`` on background pixels, where ``d1``
and ``d2`` are the distances (in pixels) to the nearest and the second-nearest building.
Narrow gaps between two buildings get a large weight, so the network learns to keep them
open; pixels far from any pair of buildings get (almost) zero. Inside buildings the map is 0
(the class-balance term of the loss still applies there).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import ndimage


def border_weight_map(
    instances: npt.ArrayLike, w0: float = 10.0, sigma: float = 5.0
) -> npt.NDArray[np.float32]:
    """Compute the border weight map of an instance label image.

    Distances are computed per instance within its bounding box grown by ``5 * sigma``
    pixels (beyond that the weight is below ``w0 * 4e-6``), so the cost grows with the
    number of buildings, not with their product.

    Args:
        instances: (H, W) integer array: 0 = background, 1, 2, ... = one id per building.
        w0: Weight amplitude.
        sigma: Width of the weight, in pixels.

    Returns:
        (H, W) float32 weights, 0 inside buildings and where fewer than two buildings are near.
    """
    inst = np.asarray(instances)
    if inst.ndim != 2:
        raise ValueError(f"instances must be (H, W), got shape {inst.shape}")
    height, width = inst.shape
    d1 = np.full(inst.shape, np.inf, dtype=np.float64)
    d2 = np.full(inst.shape, np.inf, dtype=np.float64)
    margin = math.ceil(5 * sigma)
    objects = ndimage.find_objects(inst.astype(np.int64, copy=False))
    for label, box in enumerate(objects, start=1):
        if box is None:
            continue
        r0 = max(box[0].start - margin, 0)
        r1 = min(box[0].stop + margin, height)
        c0 = max(box[1].start - margin, 0)
        c1 = min(box[1].stop + margin, width)
        window = inst[r0:r1, c0:c1]
        dist = ndimage.distance_transform_edt(window != label)
        a = d1[r0:r1, c0:c1]
        b = d2[r0:r1, c0:c1]
        b[...] = np.minimum(b, np.maximum(a, dist))
        a[...] = np.minimum(a, dist)
    total = d1 + d2
    weight = np.zeros(inst.shape, dtype=np.float32)
    near = np.isfinite(total) & (inst == 0)
    weight[near] = (w0 * np.exp(-(total[near] ** 2) / (2.0 * sigma**2))).astype(np.float32)
    return weight
