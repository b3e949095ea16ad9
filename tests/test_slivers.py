"""The slivers and notches that cutting touching roofs apart leaves are tidied away."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import Polygon, box

from geounet.core.shape import corners, right_angle_offsets
from geounet.footprints.slivers import opening, tidy_cut

PIXEL = 0.15  # metres, as the bundled model's


def _one(*geoms: Polygon) -> list[Polygon]:
    return list(tidy_cut(np.array(geoms, dtype=object), PIXEL))


def test_a_thin_tooth_and_a_thin_spike_go_and_the_roof_is_a_rectangle_again() -> None:
    roof = box(0, 0, 10, 6)
    tooth = roof.union(box(10, 2, 10.8, 2.25))  # 0.25 m thin
    spike = roof.union(Polygon([(10, 2), (11.5, 2.6), (10, 2.3)]))  # a slanted neighbour's
    for cut in (tooth, spike):
        assert corners(cut) > 4
        (opened,) = _one(cut)
        assert corners(opened) == 4
        assert opened.equals(roof)
        assert right_angle_offsets(opened).max() < 1e-6


def test_wings_and_notches_of_a_roof_stay() -> None:
    ell = box(0, 0, 10, 4).union(box(0, 0, 4, 9))  # a wing 4 m wide is no sliver
    (kept,) = _one(ell)
    assert kept.equals(ell) and corners(kept) == 6
    small = box(0, 0, 3, 3).union(box(3, 1, 3.6, 2))  # 0.6 m of a 3 m roof: over 3 % of it
    (kept,) = _one(small)
    assert kept.equals(small)


def test_a_roof_keeps_the_tooth_by_which_it_touches_a_neighbour() -> None:
    roof = box(0, 0, 10, 6).union(box(10, 2, 10.8, 2.25))
    neighbour = box(10.8, 0, 16, 6)  # touches the roof only at the tooth's end
    kept, other = _one(roof, neighbour)
    assert kept.equals(roof) and other.equals(neighbour)
    (alone,) = _one(roof)  # with no neighbour there, the tooth goes
    assert alone.equals(box(0, 0, 10, 6))


def test_the_tooth_a_cut_along_two_neighbours_leaves_goes_and_nothing_overlaps() -> None:
    # two neighbours, more confident, took all of the roof's east end but a strip
    # 0.2 m wide between them: the overlap cut leaves it as a tooth
    north, south = box(7, 3.1, 12, 7), box(7, -1, 12, 2.9)
    roof = shapely.difference(box(0, 0, 10, 6), north.union(south))
    assert corners(roof) == 8
    before = np.array([roof, north, south], dtype=object)
    after = tidy_cut(before, PIXEL)
    assert after[0].equals(box(0, 0, 7, 6))
    assert after[1].equals(north) and after[2].equals(south)
    for old, new in zip(before, after, strict=True):
        assert shapely.difference(new, old).area < 1e-9  # opening only takes away
    for i, j in ((0, 1), (0, 2), (1, 2)):
        assert shapely.intersection(after[i], after[j]).area < 1e-9
    assert shapely.distance(after[0], after[1]) < 1e-9  # and they still touch


def test_the_opened_outline_reaches_into_no_neighbour() -> None:
    # a footprint of Banepa's strip (coordinates from its centre, in metres): grown back
    # with mitred corners, its opening reached 0.009 m2 past the notch on its east side
    notched = Polygon(
        [(4.8, -9.93), (-5.64, -10.29), (-5.84, -4.38), (-10.69, -4.55), (-10.73, -3.49),
         (-7.52, -3.37), (-7.73, 2.66), (-5.22, 2.75), (-5.43, 8.73), (7.99, 9.2),
         (8.08, 6.58), (4.34, 2.56), (8.27, -1.11), (8.27, -1.23), (4.5, -1.36)]
    )  # fmt: skip
    past = shapely.difference(opening(notched, PIXEL), notched).area
    assert 0.005 < past < 0.02
    for radius in (1 * PIXEL, 2 * PIXEL, 3 * PIXEL):
        assert shapely.difference(opening(notched, radius, within=True), notched).area < 1e-9
    # a neighbour filling the notch: the footprint, opened, does not reach into it
    neighbour = shapely.difference(box(3, -2, 9, 7), notched)
    opened, other = tidy_cut(np.array([notched, neighbour], dtype=object), PIXEL)
    assert shapely.intersection(opened, other).area < 1e-9


def test_a_thin_notch_is_closed_unless_a_neighbour_fills_it() -> None:
    roof = box(0, 0, 10, 6)
    notched = shapely.difference(roof, box(9, 2, 10, 2.25))  # 0.25 m wide, 1 m deep
    assert corners(notched) == 8
    (closed,) = _one(notched)
    assert closed.equals(roof)
    plug = box(9, 2, 12, 2.25)  # a neighbour's wall in the notch
    kept, other = _one(notched, plug)
    assert kept.equals(notched) and other.equals(plug)
    (opened_only,) = tidy_cut(np.array([notched], dtype=object), PIXEL, close=False)
    assert opened_only.equals(notched)


def test_a_corner_a_hairs_breadth_off_the_wall_goes() -> None:
    # what the overlap cut left on a roof (coordinates of a test scene, metres): two
    # corners 5e-11 m apart, one a corner too many, which JOSM calls very close points
    roof = Polygon(
        [(500004.9872448637, 39984.98724497357), (500004.9872448637, 39995.01275513627),
         (500019.7627551363, 39995.01275513627), (500019.6280466771, 39985.02842948263),
         (500019.6280466771, 39985.02842948258)]
    )  # fmt: skip
    assert corners(roof) == 5
    (tidied,) = tidy_cut(np.array([roof], dtype=object), PIXEL, radii_px=())  # no opening
    assert corners(tidied) == 4
    assert shapely.symmetric_difference(tidied, roof).area < 1e-6
