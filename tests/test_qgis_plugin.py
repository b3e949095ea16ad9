"""The QGIS plugin (qgis_plugin/geounet_qgis): its runner, its zip, and headless QGIS runs.

The runner has no QGIS import, so its tests run in the venv against a stand-in ``geounet``
command. The plugin itself is tested in headless QGIS (Debian's ``python3-qgis`` under the
system Python, through ``tests/qgis_plugin_check.py``), installed from the zip that
``scripts/build_qgis_plugin.py`` builds, and pointed at this venv's ``geounet``; those tests
are skipped where QGIS is absent.
"""

from __future__ import annotations

import configparser
import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from geounet.io.progress import PREFIX, LineProgress, progress_display
from tests.test_qgis import SYSTEM_PYTHON, qgis_available

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "qgis_plugin" / "geounet_qgis"
CHECK = Path(__file__).with_name("qgis_plugin_check.py")
GEOUNET = Path(sys.executable).with_name("geounet")
SAMPLE = ROOT / "sample_data"


def _load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("geounet_qgis_runner", PLUGIN / "runner.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


runner = _load_runner()


class FakeFeedback:
    """QgsProcessingFeedback's methods the runner calls; cancels at a given percent."""

    def __init__(self, cancel_at: float | None = None) -> None:
        self.progress: list[float] = []
        self.texts: list[str] = []
        self.log: list[str] = []
        self.cancel_at = cancel_at
        self.cancelled = False

    def setProgress(self, progress: float) -> None:  # noqa: N802
        self.progress.append(progress)
        if self.cancel_at is not None and progress >= self.cancel_at:
            self.cancelled = True

    def setProgressText(self, text: str) -> None:  # noqa: N802
        self.texts.append(text)

    def pushInfo(self, info: str) -> None:  # noqa: N802
        self.log.append(info)

    def isCanceled(self) -> bool:  # noqa: N802
        return self.cancelled


FAKE = """\
#!{python}
import signal, sys, time
from pathlib import Path
mode, out = sys.argv[1], Path(sys.argv[2])
if mode == "progress":
    for i in range(0, 101, 25):
        print(f"geounet-progress: {{i}} predict (tiles) {{i}}/100", file=sys.stderr, flush=True)
    print("a log line", file=sys.stderr)
    print("scene.tif: 4 tiles, 3 buildings -> out", flush=True)
elif mode == "fail":
    print("Error: scene.tif does not exist; check the path", file=sys.stderr)
    sys.exit(2)
elif mode == "crash":
    print("Traceback (most recent call last):", file=sys.stderr)
    print("ZeroDivisionError: division by zero", file=sys.stderr)
    sys.exit(1)
elif mode == "slow":
    out.write_text("half")
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    for i in range(1000):
        print(f"geounet-progress: {{i // 10}} predict (tiles) {{i}}/1000", file=sys.stderr,
              flush=True)
        time.sleep(0.05)
"""


@pytest.fixture
def fake_geounet(tmp_path: Path) -> str:
    """A stand-in ``geounet`` command with the behaviours the runner must handle."""
    path = tmp_path / "bin" / "geounet"
    path.parent.mkdir()
    path.write_text(FAKE.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


# -- geounet's side: progress lines ---------------------------------------------------------


def test_line_progress_prints_each_whole_percent_once() -> None:
    stream = io.StringIO()
    bar = LineProgress(stream=stream)
    task = bar.add_task("predict (tiles)", total=400)
    for _ in range(400):
        bar.advance(task)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 101  # 0 % ... 100 %, not 400 lines
    assert lines[1] == f"{PREFIX} 1 predict (tiles) 4/400"
    assert lines[-1] == f"{PREFIX} 100 predict (tiles) 400/400"
    assert [runner.parse_progress(line)[0] for line in lines] == list(range(101))


def test_line_progress_reports_the_overall_fraction_of_a_training_run() -> None:
    stream = io.StringIO()
    bar = LineProgress(stream=stream)
    task = bar.add_task("training epoch 2/4", total=10, overall=None)
    bar.update(task, advance=5, overall=0.375)
    assert stream.getvalue() == f"{PREFIX} 37 training epoch 2/4 5/10\n"


def test_progress_display_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    console = Console(file=io.StringIO())
    monkeypatch.delenv("GEOUNET_PROGRESS", raising=False)
    assert not isinstance(progress_display(console=console), LineProgress)
    monkeypatch.setenv("GEOUNET_PROGRESS", "lines")
    assert isinstance(progress_display(console=console), LineProgress)
    assert not isinstance(progress_display(console=console, disable=True), LineProgress)


def test_predict_writes_progress_lines_for_a_program(make_scene: Any, tmp_path: Path) -> None:
    scene = make_scene(height=200, width=300, name="scene.tif")
    env = {**os.environ, "GEOUNET_PROGRESS": "lines"}
    for squaring, last in (
        ("--regularize", "square (footprints)"),
        ("--no-regularize", "vectorise"),
    ):
        out = tmp_path / squaring
        proc = subprocess.run(
            [str(GEOUNET), "predict", str(scene), "-o", str(out), "--tile", "64", squaring]
            + ["--threshold", "0.05", "--min-confidence", "0"],  # footprints on a made scene
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        assert len(gpd.read_file(out / "scene.buildings.gpkg"))  # footprints to square
        parsed = [runner.parse_progress(line) for line in proc.stderr.splitlines()]
        stages = [p for p in parsed if p is not None]
        assert stages[-1][0] == 100 and stages[-1][1].startswith(last)
        assert any(d.startswith("predict (tiles)") and pct == 100 for pct, d in stages)
        assert any(d.startswith("vectorise (rows)") and pct == 100 for pct, d in stages)


# -- the plugin's runner ---------------------------------------------------------------------


def test_runner_streams_progress_and_log(fake_geounet: str, tmp_path: Path) -> None:
    feedback = FakeFeedback()
    stages = [runner.Stage("predict", 0, 80), runner.Stage("vectorise", 80, 100)]
    run = runner.run_geounet(
        ["progress", str(tmp_path / "x")], feedback, fake_geounet, stages=stages
    )
    assert feedback.progress == [0, 20, 40, 60, 80]  # predict's 100 % is 80 % of the bar
    assert feedback.texts[-1] == "predict (tiles) 100/100"
    assert run.stdout == ["scene.tif: 4 tiles, 3 buildings -> out"]
    assert run.log == ["a log line"]
    assert "a log line" in feedback.log and not any(PREFIX in m for m in feedback.log)


def test_runner_turns_a_refusal_into_its_one_line(fake_geounet: str, tmp_path: Path) -> None:
    with pytest.raises(runner.GeounetError, match=r"^scene.tif does not exist; check the path$"):
        runner.run_geounet(["fail", str(tmp_path / "x")], FakeFeedback(), fake_geounet)
    with pytest.raises(runner.GeounetError, match="exit code 1: .*ZeroDivisionError"):
        runner.run_geounet(["crash", str(tmp_path / "x")], FakeFeedback(), fake_geounet)


def test_cancel_stops_the_run_and_removes_only_its_outputs(
    fake_geounet: str, tmp_path: Path
) -> None:
    made = tmp_path / "made.tif"
    older = tmp_path / "older.gpkg"
    older.write_text("from an earlier run")
    feedback = FakeFeedback(cancel_at=3)
    with pytest.raises(runner.GeounetCancelled):
        runner.run_geounet(["slow", str(made)], feedback, fake_geounet, outputs=[made, older])
    assert not made.exists()  # written by the cancelled run: removed
    assert older.read_text() == "from an earlier run"  # not touched by it: kept
    assert max(feedback.progress) < 50  # stopped long before the end


def test_find_geounet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    command = venv / "bin" / "geounet"
    command.write_text("#!/bin/sh\n")
    assert runner.find_geounet(str(command)) == str(command)
    assert runner.find_geounet(str(venv)) == str(command)  # a virtual environment will do
    with pytest.raises(runner.GeounetError, match="does not exist; set its path"):
        runner.find_geounet(str(tmp_path / "nowhere"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("GEOUNET_EXECUTABLE", raising=False)
    with pytest.raises(runner.GeounetError, match="not on PATH"):
        runner.find_geounet("")
    with pytest.raises(runner.GeounetError, match="cannot run"):
        runner.run_geounet(["predict"], FakeFeedback(), str(tmp_path / "not-a-program"))


# -- the zip -----------------------------------------------------------------------------------


def _build_zip(out: Path) -> Path:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_qgis_plugin.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(proc.stdout.strip())


def test_plugin_zip_installs_as_qgis_expects(tmp_path: Path) -> None:
    archive = _build_zip(tmp_path)
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        meta = configparser.ConfigParser()
        meta.read_string(zf.read("geounet_qgis/metadata.txt").decode())
    assert {n.split("/")[0] for n in names} == {"geounet_qgis"}  # one folder, QGIS's rule
    assert {"geounet_qgis/__init__.py", "geounet_qgis/LICENSE", "geounet_qgis/icon.svg"} <= set(
        names
    )
    assert not any("__pycache__" in n for n in names)
    general = meta["general"]
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    assert archive.name == f"geounet_qgis-{general['version']}.zip"
    for key in ("name", "description", "about", "author", "email", "repository"):
        assert general.get(key), key


# -- headless QGIS -----------------------------------------------------------------------------

needs_qgis = pytest.mark.skipif(
    not qgis_available(), reason=f"QGIS (python3-qgis for {SYSTEM_PYTHON}) not installed"
)


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin, installed from its zip as "Install from ZIP" does (unpacked)."""
    folder = tmp_path_factory.mktemp("qgis_plugins")
    with zipfile.ZipFile(_build_zip(folder / "dist")) as zf:
        zf.extractall(folder)
    return folder


def _qgis_check(plugins: Path, scenario: str, *args: str) -> dict[str, Any]:
    # GDAL_PAM_ENABLED=NO: QGIS would leave .aux.xml statistics beside the sample scenes
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "GDAL_PAM_ENABLED": "NO"}
    proc = subprocess.run(
        [str(SYSTEM_PYTHON), str(CHECK), str(GEOUNET), scenario, "--plugins", str(plugins), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["started"], report
    assert report["algorithms"] == ["geounet:evaluate", "geounet:finetune", "geounet:predict"]
    assert report["unloaded"]
    return report


@needs_qgis
def test_predict_and_evaluate_in_qgis(installed_plugin: Path, tmp_path: Path) -> None:
    scene = SAMPLE / "kampala_b_z21.tif"
    out = tmp_path / "out"
    truth = SAMPLE / "buildings.gpkg"
    report = _qgis_check(
        installed_plugin, "predict", "--scene", str(scene), "--out", str(out), "--truth", str(truth)
    )
    predict = report["predict"]
    assert predict["error"] is None
    assert predict["progress_max"] == 100
    assert any(t.startswith("predict (tiles)") for t in predict["texts"])
    with rasterio.open(scene) as src:
        crs = f"EPSG:{src.crs.to_epsg()}"
    footprints = gpd.read_file(out / "kampala_b_z21.buildings.gpkg")
    loaded = predict["loaded"]
    assert loaded["PROBABILITY"]["valid"] and loaded["PROBABILITY"]["crs"] == crs
    assert loaded["PROBABILITY"]["renderer"] == "singlebandpseudocolor"  # geounet's ramp
    assert loaded["FOOTPRINTS"]["valid"] and loaded["FOOTPRINTS"]["crs"] == crs
    assert loaded["FOOTPRINTS"]["renderer"] == "graduatedSymbol"  # coloured by confidence
    assert loaded["FOOTPRINTS"]["features"] == len(footprints) > 0
    evaluate = report["evaluate"]
    assert evaluate["error"] is None
    scored = json.loads((out / "eval" / "report.json").read_text())
    assert 0 < scored["objects"]["f1"] <= 1
    assert evaluate["loaded"]["OBJECTS"]["renderer"] == "categorizedSymbol"  # TP / FP / FN
    assert evaluate["loaded"]["OBJECTS"]["crs"] == crs


@needs_qgis
def test_cancel_in_qgis_stops_geounet_and_leaves_no_outputs(
    installed_plugin: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    scene = SAMPLE / "kampala_a_z21.tif"  # 187 tiles of 128 px: long enough to cancel
    report = _qgis_check(
        installed_plugin, "cancel", "--scene", str(scene), "--out", str(out), "--options=--tile 128"
    )
    cancel = report["cancel"]
    assert cancel["error"] == "geounet: cancelled; geounet stopped and no outputs were kept"
    assert cancel["stopped_after_cancel_s"] < 30
    assert 5 <= cancel["progress_max"] < 85
    assert report["files"] == []


@needs_qgis
def test_geounet_refusal_is_the_algorithm_error(installed_plugin: Path, tmp_path: Path) -> None:
    bad = tmp_path / "downloaded.safetensors"
    bad.write_text("<html>not found</html>")
    report = _qgis_check(
        installed_plugin,
        "error",
        "--scene",
        str(SAMPLE / "kampala_b_z21.tif"),
        "--out",
        str(tmp_path / "out"),
        "--model",
        str(bad),
    )
    assert report["error"]["error"] == (
        f"geounet: {bad} is not a geounet checkpoint (expected a safetensors file)"
    )
    assert report["files"] == []


@needs_qgis
def test_an_xyz_layer_is_mapped_over_the_extent(
    installed_plugin: Path, tiny_model: Path, tmp_path: Path
) -> None:
    from tests.http_server import serve, write_tile_pyramid
    from tests.test_remote import ZOOM, grid_scene, predict, read

    scene, (west, south, east, north) = grid_scene(tmp_path / "scene.tif")
    write_tile_pyramid(scene, tmp_path / "www", ZOOM)
    code, output = predict(str(scene), "-m", str(tiny_model), "-o", str(tmp_path / "local"))
    assert code == 0, output
    out = tmp_path / "out"
    with serve(tmp_path / "www") as server:
        report = _qgis_check(
            installed_plugin,
            "predict",
            "--xyz",
            f"{server.url}/{{z}}/{{x}}/{{y}}.png",
            "--zoom",
            str(ZOOM),
            "--extent",
            f"{west},{east},{south},{north} [EPSG:4326]",
            "--out",
            str(out),
            f"--options=-m {tiny_model} --tile-cache {tmp_path / 'cache'}",
        )
        assert any(r.endswith(".png") for r in server.requests)
    assert report["predict"]["error"] is None
    assert report["predict"]["loaded"]["PROBABILITY"]["crs"] == "EPSG:3857"
    local = read(tmp_path / "local" / "scene.prob.tif")
    tiles = read(out / "my_tiles.prob.tif")  # named after the layer
    np.testing.assert_array_equal(local[0], tiles[0])
    assert local[2] == tiles[2]


@needs_qgis
def test_finetune_in_qgis_writes_a_model_for_predict(
    installed_plugin: Path, crop: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    from geounet.model.checkpoint import read_card
    from tests.test_finetune import TINY, _base

    scene, labels, _ = crop
    base = _base(scene, labels, tmp_path / "base.safetensors")
    out = tmp_path / "town.safetensors"
    report = _qgis_check(
        installed_plugin,
        "finetune",
        "--scene",
        str(scene),
        "--truth",
        str(labels),
        "--model",
        str(base),
        "--out",
        str(out),
    )
    tune = report["finetune"]
    assert tune["error"] is None, tune
    assert tune["results"]["OUTPUT"] == str(out)
    assert any(t.startswith("training epoch") for t in tune["texts"])
    assert any(line.startswith(f"wrote {out}") for line in tune["log_tail"])
    card = read_card(out)
    assert card.model.base_width == TINY["width"]  # the base model's card was kept


@needs_qgis
def test_an_extent_maps_that_part_of_a_file(installed_plugin: Path, tmp_path: Path) -> None:
    scene = SAMPLE / "kampala_b_z21.tif"
    with rasterio.open(scene) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs
        full_width = src.width
    middle = (left + right) / 2
    out = tmp_path / "out"
    report = _qgis_check(
        installed_plugin,
        "predict",
        "--scene",
        str(scene),
        "--extent",
        f"{left},{middle},{bottom},{top} [EPSG:{crs.to_epsg()}]",
        "--out",
        str(out),
    )
    assert report["predict"]["error"] is None
    assert report["files"] == [
        "kampala_b_z21.buildings.gpkg",
        "kampala_b_z21.prob.qmd",
        "kampala_b_z21.prob.qml",
        "kampala_b_z21.prob.tif",
    ]  # named after the scene, nothing else left in the folder
    with rasterio.open(out / "kampala_b_z21.prob.tif") as prob:
        assert prob.crs == crs
        assert abs(prob.bounds.left - left) < 0.1 and abs(prob.bounds.right - middle) < 0.1
        assert abs(prob.width - full_width / 2) <= 1
    footprints = gpd.read_file(out / "kampala_b_z21.buildings.gpkg")
    assert len(footprints) and footprints.total_bounds[0] >= left - 0.1
    assert footprints.total_bounds[2] <= middle + 0.1
