"""Building-shaped footprints: outline figures, squaring, and touching roofs kept apart."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from rasterio.features import rasterize, shapes
from rasterio.transform import Affine
from shapely import affinity
from shapely.geometry import Polygon, box, shape

from geounet.core.shape import (
    main_direction,
    outer_ring,
    polis,
    right_angle_offsets,
    shape_figures,
    turn,
)
from geounet.footprints.vectorize import regularize_footprints, remove_overlaps

IDENTITY = Affine.identity()  # 1 px = 1 unit: the regulariser's tolerances are in pixels


def traced(*outlines: Polygon, size: int = 120) -> list[Polygon]:
    """The outlines burned into pixels and traced back: pixel staircases, one per outline."""
    burned = rasterize(
        [(g, k) for k, g in enumerate(outlines, start=1)], out_shape=(size, size),
        transform=IDENTITY, dtype="int32",
    )  # fmt: skip
    found = {int(v): shape(g) for g, v in shapes(burned, mask=burned > 0, transform=IDENTITY)}
    return [found[k] for k in range(1, len(outlines) + 1)]


def frame(*geoms: Polygon) -> gpd.GeoDataFrame:
    conf = np.linspace(0.9, 0.6, len(geoms))
    return gpd.GeoDataFrame({"confidence": conf}, geometry=list(geoms), crs="EPSG:32636")


def squared(*geoms: Polygon) -> list[Polygon]:
    squared = regularize_footprints(frame(*geoms), pixel=1.0)
    return list(remove_overlaps(squared, snap=0.5).geometry)


def test_outline_figures() -> None:
    rect = Polygon([(0, 0), (2, 0), (4, 0), (4, 2), (0, 2)])  # a collinear point
    assert len(outer_ring(rect)) == 4 and not right_angle_offsets(rect).any()
    assert sorted(right_angle_offsets(Polygon([(0, 0), (4, 0), (0, 4)]))) == [0, 45, 45]
    assert polis(rect, rect) == 0
    assert polis(rect, affinity.translate(rect, 0.5, 0)) == pytest.approx(0.25)
    (stairs,) = traced(affinity.rotate(box(30, 40, 90, 70), 20, origin="centroid"))
    figures = shape_figures([stairs], [rect])
    assert figures.vertex_ratio > 5  # a staircase: many corners, each a right angle
    assert figures.predicted_offset == 0 and figures.truth_offset == 0
    assert figures.turn == 0  # a staircase's walls are its steps, on the pixel grid


def test_main_direction_and_turn() -> None:
    rect = box(0, 0, 10, 4)
    assert main_direction(rect) == 0  # not 90: directions are modulo 90
    assert main_direction(affinity.rotate(rect, 30)) == pytest.approx(30)
    assert main_direction(affinity.rotate(rect, -30)) == pytest.approx(60)
    ell = Polygon([(0, 0), (9, 0), (9, 3), (3, 3), (3, 8), (0, 8)])
    assert main_direction(affinity.rotate(ell, 12)) == pytest.approx(12)
    assert turn(rect, affinity.rotate(rect, 100)) == pytest.approx(10)  # 100 = 90 + 10
    assert turn(affinity.rotate(rect, 44), affinity.rotate(rect, -44)) == pytest.approx(2)
    octagon = shapely.Point(0, 0).buffer(1, quad_segs=2)  # walls every 45 degrees
    assert np.isnan(main_direction(octagon)) and np.isnan(turn(rect, octagon))
    figures = shape_figures([affinity.rotate(rect, 7), octagon], [rect, rect])
    assert (figures.pairs, figures.turned_pairs) == (2, 1)
    assert figures.turn == pytest.approx(7)  # the octagon has no direction to count


def test_a_staircase_rectangle_becomes_four_corners() -> None:
    outline = affinity.rotate(box(30, 40, 90, 70), 20, origin="centroid")
    (stairs,) = traced(outline)
    assert len(outer_ring(stairs)) > 30
    (square,) = squared(stairs)
    assert len(outer_ring(square)) == 4
    assert right_angle_offsets(square).max() < 1.0
    assert square.symmetric_difference(outline).area < 0.1 * outline.area


def test_an_l_shaped_roof_keeps_six_corners() -> None:
    ell = Polygon([(20, 20), (90, 20), (90, 50), (55, 50), (55, 95), (20, 95)])
    outline = affinity.rotate(ell, 25, origin="centroid")
    (stairs,) = traced(outline)
    (square,) = squared(stairs)
    assert len(outer_ring(square)) == 6
    assert right_angle_offsets(square).max() < 1.0


def test_two_touching_roofs_stay_touching_without_overlap() -> None:
    left = box(20, 30, 60, 70)
    right = box(60, 30, 95, 70)
    a, b = (affinity.rotate(g, 15, origin=(60, 50)) for g in (left, right))
    sa, sb = traced(a, b)
    assert sa.touches(sb) or sa.intersection(sb).area == 0
    out = squared(sa, sb)
    assert len(out) == 2
    assert shapely.intersection(out[0], out[1]).area < 1e-6  # no overlap
    assert shapely.distance(out[0], out[1]) < 1e-6  # still touching
    assert all(len(outer_ring(g)) == 4 for g in out)


def iou(a: Polygon, b: Polygon) -> float:
    return float(shapely.area(a.intersection(b)) / shapely.area(a.union(b)))


def test_each_footprint_is_squared_at_the_coarsest_tolerance_that_fits_it() -> None:
    # a roof with a 7-pixel wing, which simplifying at 8 pixels cuts off, and a rectangle
    winged = Polygon([(20, 30), (90, 30), (90, 70), (60, 70), (60, 77), (20, 77)])
    (wing,) = traced(affinity.rotate(winged, 20, origin="centroid"))
    (rect,) = traced(affinity.rotate(box(30, 40, 90, 70), 20, origin="centroid"))
    gdf = frame(wing, rect).assign(id=[1, 2])
    walls = {"wall_reach_px": 0.0}  # the tolerance alone: walls where squaring put them
    coarse = regularize_footprints(gdf, pixel=1.0, tolerances_px=(8,), fit=0.0, **walls)
    assert len(outer_ring(coarse.geometry[0])) == 4  # the wing is gone
    cut = iou(coarse.geometry[0], wing)
    assert cut < 0.95 <= iou(coarse.geometry[1], rect)
    out = regularize_footprints(gdf, pixel=1.0, tolerances_px=(8, 4), fit=0.95, **walls)
    assert list(out["id"]) == [1, 2] and set(out.columns) == set(gdf.columns)
    assert len(outer_ring(out.geometry[0])) == 6 and iou(out.geometry[0], wing) > cut
    assert right_angle_offsets(out.geometry[0]).max() < 1.0
    assert out.geometry[1].equals(coarse.geometry[1])  # the rectangle fit at 8 pixels
    # no tolerance fits: the best fitting outline is kept
    best = regularize_footprints(gdf, pixel=1.0, tolerances_px=(8, 4), fit=1.0, **walls)
    assert best.geometry[0].equals(out.geometry[0])


def test_match_area_gives_the_squared_outline_the_traced_area_and_keeps_its_corners() -> None:
    # a roof traced with rounded corners: simplifying and squaring it loses area
    rounded = box(30, 40, 90, 70).buffer(-6).buffer(6)
    (blobby,) = traced(affinity.rotate(rounded, 20, origin="centroid"))
    gdf = frame(blobby)
    one = (5.5,)  # one tolerance: both outlines are squared alike
    plain = regularize_footprints(gdf, 1.0, one, match_area=False).geometry[0]
    moved = regularize_footprints(gdf, 1.0, one).geometry[0]
    assert abs(plain.area - blobby.area) > 0.01 * blobby.area  # squaring changed the area
    assert moved.area == pytest.approx(blobby.area, rel=0.01)
    assert len(outer_ring(moved)) == len(outer_ring(plain))
    assert right_angle_offsets(moved).max() < 1.0


def test_the_cut_joins_walls_left_a_hair_apart() -> None:
    # two roofs whose squared walls ended 0.2 units apart (wall fitting can do that)
    a, b = box(0, 0, 10, 10), box(10.2, 0, 20, 10)
    gdf = gpd.GeoDataFrame({"confidence": [0.9, 0.8]}, geometry=[a, b])
    apart = remove_overlaps(gdf)
    assert shapely.distance(apart.geometry[0], apart.geometry[1]) == pytest.approx(0.2)
    joined = remove_overlaps(gdf, snap=0.5)
    assert shapely.distance(joined.geometry[0], joined.geometry[1]) < 1e-9
    assert shapely.intersection(joined.geometry[0], joined.geometry[1]).area < 1e-9
    assert joined.geometry[0].equals(a)  # the more confident one stays as it was
    assert len(outer_ring(joined.geometry[1])) == 4  # still a rectangle


def test_a_neighbours_corner_beside_a_wall_puts_no_kink_in_it() -> None:
    # a small, more confident roof whose corner ends 0.3 units from a long wall, the
    # other roof's own corners clear of it: the cut leaves that wall straight
    small = Polygon([(8, 10.3), (14, 10.3), (14, 16), (8, 16)])
    tilted = affinity.rotate(small, 3, origin=(8, 10.3))  # its corner (8, 10.3) nearest
    long = box(0, 0, 30, 10)
    gdf = gpd.GeoDataFrame({"confidence": [0.9, 0.8]}, geometry=[tilted, long])
    out = remove_overlaps(gdf, snap=0.5)
    assert out.geometry[1].equals(long)  # four corners, none added
    assert shapely.intersection(out.geometry[0], out.geometry[1]).area < 1e-9
    kinked = remove_overlaps(gdf, snap=0.5, add_vertices=True)  # shapely.snap, until then
    assert len(outer_ring(kinked.geometry[1])) > 4  # kinks where its corners were added
    assert right_angle_offsets(kinked.geometry[1]).max() > 45


def test_the_cut_leaves_no_step_where_the_other_roof_can_yield() -> None:
    # a more confident roof's wall overlaps only part of a taller neighbour's wall:
    # cutting the neighbour would notch it (four corners more), cutting the confident
    # one along the neighbour's wall leaves both rectangles
    confident, taller = box(0, 0, 10, 10), box(9.5, -5, 20, 15)
    gdf = gpd.GeoDataFrame({"confidence": [0.9, 0.6]}, geometry=[confident, taller])
    out = remove_overlaps(gdf, snap=0.5)
    assert [len(outer_ring(g)) for g in out.geometry] == [4, 4]
    assert out.geometry[1].equals(taller) and out.geometry[0].equals(box(0, 0, 9.5, 10))
    assert shapely.intersection(*out.geometry).area < 1e-9  # touching, not overlapping
    assert shapely.distance(*out.geometry) < 1e-9
    # where the neighbour's wall spans the confident one's, the neighbour yields as before
    gdf = gpd.GeoDataFrame({"confidence": [0.9, 0.6]}, geometry=[confident, box(9.5, 2, 20, 8)])
    out = remove_overlaps(gdf, snap=0.5)
    assert out.geometry[0].equals(confident) and out.geometry[1].equals(box(10, 2, 20, 8))
    # by confidence alone (until 2026-12-06), the notch
    gdf = gpd.GeoDataFrame({"confidence": [0.9, 0.6]}, geometry=[confident, taller])
    notched = remove_overlaps(gdf, snap=0.5, fewest_corners=False)
    assert [len(outer_ring(g)) for g in notched.geometry] == [4, 8]
