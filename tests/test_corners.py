"""Corners that squaring cut at 45 degrees, made right angles again."""

from __future__ import annotations

import numpy as np
from shapely import affinity
from shapely.geometry import Polygon, box

from geounet.core.shape import outer_ring, right_angle_offsets
from geounet.footprints.corners import square_cut_corners, square_cut_corners_that_fit


def cut(rect: Polygon, size: float) -> Polygon:
    """The rectangle with its top-right corner cut off at 45 degrees, ``size`` along each wall."""
    x0, y0, x1, y1 = rect.bounds
    return Polygon([(x0, y0), (x1, y0), (x1, y1 - size), (x1 - size, y1), (x0, y1)])


def test_a_corner_cut_at_45_degrees_becomes_a_right_angle() -> None:
    rect = affinity.rotate(box(0, 0, 60, 40), 17, origin=(0, 0))
    cut_one = affinity.rotate(cut(box(0, 0, 60, 40), 6), 17, origin=(0, 0))
    assert len(outer_ring(cut_one)) == 5
    squared = square_cut_corners(cut_one)
    assert len(outer_ring(squared)) == 4
    assert right_angle_offsets(squared).max() < 1e-6
    assert squared.symmetric_difference(rect).area < 1e-6


def test_both_corners_of_a_rounded_end_become_right_angles_and_steps_are_kept() -> None:
    # a roof whose one end squaring rounded off: four corners 45 degrees off
    rounded = Polygon([(0, 0), (35, 0), (40, 5), (40, 25), (35, 30), (0, 30)])
    # a slanted step between two parallel walls, and an L: no corner is cut
    step = Polygon([(0, 0), (40, 0), (40, 30), (20, 30), (15, 35), (0, 35)])
    ell = Polygon([(0, 0), (40, 0), (40, 15), (20, 15), (20, 30), (0, 30)])
    squared = square_cut_corners(rounded)
    assert squared.symmetric_difference(box(0, 0, 40, 30)).area < 1e-6
    assert square_cut_corners(step).equals(step)
    assert square_cut_corners(ell).equals(ell)


def test_a_long_wall_at_45_degrees_that_the_roof_has_is_kept() -> None:
    # traced roofs: one with a small corner cut (squared), one whose whole end is slanted
    small = cut(box(0, 0, 60, 40), 6)
    wedge = cut(box(100, 0, 160, 40), 30)
    traced = np.array([small.buffer(0.3), wedge.buffer(0.3)], dtype=object)
    out = square_cut_corners_that_fit(np.array([small, wedge], dtype=object), traced, 0.85)
    assert len(outer_ring(out[0])) == 4
    assert out[1].equals(wedge)
