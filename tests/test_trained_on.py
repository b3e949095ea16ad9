"""Where a model was trained: the card records it, evaluate and summaries flag scenes there."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from geounet.core.extents import SEEN_FRACTION, Extent, merge_extents, overlap
from geounet.errors import CheckpointError
from geounet.evaluation.evaluate import evaluate_scene
from geounet.evaluation.summary import summarise, to_csv
from geounet.inference.options import PredictOptions
from geounet.inference.scene import predict_scene
from geounet.io.raster import scene_extent
from geounet.model.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from geounet.model.network import ModelConfig
from tests.conftest import MakeScene
from tests.evaluate_data import write_polygons


def test_overlap_is_the_share_of_the_scene_inside_the_training_extents() -> None:
    scene = (10.0, 20.0, 10.2, 20.1)
    inside = Extent("a", (9.0, 19.0, 11.0, 21.0))
    half = Extent("b", (10.1, 19.0, 11.0, 21.0))
    edge = Extent("c", (10.2, 20.0, 10.3, 20.1))  # a neighbouring tile: shares an edge only
    assert overlap(scene, [inside]).fraction == pytest.approx(1.0)
    assert not overlap(scene, [inside]).held_out
    assert overlap(scene, [half]).fraction == pytest.approx(0.5)
    assert overlap(scene, [edge]).fraction == 0.0 and overlap(scene, [edge]).held_out
    assert overlap(scene, [edge]).scenes == ()
    both = overlap(scene, [half, Extent("d", (10.15, 19.0, 11.0, 21.0))])
    assert both.fraction == pytest.approx(0.5) and both.scenes == ("b", "d")  # union, not sum
    # a sliver of the scene (half the tolerated share) keeps it held out; twice that does not
    sliver = Extent("e", (10.0, 20.0, 10.0 + 0.2 * SEEN_FRACTION / 2, 20.1))
    strip = Extent("f", (10.0, 20.0, 10.0 + 0.2 * SEEN_FRACTION * 2, 20.1))
    assert overlap(scene, [sliver]).held_out and not overlap(scene, [strip]).held_out
    assert merge_extents([inside, half], [half, edge]) == (inside, half, edge)


@pytest.mark.parametrize(
    "bounds",
    [[1, 2, 3], [3, 0, 1, 1], [0, 3, 1, 1], [0, 0, 200, 1], [0, 0, "1", 1], [0, 0, 1e400, 1]],
)
def test_a_card_with_impossible_training_extents_is_refused(bounds: list[object]) -> None:
    card = json.loads(ModelCard(model=ModelConfig(depth=2, base_width=4)).to_json())
    card["trained_on"] = [{"name": "x", "bounds": bounds}]
    with pytest.raises(CheckpointError, match="malformed"):
        ModelCard.from_json(json.dumps(card))


def test_a_scene_the_model_trained_on_is_flagged_and_kept_out_of_the_total(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    seen = make_scene(height=96, width=96, name="seen.tif")
    # the model's card says it was trained on the scene "seen"
    ck = load_checkpoint(tiny_model)
    extent = scene_extent(seen)
    assert extent is not None
    model = tmp_path / "trained_here.safetensors"
    save_checkpoint(model, dataclasses.replace(ck.card, trained_on=(extent,)), ck.model)
    fresh = make_scene(height=96, width=96, name="fresh.tif")  # moved 1 km east, below
    with rasterio.open(fresh, "r+") as dst:
        dst.transform = from_origin(501000.0, 40000.0, 0.15, 0.15)
    reports = []
    for scene in (seen, fresh):
        out = tmp_path / scene.stem
        predict_scene(scene, out, model, PredictOptions(tile=64, overlap=16))
        with rasterio.open(scene) as src:
            left, top = src.transform.c, src.transform.f
        truth = write_polygons(
            tmp_path / f"{scene.stem}.truth.gpkg",
            [box(left + 2, top - 8, left + 7, top - 3)],
            crs="EPSG:32636",
            extra=False,
        )
        ev = evaluate_scene(scene, truth, prob=out / f"{scene.stem}.prob.tif", object_sweep=False)
        reports.append(ev.report)
    flagged, held = (r["training_overlap"] for r in reports)
    assert flagged["held_out"] is False and flagged["fraction"] == pytest.approx(1.0, abs=1e-3)
    assert flagged["scenes"] == ["seen"]
    assert any("not a held-out measure" in w for w in reports[0]["warnings"])
    assert held["held_out"] is True and held["fraction"] == 0.0
    assert not any("held-out" in w for w in reports[1]["warnings"])

    summary = summarise(reports)
    assert [row["held_out"] for row in summary["scenes"]] == [False, True]
    assert summary["left_out_of_total"]["scenes"] == ["seen.tif"]
    total, fresh_row = summary["total"], summary["scenes"][1]
    for key in ("pixel_tp", "pixel_fp", "pixel_fn", "object_tp", "object_fp", "object_fn"):
        assert total[key] == fresh_row[key]  # the seen scene adds nothing to the total
    assert "1 held-out scenes; without seen.tif" in total["scene"]
    assert "seen.tif," in to_csv(summary) and ",false\n" in to_csv(summary)


def test_a_model_without_recorded_extents_says_it_does_not_know(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    scene = make_scene(height=64, width=64, name="town.tif")
    predict_scene(scene, tmp_path / "out", tiny_model, PredictOptions(tile=64))
    truth = write_polygons(tmp_path / "t.gpkg", [box(500002, 39990, 500005, 39995)],
                           crs="EPSG:32636", extra=False)  # fmt: skip
    ev = evaluate_scene(scene, truth, prob=tmp_path / "out" / "town.prob.tif", object_sweep=False)
    assert ev.report["training_overlap"]["held_out"] is None
    summary = summarise([ev.report])
    assert summary["scenes"][0]["held_out"] is None
    assert summary["total"]["pixel_tp"] == summary["scenes"][0]["pixel_tp"]  # unknown counts
