"""Every output says how it was made, and every number of a report agrees with its headline."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pyogrio
import pytest
import rasterio
from rasterio.enums import ColorInterp
from typer.testing import CliRunner

from geounet.cli import app
from geounet.core.provenance import Provenance, file_sha256
from geounet.evaluation.evaluate import DEFAULT_THRESHOLD, evaluate_scene
from geounet.inference.options import PredictOptions
from geounet.inference.scene import predict_scene
from tests.conftest import MakeScene
from tests.evaluate_data import write_polygons

runner = CliRunner()


@pytest.fixture
def predicted(make_scene: MakeScene, tiny_model: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A scene and the folder of its prediction at threshold 0.42, flips TTA."""
    scene = make_scene(height=120, width=140, name="town.tif")
    opts = PredictOptions(tile=64, overlap=16, threshold=0.42, tta="flips")
    predict_scene(scene, tmp_path / "out", tiny_model, opts)
    return scene, tmp_path / "out"


def test_predictions_record_how_they_were_made(
    predicted: tuple[Path, Path], tiny_model: Path
) -> None:
    scene, out = predicted
    with rasterio.open(out / "town.prob.tif") as src:
        made = Provenance.from_tags(dict(src.tags()))
        assert src.colorinterp == (ColorInterp.gray,)  # not "red"
    assert made is not None
    assert (made.threshold, made.tta, made.tile, made.overlap, made.border) == (
        0.42,
        "flips",
        64,
        16,
        32,
    )
    assert made.model == "tiny.safetensors" and made.model_sha256 == file_sha256(tiny_model)
    assert made.scene == "town.tif" and made.created.endswith("+00:00")
    assert made.model_pixel_size_m == 0.15  # the tiny model's card
    assert made.precision in ("bfloat16", "float32")  # what it ran at, int8 included
    meta = pyogrio.read_info(out / "town.buildings.gpkg", layer="buildings")["layer_metadata"]
    assert Provenance.from_tags(meta) == made
    assert meta["GEOUNET_OUTLINES"] == "squared"  # the default
    with sqlite3.connect(out / "town.buildings.gpkg") as db:  # GeoPackage 1.2: no QGIS warning
        assert db.execute("PRAGMA user_version").fetchone() == (10200,)


def _truth(scene: Path, folder: Path) -> Path:
    with rasterio.open(scene) as src:
        left, top = src.transform.c, src.transform.f
    from shapely.geometry import box

    roofs = [
        box(left + 2, top - 8, left + 7, top - 3),
        box(left + 10, top - 15, left + 16, top - 9),
    ]
    return write_polygons(folder / "truth.gpkg", roofs, crs="EPSG:32636", extra=False)


def test_evaluate_takes_the_threshold_the_raster_was_made_with(
    predicted: tuple[Path, Path], tmp_path: Path
) -> None:
    scene, out = predicted
    truth = _truth(scene, tmp_path)
    prob = out / "town.prob.tif"
    made = evaluate_scene(scene, truth, prob=prob, object_sweep=False)
    given = evaluate_scene(scene, truth, prob=prob, threshold=0.42, object_sweep=False)
    assert made.report["settings"]["threshold"] == 0.42
    assert made.report["settings"]["threshold_from"] == "the probability raster's provenance"
    assert made.report["pixel"] == given.report["pixel"]
    assert made.report["provenance"]["model"] == "tiny.safetensors"
    # a raster that does not say how it was made: the default, and the report says so
    with rasterio.open(prob) as src:
        profile, data = src.profile, src.read()
    bare = tmp_path / "bare.tif"
    with rasterio.open(bare, "w", **profile) as dst:
        dst.write(data)
    plain = evaluate_scene(scene, truth, prob=bare, object_sweep=False)
    assert plain.report["settings"]["threshold"] == DEFAULT_THRESHOLD
    assert plain.report["settings"]["threshold_from"] == "the default"
    assert plain.report["provenance"] is None


def test_a_report_curve_passes_through_its_headline(
    predicted: tuple[Path, Path], tmp_path: Path
) -> None:
    scene, out = predicted
    truth = _truth(scene, tmp_path)
    result = runner.invoke(
        app,
        ["evaluate", str(scene), "-t", str(truth), "--prob", str(out / "town.prob.tif"),
         "--footprints", str(out / "town.buildings.gpkg"), "-o", str(tmp_path / "ev")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    (here,) = [r for r in report["sweep"]["pixel"] if r["threshold"] == 0.42]
    for key in ("tp", "fp", "fn", "precision", "f1", "iou"):
        assert here[key] == report["pixel"][key], key
    assert here["recall"] == report["pixel"]["sensitivity"]
    assert report["objects"]["source"] == "footprints"  # drawn as its own point, named so


def test_vectorize_cuts_the_raster_where_predict_did(
    predicted: tuple[Path, Path], tmp_path: Path
) -> None:
    _, out = predicted
    again = tmp_path / "again.gpkg"
    result = runner.invoke(app, ["vectorize", str(out / "town.prob.tif"), "--out", str(again)])
    assert result.exit_code == 0, result.output
    assert "p >= 0.42" in result.output  # the raster's threshold, not the card's 0.5
    first = pyogrio.read_dataframe(out / "town.buildings.gpkg", layer="buildings")
    second = pyogrio.read_dataframe(again, layer="buildings")
    assert len(first) == len(second) > 0
    assert first.geometry.area.sum() == pytest.approx(second.geometry.area.sum())
    meta = pyogrio.read_info(again, layer="buildings")["layer_metadata"]
    assert meta["GEOUNET_THRESHOLD"] == "0.42" and meta["GEOUNET_OUTLINES"] == "squared"
    traced = tmp_path / "traced.gpkg"
    args = ["vectorize", str(out / "town.prob.tif"), "--out", str(traced), "--no-regularize"]
    assert runner.invoke(app, args).exit_code == 0
    meta = pyogrio.read_info(traced, layer="buildings")["layer_metadata"]
    assert meta["GEOUNET_OUTLINES"] == "traced"


def test_vectorize_squares_at_the_recorded_model_pixel(
    predicted: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import geounet.footprints.vectorize as vectorize_module

    seen: dict[str, object] = {}
    real = vectorize_module.vectorize

    def spy(*args: object, **kwargs: object) -> object:
        seen.update(kwargs)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(vectorize_module, "vectorize", spy)
    _, out = predicted
    args = ["vectorize", str(out / "town.prob.tif"), "--out", str(tmp_path / "sq.gpkg")]
    result = runner.invoke(app, [*args, "--regularize"])
    assert result.exit_code == 0, result.output
    assert seen["regularize"] is True and seen["model_pixel_m"] == 0.15


def test_file_digest_follows_the_file(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "m.bin"
    for content in (b"a" * 10, b"b" * 10):  # the same size, written in place
        path.write_bytes(content)
        assert file_sha256(path) == hashlib.sha256(content).hexdigest()
    # an older file is remembered; one replaced by a rename (a new inode) is not confused
    # with it, even with the same size and time
    old = 1_700_000_000 * 10**9
    os.utime(path, ns=(old, old))
    assert file_sha256(path) == file_sha256(path) == hashlib.sha256(b"b" * 10).hexdigest()
    other = tmp_path / "new.bin"
    other.write_bytes(b"c" * 10)
    os.utime(other, ns=(old, old))
    other.replace(path)
    assert file_sha256(path) == hashlib.sha256(b"c" * 10).hexdigest()
