"""Robustness, second round: incomplete files, SIGTERM and SIGKILL, racing runs, hostile
model files, absurd resampling, option values and dask addresses that must not hang."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import rasterio
import typer.main
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from geounet.cli import app
from geounet.cli._ranges import RANGES, check_value
from geounet.core.threads import joined_pool
from geounet.core.tiling import plan_tiles
from geounet.errors import CheckpointError, InputError, OutputError, OutputExistsError
from geounet.inference import engine
from geounet.inference.executors import check_scheduler
from geounet.inference.options import PredictOptions, needs_resampling
from geounet.inference.scene import predict_scene
from geounet.io.atomic import atomic_path, remove_stale_temporaries, write_json
from geounet.model.checkpoint import load_checkpoint
from tests.conftest import MakeScene, write_big_scene

runner = CliRunner()


def one_line_error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


# 1. the atomic writer lands only complete files -------------------------------------


def test_an_incomplete_geotiff_never_lands(make_scene: MakeScene, tmp_path: Path) -> None:
    """GDAL does not always raise when a write fails: the file is checked before it lands."""
    data = make_scene(height=600, width=600).read_bytes()
    final = tmp_path / "out" / "x.tif"
    with pytest.raises(OutputError, match="incomplete"), atomic_path(final) as tmp:
        tmp.write_bytes(data[: len(data) * 2 // 3])  # what a full disk leaves
    assert not final.parent.exists() or list(final.parent.iterdir()) == []
    with atomic_path(final) as tmp:  # and a complete one does land
        tmp.write_bytes(data)
    assert final.read_bytes() == data


def test_an_incomplete_geopackage_never_lands(tmp_path: Path) -> None:
    import geopandas as gpd
    from shapely.geometry import box

    whole = tmp_path / "whole.gpkg"
    frame = gpd.GeoDataFrame(geometry=[box(i, 0, i + 1, 1) for i in range(3000)], crs=32636)
    frame.to_file(whole, driver="GPKG")
    data = whole.read_bytes()
    final = tmp_path / "out" / "x.gpkg"
    with pytest.raises(OutputError, match="incomplete"), atomic_path(final) as tmp:
        tmp.write_bytes(data[: len(data) // 2])
    assert not final.exists()


# 2. signals and dead processes ---------------------------------------------------------


def _predict_big(folder: Path, model: Path) -> tuple[list[str], Path]:
    """The command that predicts a big scene in 64 px tiles, and its output folder."""
    out = folder / "out"
    cmd = [sys.executable, "-m", "geounet", "predict", str(write_big_scene(folder))]
    return [*cmd, "-m", str(model), "-o", str(out), "--tile", "64", "-q"], out


def _start_writing(cmd: list[str], out: Path) -> subprocess.Popen[str]:
    # a crash prints where it happened (a flake once ended in SIGSEGV with no other word)
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    while time.time() < deadline and not (out.exists() and any(out.glob(".*.work.tif"))):
        time.sleep(0.05)
    assert proc.poll() is None and any(out.glob(".*.work.tif")), "started writing"
    return proc


@pytest.mark.slow
def test_sigterm_leaves_nothing(tiny_model: Path, tmp_path: Path) -> None:
    """What Snakemake and SLURM send to cancel a job cleans up as Ctrl-C does."""
    cmd, out = _predict_big(tmp_path, tiny_model)
    proc = _start_writing(cmd, out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "terminated" in err
    assert list(out.iterdir()) == []


def _interrupt_as_submit_starts_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C landing in ``submit`` after it started a thread, before the pool recorded it."""
    original = ThreadPoolExecutor._adjust_thread_count

    def adjust(self: ThreadPoolExecutor) -> None:
        before = set(threading.enumerate())
        original(self)  # type: ignore[attr-defined]
        self._threads.difference_update(set(threading.enumerate()) - before)  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(ThreadPoolExecutor, "_adjust_thread_count", adjust)


