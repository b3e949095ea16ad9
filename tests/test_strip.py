"""Thresholds are chosen on the validation strip as ``geounet predict`` predicts it."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.windows import Window

from geounet.inference.options import PredictOptions
from geounet.inference.scene import predict_scene
from geounet.model.checkpoint import load_checkpoint
from geounet.train.datasets import scene_split
from geounet.train.strip import (
    StripPrediction,
    predict_strips,
    score_at_card,
    scores_at_card,
    strip_window,
    sweep_strips,
)
from geounet.train.validation import object_counts


def test_strip_window_is_the_eastern_fraction_of_the_scene(
    crop: tuple[Path, Path, Path],
) -> None:
    scene, _, _ = crop
    split = scene_split([scene], 0.3)
    with rasterio.open(scene) as src:
        window = strip_window(src, split.val_roi, split.crs)
    assert window is not None
    # 30 % of 240 columns, the full 160 rows
    assert (window.col_off, window.row_off, window.width, window.height) == (168, 0, 72, 160)


def test_the_strip_is_scored_on_predicts_own_output_and_its_own_footprints(
    crop: tuple[Path, Path, Path],
    tmp_path: Path,
) -> None:
    scene, gpkg, _ = crop
    ckpt = load_checkpoint()  # the bundled model: real roofs, real probabilities
    split = scene_split([scene], 0.3)
    strips = predict_strips(ckpt, [scene], [gpkg], split.val_roi, split.crs, PredictOptions())
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
    # with predict's smallest footprint (2 m2 at the crop's 0.149 m) and seed
    assert strip.min_object_pixels == pytest.approx(2.0 / 0.1493**2, rel=0.01)
    assert strip.seed_pixels() == int(strip.min_object_pixels / 4)
    [score] = sweep_strips(strips, (0.5,), (0.5,))
    truth = object_counts(strip.instances, strip.instances, strip.valid)
    assert score.objects.tp + score.objects.fn == truth.tp
    assert score.pixels.tp + score.pixels.fn == int(((strip.instances > 0) & strip.valid).sum())


def test_scoring_at_the_card_takes_predicts_overrides(crop: tuple[Path, Path, Path]) -> None:
    scene, gpkg, _ = crop
    ckpt = load_checkpoint()
    split = scene_split([scene], 0.3)

    def scored(options: PredictOptions) -> tuple[float, int]:
        score = score_at_card(ckpt, [scene], [gpkg], split.val_roi, split.crs, options)
        return score.min_confidence, score.objects.tp + score.objects.fp

    assert scored(PredictOptions())[0] == ckpt.card.min_confidence
    every, kept = scored(PredictOptions(min_confidence=0.0))
    assert every == 0.0 and kept > 0
    # as predict would with --min-confidence 0.999: no footprint is that sure
    assert scored(PredictOptions(min_confidence=0.999)) == (0.999, 0)


def test_scores_at_several_confidences_are_those_of_a_run_each(
    crop: tuple[Path, Path, Path],
) -> None:
    scene, gpkg, _ = crop
    ckpt = load_checkpoint()
    split = scene_split([scene], 0.3)
    args = (ckpt, [scene], [gpkg], split.val_roi, split.crs)
    strips = predict_strips(*args, PredictOptions())
    card, every, none_kept = scores_at_card(ckpt, strips, PredictOptions(), (None, 0.0, 0.999))
    assert card == score_at_card(*args, PredictOptions())
    assert every == score_at_card(*args, PredictOptions(min_confidence=0.0))
    assert every.objects.tp + every.objects.fp >= card.objects.tp + card.objects.fp > 0
    assert none_kept.objects.tp + none_kept.objects.fp == 0


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


def test_the_sweep_drops_what_vectorising_drops() -> None:
    from geounet.footprints.vectorize import size_limits
    from geounet.train.validation import sweep_thresholds

    # one true roof, predicted; and a 3 x 3 px speck of no roof
    prob = np.zeros((1, 40, 40), dtype=np.float32)
    instances = np.zeros((40, 40), dtype=np.int64)
    instances[5:25, 5:25] = 1
    prob[0, 5:25, 5:25] = 0.9
    prob[0, 30:33, 30:33] = 0.9
    target = (instances > 0).astype(np.float32)[None]
    valid = np.ones((40, 40), dtype=bool)
    kept, dropped = (
        sweep_thresholds(prob, target, instances, valid, (0.5,), min_object_pixels=m)[0]
        for m in (0, 10)
    )
    # the speck is under the matching rule's 20 px, so it only counts once it is bigger
    assert (kept.objects.tp, kept.objects.fp) == (dropped.objects.tp, dropped.objects.fp) == (1, 0)
    prob[0, 30:36, 30:36] = 0.9  # 36 px: a false positive, unless predict would drop it
    kept, dropped = (
        sweep_thresholds(prob, target, instances, valid, (0.5,), min_object_pixels=m)[0]
        for m in (0, 40)
    )
    assert (kept.objects.fp, dropped.objects.fp) == (1, 0)
    assert kept.pixels.fp == dropped.pixels.fp == 36  # pixel figures are the mask's
    # the strip uses predict's own limits: 2 m2 at 0.15 m is 88.9 px, seeds of 22 px
    assert size_limits(2.0, 0.15) == (pytest.approx(88.9, abs=0.1), 22)


def test_cli_calibrate_shows_the_sweep_it_chose_from(
    crop: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from geounet.cli import app
    from geounet.model.checkpoint import bundled_model_path, read_card

    scene, gpkg, _ = crop
    out = tmp_path / "calibrated.safetensors"
    args = ["calibrate", str(bundled_model_path()), "--images", str(scene), "--labels",
            str(gpkg), "--out", str(out), "--val-fraction", "0.3",
            "--body-threshold", "0.5", "--show-sweep"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    # columns: body, smallest seed, smallest confidence, building threshold, pixel IoU, ...
    rows = [line.split("|")[1:-1] for line in result.output.splitlines() if line[:6] == "| 0.50"]
    first = [r for r in rows if r[1].strip() == "0.5" and r[2].strip() == "0"]
    assert len(first) == 17  # the building thresholds 0.10 ... 0.90, body fixed at 0.50
    chosen = [r for r in rows if r[-1].strip() == "chosen"]
    assert len(chosen) == 1
    card = read_card(out)
    assert (float(chosen[0][3]), float(chosen[0][1]), float(chosen[0][2])) == (
        card.threshold,
        card.seed_area_m2,
        card.min_confidence,
    )
    best_iou = max(float(r[4]) for r in rows)
    weighed = [float(r[4]) for r in rows if r[-1].strip() in ("near", "chosen")]
    assert weighed and all(best_iou - iou <= 0.0105 for iou in weighed)
    # the other seed areas and confidences are tried only at the building thresholds near
    # the best IoU: every seed with every confidence
    near = {r[3] for r in first if r[-1].strip() in ("near", "chosen")}
    others = [r for r in rows if r not in first]
    assert {r[3] for r in others} == near
    pairs = {(r[1].strip(), r[2].strip()) for r in others}
    seeds = {"0.5", "1", "2", "4", "6", "8", "12"}
    confidences = {"0", "0.5", "0.55", "0.6", "0.65", "0.7", "0.75"}
    assert pairs == {(s, c) for s in seeds for c in confidences} - {("0.5", "0")}
    assert len(others) == (7 * 7 - 1) * len(near)


def test_the_sweep_finds_the_seed_area_that_stops_a_speck_splitting_a_roof() -> None:
    from geounet.train.strip import StripPrediction
    from geounet.train.validation import choose_score

    # one 10 x 10 m roof at 0.5 m pixels; its body has a 2.25 m2 speck in a corner
    instances = np.zeros((40, 40), dtype=np.int64)
    instances[5:25, 5:25] = 1
    prob = np.where(instances > 0, 0.9, 0.0).astype(np.float32)
    body = np.zeros_like(prob)
    body[10:20, 10:20] = 0.9
    body[6:9, 21:24] = 0.9
    valid = np.ones(prob.shape, dtype=bool)
    strip = StripPrediction(
        Window(0, 0, 40, 40), prob, {"body": body}, instances, valid, 8.0, pixel_m=0.5
    )
    assert strip.seed_pixels(None) == 4 and strip.seed_pixels(4.0) == 16
    scores = sweep_strips([strip], (0.5,), (0.5,), (0.5, 4.0))
    assert [s.seed_area_m2 for s in scores] == [0.5, 4.0]
    speck, seed4 = scores
    assert (speck.objects.tp, speck.objects.fp) == (1, 1), "the speck seeds a second footprint"
    assert (seed4.objects.tp, seed4.objects.fp) == (1, 0)
    assert speck.pixels == seed4.pixels  # the split leaves the mask as it is
    assert choose_score(scores) is seed4
    assert seed4.figures()["seed_area_m2"] == 4.0


def test_calibrate_chooses_on_the_eastern_part_of_the_area_of_interest(
    crop: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    from geounet.errors import InputError
    from geounet.model.checkpoint import bundled_model_path, read_card
    from geounet.train import calibrate

    scene, gpkg, _ = crop
    with rasterio.open(scene) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs
    west = tmp_path / "west.gpkg"
    half = shapely.box(left, bottom, (left + right) / 2, top)
    gpd.GeoDataFrame(geometry=[half], crs=crs).to_file(west, layer="aoi")
    sweeps: dict[str, list[object]] = {}
    for name, aoi in (("scene", None), ("west", west)):
        calibrate(
            bundled_model_path(), [scene], [gpkg], tmp_path / f"{name}.safetensors",
            val_fraction=0.3, body_threshold=0.5, aoi=aoi,
            on_sweep=lambda scores, name=name: sweeps.setdefault(name, list(scores)),
        )  # fmt: skip
    truth = {k: {s.objects.tp + s.objects.fn for s in v} for k, v in sweeps.items()}  # type: ignore[attr-defined]
    # the strips differ: the scene's eastern 30 % against the west half's eastern 30 %
    labels = gpd.read_file(gpkg).to_crs(crs)
    strip = shapely.box(left + 0.35 * (right - left), bottom, left + 0.5 * (right - left), top)
    inside = int(labels.geometry.intersects(strip).sum())
    assert len(truth["west"]) == 1 and len(truth["scene"]) == 1
    assert truth["west"] != truth["scene"]
    assert 0 < next(iter(truth["west"])) <= inside
    assert "inside" in read_card(tmp_path / "west.safetensors").provenance["calibration"]
    far = tmp_path / "far.gpkg"
    gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1)], crs=crs).to_file(far, layer="aoi")
    with pytest.raises(InputError):
        calibrate(bundled_model_path(), [scene], [gpkg], tmp_path / "far.safetensors", aoi=far)


def test_the_sweep_drops_faint_footprints_as_vectorising_does() -> None:
    from geounet.train.validation import choose_score

    # one true roof, seen clearly; one faint patch of no roof, above the threshold
    instances = np.zeros((40, 40), dtype=np.int64)
    instances[5:25, 5:25] = 1
    prob = np.where(instances > 0, 0.9, 0.0).astype(np.float32)
    prob[28:38, 28:38] = 0.45
    valid = np.ones(prob.shape, dtype=bool)
    strip = StripPrediction(Window(0, 0, 40, 40), prob, {}, instances, valid, 8.0, pixel_m=0.5)
    scores = sweep_strips([strip], (0.4,), (0.5,), (None,), (0.0, 0.5))
    assert [s.min_confidence for s in scores] == [0.0, 0.5]
    every, confident = scores
    assert (every.objects.tp, every.objects.fp) == (1, 1)
    assert (confident.objects.tp, confident.objects.fp) == (1, 0)
    assert every.pixels == confident.pixels  # the mask stays as it is
    assert choose_score(scores) is confident
    assert confident.figures()["min_confidence"] == 0.5
