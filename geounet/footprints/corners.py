"""Corners that squaring cut at 45 degrees, made right angles again.

buildingregulariser aligns each wall to a footprint's main direction or at 45 degrees to
it (``allow_45_degree``). Without the 45-degree walls a slanted wall becomes a staircase
of right angles (2.5-3.4 corners per true corner on the validation strips,
``docs/footprints.md``), but with them a rounded roof corner of the traced outline often
becomes a short wall at 45 degrees between two walls at right angles: two corners 45
degrees off a right angle where the roof has one. Such a cut is undone here by extending
its two walls until they meet, when the outline still fits the roof it was traced from.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import Polygon

from geounet.footprints.geometry import iou

TURN_TOLERANCE_DEG = 5.0
"""How far from 45 degrees each turn of a cut corner may be."""


def _turn(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    """The signed turn from direction ``a`` to direction ``b``, degrees in (-180, 180]."""
    return float(np.degrees(np.arctan2(a[0] * b[1] - a[1] * b[0], a[0] * b[0] + a[1] * b[1])))


def _square_one_cut(ring: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
    """The ring with its first cut corner squared, or None if it has none.

    A cut corner is an edge both of whose ends turn by 45 degrees the same way, so that the
    edges before and after it are at right angles: its two corners are replaced by the
    point where those edges, extended, meet.
    """
    n = len(ring)
    for i in range(n):
        p0, p1, p2, p3 = ring[i - 1], ring[i], ring[(i + 1) % n], ring[(i + 2) % n]
        before, cut, after = p1 - p0, p2 - p1, p3 - p2
        t1, t2 = _turn(before, cut), _turn(cut, after)
        if (
            abs(abs(t1) - 45.0) > TURN_TOLERANCE_DEG
            or abs(abs(t2) - 45.0) > TURN_TOLERANCE_DEG
            or np.sign(t1) != np.sign(t2)
        ):
            continue
        # p0 + s * before = p2 + u * after (perpendicular lines: one solution)
        s, _ = np.linalg.solve(np.column_stack([before, -after]), p2 - p0)
        corner = p0 + s * before
        rest = np.delete(ring, [i, (i + 1) % n], axis=0)
        at = i if i + 1 < n else 0  # the corner goes where the cut was
        squared = np.insert(rest, at, corner, axis=0)
        if Polygon(squared).is_valid:
            return squared
    return None


def square_cut_corners(polygon: Polygon) -> Polygon:
    """Every 45-degree cut corner of a polygon's outer ring made a right angle.

    Args:
        polygon: A squared outline.

    Returns:
        The outline with each cut corner replaced by the corner of its two walls
        extended (courtyards unchanged); the polygon itself if it has none, or is not a
        polygon.
    """
    if polygon.geom_type != "Polygon" or polygon.is_empty:
        return polygon
    ring = np.asarray(shapely.simplify(polygon.exterior, 0.0).coords)[:-1]
    changed = False
    while len(ring) > 4:
        squared = _square_one_cut(ring)
        if squared is None:
            break
        ring = np.asarray(shapely.simplify(shapely.LinearRing(squared), 0.0).coords)[:-1]
        changed = True
    if not changed:
        return polygon
    return Polygon(ring, [r.coords for r in polygon.interiors])


def square_cut_corners_that_fit(
    squared: npt.NDArray[np.object_], traced: npt.NDArray[np.object_], fit: float
) -> npt.NDArray[np.object_]:
    """Each squared outline's cut corners made right angles, where the outline still fits.

    Args:
        squared: Squared outlines.
        traced: The outlines they were squared from, in the same order.
        fit: An outline with its corners squared is kept when its IoU with the traced
            outline is at least this, or at least what it was before (a long wall at
            45 degrees, which the roof has, is kept).

    Returns:
        The outlines, in their order.
    """
    cornered = np.array([square_cut_corners(g) for g in squared], dtype=object)
    before = iou(squared, traced)
    keep = iou(cornered, traced) >= np.minimum(before, fit)
    return np.where(keep, cornered, squared)
