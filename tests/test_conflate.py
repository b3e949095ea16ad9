"""Conflation with an existing building layer: new, match, conflict and missing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from shapely.geometry import box
from typer.testing import CliRunner

from geounet.cli import app
from geounet.footprints.conflate import conflate_files
from geounet.footprints.vectorize import write_footprints

runner = CliRunner()

X, Y = 453000.0, 38000.0  # EPSG:32636 metres near Kampala
PREDICTED = [
    box(X, Y, X + 10, Y + 10),  # the same as a mapped one: match
    box(X + 20, Y, X + 30, Y + 10),  # half on a mapped one (IoU 1/3): conflict
    box(X + 40, Y, X + 50, Y + 10),  # nothing mapped here: new
    box(X + 60, Y, X + 70, Y + 10),  # three mapped parts, none matched: conflict
]
EXISTING = [
    box(X + 0.5, Y, X + 10.5, Y + 10),
    box(X + 25, Y, X + 35, Y + 10),
    box(X + 60, Y, X + 63.5, Y + 10),
    box(X + 63.5, Y, X + 67, Y + 10),
    box(X + 67, Y, X + 70, Y + 10),
    box(X + 52, Y + 1, X + 58, Y + 9),  # inside the predictions' area, not predicted
    box(X + 5000, Y, X + 5010, Y + 10),  # far away: not part of this conflation
]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    pred = gpd.GeoDataFrame(
        {"id": range(1, 5), "area_m2": 100.0, "confidence": 0.9},
        geometry=PREDICTED, crs="EPSG:32636",
    )  # fmt: skip
    write_footprints(pred, tmp_path / "town.buildings.gpkg")
    # the existing layer in another CRS and format, as an OSM extract would come
    existing = gpd.GeoDataFrame(
        {"building": ["yes"] * len(EXISTING)}, geometry=EXISTING, crs="EPSG:32636"
    )
    existing.to_crs("EPSG:4326").to_file(tmp_path / "osm.geojson", driver="GeoJSON")
    return tmp_path / "town.buildings.gpkg", tmp_path / "osm.geojson"


def test_each_building_gets_its_status(files: tuple[Path, Path], tmp_path: Path) -> None:
    pred, existing = files
    result = conflate_files(pred, existing, tmp_path / "c.gpkg")
    # missing: every mapped building in the area that no prediction matched (the one
    # beside the conflict, the three parts, the one not predicted), not the far one
    assert result.counts == {"new": 1, "match": 1, "conflict": 2, "missing": 5}
    frame = gpd.read_file(tmp_path / "c.gpkg", layer="conflation")
    assert list(frame["status"]) == ["match", "conflict", "new", "conflict"] + ["missing"] * 5
    assert list(frame["origin"]) == ["predicted"] * 4 + ["existing"] * 5
    assert frame["iou"].iloc[0] == pytest.approx(95 / 105, abs=1e-3)  # the match's IoU
    assert frame["iou"].iloc[1] == pytest.approx(1 / 3, abs=1e-3)  # the best overlap
    assert frame["iou"].iloc[2] == 0
    assert frame.crs.to_epsg() == 32636
    missing = frame.geometry.iloc[-1]
    assert missing.symmetric_difference(EXISTING[5]).area < 0.01  # reprojected back
    with sqlite3.connect(tmp_path / "c.gpkg") as db:  # styled for QGIS
        (qml,) = db.execute("SELECT styleQML FROM layer_styles").fetchone()
    assert all(f'value="{s}"' in qml for s in ("new", "match", "conflict", "missing"))


def test_cli_prints_the_counts_and_refuses_bad_input(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    pred, existing = files
    result = runner.invoke(app, ["conflate", str(pred), "--existing", str(existing)])
    assert result.exit_code == 0, result.output
    assert "1 new, 1 already mapped, 2 in conflict (predicted); 5 mapped but not predicted" in (
        result.output
    )
    assert pyogrio.read_info(tmp_path / "town.conflation.gpkg", layer="conflation")["features"] == 9
    again = runner.invoke(app, ["conflate", str(pred), "--existing", str(existing)])
    assert again.exit_code != 0 and "--overwrite" in again.output
    missing = runner.invoke(app, ["conflate", str(pred), "-e", str(tmp_path / "no.gpkg")])
    assert missing.exit_code != 0 and "do not exist" in missing.output
    bad_iou = runner.invoke(app, ["conflate", str(pred), "-e", str(existing), "--iou", "0"])
    assert bad_iou.exit_code == 2 and "Traceback" not in bad_iou.output
