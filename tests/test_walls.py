"""Walls of squared footprints moved onto their roofs, parallel to themselves."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
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
