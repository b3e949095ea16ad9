"""How building-like a footprint's outline is: corners, right angles, distance to the truth.

Figures of the polygon-extraction literature, computed on the pairs that object matching
made (a predicted footprint and the true one it matched):

- vertices: the corners of the outer ring (collinear points do not count);
- corner offset: how far each corner's angle is from a right angle (90 or 270 degrees),
  in degrees: a pixel staircase scores 0 here and many vertices above, a rounded blob
  scores high;
- PoLiS (Avbelj et al. 2015): the mean distance from each polygon's corners to the other's
  outline, averaged over both directions, in the units of the coordinates;
- turn: how far the predicted outline's main direction is turned from the true one's, in
  degrees (0 to 45): a footprint squared to the wrong direction keeps few corners and
  right angles but loses overlap with its roof.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry


def outer_ring(geom: BaseGeometry) -> npt.NDArray[np.float64]:
    """The corners of a polygon's outer ring (of its largest part), without repeats.

    Collinear and repeated points are dropped, so a traced outline counts its corners only.

    Returns:
        (n, 2) coordinates, the ring not closed (first point not repeated).
    """
    if geom.geom_type == "MultiPolygon":
        geom = max(geom.geoms, key=lambda g: g.area)
    if geom.is_empty or geom.geom_type != "Polygon":
        return np.zeros((0, 2))
    ring = np.asarray(shapely.simplify(geom.exterior, 0.0).coords)[:-1]
    return ring


def corners(geom: BaseGeometry) -> int:
    """How many corners a polygon's outer ring has (collinear points not counted)."""
    return len(outer_ring(geom))


def corner_angles(ring: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The angle at each corner of a ring, in degrees in (0, 360), measured on one side.

    Which side (inside or outside) depends on the ring's orientation; the offset from a
    right angle (:func:`right_angle_offsets`) does not.
    """
    if len(ring) < 3:
        return np.zeros(0)
    before = np.roll(ring, 1, axis=0) - ring
    after = np.roll(ring, -1, axis=0) - ring
    angle = np.degrees(
        np.arctan2(after[:, 1], after[:, 0]) - np.arctan2(before[:, 1], before[:, 0])
    )
    return np.mod(angle, 360.0)


def right_angle_offsets(geom: BaseGeometry) -> npt.NDArray[np.float64]:
    """How far each corner of the outer ring is from a right angle (90 or 270), degrees."""
    angles = corner_angles(outer_ring(geom))
    return np.minimum(np.abs(angles - 90.0), np.abs(angles - 270.0))


def main_direction(geom: BaseGeometry) -> float:
    """The main direction of a polygon's walls, in degrees modulo 90, in [0, 90).

    The walls' directions are averaged on the circle of directions modulo 90 (each
    angle times four), weighed by length, so a wall and the walls at right angles to it
    count as one direction and a pixel staircase counts as its steps' direction.

    Returns:
        The direction, or NaN for an outline without walls or without a main direction
        (a square's outline does have one; a regular octagon's does not).
    """
    ring = outer_ring(geom)
    if len(ring) < 3:
        return float("nan")
    step = np.roll(ring, -1, axis=0) - ring
    total = np.sum(
        np.hypot(step[:, 0], step[:, 1]) * np.exp(4j * np.arctan2(step[:, 1], step[:, 0]))
    )
    if abs(total) < 1e-9 * max(float(np.abs(step).sum()), 1e-300):
        return float("nan")
    direction = float(np.degrees(np.angle(total)) / 4.0 % 90.0)
    return 0.0 if direction > 90.0 - 1e-9 else direction  # -1e-17 is 0, not 90


def direction_offset(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The turn from direction ``a`` to ``b``, in degrees modulo 90, within [-45, 45)."""
    return np.asarray((np.asarray(b, float) - np.asarray(a, float) + 45.0) % 90.0 - 45.0)


def turn(a: BaseGeometry, b: BaseGeometry) -> float:
    """How far ``b``'s main direction is turned from ``a``'s, degrees in [0, 45] (or NaN)."""
    return float(abs(direction_offset(main_direction(a), main_direction(b))))


