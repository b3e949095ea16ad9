"""The report of the Kampala sample: JSON figures, and the HTML rendered by headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from matplotlib.image import imread
from rich.console import Console

from geounet.evaluation.evaluate import evaluate_scene
from geounet.evaluation.inputs import polygonise
from geounet.evaluation.report import headline_table, write_report
from tests.evaluate_data import SAMPLE, fake_kampala_prob

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


@pytest.fixture(scope="module")
def kampala_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("kampala")
    scene, truth = SAMPLE / "kampala_b_z21.tif", SAMPLE / "buildings.gpkg"
    prob = fake_kampala_prob(tmp / "kampala_b_z21.prob.tif", scene, truth)
    with rasterio.open(prob) as src:
        binary = (src.read(1) >= 128) & (src.read_masks(1) != 0)
        polys = polygonise(binary, src.transform)
        crs = src.crs
    footprints = tmp / "kampala_b_z21.buildings.gpkg"
    gpd.GeoDataFrame(
        {
            "id": np.arange(len(polys)),
            "area_m2": [p.area for p in polys],
            "confidence": np.full(len(polys), 0.8),
        },
        geometry=list(polys),
        crs=crs,
    ).to_file(footprints, layer="buildings", driver="GPKG")
    ev = evaluate_scene(scene, truth, prob=prob, footprints=footprints)
    return write_report(ev, tmp / "eval")


def test_kampala_report_figures(kampala_report: dict[str, Path]) -> None:
    import json

    rep = json.loads(kampala_report["json"].read_text())
    assert rep["inputs"]["truth"]["in_scene"] == 98  # 108 buildings of area a clipped away
    assert rep["objects"]["truth_evaluated"] == 98
    assert 0.6 < rep["pixel"]["iou"] < 1.0
    assert rep["objects"]["tp"] > 10
    assert 0.05 <= rep["sweep"]["best_pixel"]["threshold"] <= 0.95
    assert (
        rep["pixel"]["tp"] + rep["pixel"]["fp"] + rep["pixel"]["fn"] + rep["pixel"]["tn"] < 1024**2
    )
    console = Console(record=True, width=100)
    console.print(headline_table(rep))
    assert "object" in console.export_text()
    # the outline figures of the matched pairs, in the page as in the JSON
    shape = rep["objects"]["shape"]
    page = kampala_report["html"].read_text()
    assert shape["pairs"] > 0 and 0 <= shape["turn_deg"] <= 45
    assert "PoLiS distance" in page and "turned from the true outline" in page


@pytest.mark.chromium
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_kampala_html_renders_in_chromium(kampala_report: dict[str, Path], tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
        kampala_report["html"].resolve().as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    assert shot.stat().st_size > 50_000
    img = imread(shot)
    assert img.shape[:2] == (2000, 1200)
    rgb = (img[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    assert len(np.unique(rgb, axis=0)) > 1000  # text, tables and the aerial picture
    assert rgb.std() > 20  # not a blank page
