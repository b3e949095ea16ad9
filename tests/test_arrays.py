"""Training scenes in memory: place-balanced chips that never touch a validation strip."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
import torch

from geounet.errors import InputError
from geounet.train.arrays import (
    PlaceSampler,
    SceneArrays,
    TrainingData,
    chip_origins,
    place_statistics,
)
from geounet.train.datasets import build_training_data, scene_split


def _scene(place: str, rows: int, cols: int, value: int = 0, cut: float = 0.8) -> SceneArrays:
    val_start = int(cols * cut)
    trainable = np.zeros((rows, cols), dtype=bool)
    trainable[:, :val_start] = True
    return SceneArrays(
        name=f"{place}{rows}x{cols}",
        place=place,
        image=np.full((3, rows, cols), value, dtype=np.uint8),
        valid=np.ones((rows, cols), dtype=bool),
        instances=np.zeros((rows, cols), dtype=np.int32),
        trainable=trainable,
        val_start=val_start,
    )


def _data(scenes: list[SceneArrays]) -> TrainingData:
    return TrainingData(
        scenes, ("red", "green", "blue"), ("building",), ("building",), np.zeros(1, np.int64),
        0, 0.15, 1 / 255,
    )  # fmt: skip


def test_chip_origins_are_exactly_the_windows_inside_the_trainable_area() -> None:
    rng = np.random.default_rng(3)
    trainable = rng.random((23, 31)) > 0.05
    chip = 4
    flat = set(chip_origins(trainable, chip).tolist())
    cols = 31 - chip + 1
    for r in range(23 - chip + 1):
        for c in range(cols):
            assert (r * cols + c in flat) == bool(trainable[r : r + chip, c : c + chip].all())
    assert len(chip_origins(trainable[:3], chip)) == 0  # smaller than a chip


def test_every_place_is_drawn_equally_often_whatever_its_area() -> None:
    scenes = [
        _scene("big", 400, 600),  # 36 times the area of "small"
        _scene("small", 100, 100),
        _scene("two", 120, 200),
        _scene("two", 120, 100),
    ]
    sampler = PlaceSampler(scenes, 32, 9000, torch.Generator().manual_seed(0))
    drawn = list(sampler)
    assert len(drawn) == len(sampler) == 9000
    per_place = Counter(scenes[d.scene].place for d in drawn)
    for place in ("big", "small", "two"):
        assert per_place[place] / 9000 == pytest.approx(1 / 3, abs=0.03)
    # within a place, scenes in proportion to their room for chips
    rooms = [len(chip_origins(s.trainable, 32)) for s in scenes[2:]]
    per_scene = Counter(d.scene for d in drawn if d.scene >= 2)
    assert per_scene[2] / (per_scene[2] + per_scene[3]) == pytest.approx(
        rooms[0] / sum(rooms), abs=0.04
    )


def test_place_weights_set_the_proportions_and_draws_repeat_from_the_seed() -> None:
    scenes = [_scene("a", 100, 100), _scene("b", 100, 100)]
    weights = {"a": 3.0, "b": 1.0}
    one = list(PlaceSampler(scenes, 16, 4000, torch.Generator().manual_seed(5), weights))
    assert Counter(scenes[d.scene].place for d in one)["a"] / 4000 == pytest.approx(0.75, abs=0.03)
    two = list(PlaceSampler(scenes, 16, 4000, torch.Generator().manual_seed(5), weights))
    assert one == two
    with pytest.raises(InputError, match="non-negative"):
        PlaceSampler(scenes, 16, 10, torch.Generator(), {"a": -1.0})


def test_a_place_without_room_for_a_chip_is_refused_by_name() -> None:
    scenes = [_scene("roomy", 100, 100), _scene("narrow", 100, 30)]
    with pytest.raises(InputError, match="'narrow'.*smaller --chip-size"):
        PlaceSampler(scenes, 32, 10, torch.Generator())


def test_statistics_weigh_places_equally_whatever_their_area() -> None:
    data = _data([_scene("dark", 300, 300, value=0), _scene("bright", 30, 30, value=255)])
    mean, std, _ = place_statistics(data, step=1)
    assert mean == pytest.approx((0.5, 0.5, 0.5), abs=1e-4)
    assert std == pytest.approx((0.5, 0.5, 0.5), abs=1e-3)


def _labels(scene: Path, folder: Path, n: int = 6) -> Path:
    import rasterio

    with rasterio.open(scene) as src:
        left, bottom, right, top = src.bounds
    xs = np.linspace(left + 1, right - 3, n)
    boxes = [shapely.box(x, bottom + 1, x + 1.5, bottom + 2.5) for x in xs]
    path = folder / f"{scene.stem}_labels.gpkg"
    gpd.GeoDataFrame(geometry=boxes, crs="EPSG:32636").to_file(path, layer="buildings")
    return path


def test_training_chips_never_reach_a_validation_strip_on_generated_scenes(
    make_scene, tmp_path: Path
) -> None:
    from rasterio.transform import from_origin

    west = make_scene(height=96, width=160, seed=1, name="west.tif")
    # a second scene overlapping the first one's strip: its own training part holds the
    # first one's strip, which its chips must avoid too
    east = make_scene(height=96, width=160, seed=2, name="east.tif")
    import rasterio

    with rasterio.open(east, "r+") as dst:
        dst.transform = from_origin(500000.0 + 0.15 * 120, 40000.0, 0.15, 0.15)
    labels = [_labels(west, tmp_path), _labels(east, tmp_path)]
    data = build_training_data(
        [west, east], labels, places=["w", "e"], chip_size=16, val_fraction=0.25
    )
    split = scene_split([west, east], 0.25)
    transforms = []
    for path in (west, east):
        with rasterio.open(path) as src:
            transforms.append(src.transform)
    sampler = PlaceSampler(data.scenes, 16, 3000, torch.Generator().manual_seed(1))
    seen = set()
    for spec in sampler:
        t = transforms[spec.scene]
        left, top = t * (spec.col, spec.row)
        box = shapely.box(left, top - 16 * 0.15, left + 16 * 0.15, top)
        assert box.intersection(split.val_roi).area < 1e-9  # not a sliver of any strip
        seen.add(spec.scene)
    assert seen == {0, 1}
    # the east scene's training part lost the columns under the west scene's strip
    east_scene = data.scenes[1]
    assert not east_scene.trainable[:, :40].any()
    assert east_scene.trainable[:, 40:120].all()
    assert not east_scene.trainable[:, 120:].any()  # its own strip


def test_places_must_match_the_images_and_may_mix_alpha_and_plain_rgb(
    make_scene, tmp_path: Path
) -> None:
    plain = make_scene(height=64, width=96, seed=1)
    alpha = np.full((64, 96), 255, dtype=np.uint8)
    alpha[:, :8] = 0
    masked = make_scene(height=64, width=96, seed=2, alpha=alpha)
    labels = [_labels(plain, tmp_path), _labels(masked, tmp_path)]
    with pytest.raises(InputError, match="1 --place values for 2 --images"):
        build_training_data([plain, masked], labels, places=["one"], chip_size=16)
    data = build_training_data([plain, masked], labels, places=["p", "m"], chip_size=16)
    assert data.places == ("p", "m")
    assert data.scenes[0].valid.all()
    assert not data.scenes[1].valid[:, :8].any() and data.scenes[1].valid[:, 8:].all()
    left = data.only_places(["m"])
    assert [s.place for s in left.scenes] == ["m"]
    assert left.footprints == len(np.unique(left.scenes[0].instances)) - 1
    with pytest.raises(InputError, match="unknown place"):
        data.only_places(["nowhere"])
