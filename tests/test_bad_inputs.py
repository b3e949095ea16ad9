"""Every bad input gets a one-line error, a non-zero exit and no partial output."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin
from typer.testing import CliRunner

from geounet.checkpoint import ModelCard, Normalization, save_checkpoint
from geounet.cli import app
from geounet.errors import GeounetError
from geounet.model import ModelConfig, build_model
from geounet.predict import PredictOptions, predict_scene
from tests.conftest import MakeScene

runner = CliRunner()


def run_cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def assert_one_line_error(code: int, output: str, needle: str) -> None:
    assert code != 0
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert needle in lines[0], lines[0]


def no_outputs(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def test_truncated_geotiff(make_scene: MakeScene, tiny_model: Path, tmp_path: Path) -> None:
    good = make_scene(height=300, width=300)
    data = good.read_bytes()
    bad = tmp_path / "truncated.tif"
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    code, output = run_cli("predict", str(bad), "-m", str(tiny_model), "-o", str(out), "-q")
    assert code != 0 and "Traceback" not in output
    assert "truncated" in output or "not a readable raster" in output
    assert no_outputs(out)


def test_sixteen_bit_scene_needs_and_accepts_value_range(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    scene = make_scene(dtype="uint16")
    out = tmp_path / "out"
    code, output = run_cli("predict", str(scene), "-m", str(tiny_model), "-o", str(out), "-q")
    assert_one_line_error(code, output, "--value-range")
    code, output = run_cli(
        "predict", str(scene), "-m", str(tiny_model), "-o", str(out), "-q",
        "--value-range", "0,65535",
    )  # fmt: skip
    assert code == 0, output
    code, output = run_cli(
        "predict", str(scene), "-m", str(tiny_model), "-o", str(out / "x"), "-q",
        "--value-range", "5,1",
    )  # fmt: skip
    assert_one_line_error(code, output, "maximum must exceed")


def test_value_range_maps_onto_the_8bit_prediction(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    """A 16-bit copy of an 8-bit scene (x 257) with --value-range 0,65535 predicts the same."""
    scene8 = make_scene(seed=3)
    with rasterio.open(scene8) as src:
        profile = src.profile | {"dtype": "uint16"}
        data = src.read().astype(np.uint16) * 257
    scene16 = tmp_path / "s16.tif"
    with rasterio.open(scene16, "w", **profile) as dst:
        dst.write(data)
    opts = {"tile": 64, "precision": "float32"}
    a = predict_scene(scene8, tmp_path / "a", tiny_model, PredictOptions(**opts))  # type: ignore[arg-type]
    b = predict_scene(
        scene16,
        tmp_path / "b",
        tiny_model,
        PredictOptions(**opts, value_range=(0, 65535)),  # type: ignore[arg-type]
    )
    with rasterio.open(a.probability) as pa, rasterio.open(b.probability) as pb:
        diff = np.abs(pa.read(1).astype(int) - pb.read(1).astype(int))
    assert diff.max() <= 1


def test_nan_pixels_are_nodata(tiny_model: Path, tmp_path: Path) -> None:
    data = np.random.default_rng(0).random((3, 40, 50)).astype(np.float32)
    data[:, 10:20, 10:30] = np.nan
    scene = tmp_path / "f.tif"
    profile = {
        "driver": "GTiff", "height": 40, "width": 50, "count": 3, "dtype": "float32",
        "crs": "EPSG:32636", "transform": from_origin(500000, 40000, 0.15, 0.15),
    }  # fmt: skip
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(data)
    res = predict_scene(
        scene, tmp_path / "o", tiny_model, PredictOptions(tile=64, value_range=(0.0, 1.0))
    )
    with rasterio.open(res.probability) as src:
        valid = src.read_masks(1) > 0
    assert not valid[10:20, 10:30].any() and valid[:10].all()


def test_corrupt_checkpoint(make_scene: MakeScene, tmp_path: Path, tiny_model: Path) -> None:
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(tiny_model.read_bytes()[:-1000])
    code, output = run_cli("predict", str(make_scene()), "-m", str(bad), "-o", str(tmp_path / "o"))
    assert_one_line_error(code, output, "truncated or corrupted")


def test_checkpoint_that_would_run_pickled_code_is_refused(
    make_scene: MakeScene, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, (f"touch {marker}",))

    import pickle

    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(Evil()))
    code, output = run_cli("predict", str(make_scene()), "-m", str(evil), "-o", str(tmp_path / "o"))
    assert_one_line_error(code, output, "pickle")
    assert not marker.exists(), "the pickle was never executed"


def test_output_folder_that_is_a_file(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, output = run_cli(
        "predict", str(make_scene()), "-m", str(tiny_model), "-o", str(blocker / "out"), "-q"
    )
    assert_one_line_error(code, output, "cannot create output folder")


def test_disk_full_during_write(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import geounet.predict as predict_mod

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(predict_mod, "write_cog", full)
    out = tmp_path / "out"
    code, output = run_cli(
        "predict", str(make_scene()), "-m", str(tiny_model), "-o", str(out), "-q"
    )
    assert_one_line_error(code, output, "disk full")
    assert no_outputs(out)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"normalization": Normalization(mean=(0.5, 0.5), std=(0.2, 0.2, 0.2))}, "2 means"),
        ({"normalization": Normalization(std=(0.2,) * 4)}, "4 standard deviations"),
        ({"normalization": Normalization(std=(0.2, 0.0, 0.2))}, "not a positive number"),
        ({"bands": ("red", "green", "blue", "nir")}, "names 4 bands"),
        ({"class_names": ("building", "contact")}, "1 output channels but its card names 2"),
    ],
    ids=["mean", "std", "zero-std", "bands", "classes"],
)
def test_checkpoint_card_that_contradicts_itself(
    make_scene: MakeScene, tmp_path: Path, change: dict[str, object], needle: str
) -> None:
    cfg = ModelConfig(depth=2, base_width=4)
    card = ModelCard(model=cfg, pixel_size_m=0.15, tile_size=64, **change)  # type: ignore[arg-type]
    bad = save_checkpoint(tmp_path / "bad.safetensors", card, build_model(cfg))
    out = tmp_path / "o"
    code, output = run_cli("predict", str(make_scene()), "-m", str(bad), "-o", str(out), "-q")
    assert_one_line_error(code, output, needle)
    assert "re-train or re-export the model" in output
    assert no_outputs(out)


@pytest.mark.slow
def test_sigint_leaves_nothing_and_next_run_is_clean(tiny_model: Path, tmp_path: Path) -> None:
    scene = tmp_path / "big.tif"
    profile = {
        "driver": "GTiff", "height": 2048, "width": 2048, "count": 3, "dtype": "uint8",
        "crs": "EPSG:32636", "transform": from_origin(500000, 40000, 0.15, 0.15),
        "tiled": True,
    }  # fmt: skip
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(np.random.default_rng(0).integers(0, 255, (3, 2048, 2048), dtype=np.uint8))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "geounet", "predict", str(scene), "-m", str(tiny_model)]
    cmd += ["-o", str(out), "--tile", "64", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out.exists() and any(out.glob(".*.tmp*"))):
        time.sleep(0.05)
    assert proc.poll() is None, "still running when interrupted"
    assert any(out.glob(".*.tmp*")), "prediction started writing a temporary file"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert no_outputs(out), list(out.iterdir())
    done = subprocess.run(cmd[:-3] + ["--tile", "1024", "-q"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["big.buildings.gpkg", "big.prob.qmd", "big.prob.qml", "big.prob.tif"]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    height=st.integers(1, 300),
    width=st.integers(1, 300),
    dtype=st.sampled_from(["uint8", "uint16", "float32", "int16"]),
    count=st.integers(1, 5),
    alpha=st.booleans(),
    nodata=st.one_of(st.none(), st.sampled_from([0, 255])),
    crs=st.sampled_from(["EPSG:32636", "EPSG:3857", "EPSG:4326", None]),
    seed=st.integers(0, 2**16),
)
def test_fuzz_predict_succeeds_or_fails_cleanly(
    tiny_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
    height: int,
    width: int,
    dtype: str,
    count: int,
    alpha: bool,
    nodata: int | None,
    crs: str | None,
    seed: int,
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(seed)
    bands = count + int(alpha)
    res = 1e-6 if crs == "EPSG:4326" else 0.15
    profile: dict[str, object] = {
        "driver": "GTiff", "height": height, "width": width, "count": bands, "dtype": dtype,
        "transform": from_origin(32.5 if crs == "EPSG:4326" else 500000, 0.35, res, res),
    }  # fmt: skip
    if crs:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    if bands >= 3 and not alpha:
        profile["photometric"] = "MINISBLACK"
    scene = folder / "s.tif"
    info = np.iinfo(dtype) if dtype != "float32" else None
    with rasterio.open(scene, "w", **profile) as dst:
        if info is not None:
            data = rng.integers(max(info.min, 0), min(info.max, 255), (bands, height, width))
        else:
            data = rng.random((bands, height, width)) * 255
        dst.write(data.astype(dtype))
        if alpha:
            dst.colorinterp = [ColorInterp.gray] * count + [ColorInterp.alpha]
    out = folder / "out"
    try:
        result = predict_scene(
            scene, out, tiny_model, PredictOptions(tile=64, value_range=(0, 255))
        )
    except GeounetError:
        assert no_outputs(out)
        return
    with rasterio.open(scene) as s, rasterio.open(result.probability) as p:
        assert (p.width, p.height, p.transform, p.crs) == (s.width, s.height, s.transform, s.crs)
