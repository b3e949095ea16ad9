"""Walls of a squared footprint moved, one at a time and parallel to themselves, onto its roof.

Squaring (:func:`~geounet.footprints.vectorize.regularize_footprints`) fixes each wall's
direction; this fixes its position. Each wall is a line, each corner the crossing of two
consecutive lines, so moving a line along its normal keeps every angle. Each wall in turn
takes the offset, within a reach, at which the outline fits its roof best (coordinate
ascent on the IoU with the traced outline, less the weighed overlap with the neighbours),
for a few passes. Chosen on the four places' validation strips; ``--regularize`` fits
walls within a pixel, one pass (docs/footprints.md).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient

Area = float | npt.NDArray[np.float64]
"""An area, or one per outline."""

MAX_WALLS = 64
"""Outlines with more walls are left as they are (they are not building-shaped anyway)."""


def _lines(poly: Polygon) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    """Each wall's start point and unit direction, counter-clockwise; ``None`` if unusable."""
    ring = np.asarray(orient(poly, 1.0).exterior.coords)[:-1]
    if not 3 <= len(ring) <= MAX_WALLS:
        return None
    step = np.roll(ring, -1, axis=0) - ring
    length = np.hypot(step[:, 0], step[:, 1])
    if np.any(length <= 0):
        return None
    direction = step / length[:, None]
    previous = np.roll(direction, 1, axis=0)
    if np.any(np.abs(previous[:, 0] * direction[:, 1] - previous[:, 1] * direction[:, 0]) < 1e-3):
        return None  # two consecutive walls (nearly) parallel: their corner is undefined
    return ring, direction


def _corners(
    points: npt.NDArray[np.float64],
    direction: npt.NDArray[np.float64],
    offsets: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Corners of the outline whose walls are moved outwards by ``offsets`` (..., walls)."""
    normal = np.stack([direction[:, 1], -direction[:, 0]], axis=1)  # outwards, CCW ring
    start = points + offsets[..., None] * normal  # (..., walls, 2)
    prev_start, prev_dir = np.roll(start, 1, axis=-2), np.roll(direction, 1, axis=0)
    # corner i: prev_start + t * prev_dir == start + s * direction, solved for t
    delta = start - prev_start
    cross = prev_dir[:, 0] * direction[:, 1] - prev_dir[:, 1] * direction[:, 0]
    t = (delta[..., 0] * direction[:, 1] - delta[..., 1] * direction[:, 0]) / cross
    return prev_start + t[..., None] * prev_dir


def fit_walls(
    squared: npt.NDArray[np.object_],
    traced: npt.NDArray[np.object_],
    reach: float,
    step: float,
    overlap_weight: float = 10.0,
    passes: int = 2,
) -> npt.NDArray[np.object_]:
    """Move each wall of each squared outline to where the outline best fits its roof.

    The fit of an outline is its IoU with its traced outline, less ``overlap_weight``
    times the share of the traced area it overlaps of the other squared outlines (as
    fitted so far): walls move off a neighbour as far as that does not cost more of the
    roof, so touching roofs meet along a wall instead of being cut apart at an angle.

    Args:
        squared: Squared outlines (polygons without holes are fitted; others kept).
        traced: The traced outline of each.
        reach: Farthest a wall moves, in CRS units.
        step: Offsets tried, in CRS units (from ``-reach`` to ``reach``).
        overlap_weight: Weight of the overlap with the other outlines.
        passes: Rounds over the walls.

    Returns:
        The outlines, each fitted where that fits better than before, else as it was.
    """
    candidates = np.arange(-reach, reach + step / 2, step)
    tree = shapely.STRtree(squared)
    out = squared.copy()
    for k, poly in enumerate(squared):
        if shapely.get_type_id(poly) != 3 or len(poly.interiors):
            continue
        lines = _lines(poly)
        if lines is None:
            continue
        near = tree.query(shapely.buffer(poly, 2 * reach), predicate="intersects")
        others = shapely.union_all(out[near[near != k]])
        offsets = _fit_one(lines, poly, traced[k], others, candidates, overlap_weight, passes)
        if offsets.any():
            out[k] = shapely.polygons(_corners(*lines, offsets))
    return out


def _band(
    points: npt.NDArray[np.float64],
    direction: npt.NDArray[np.float64],
    offsets: npt.NDArray[np.float64],
    wall: int,
    low: float,
    high: float,
) -> Polygon | None:
    """The region a wall sweeps between two offsets, the others as they are.

    ``None`` where the walls beside it cross within it (the region is not simple).
    """
    trial = np.repeat(offsets[None], 2, axis=0)
    trial[:, wall] = low, high
    corners = _corners(points, direction, trial)
    after = (wall + 1) % len(points)
    band = Polygon([corners[0, wall], corners[0, after], corners[1, after], corners[1, wall]])
    return band if band.is_valid and band.area > 0 else None


def _overlaps(
    polys: npt.NDArray[np.object_],
    layer: object,
    current: Polygon,
    on_layer: float,
    band: Polygon | None,
) -> npt.NDArray[np.float64]:
    """The area each candidate outline shares with ``layer``.

    Where the candidates differ from the current outline only within ``band``, that is
    the current outline's (``on_layer``), less its part in the band, plus the candidate's
    part there; without a band, each candidate is intersected whole.
    """
    if band is None:
        return np.asarray(shapely.area(shapely.intersection(polys, layer)))
    part = shapely.intersection(layer, band)
    inside = shapely.area(shapely.intersection(polys, part))
    return np.asarray(on_layer - shapely.area(shapely.intersection(current, part)) + inside)


def _fit_one(
    lines: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]],
    poly: Polygon,
    target: Polygon,
    others: object,
    candidates: npt.NDArray[np.float64],
    overlap_weight: float,
    passes: int,
) -> npt.NDArray[np.float64]:
    """The wall offsets of one outline, by coordinate ascent (see :func:`fit_walls`).

    Moving one wall changes the outline only within the band that wall sweeps, so the
    overlaps of each candidate are those of the current outline, less their part in the
    band, plus the candidate's part there: each candidate is intersected with the part
    of the roof (and of the neighbours) inside the band, not with the whole roof.
    """
    points, direction = lines
    target_area = shapely.area(target)
    weight = overlap_weight / max(target_area, 1e-12)

    def score(area: Area, on_roof: Area, on_others: Area) -> npt.NDArray[np.float64]:
        fit = on_roof / np.maximum(area + target_area - on_roof, 1e-12)
        return np.asarray(fit - weight * on_others)

    offsets = np.zeros(len(points))
    current: Polygon = poly
    on_roof = shapely.area(shapely.intersection(poly, target))
    on_others = shapely.area(shapely.intersection(poly, others))
    best = float(score(shapely.area(poly), on_roof, on_others))
    for _ in range(passes):
        for wall in range(len(points)):
            trial = np.repeat(offsets[None], len(candidates), axis=0)
            trial[:, wall] = candidates
            polys = shapely.polygons(_corners(points, direction, trial))
            ok = np.flatnonzero(shapely.is_valid(polys))
            if not len(ok):
                continue
            band = _band(points, direction, offsets, wall, candidates[0], candidates[-1])
            roof = _overlaps(polys[ok], target, current, on_roof, band)
            near = _overlaps(polys[ok], others, current, on_others, band)
            scores = score(shapely.area(polys[ok]), roof, near)
            top = int(scores.argmax())
            if scores[top] > best:
                best, offsets = float(scores[top]), trial[ok[top]]
                current, on_roof, on_others = polys[ok[top]], roof[top], near[top]
    return offsets
