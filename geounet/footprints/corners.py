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
from shapely.geometry import Polygon

from geounet.core.shape import corner_angles, outer_ring
from geounet.footprints.geometry import iou

TURN_TOLERANCE_DEG = 5.0
"""How far from 45 degrees each turn of a cut corner may be."""


def _square_one_cut(ring: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
    """The ring with its first cut corner squared, or None if it has none.

    A cut corner is an edge both of whose ends turn by 45 degrees the same way, so that the
    edges before and after it are at right angles: its two corners are replaced by the
    point where those edges, extended, meet.
    """
    n = len(ring)
    turns = corner_angles(ring) - 180.0  # signed, (-180, 180)
    at45 = np.abs(np.abs(turns) - 45.0) <= TURN_TOLERANCE_DEG
    nxt = np.roll(np.arange(n), -1)
    for i in np.flatnonzero(at45 & at45[nxt] & (np.sign(turns) == np.sign(turns[nxt]))):
        p0, p1, p2, p3 = ring[i - 1], ring[i], ring[nxt[i]], ring[nxt[nxt[i]]]
        before, after = p1 - p0, p3 - p2
        # p0 + s * before = p2 + u * after (perpendicular lines: one solution)
        s, _ = np.linalg.solve(np.column_stack([before, -after]), p2 - p0)
        rest = np.delete(ring, [i, nxt[i]], axis=0)
        squared = np.insert(rest, i if i + 1 < n else 0, p0 + s * before, axis=0)
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
    ring = outer_ring(polygon)
    changed = False
    while len(ring) > 4 and (squared := _square_one_cut(ring)) is not None:
        ring = outer_ring(Polygon(squared))  # a corner in line with its walls is dropped
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