def polis(a: BaseGeometry, b: BaseGeometry) -> float:
    """PoLiS distance of two polygons: mean corner-to-outline distance, both ways, halved.

    Args:
        a: A polygon.
        b: Another, in the same (projected) coordinates.

    Returns:
        ``0.5 * mean(d(corner of a, outline of b)) + 0.5 * mean(d(corner of b, outline of a))``.
    """
    ra, rb = outer_ring(a), outer_ring(b)
    if not len(ra) or not len(rb):
        return float("nan")
    da = shapely.distance(shapely.points(ra), b.boundary)
    db = shapely.distance(shapely.points(rb), a.boundary)
    return float(0.5 * da.mean() + 0.5 * db.mean())


@dataclass(frozen=True)
class ShapeFigures:
    """Outline figures of matched pairs, as sums so that scenes can be added up.

    Attributes:
        pairs: Matched pairs measured.
        predicted_vertices: Corners of the predicted outlines, summed.
        truth_vertices: Corners of the true outlines, summed.
        predicted_offset_sum: Right-angle offsets of every predicted corner, summed (degrees).
        truth_offset_sum: The same for the true outlines.
        polis_sum: PoLiS distances of the pairs, summed (metres).
        turned_pairs: Pairs whose outlines both have a main direction.
        turn_sum: Their turns (:func:`turn`), summed (degrees).
    """

    pairs: int = 0
    predicted_vertices: int = 0
    truth_vertices: int = 0
    predicted_offset_sum: float = 0.0
    truth_offset_sum: float = 0.0
    polis_sum: float = 0.0
    turned_pairs: int = 0
    turn_sum: float = 0.0

    @property
    def vertex_ratio(self) -> float:
        """Predicted corners per true corner over the pairs (1 = as many as the truth)."""
        return self.predicted_vertices / self.truth_vertices if self.truth_vertices else 0.0

    @property
    def predicted_offset(self) -> float:
        """Mean offset of the predicted corners from a right angle, degrees."""
        return self.predicted_offset_sum / max(self.predicted_vertices, 1)

    @property
    def truth_offset(self) -> float:
        """Mean offset of the true corners from a right angle, degrees."""
        return self.truth_offset_sum / max(self.truth_vertices, 1)

    @property
    def polis(self) -> float:
        """Mean PoLiS distance of the pairs, metres."""
        return self.polis_sum / self.pairs if self.pairs else 0.0

    @property
    def turn(self) -> float:
        """Mean turn of the predicted outlines from their true outlines' directions, degrees."""
        return self.turn_sum / self.turned_pairs if self.turned_pairs else 0.0

    def to_dict(self) -> dict[str, float | int]:
        """The sums and the figures derived from them, JSON-ready."""
        return {
            "pairs": self.pairs,
            "predicted_vertices": self.predicted_vertices,
            "truth_vertices": self.truth_vertices,
            "predicted_offset_sum": round(self.predicted_offset_sum, 3),
            "truth_offset_sum": round(self.truth_offset_sum, 3),
            "polis_sum": round(self.polis_sum, 4),
            "turned_pairs": self.turned_pairs,
            "turn_sum": round(self.turn_sum, 3),
            "vertex_ratio": round(self.vertex_ratio, 4),
            "predicted_right_angle_offset_deg": round(self.predicted_offset, 3),
            "truth_right_angle_offset_deg": round(self.truth_offset, 3),
            "polis_m": round(self.polis, 4),
            "turn_deg": round(self.turn, 3),
        }


def shape_figures(predicted: Sequence[BaseGeometry], truth: Sequence[BaseGeometry]) -> ShapeFigures:
    """Outline figures of matched pairs (``predicted[i]`` matched ``truth[i]``).

    Args:
        predicted: Predicted footprints, in metres (a projected CRS).
        truth: The true footprints they matched, in the same CRS.

    Returns:
        The summed figures.
    """
    pv = tv = turned = 0
    po = to = dist = turns = 0.0
    for p, t in zip(predicted, truth, strict=True):
        p_off, t_off = right_angle_offsets(p), right_angle_offsets(t)
        pv, tv = pv + len(p_off), tv + len(t_off)
        po, to = po + float(p_off.sum()), to + float(t_off.sum())
        dist += polis(p, t)
        if not np.isnan(angle := turn(t, p)):
            turned, turns = turned + 1, turns + angle
    return ShapeFigures(len(predicted), pv, tv, po, to, dist, turned, turns)
