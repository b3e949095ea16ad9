"""Walls of squared footprints moved onto their roofs, parallel to themselves."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from rasterio.features import rasterize, shapes
from rasterio.transform import Affine
from shapely import affinity
from shapely.geometry import Polygon, box, shape

from geounet.core.shape import outer_ring, right_angle_offsets
from geounet.footprints.vectorize import regularize_footprints
from geounet.footprints.walls import fit_walls


def objects(*geoms: object) -> np.ndarray:
    return np.array(list(geoms), dtype=object)


def iou(a: Polygon, b: Polygon) -> float:
    return float(a.intersection(b).area / a.union(b).area)


def test_each_wall_moves_onto_the_roof_and_the_corners_stay_right() -> None:
    # a square L-shaped roof, and its squared outline with every wall 1.5 px off
    roof = Polygon([(0, 0), (40, 0), (40, 20), (20, 20), (20, 30), (0, 30)])
    off = Polygon(
        [(1.5, -1.5), (41.5, -1.5), (41.5, 18.5), (21.5, 18.5), (21.5, 31.5), (1.5, 31.5)]
    )
    (fitted,) = fit_walls(objects(off), objects(roof), reach=2.0, step=0.25)
    assert iou(off, roof) < 0.85
    assert iou(fitted, roof) > 0.999
    assert len(outer_ring(fitted)) == 6
    assert right_angle_offsets(fitted).max() < 1e-6


def test_a_wall_stays_off_a_neighbour_when_the_overlap_weighs_more() -> None:
    # two roofs side by side; the left one's squared outline reaches 1 px into the right one
    left, right = box(0, 0, 20, 20), box(20, 0, 40, 20)
    squared = objects(box(0, 0, 21, 20), right)
    kept_apart = fit_walls(squared, objects(left, right), reach=2.0, step=0.25)
    assert kept_apart[0].equals_exact(left, 1e-9)  # moved back onto its roof, just touching
    assert shapely.area(shapely.intersection(kept_apart[0], kept_apart[1])) < 1e-9
    # a traced outline that reaches into the neighbour: the overlap's weight decides
    reaching = box(0, 0, 21, 20)
    tight = fit_walls(objects(left, right), objects(reaching, right), 2.0, 0.25, overlap_weight=10)
    loose = fit_walls(objects(left, right), objects(reaching, right), 2.0, 0.25, overlap_weight=0)
    assert tight[0].bounds[2] == 20 and loose[0].bounds[2] == 21


def test_outlines_that_cannot_be_fitted_are_kept() -> None:
    ring_with_hole = box(0, 0, 30, 30).difference(box(10, 10, 20, 20))
    parts = shapely.MultiPolygon([box(0, 0, 5, 5), box(10, 0, 15, 5)])
    out = fit_walls(objects(ring_with_hole, parts), objects(box(1, 1, 31, 31), parts), 2.0, 0.25)
    assert out[0].equals(ring_with_hole) and out[1].equals(parts)


def test_regularize_fits_the_walls_of_the_squared_outlines_when_asked() -> None:
    # a rotated rectangle traced as a pixel staircase, with rounded corners
    roof = affinity.rotate(box(30, 40, 90, 70).buffer(-5).buffer(5), 20, origin="centroid")
    burned = rasterize(
        [(roof, 1)], out_shape=(120, 120), transform=Affine.identity(), dtype="uint8"
    )
    (outline,) = [shape(g) for g, v in shapes(burned, mask=burned > 0) if v == 1]
    gdf = gpd.GeoDataFrame({"confidence": [1.0]}, geometry=[outline])
    plain = regularize_footprints(gdf, 1.0, (5.5,)).geometry[0]
    fitted = regularize_footprints(gdf, 1.0, (5.5,), wall_reach_px=2.0).geometry[0]
    assert iou(fitted, outline) > iou(plain, outline)
    assert len(outer_ring(fitted)) == len(outer_ring(plain))
    assert right_angle_offsets(fitted).max() < 1.0


def _fit_by_whole_outlines(
    squared: Polygon, traced: Polygon, others: object, reach: float, step: float, weight: float
) -> Polygon:
    """One pass of the coordinate ascent, each candidate scored on its whole outline."""
    from geounet.footprints.walls import _corners, _lines

    lines = _lines(squared)
    assert lines is not None
    candidates = np.arange(-reach, reach + step / 2, step)

    def fit(poly: Polygon) -> float:
        return iou(poly, traced) - weight / traced.area * poly.intersection(others).area

    offsets = np.zeros(len(lines[0]))
    best = fit(squared)
    for wall in range(len(offsets)):
        for c in candidates:
            trial = offsets.copy()
            trial[wall] = c
            poly = Polygon(_corners(*lines, trial))
            if poly.is_valid and fit(poly) > best:
                best, offsets = fit(poly), trial
    return Polygon(_corners(*lines, offsets))


def test_scoring_each_wall_in_its_band_fits_as_scoring_whole_outlines() -> None:
    # an L-shaped roof traced with ragged walls, a squared outline off it, and a neighbour
    # that its outline reaches into: scoring only the band each wall sweeps must choose
    # the walls that scoring whole outlines chooses
    rng = np.random.default_rng(0)
    corners = np.array([(0, 0), (40, 0), (40, 20), (20, 20), (20, 30), (0, 30)], float)
    ends = zip(corners, np.roll(corners, -1, 0), strict=True)
    ring = [p for a, b in ends for p in np.linspace(a, b, 9)[:-1]]
    traced = Polygon(np.asarray(ring) + rng.uniform(-0.6, 0.6, (len(ring), 2)))
    squared = affinity.translate(Polygon(corners), 0.7, -0.4)
    neighbour = box(40.3, -5, 60, 25)
    (fitted, _) = fit_walls(
        objects(squared, neighbour), objects(traced, neighbour), 2.0, 0.25, 10.0, passes=1
    )
    expected = _fit_by_whole_outlines(squared, traced, neighbour, 2.0, 0.25, 10.0)
    assert not fitted.equals_exact(squared, 1e-6)  # the walls moved
    assert fitted.equals_exact(expected, 1e-9)


def test_area_below_a_line_equals_the_overlay() -> None:
    from geounet.footprints.walls import _below

    # an L-shaped roof with a courtyard, and a second piece: holes and several parts
    roof = Polygon(
        [(0, 0), (10, 0), (10, 4), (4, 4), (4, 9), (0, 9)], [[(1, 1), (3, 1), (3, 3), (1, 3)]]
    )
    geom = shapely.union(roof, box(12, 2, 15, 6))
    rng = np.random.default_rng(0)
    for angle in rng.uniform(0, 2 * np.pi, 8):
        normal = np.array([np.cos(angle), np.sin(angle)])
        along = np.array([normal[1], -normal[0]])
        levels = rng.uniform(-20, 20, 6)
        got = _below(geom, normal, levels)
        for level, area in zip(levels, got, strict=True):
            # the half-plane p . normal <= level, as a large polygon
            foot = level * normal
            ends = (foot + 100 * along, foot - 100 * along)
            half = Polygon([*ends, ends[1] - 100 * normal, ends[0] - 100 * normal])
            assert area == pytest.approx(shapely.intersection(geom, half).area, abs=1e-9)
