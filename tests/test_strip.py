"""Thresholds are chosen on the validation strip as ``geounet predict`` predicts it."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely

from geounet.checkpoint import load_checkpoint
from geounet.predict import PredictOptions, predict_scene
from geounet.train.datasets import build_training_data
from geounet.train.strip import predict_strips, strip_window, sweep_strips
from geounet.train.validation import object_counts


def test_strip_window_is_the_eastern_fraction_whatever_the_labels_crs(
    crop: tuple[Path, Path, Path],
) -> None:
    scene, gpkg, geojson = crop
    for labels in (gpkg, geojson):
        data = build_training_data([scene], [labels], chip_size=64, val_fraction=0.3)
        try:
            with rasterio.open(scene) as src:
                window = strip_window(src, data.val_roi, data.dataset.crs)
        finally:
            data.labels.cleanup()
        assert window is not None
        # 30 % of 240 columns, the full 160 rows
        assert (window.col_off, window.row_off, window.width, window.height) == (168, 0, 72, 160)


def test_the_strip_is_scored_on_predicts_own_output_and_its_own_footprints(
    crop: tuple[Path, Path, Path],
    tmp_path: Path,
) -> None:
    scene, gpkg, _ = crop
    ckpt = load_checkpoint()  # the bundled model: real roofs, real probabilities
    data = build_training_data([scene], [gpkg], chip_size=64, val_fraction=0.3)
    try:
        strips = predict_strips(
            ckpt, [scene], [gpkg], data.val_roi, data.dataset.crs, PredictOptions()
        )
    finally:
        data.labels.cleanup()
    [strip] = strips
    # the probabilities are predict's, of the whole scene, in the strip's window
    predict_scene(scene, tmp_path, ckpt, PredictOptions(footprints=False))
    with rasterio.open(tmp_path / f"{scene.stem}.prob.tif") as src:
        written = src.read(1, window=strip.window)
    np.testing.assert_array_equal(strip.prob, written.astype(np.float32) * np.float32(1 / 255))
    assert set(strip.channels) == {"body", "contact"}
    assert 0.0 < strip.prob.mean() < 1.0
    # the truth is the footprints that reach into the strip, and only those
    with rasterio.open(scene) as src:
        box = shapely.box(*rasterio.windows.bounds(strip.window, src.transform))
    labels = gpd.read_file(gpkg)
    inside = int(labels.geometry.intersects(box).sum())
    assert 0 < inside < len(labels)
    burned = np.unique(strip.instances)
    assert len(burned[burned > 0]) == inside
    # each threshold is scored as the footprints of the strip would be matched
    [score] = sweep_strips(strips, (0.5,), (0.5,))
    truth = object_counts(strip.instances, strip.instances, strip.valid)
    assert score.objects.tp + score.objects.fn == truth.tp
    assert score.pixels.tp + score.pixels.fn == int(((strip.instances > 0) & strip.valid).sum())


def test_a_strip_that_misses_every_scene_is_a_clear_error(
    crop: tuple[Path, Path, Path],
) -> None:
    from geounet.errors import InputError

    scene, gpkg, _ = crop
    with rasterio.open(scene) as src:
        far = shapely.box(0, 0, 1, 1)  # the Gulf of Guinea, in the scene's CRS
        crs = src.crs
    with pytest.raises(InputError, match="covers none of the scenes"):
        predict_strips(load_checkpoint(), [scene], [gpkg], far, crs, PredictOptions())