def test_a_pool_interrupted_as_it_starts_a_thread_still_waits_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _interrupt_as_submit_starts_a_thread(monkeypatch)
    done = threading.Event()
    with pytest.raises(KeyboardInterrupt), joined_pool(1, "test") as pool:
        pool.submit(lambda: time.sleep(0.5) or done.set())
    assert done.is_set()  # a plain ThreadPoolExecutor leaves the task running here


def test_no_tile_read_outlives_the_batches_after_an_interrupt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scene is closed once the batches end: a read still running then crashed a run."""
    ended: list[float] = []

    def slow_read(src: object, bands: list[int], tiles: list[object]) -> list[object]:
        time.sleep(0.3)
        ended.append(time.monotonic())
        return []

    monkeypatch.setattr(engine, "read_tiles", slow_read)
    _interrupt_as_submit_starts_a_thread(monkeypatch)
    batches = engine.local_tile_batches(None, [1], plan_tiles(90, 70, 32, 8, 4), np.asarray)  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        next(batches)
    closed = time.monotonic()
    time.sleep(0.5)
    assert ended and max(ended) <= closed


@pytest.mark.slow
def test_what_a_killed_run_left_is_removed_by_the_next(tiny_model: Path, tmp_path: Path) -> None:
    cmd, out = _predict_big(tmp_path, tiny_model)
    proc = _start_writing(cmd, out)
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait(timeout=30)
    left = sorted(p.name for p in out.iterdir())
    assert left and all(name.startswith(".big.") for name in left)
    done = subprocess.run(cmd[:-3] + ["--tile", "1024", "-q"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["big.buildings.gpkg", "big.prob.qmd", "big.prob.qml", "big.prob.tif"]


def test_temporaries_of_live_processes_and_other_hosts_are_kept(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True).stdout.strip()  # fmt: skip
    host = socket.gethostname().split(".")[0]
    mine = tmp_path / f".a.prob.x1.tmp.{dead}@{host}.tif"
    alive = tmp_path / f".a.prob.x2.tmp.1@{host}.tif"  # pid 1 always runs
    remote = tmp_path / f".a.prob.x3.tmp.{dead}@another-node.tif"
    user = tmp_path / ".hidden.tmp.notes"
    for path in (mine, alive, remote, user):
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [mine]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (alive, remote, user)
    )


# 3. two runs into one folder ------------------------------------------------------------


def test_a_run_never_replaces_what_another_wrote_meanwhile(tmp_path: Path) -> None:
    final = tmp_path / "x.txt"
    with pytest.raises(OutputExistsError, match="meanwhile"), atomic_path(final, False) as tmp:
        tmp.write_text("mine")
        final.write_text("theirs")  # the other run lands first
    assert final.read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]


def test_racing_predictions_one_wins_the_other_says_so(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import geounet.inference.scene as scene_mod

    scene, out = make_scene(height=90, width=90), tmp_path / "out"
    real_cog = scene_mod.write_cog
    theirs = b"the other run's raster"

    def other_run_lands_first(src: Path, dst: Path, band: object = None) -> None:
        real_cog(src, dst, band)  # type: ignore[arg-type]
        if dst.name.startswith(".s.prob."):
            (out / "s.prob.tif").write_bytes(theirs)

    monkeypatch.setattr(scene_mod, "write_cog", other_run_lands_first)
    opts = PredictOptions(tile=64, name="s")
    with pytest.raises(OutputExistsError, match="s.prob.tif exists"):
        predict_scene(scene, out, tiny_model, opts)
    assert (out / "s.prob.tif").read_bytes() == theirs
    assert sorted(p.name for p in out.iterdir()) == ["s.prob.tif"]


# 4. model files are data, checked before anything is allocated ---------------------------


def _card_variant(model: Path, out: Path, **changes: object) -> Path:
    with safe_open(str(model), "pt") as f:
        meta = f.metadata()
    card = json.loads(meta["geounet"])
    for key, value in changes.items():
        section, _, name = key.rpartition(".")
        (card[section] if section else card)[name] = value
    save_file(load_file(str(model)), str(out), metadata={"geounet": json.dumps(card)})
    return out


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"pixel_size_m": 0}, "pixel_size_m is 0,"),
        ({"pixel_size_m": -0.15}, "pixel_size_m is -0.15"),
        ({"pixel_size_m": 1e-5}, "pixel_size_m is 1e-05"),
        ({"model.depth": 9}, "model.depth is 9"),
        ({"model.base_width": 4.5}, "model.base_width is 4.5"),
        ({"tile_size": 70}, "not a multiple of 4"),
        ({"threshold": float("nan")}, "threshold is nan"),
        ({"normalization.scale": "x"}, "metadata is malformed"),
        ({"model.arch": "vit"}, "unknown architecture"),
        ({"model.base_width": 512}, "weights do not match the architecture"),
    ],
)
def test_hostile_model_cards_are_refused(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path, change: dict[str, object],
    needle: str,
) -> None:  # fmt: skip
    bad = _card_variant(tiny_model, tmp_path / "bad.safetensors", **change)
    with pytest.raises(CheckpointError, match=needle.replace("(", r"\(")):
        load_checkpoint(bad)
    line = one_line_error(["predict", str(make_scene()), "-m", str(bad), "-o", str(tmp_path)])
    assert "bad.safetensors" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors", "scene0.tif"]


# 5. resampling has bounds -----------------------------------------------------------------


def test_absurd_resampling_is_refused_with_the_reason(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    assert needs_resampling(0.3, 0.15) and not needs_resampling(0.16, 0.15)
    assert not needs_resampling(10.0, 0.15, allowed=False)
    with pytest.raises(InputError, match="67 times the model's"):
        needs_resampling(10.0, 0.15)
    with pytest.raises(InputError, match="georeference"):
        needs_resampling(0.001, 0.15)
    coarse = make_scene(height=512, width=512, res=10.0)
    line = one_line_error(["predict", str(coarse), "-m", str(tiny_model), "-o", str(tmp_path)])
    assert "too coarse to map buildings" in line and "--no-resample" in line
    result = runner.invoke(
        app, ["predict", str(coarse), "-m", str(tiny_model), "-o", str(tmp_path / "native"),
              "--no-resample", "-q"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output


# 6-8. option values: every numeric option of every command --------------------------------


def _numeric_options() -> list[tuple[str, str]]:
    group = typer.main.get_command(app)
    found = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
            if annotation in (int, float) and param.opts[0].startswith("-"):
                found.append((name, max(param.opts, key=len)))
    return found


def _required_arguments() -> dict[str, list[str]]:
    """Placeholder values of each command's required arguments and options (never read:
    the option values are checked before a command runs)."""
    group = typer.main.get_command(app)
    required: dict[str, list[str]] = {}
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        args: list[str] = []
        for param in command.params:
            if param.required:
                is_option = param.opts[0].startswith("-")
                args += [param.opts[0], "x.safetensors"] if is_option else ["x.tif"]
        required[name] = args
    return required


NUMERIC_OPTIONS = _numeric_options()
REQUIRED = _required_arguments()


def test_every_numeric_option_has_a_declared_range() -> None:
    assert len(NUMERIC_OPTIONS) > 40
    missing = sorted({option for _, option in NUMERIC_OPTIONS} - set(RANGES))
    assert missing == []


@settings(max_examples=60, deadline=None)
@given(
    option=st.sampled_from(NUMERIC_OPTIONS),
    value=st.one_of(
        st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, 1e308, -1e308, 2**63]),
        st.floats(allow_nan=True, allow_infinity=True),
    ),
)
def test_option_values_out_of_range_are_one_line_usage_errors(
    option: tuple[str, str], value: float
) -> None:
    """Checked before the command runs: nan, inf, negative, zero or huge, never a traceback."""
    command, name = option
    problem = check_value(name, value)
    if problem is None:
        return  # in range: what the command makes of it is the other tests' business
    text = repr(value) if isinstance(value, float) else str(value)
    args = [command, *REQUIRED[command], f"{name}={text}"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (args, result.output)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    # an int option refuses a float (Click's message) before the range is checked
    assert name in lines[0], lines[0]


def test_a_negative_min_area_and_an_infinite_simplify_are_refused(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    scene = str(make_scene())
    for args, needle in [
        (["--min-area", "-5"], "--min-area -5 is not allowed: it must be in [0, 1000000] m2"),
        (["--min-area", "nan"], "--min-area nan is not allowed: it must be a finite number"),
        (["--simplify", "inf"], "--simplify inf is not allowed"),
        (["--tile", "0"], "--tile 0 is not allowed"),
        (["--border", "100000"], "--border 100000 is not allowed"),
        (["--border", "40"], "--border 40 must be between 0 and half the tile (32 px)"),
    ]:
        line = one_line_error(
            ["predict", scene, "-m", str(tiny_model), "-o", str(tmp_path / "o"), "--tile", "64",
             *args]
        )  # fmt: skip
        assert needle in line, line
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_reports_are_strict_json(tmp_path: Path) -> None:
    write_json(tmp_path / "r.json", {"a": math.nan, "b": [1.5, math.inf], "c": {"d": -math.inf}})
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [1.5, None], "c": {"d": None}}


# 7. a dask address that does not answer as dask ----------------------------------------------


_HELD: list[socket.socket] = []


def _silent_server() -> tuple[socket.socket, str]:
    """A service that accepts connections and never answers (a stalled web server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    threading.Thread(target=lambda: _HELD.append(server.accept()[0]), daemon=True).start()
    return server, f"tcp://127.0.0.1:{server.getsockname()[1]}"


def test_a_scheduler_address_that_is_not_dask_times_out(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import geounet.inference.executors as executors

    server, address = _silent_server()
    monkeypatch.setattr(executors, "PROBE_SECONDS", 1.0)
    try:
        t0 = time.perf_counter()
        with pytest.raises(InputError, match="no dask scheduler answered"):
            check_scheduler(address)
        assert time.perf_counter() - t0 < 10
    finally:
        server.close()
    line = one_line_error(
        ["predict", str(make_scene()), "-m", str(tiny_model), "-o", str(tmp_path / "o"),
         "--scheduler", "bogus://x"]
    )  # fmt: skip
    assert "--scheduler 'bogus://x' is not a dask address" in line


# unclear messages made clear ------------------------------------------------------------------


def test_scenes_that_need_a_gdal_step_first_say_which(make_scene: MakeScene, tmp_path: Path,
                                                      tiny_model: Path) -> None:  # fmt: skip
    from rasterio.control import GroundControlPoint
    from rasterio.crs import CRS

    gcp = tmp_path / "gcp.tif"
    points = [GroundControlPoint(0, 0, 5e5, 4e4), GroundControlPoint(64, 0, 5e5 + 9, 4e4),
              GroundControlPoint(0, 64, 5e5, 4e4 - 9)]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # set just below
        with rasterio.open(gcp, "w", driver="GTiff", width=64, height=64, count=3,
                           dtype="uint8") as dst:  # fmt: skip
            dst.write(np.zeros((3, 64, 64), np.uint8))
            dst.gcps = (points, CRS.from_epsg(32636))
    palette = tmp_path / "palette.tif"
    with rasterio.open(palette, "w", driver="GTiff", width=64, height=64, count=1,
                       dtype="uint8", crs="EPSG:32636",
                       transform=from_origin(5e5, 4e4, 0.15, 0.15)) as dst:  # fmt: skip
        dst.write(np.zeros((1, 64, 64), np.uint8))
        dst.write_colormap(1, {0: (0, 0, 0, 255), 1: (255, 0, 0, 255)})
    two = make_scene(count=2)
    cases = [
        (gcp, "gdalwarp -t_srs EPSG:32636 gcp.tif"),
        (palette, "gdal_translate -expand rgb palette.tif"),
        (two, "the scene has only 2 image bands; it needs 3-band (RGB) imagery"),
    ]
    for scene, needle in cases:
        line = one_line_error(["predict", str(scene), "-m", str(tiny_model), "-o", str(tmp_path)])
        assert needle in line, line


# 1'. a real full disk, at every point of writing ------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """Mount tmpfs file systems of a given size (needs root and mount; skipped otherwise)."""
    mounts: list[Path] = []

    def mount(kib: int) -> Path:
        point = tmp_path / f"tmpfs{len(mounts)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(point)],
            capture_output=True,
        )
        if done.returncode != 0:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", str(point)], capture_output=True)


@pytest.mark.slow
def test_a_disk_that_fills_up_at_any_point_leaves_no_output(
    small_tmpfs: Callable[[int], Path], make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    scene = make_scene(height=700, width=700)
    cmd = [sys.executable, "-m", "geounet", "predict", str(scene), "-m", str(tiny_model)]
    cmd += ["--tile", "128", "-q"]
    whole = tmp_path / "whole"
    subprocess.run([*cmd, "-o", str(whole)], check=True, capture_output=True)
    names = sorted(p.name for p in whole.iterdir())
    total_kib = sum(p.stat().st_size for p in whole.iterdir()) // 1024
    # working files (the raster being stitched) need room beyond the outputs' size
    outcomes = []
    for kib in np.linspace(total_kib * 0.1, total_kib * 3, 8).astype(int):
        out = small_tmpfs(int(kib))
        done = subprocess.run([*cmd, "-o", str(out)], capture_output=True, text=True)
        left = sorted(p.name for p in out.iterdir())
        outcomes.append(done.returncode)
        if done.returncode == 0:
            assert left == names, (kib, left)
            for name in names:
                if name.endswith(".tif"):
                    with rasterio.open(out / name) as src:
                        src.read()
            continue
        assert done.returncode == 2, (kib, done.stderr)
        assert "Traceback" not in done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "disk full" in errors[0], (kib, done.stderr)
        assert done.stderr.strip().splitlines() == errors  # no libtiff or GDAL lines before
        assert left == [], (kib, left)  # nothing under a final name, no temporaries
    assert outcomes[0] == 2 and outcomes[-1] == 0, outcomes
    assert outcomes.count(2) >= 3, outcomes  # failing at several points of the writing


def test_point_truth_and_labels_elsewhere_are_named_as_such(
    make_scene: MakeScene, tmp_path: Path
) -> None:
    from shapely.geometry import Point

    from tests.evaluate_data import px_box, write_polygons, write_scene

    scene = write_scene(tmp_path / "s.tif", 33, 41)
    points = write_polygons(tmp_path / "p.gpkg", [px_box(1, 1, 5, 5).centroid], extra=False)
    line = one_line_error(["evaluate", str(scene), "--truth", str(points), "--prob",
                           str(scene), "-o", str(tmp_path / "ev")])  # fmt: skip
    assert "holds Point geometries, not footprint polygons" in line
    elsewhere = write_polygons(tmp_path / "far.gpkg", [Point(0, 0).buffer(5)], extra=False)
    line = one_line_error(["train", "-i", str(make_scene(height=64, width=64)), "-l",
                           str(elsewhere), "-o", str(tmp_path / "m.safetensors")])  # fmt: skip
    assert "the labels do not overlap the images" in line
    assert list((tmp_path / "ev").glob("*")) == [] and not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_help_reads_like_unix_help_at_80_columns(command: str) -> None:
    """Metavars in capitals, choices listed, flags bare, nothing cut at 80 columns."""
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "\u2026" not in result.output  # no description cut off with an ellipsis
    options = result.output.split("Options:", 1)[1]
    for placeholder in ("<bool>", "<int>", "<float>", "<str>", "<path>", "<list["):
        assert placeholder not in options, (command, placeholder)
    if command == "predict":
        assert "--device <auto|cpu|cuda>" in result.output
        assert "--tile INTEGER" in result.output and "--float32 " in result.output
