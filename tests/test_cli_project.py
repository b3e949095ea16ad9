"""``geounet qgis-project`` through Typer's test runner."""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
from typer.testing import CliRunner

from geounet.cli import app
from tests.evaluate_data import CRS, px_box, write_polygons, write_prob, write_scene

runner = CliRunner()


def test_one_group_per_scene_by_relative_path(tmp_path: Path) -> None:
    (tmp_path / "scenes").mkdir()
    a = write_scene(tmp_path / "scenes" / "area a.tif", 33, 41)
    b = write_scene(tmp_path / "scenes" / "b.tif", 45, 67)
    prob = write_prob(tmp_path / "a.prob.tif", np.full((33, 41), 0.3), a)
    fp = write_polygons(tmp_path / "a.buildings.gpkg", [px_box(2, 2, 12, 12)])
    objects = tmp_path / "objects.gpkg"
    gpd.GeoDataFrame({"status": ["TP"]}, geometry=[px_box(2, 2, 12, 12)], crs=CRS).to_file(
        objects, layer="objects", driver="GPKG"
    )
    out = tmp_path / "results" / "summary.qgz"
    args = ["qgis-project", "--out", str(out), "--scene", f"crop_a={a}", "--scene", f"crop_b={b}"]
    args += ["--prob", f"crop_a={prob}", "--footprints", f"crop_a={fp}"]
    result = runner.invoke(app, [*args, "--objects", f"crop_a={objects}"])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as zf:
        root = ET.fromstring(zf.read("summary.qgs").decode().split("\n", 1)[1])
    groups = root.findall("layer-tree-group/layer-tree-group")
    assert [g.get("name") for g in groups] == ["crop_a", "crop_b"]
    sources = [[n.get("source") for n in g.iter("layer-tree-layer")] for g in groups]
    assert sources == [
        [
            "../objects.gpkg|layername=objects",
            "../a.buildings.gpkg|layername=buildings",
            "../a.prob.tif",
            "../scenes/area a.tif",
        ],
        ["../scenes/b.tif"],
    ]
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_bad_pairs_are_one_line_errors(tmp_path: Path) -> None:
    a = write_scene(tmp_path / "a.tif", 33, 41)
    base = ["qgis-project", "--out", str(tmp_path / "p.qgz"), "--scene", f"a={a}"]
    for extra, message in (
        (["--prob", str(a)], "must be ID=PATH"),
        (["--plan", f"z={a}"], "--plan names no --scene: z"),
        (["--scene", f"a={a}"], "--scene is given twice for scene 'a'"),
    ):
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "p.qgz").exists()
