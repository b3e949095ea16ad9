"""The Snakemake workflow: lint, config validation, and a real run on two small scenes."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import yaml
from rasterio.windows import Window

from geounet.core.provenance import Provenance, file_sha256
from geounet.model.checkpoint import load_checkpoint, read_card, save_checkpoint
from geounet.train.targets import TargetOptions
from tests.conftest import SAMPLE

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(
    shutil.which("snakemake", path=str(BIN)) is None, reason="snakemake is not installed"
)


def snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(BIN / "snakemake"), "-s", str(SNAKEFILE), *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def crop(src_path: Path, out: Path, row: int, col: int, size: int = 256) -> Path:
    with rasterio.open(src_path) as src:
        window = Window(col, row, size, size)
        profile = src.profile | {
            "width": size,
            "height": size,
            "transform": src.window_transform(window),
        }
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(src.read(window=window))
            dst.colorinterp = src.colorinterp
    return out


@pytest.fixture
def project(tmp_path: Path, split_model: Path) -> Path:
    """Two 256 x 256 crops of the Kampala scenes: one with truth, one with buildings already
    mapped (the OSM footprints) to conflate with."""
    (tmp_path / "scenes").mkdir()
    crop(SAMPLE / "kampala_a_z21.tif", tmp_path / "scenes" / "area a.tif", 600, 900)
    crop(SAMPLE / "kampala_b_z21.tif", tmp_path / "scenes" / "b.tif", 300, 300)
    shutil.copy(SAMPLE / "buildings.gpkg", tmp_path / "scenes" / "truth.gpkg")
    # a model with split channels (building, body, contact): exercises their hand-over too
    shutil.copy(split_model, tmp_path / "tiny.safetensors")
    (tmp_path / "scenes" / "catalogue.csv").write_text(
        "scene_id,image,truth,existing\ncrop_a,area a.tif,truth.gpkg,\ncrop_b,b.tif,,truth.gpkg\n"
    )
    return tmp_path


CONFIG = ["--config", "catalogue=scenes/catalogue.csv", "model=tiny.safetensors"]


def test_lint_is_clean() -> None:
    result = snakemake("--lint", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_profiles_are_valid_yaml() -> None:
    default = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
    slurm = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert "predict" in default["set-threads"]
    assert slurm["executor"] == "slurm"
    for rule in ("predict", "train"):
        assert "gpu" in str(slurm["set-resources"][rule].get("gres", ""))


def test_invalid_config_and_catalogue_are_reported(project: Path) -> None:
    result = snakemake("-n", "--cores", "1", *CONFIG, "threshold=1.5", cwd=project)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "threshold" in out and "1.5" in out
    (project / "bad.csv").write_text("scene_id,image\n../escape,scenes/b.tif\n")
    result = snakemake("-n", "--cores", "1", "--config", "catalogue=bad.csv", cwd=project)
    assert result.returncode != 0
    assert "'../escape' is not a safe folder name" in result.stdout + result.stderr
    assert not (project / "results").exists()


def test_tta_reaches_predict_and_a_bad_one_stops_the_run(project: Path) -> None:
    result = snakemake("-n", "-p", "--cores", "1", *CONFIG, "tta=flips", cwd=project)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert out.count("--tta flips") == 2  # both scenes' predict commands
    result = snakemake("-n", "-p", "--cores", "1", *CONFIG, cwd=project)
    assert "--tta" not in result.stdout + result.stderr  # default: the model card's
    result = snakemake("-n", "--cores", "1", *CONFIG, "tta=d8", cwd=project)
    assert result.returncode != 0
    assert "d8" in result.stdout + result.stderr


def test_train_first_when_the_config_asks(project: Path) -> None:
    train = (
        "train={images: [scenes/b.tif], labels: [scenes/truth.gpkg],"
        " options: {epochs: 2, augment: false}}"
    )
    result = snakemake(
        "-n", "--cores", "2", "--config", "catalogue=scenes/catalogue.csv", train, cwd=project
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert (
        "geounet train --images scenes/b.tif --labels scenes/truth.gpkg --epochs 2 --no-augment"
        in out
    )
    assert "--model results/catalogue/model/model.safetensors" in out


@pytest.mark.slow
def test_training_first_settles_in_one_run(project: Path) -> None:
    """The trained model's card (threshold, split channels) reaches vectorise and evaluate
    in the run that trains it, so a second run has nothing to do."""
    (project / "scenes" / "one.csv").write_text(
        "scene_id,image,truth\ncrop_a,area a.tif,truth.gpkg\n"
    )
    config = [
        "--config",
        "catalogue=scenes/one.csv",
        "train={images: ['scenes/area a.tif'], labels: [scenes/truth.gpkg], options: {"
        "epochs: 1, steps_per_epoch: 2, chip_size: 64, batch_size: 2, depth: 2, width: 4,"
        " augment: false, val_fraction: 0.3, contact_radius: 2, workers: 0}}",
    ]
    result = snakemake("--cores", "2", *config, cwd=project)
    results = project / "results" / "one"
    logs = "".join(f"\n{p}:\n{p.read_text()[-1500:]}" for p in results.glob("**/logs/*.log"))
    assert result.returncode == 0, result.stderr[-3000:] + logs
    out = result.stdout + result.stderr
    card = read_card(results / "model" / "model.safetensors")
    assert "contact" in card.class_names
    for rule in ("vectorize", "evaluate"):
        line = next(x for x in out.splitlines() if f"geounet {rule} " in x)
        assert f"--threshold {card.threshold} " in line, line
    vectorize = next(x for x in out.splitlines() if "geounet vectorize " in x)
    assert f"--min-confidence {card.min_confidence} " in vectorize, vectorize
    split = (
        f"--split results/one/crop_a/crop_a.split.tif --body-threshold {card.body_threshold} "
        f"--seed-area {card.seed_area_m2}"
    )
    assert split in out
    again = snakemake("-n", "--cores", "2", *config, cwd=project)
    assert again.returncode == 0, again.stderr
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout + again.stderr


@pytest.mark.slow
def test_workflow_end_to_end(project: Path) -> None:
    result = snakemake("--cores", "2", *CONFIG, cwd=project)
    results = project / "results" / "catalogue"
    logs = "".join(f"\n{p}:\n{p.read_text()[-1500:]}" for p in results.glob("**/logs/*.log"))
    assert result.returncode == 0, result.stderr[-3000:] + logs
    for sid in ("crop_a", "crop_b"):
        d = results / sid
        with rasterio.open(d / f"{sid}.prob.tif") as prob:
            assert prob.crs.to_epsg() == 3857 and prob.count == 1 and prob.dtypes[0] == "uint8"
            assert (prob.width, prob.height) == (256, 256)
        tiles = gpd.read_file(d / f"{sid}.tiles.gpkg", layer="tiles")
        assert tiles.crs.to_epsg() == 3857 and len(tiles) > 0
        fp = gpd.read_file(d / f"{sid}.buildings.gpkg", layer="buildings")
        assert fp.crs.to_epsg() == 3857
        for stage in ("plan", "predict", "vectorise"):
            assert (d / "logs" / f"{stage}.log").is_file()
            assert (d / "benchmarks" / f"{stage}.tsv").is_file()
        with rasterio.open(d / f"{sid}.split.tif") as split:
            assert split.descriptions == ("body probability", "contact probability")
        # the split channels reach vectorise (snakemake prints the shell commands), seeded
        # at the model card's body threshold
        split = f"--split results/catalogue/{sid}/{sid}.split.tif --body-threshold 0.5 "
        assert split in result.stdout + result.stderr
        # every file predict wrote (style sidecars included) is named after the scene id
        files = [p.name for p in d.iterdir() if p.is_file()]
        assert all(name.startswith(f"{sid}.") for name in files), files
    # evaluation only where the catalogue gives truth
    report = json.loads((results / "crop_a" / "evaluation" / "report.json").read_text())
    assert report["scene"]["crs"] == "EPSG:3857"
    for key in ("accuracy", "sensitivity", "specificity", "precision", "iou", "f1"):
        assert 0.0 <= report["pixel"][key] <= 1.0, key
    for key in ("precision", "recall", "f1", "mean_iou"):
        assert 0.0 <= report["objects"][key] <= 1.0, key
    assert (results / "crop_a" / "evaluation" / "report.html").is_file()
    assert not (results / "crop_b" / "evaluation").exists()
    summary = json.loads((results / "summary.json").read_text())
    assert len(summary["scenes"]) == 1
    assert summary["scenes"][0]["scene"] == "crop_a", "rows are named by scene id"
    rows = [*summary["scenes"], summary["total"]]
    for key in ("pixel_iou", "pixel_f1", "object_precision", "object_recall", "object_f1"):
        for row in rows:
            assert 0.0 <= row[key] <= 1.0, (key, row)
    assert (results / "summary.csv").read_text().startswith("scene,")
    # one QGIS project of the catalogue: a group per scene, files by relative path
    with zipfile.ZipFile(results / "summary.qgz") as zf:
        root = ET.fromstring(zf.read("summary.qgs").decode().split("\n", 1)[1])
    groups = {
        g.get("name"): [n.get("source") for n in g.iter("layer-tree-layer")]
        for g in root.findall("layer-tree-group/layer-tree-group")
    }
    assert list(groups) == ["crop_a", "crop_b"]
    assert groups["crop_a"] == [
        "./crop_a/evaluation/objects.gpkg|layername=objects",
        "./crop_a/crop_a.buildings.gpkg|layername=buildings",
        "./crop_a/crop_a.tiles.gpkg|layername=tiles",
        "./crop_a/crop_a.prob.tif",
        "../../scenes/area a.tif",
    ]
    assert groups["crop_b"] == [
        "./crop_b/crop_b.conflation.gpkg|layername=conflation",
        "./crop_b/crop_b.buildings.gpkg|layername=buildings",
        "./crop_b/crop_b.tiles.gpkg|layername=tiles",
        "./crop_b/crop_b.prob.tif",
        "../../scenes/b.tif",
    ]
    assert (results / "benchmarks" / "qgis_project.tsv").is_file()
    merged = gpd.read_file(results / "buildings.gpkg", layer="buildings")
    assert merged.crs.to_epsg() == 3857
    assert set(merged["scene_id"]) <= {"crop_a", "crop_b"}
    n_a = len(gpd.read_file(results / "crop_a" / "crop_a.buildings.gpkg"))
    n_b = len(gpd.read_file(results / "crop_b" / "crop_b.buildings.gpkg"))
    assert len(merged) == n_a + n_b
    # every scene's footprints for JOSM; conflation only where the catalogue names what is
    # mapped: each predicted footprint once, with its status
    for sid, n in (("crop_a", n_a), ("crop_b", n_b)):
        osm = ET.parse(results / sid / f"{sid}.osm").getroot()
        buildings = [e for e in osm if any(t.get("k") == "building" for t in e.iter("tag"))]
        assert len(buildings) == n
    assert not (results / "crop_a" / "crop_a.conflation.gpkg").exists()
    conflation = gpd.read_file(results / "crop_b" / "crop_b.conflation.gpkg", layer="conflation")
    assert (conflation["origin"] == "predicted").sum() == n_b
    assert set(conflation["status"]) <= {"new", "match", "conflict", "missing"}
    assert (conflation["status"] == "missing").sum() > 0  # the mapped roofs a random model misses
    # nothing left to do on a second run
    again = snakemake("-n", "--cores", "2", *CONFIG, cwd=project)
    assert again.returncode == 0, again.stderr
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_missing_image_fails_alone_with_keep_going(project: Path) -> None:
    catalogue = project / "scenes" / "catalogue.csv"
    lines = catalogue.read_text().splitlines()
    catalogue.write_text("\n".join([*lines, "ghost,ghost.tif,"]) + "\n")
    result = snakemake("--cores", "2", "--keep-going", *CONFIG, "--until", "vectorise", cwd=project)
    assert result.returncode != 0, "the run reports the failed scene"
    assert "scene ghost: image" in result.stderr and "not found" in result.stderr
    for sid in ("crop_a", "crop_b"):
        assert (project / "results" / "catalogue" / sid / f"{sid}.buildings.gpkg").is_file()
    assert not (project / "results" / "catalogue" / "ghost" / "ghost.tiles.gpkg").exists()
    log = (project / "results" / "catalogue" / "ghost" / "logs" / "plan.log").read_text()
    assert "does not exist" in log and "Traceback" not in log


def test_a_catalogue_of_urls_is_mapped_where_the_images_are(project: Path) -> None:
    """A scene whose image is an http(s) URL (as a STAC asset's link may be) runs like a
    file: geounet reads its windows over HTTP, nothing is downloaded by the workflow."""
    from tests.http_server import serve

    with serve(project / "scenes") as server:
        url = f"{server.url}/b.tif"
        (project / "scenes" / "web.csv").write_text(f"scene_id,image\nweb,{url}\n")
        config = ["--config", "catalogue=scenes/web.csv", "model=tiny.safetensors"]
        result = snakemake("--cores", "2", *config, cwd=project)
        assert result.returncode == 0, result.stderr[-3000:]
        assert server.ranges, "read by range requests"
    with zipfile.ZipFile(project / "results" / "web" / "summary.qgz") as qgz:
        qgs = next(qgz.read(n).decode() for n in qgz.namelist() if n.endswith(".qgs"))
    assert f"/vsicurl/{url}" in qgs  # QGIS reads the scene where it is
    local = snakemake("--cores", "2", *CONFIG, "--until", "vectorise", cwd=project)
    assert local.returncode == 0, local.stderr[-3000:]
    with (
        rasterio.open(project / "results" / "web" / "web" / "web.prob.tif") as web,
        rasterio.open(project / "results" / "catalogue" / "crop_b" / "crop_b.prob.tif") as here,
    ):
        np.testing.assert_array_equal(web.read(), here.read())


def test_two_catalogues_keep_two_consistent_result_folders(project: Path) -> None:
    """A second catalogue's run leaves the first one's results as they were, and its own
    summary and merged layer hold only its own scenes."""
    (project / "scenes" / "only_b.csv").write_text("scene_id,image\ncrop_b,b.tif\n")
    first = snakemake("--cores", "2", *CONFIG, cwd=project)
    assert first.returncode == 0, first.stderr[-3000:]
    before = {
        p: p.stat().st_mtime_ns
        for p in (project / "results" / "catalogue").rglob("*")
        if p.is_file()
    }
    config = ["--config", "catalogue=scenes/only_b.csv", "model=tiny.safetensors"]
    second = snakemake("--cores", "2", *config, cwd=project)
    assert second.returncode == 0, second.stderr[-3000:]
    after = {p: p.stat().st_mtime_ns for p in before}
    assert after == before  # the first catalogue's folder untouched
    only_b = project / "results" / "only_b"
    merged = gpd.read_file(only_b / "buildings.gpkg", layer="buildings")
    assert set(merged["scene_id"]) <= {"crop_b"}
    assert not (only_b / "summary.json").exists()  # no truth in it: no stale summary either
    summary = json.loads((project / "results" / "catalogue" / "summary.json").read_text())
    assert [row["scene"] for row in summary["scenes"]] == ["crop_a"]


def test_a_scene_with_its_own_footprints_is_mapped_with_its_fine_tuned_model(
    project: Path,
) -> None:
    # a base whose card says what its channels learn, as geounet train writes it
    base = load_checkpoint(project / "tiny.safetensors")
    targets = dataclasses.asdict(TargetOptions(contact_radius=3.0, body_erosion=3.0))
    save_checkpoint(
        project / "tiny.safetensors", dataclasses.replace(base.card, targets=targets), base.model
    )
    (project / "scenes" / "catalogue.csv").write_text(
        "scene_id,image,truth,finetune_labels\n"
        "crop_a,area a.tif,truth.gpkg,\ncrop_b,b.tif,,truth.gpkg\n"
    )
    config = [*CONFIG, "finetune_minutes=0.1"]
    targets = [f"results/catalogue/{sid}/{sid}.buildings.gpkg" for sid in ("crop_a", "crop_b")]
    result = snakemake(*targets, "--cores", "2", *config, cwd=project)
    results = project / "results" / "catalogue"
    logs = "".join(f"\n{p}:\n{p.read_text()[-1500:]}" for p in results.glob("**/logs/*.log"))
    assert result.returncode == 0, result.stderr[-3000:] + logs
    tuned = results / "crop_b" / "model" / "crop_b.safetensors"
    card = read_card(tuned)
    assert card.class_names == read_card(project / "tiny.safetensors").class_names
    # crop_b is predicted with its own model and vectorised at its card's thresholds,
    # crop_a with the workflow's model (the outputs' provenance names the model)
    made = {}
    for sid in ("crop_a", "crop_b"):
        with rasterio.open(results / sid / f"{sid}.prob.tif") as src:
            made[sid] = Provenance.from_tags(dict(src.tags()))
    assert made["crop_b"] is not None and made["crop_b"].model == "crop_b.safetensors"
    assert made["crop_b"].model_sha256 == file_sha256(tuned)
    assert made["crop_a"] is not None and made["crop_a"].model == "tiny.safetensors"
    assert not (results / "crop_a" / "model").exists()
    vectorised = (results / "crop_b" / "logs" / "vectorise.log").read_text()
    footprints = results / "crop_b" / "crop_b.buildings.gpkg"
    meta = pyogrio.read_info(footprints, layer="buildings")["layer_metadata"]
    assert float(meta["GEOUNET_THRESHOLD"]) == pytest.approx(card.threshold), vectorised
