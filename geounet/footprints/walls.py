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

from collections.abc import Callable

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
    before = np.arange(-1, len(points) - 1)  # the wall before each (np.roll, but sooner)
    prev_start, prev_dir = start[..., before, :], direction[before]
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
    advance: Callable[[int], None] | None = None,
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
        advance: Called with 1 after each outline (progress).

    Returns:
        The outlines, each fitted where that fits better than before, else as it was.
    """
    candidates = np.arange(-reach, reach + step / 2, step)
    tree = shapely.STRtree(squared)
    out = squared.copy()
    for k, poly in enumerate(squared):
        lines = _lines(poly) if shapely.get_type_id(poly) == 3 and not poly.interiors else None
        if lines is not None:
            near = tree.query(shapely.buffer(poly, 2 * reach), predicate="intersects")
            others = shapely.union_all(out[near[near != k]])
            offsets = _fit_one(lines, poly, traced[k], others, candidates, overlap_weight, passes)
            if offsets.any():
                out[k] = shapely.polygons(_corners(*lines, offsets))
        if advance is not None:
            advance(1)
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


def _below(
    geom: object, normal: npt.NDArray[np.float64], levels: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """The area of ``geom``'s polygons where ``p . normal`` is at most each level.

    With ``v = p . normal`` and ``u`` along the line, an area is the integral of ``u dv``
    around its outline (exteriors counter-clockwise, holes clockwise), and the line that
    closes the part below a level adds nothing to it (``dv = 0`` there): so each level's
    area sums, over the outline's edges, the integral along the part of the edge below
    it. No overlay is computed.
    """
    parts = shapely.get_parts(geom)
    rings = shapely.get_rings(shapely.orient_polygons(parts[shapely.get_type_id(parts) == 3]))
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    u, v = xy @ np.array([normal[1], -normal[0]]), xy @ normal  # a right-handed frame
    edge = ring[1:] == ring[:-1]  # consecutive corners of one ring (closed: all its edges)
    u1, v1, u2, v2 = u[:-1][edge], v[:-1][edge], u[1:][edge], v[1:][edge]
    low, high = np.minimum(v1, v2), np.maximum(v1, v2)
    slope = np.divide(u2 - u1, v2 - v1, out=np.zeros_like(u1), where=v2 != v1)
    top = np.clip(np.asarray(levels)[:, None], low, high)  # (levels, edges)
    # the integral of u dv from low to top, u linear in v along the edge
    swept = (top - low) * (u1 + slope * ((low + top) / 2 - v1))
    return np.asarray((swept * np.sign(v2 - v1)).sum(axis=1))


def _overlaps(
    polys: npt.NDArray[np.object_],
    layer: object,
    on_layer: float,
    band: Polygon | None,
    wall: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float],
) -> npt.NDArray[np.float64]:
    """The area each candidate outline shares with ``layer``.

    The candidates differ from the current outline only within ``band``, where each
    holds what lies inside its wall's line: so each shares what the current outline
    shares (``on_layer``), less the current outline's part of the band, plus its own.
    Without a band, each candidate is intersected whole.

    Args:
        polys: The candidate outlines.
        layer: The roof, or the neighbours.
        on_layer: The area that the current outline shares with ``layer``.
        band: The region that the wall sweeps (:func:`_band`).
        wall: The wall's outward normal, the level (``p . normal``) of its line in each
            candidate, and in the current outline.
    """
    if band is None:
        return np.asarray(shapely.area(shapely.intersection(polys, layer)))
    part = shapely.intersection(layer, band)
    if shapely.is_empty(part):  # the wall sweeps none of it: every candidate shares as much
        return np.full(len(polys), on_layer)
    normal, levels, level = wall
    inside = _below(part, normal, np.append(levels, level))
    return np.asarray(on_layer - inside[-1] + inside[:-1])


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
    band, plus the candidate's part there: the part of the roof (and of the neighbours)
    inside the band is cut out once, and each candidate's share of it is the area on the
    inner side of the candidate's wall line (:func:`_below`), no overlay each.
    """
    points, direction = lines
    target_area = shapely.area(target)
    weight = overlap_weight / max(target_area, 1e-12)

    def score(area: Area, on_roof: Area, on_others: Area) -> npt.NDArray[np.float64]:
        fit = on_roof / np.maximum(area + target_area - on_roof, 1e-12)
        return np.asarray(fit - weight * on_others)

    offsets = np.zeros(len(points))
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
            normal = np.array([direction[wall, 1], -direction[wall, 0]])  # outwards
            base = float(points[wall] @ normal)  # the level of the wall's line at offset 0
            line = (normal, base + candidates[ok], base + offsets[wall])
            roof = _overlaps(polys[ok], target, on_roof, band, line)
            near = _overlaps(polys[ok], others, on_others, band, line)
            scores = score(shapely.area(polys[ok]), roof, near)
            top = int(scores.argmax())
            if scores[top] > best:
                best, offsets = float(scores[top]), trial[ok[top]]
                on_roof, on_others = roof[top], near[top]
    return offsets
