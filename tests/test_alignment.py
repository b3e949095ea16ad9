"""Squared footprints turned to the direction of the roofs they touch."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
import shapely
from rasterio.features import rasterize, shapes
from rasterio.transform import Affine
from shapely import affinity
from shapely.geometry import Polygon, box, shape

from geounet.core.shape import right_angle_offsets
from geounet.footprints.alignment import align_to_neighbours, direction_offset
from geounet.footprints.vectorize import regularize_footprints, remove_overlaps


def objects(*geoms: object) -> np.ndarray:
    return np.array(list(geoms), dtype=object)


def direction(poly: Polygon) -> float:
    """The direction of the outline's longest wall, degrees modulo 90."""
    ring = np.asarray(poly.exterior.coords)
    step = np.diff(ring, axis=0)
    k = int(np.argmax(np.hypot(step[:, 0], step[:, 1])))
    return float(np.degrees(np.arctan2(step[k, 1], step[k, 0])) % 90.0)


def test_directions_are_compared_modulo_90_degrees() -> None:
    assert direction_offset(58, 30) == pytest.approx(-28)
    assert direction_offset(89, 1) == pytest.approx(2)
    assert direction_offset(1, 89) == pytest.approx(-2)
    assert direction_offset(10, 100) == pytest.approx(0)


def test_a_small_roof_turns_to_the_large_roof_it_touches() -> None:
    large = box(0, 0, 40, 20)
    small = affinity.rotate(box(40, 0, 50, 10), 3, origin=(40, 0))
    out, new = align_to_neighbours(objects(large, small), [0, 3], reach=1.0, max_rotation=5)
    assert out[0].equals(large) and new[0] == 0  # the large one carries more wall: it stays
    assert direction(out[1]) == pytest.approx(0, abs=1e-6) and new[1] == 0
    assert out[1].centroid.distance(small.centroid) < 1e-9  # turned about its centroid
    assert out[1].area == pytest.approx(small.area)


def test_a_roof_does_not_turn_further_than_allowed_or_to_a_far_one() -> None:
    large = box(0, 0, 40, 20)
    small = affinity.rotate(box(40, 0, 50, 10), 8, origin=(40, 0))
    out, _ = align_to_neighbours(objects(large, small), [0, 8], reach=1.0, max_rotation=5)
    assert out[1].equals(small)
    far = affinity.translate(affinity.rotate(box(0, 0, 10, 10), 3, origin="centroid"), 60)
    out, _ = align_to_neighbours(objects(large, far), [0, 3], reach=1.0, max_rotation=5)
    assert out[1].equals(far)
    # a neighbour at 30 degrees is not one at 60 (buildingregulariser counts 90 - 30)
    steep = affinity.rotate(box(40, 0, 50, 10), 58, origin=(40, 0))
    out, _ = align_to_neighbours(
        objects(affinity.rotate(large, 30, origin=(40, 0)), steep), [30, 58], 1.0, 5
    )
    assert out[1].equals(steep)


def traced(*roofs: Polygon) -> list[Polygon]:
    """Each roof burned into a 1-unit raster and traced back, as a pixel staircase."""
    burned = rasterize(
        [(g, i + 1) for i, g in enumerate(roofs)],
        out_shape=(120, 140),
        transform=Affine.identity(),
        dtype="uint8",
    )
    return [shape(g) for v in range(1, len(roofs) + 1) for g, _ in shapes(burned, burned == v)]


def test_regularize_squares_touching_roofs_to_one_direction() -> None:
    # two roofs sharing a wall, drawn 3 degrees apart, as a model traces them
    left = affinity.rotate(box(20, 30, 70, 80), 17, origin=(70, 55))
    right = affinity.rotate(box(70, 40, 100, 70), 20, origin=(70, 55))
    gdf = gpd.GeoDataFrame({"confidence": [0.9, 0.8]}, geometry=traced(left, right))
    turned = regularize_footprints(gdf, 1.0, wall_reach_px=0.0)  # the turn alone
    unturned = regularize_footprints(gdf, 1.0, neighbour_rotation_deg=0.0, wall_reach_px=0.0)

    def turn(gdf: gpd.GeoDataFrame) -> float:
        return abs(float(direction_offset(direction(gdf.geometry[0]), direction(gdf.geometry[1]))))

    assert turn(turned) < 0.5 and turn(unturned) > 1
    cut = remove_overlaps(turned, snap=0.5)
    assert len(cut) == 2
    assert shapely.intersection(cut.geometry[0], cut.geometry[1]).area < 1e-6
    assert max(right_angle_offsets(g).max() for g in cut.geometry) < 1.0
    slanted = remove_overlaps(unturned, snap=0.5)  # cut apart unturned: a slanted corner
    assert max(right_angle_offsets(g).max() for g in slanted.geometry) > 1.0


def test_a_roof_squaring_gives_up_on_is_squared_at_a_finer_tolerance() -> None:
    # a 5 x 8 pixel shed: at 8 pixels buildingregulariser gives up (and warns), handing
    # back the traced staircase
    (shed,) = traced(affinity.rotate(box(20, 20, 25, 28), 20, origin="centroid"))
    gdf = gpd.GeoDataFrame({"confidence": [1.0]}, geometry=[shed])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning reaches the user
        out = regularize_footprints(gdf, 1.0)
    assert len(shed.exterior.coords) > 10
    assert len(out.geometry[0].exterior.coords) == 5  # four corners
    assert right_angle_offsets(out.geometry[0]).max() < 1.0
