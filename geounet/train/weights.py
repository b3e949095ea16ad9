"""The U-Net border weight map (Ronneberger et al. 2015) that separates touching buildings.

``w(x) = w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))`` on background pixels, where ``d1``
and ``d2`` are the distances (in pixels) to the nearest and the second-nearest building.
Narrow gaps between two buildings get a large weight, so the network learns to keep them
open; pixels far from any pair of buildings get (almost) zero. Inside buildings the map is 0
(the class-balance term of the loss still applies there) unless a *wall* weight is asked
for: then building pixels near a neighbour, along the walls that touching roofs share, get
the same kind of weight, so the network learns where one roof ends and the next begins.

The same two distances give the *contact* target: pixels within a few pixels of two
different buildings. The *body* target is each building shrunk away from its outline (and so
from every neighbour it touches): one blob per building, which prediction uses as the seeds
of a watershed that splits touching roofs.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import ndimage


def _two_nearest(
    inst: npt.NDArray[np.integer], margin: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Distances (pixels) to the nearest and second-nearest instance, within ``margin``.

    Each instance's distance is computed within its bounding box grown by ``margin``
    pixels (infinite beyond), so the cost grows with the number of instances. Inside an
    instance its own distance is 0.
    """
    height, width = inst.shape
    d1 = np.full(inst.shape, np.inf, dtype=np.float64)
    d2 = np.full(inst.shape, np.inf, dtype=np.float64)
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
    return d1, d2


def _instances(instances: npt.ArrayLike) -> npt.NDArray[np.integer]:
    inst = np.asarray(instances)
    if inst.ndim != 2:
        raise ValueError(f"instances must be (H, W), got shape {inst.shape}")
    return inst


def border_weight_map(
    instances: npt.ArrayLike, w0: float = 10.0, sigma: float = 5.0, wall_w0: float = 0.0
) -> npt.NDArray[np.float32]:
    """Compute the border weight map of an instance label image.

    Distances are computed per instance within its bounding box grown by ``5 * sigma``
    pixels (beyond that the weight is below ``w0 * 4e-6``), so the cost grows with the
    number of buildings, not with their product.

    The paper's map weighs only background pixels, the gaps between objects. Roofs that
    share a wall have no gap, so ``wall_w0`` extends the same formula inside buildings: a
    building pixel's nearest building is its own (``d1 = 0``), so it gets
    ``wall_w0 * exp(-d2**2 / (2 * sigma**2))``, largest along a wall shared with a
    neighbour and 0 in a roof with no neighbour near.

    Args:
        instances: (H, W) integer array: 0 = background, 1, 2, ... = one id per building.
        w0: Weight amplitude on background pixels.
        sigma: Width of the weight, in pixels.
        wall_w0: Weight amplitude on building pixels near another building (0: none,
            the paper's map).

    Returns:
        (H, W) float32 weights, 0 where fewer than two buildings are near (and inside
        buildings when ``wall_w0`` is 0).
    """
    inst = _instances(instances)
    d1, d2 = _two_nearest(inst, math.ceil(5 * sigma))
    total = d1 + d2
    weight = np.zeros(inst.shape, dtype=np.float32)
    near = np.isfinite(total)
    amplitude = np.where(inst == 0, w0, wall_w0)
    near &= amplitude > 0
    weight[near] = (amplitude[near] * np.exp(-(total[near] ** 2) / (2.0 * sigma**2))).astype(
        np.float32
    )
    return weight


def contact_map(instances: npt.ArrayLike, radius: float = 2.0) -> npt.NDArray[np.float32]:
    """Pixels where two different buildings (nearly) touch: the contact training target.

    A pixel is a contact pixel when at least two buildings lie within ``radius`` pixels of
    it, so the map covers the wall between touching roofs on both sides and the narrow gap
    between buildings that almost touch; a lone building has no contact pixels at all.

    Args:
        instances: (H, W) integer array: 0 = background, 1, 2, ... = one id per building.
        radius: Distance in pixels within which two buildings are in contact.

    Returns:
        (H, W) float32 map of 0 and 1.
    """
    inst = _instances(instances)
    _, d2 = _two_nearest(inst, math.ceil(radius) + 1)
    return (d2 <= radius).astype(np.float32)


def body_map(instances: npt.ArrayLike, erosion: float = 3.0) -> npt.NDArray[np.float32]:
    """Building interiors: the body training target.

    A pixel is a body pixel when it lies in a building and every pixel within ``erosion``
    pixels belongs to the same building, so two touching buildings get two bodies
    separated by a gap of about ``2 * erosion`` pixels, while a single roof, whatever its
    shape, keeps one body (unless it has a neck narrower than ``2 * erosion``).

    Args:
        instances: (H, W) integer array: 0 = background, 1, 2, ... = one id per building.
        erosion: Distance in pixels from the outline (or a neighbour) that a body pixel
            keeps.

    Returns:
        (H, W) float32 map of 0 and 1.
    """
    inst = _instances(instances)
    edge = _edges(inst)
    if not edge.any():
        return (inst > 0).astype(np.float32)
    dist = ndimage.distance_transform_edt(~edge)
    return ((inst > 0) & (dist >= erosion)).astype(np.float32)


def depth_map(instances: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Building depth, 0 to 1: the body training target of ``--body-target depth``.

    A building pixel's depth is its distance to the building's outline (or to a neighbour
    it touches) divided by the largest such distance in that building: 0 on the outline,
    1 along its middle. Unlike :func:`body_map`, whose fixed erosion leaves narrow roofs
    without a body, every roof gets a body whose size scales with the roof, and two
    touching roofs get depths that fall to 0 at the wall between them; prediction seeds a
    building wherever the predicted depth passes the body threshold.

    Args:
        instances: (H, W) integer array: 0 = background, 1, 2, ... = one id per building.

    Returns:
        (H, W) float32 map, 0 off buildings.
    """
    inst = _instances(instances)
    inside = inst > 0
    if not inside.any():
        return np.zeros(inst.shape, dtype=np.float32)
    edge = _edges(inst)
    dist = ndimage.distance_transform_edt(~edge) if edge.any() else np.ones(inst.shape)
    labels = inst.astype(np.int64, copy=False)
    ids = np.unique(labels[inside])
    peak = np.zeros(int(labels.max()) + 1)
    peak[ids] = ndimage.maximum(dist, labels, index=ids)
    depth = np.where(inside, dist / np.maximum(peak[labels], 1e-6), 0.0)
    return depth.astype(np.float32)


def _edges(inst: npt.NDArray[np.integer]) -> npt.NDArray[np.bool_]:
    """Building pixels whose 4-neighbour has another id (background included)."""
    edge = np.zeros(inst.shape, dtype=bool)
    diff_r = inst[1:, :] != inst[:-1, :]
    diff_c = inst[:, 1:] != inst[:, :-1]
    edge[1:, :] |= diff_r
    edge[:-1, :] |= diff_r
    edge[:, 1:] |= diff_c
    edge[:, :-1] |= diff_c
    return edge & (inst > 0)
