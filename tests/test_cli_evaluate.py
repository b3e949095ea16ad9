"""``geounet evaluate`` and ``geounet summarise`` through Typer's test runner."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from geounet.cli import app
from tests.evaluate_data import px_box, write_polygons, write_prob, write_scene

runner = CliRunner()


def make_inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    scene = write_scene(tmp_path / "s.tif", 33, 41)
    truth = write_polygons(tmp_path / "t.gpkg", [px_box(2, 2, 12, 12), px_box(20, 5, 30, 15)])
    prob = np.zeros((33, 41))
    prob[2:12, 3:13] = 0.9
    return scene, truth, write_prob(tmp_path / "s.prob.tif", prob, scene)


def test_evaluate_and_summarise(tmp_path: Path) -> None:
    scene, truth, prob = make_inputs(tmp_path)
    out = tmp_path / "eval"
    args = [
        "evaluate",
        str(scene),
        "--truth",
        str(truth),
        "--prob",
        str(prob),
        "--out-dir",
        str(out),
        "--no-object-sweep",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "object" in result.output and "report.html" in result.output
    rep = json.loads((out / "report.json").read_text())
    assert (rep["objects"]["tp"], rep["objects"]["fn"]) == (1, 1)

    again = runner.invoke(app, args)
    assert again.exit_code == 2
    assert "exists; pass --overwrite" in again.output and "Traceback" not in again.output
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0

    summary = tmp_path / "summary.json"
    result = runner.invoke(
        app,
        ["summarise", str(out / "report.json"), str(out / "report.json"), "--out", str(summary)],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(summary.read_text())["total"]["object_tp"] == 2


def test_qgis_project_references_outputs_relatively(tmp_path: Path) -> None:
    scene, truth, prob = make_inputs(tmp_path)
    footprints = write_polygons(tmp_path / "f.gpkg", [px_box(3, 2, 13, 12)])
    out = tmp_path / "eval"
    args = [
        "evaluate",
        str(scene),
        "--truth",
        str(truth),
        "--prob",
        str(prob),
        "--footprints",
        str(footprints),
        "--out-dir",
        str(out),
        "--name",
        "kampala",
        "--no-object-sweep",
        "--qgis-project",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "kampala.qgz" in result.output
    with zipfile.ZipFile(out / "kampala.qgz") as zf:
        text = zf.read("kampala.qgs").decode()
    root = ET.fromstring(text.split("\n", 1)[1])
    sources = [el.text for el in root.iter("datasource")]
    assert sources == [
        "./objects.gpkg|layername=objects",
        "../f.gpkg|layername=buildings",
        "../s.prob.tif",
        "../s.tif",
    ]
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_missing_truth_is_a_one_line_error(tmp_path: Path) -> None:
    scene, _, prob = make_inputs(tmp_path)
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(scene),
            "--truth",
            str(tmp_path / "nope.gpkg"),
            "--prob",
            str(prob),
            "--out-dir",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"Error: truth file not found: {tmp_path / 'nope.gpkg'}"]


def test_bad_unit_and_no_prediction(tmp_path: Path) -> None:
    scene, truth, prob = make_inputs(tmp_path)
    base = ["evaluate", str(scene), "--truth", str(truth), "--out-dir", str(tmp_path / "o")]
    result = runner.invoke(app, [*base, "--prob", str(prob), "--min-size-unit", "ft"])
    assert result.exit_code == 2 and "'ft' is not one of 'px', 'm2'" in result.output
    result = runner.invoke(app, base)
    assert result.exit_code == 2 and "nothing to evaluate" in result.output
