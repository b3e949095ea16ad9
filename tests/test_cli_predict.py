import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from typer.testing import CliRunner

import geounet.model.checkpoint as checkpoint_mod
from geounet import __version__
from geounet.cli import app
from tests.conftest import MakeScene

runner = CliRunner()


def one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_version_and_help() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    result = runner.invoke(app, ["predict", "--help"])
    assert result.exit_code == 0 and "--overwrite" in result.output


def test_predict_writes_outputs(make_scene: MakeScene, tiny_model: Path, tmp_path: Path) -> None:
    scene = make_scene(alpha=np.full((45, 67), 255))
    out = tmp_path / "out"
    args = [
        "predict",
        str(scene),
        "--model",
        str(tiny_model),
        "--out-dir",
        str(out),
        "--tile",
        "64",
    ]
    result = runner.invoke(app, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    assert "buildings" in result.output
    with rasterio.open(out / f"{scene.stem}.prob.tif") as src:
        assert src.crs.to_epsg() == 32636
    again = runner.invoke(app, [*args, "--quiet"])
    assert "--overwrite" in one_line_error(again)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("text", "not a readable raster"),
        ("nocrs", "no coordinate reference system"),
        ("bands", "takes 3 bands but the scene offers 4"),
        ("missing", "does not exist"),
    ],
)
def test_bad_input_gives_one_line_error(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path, kind: str, message: str
) -> None:
    if kind == "text":
        scene = tmp_path / "a.tif"
        scene.write_text("hello")
    elif kind == "nocrs":
        scene = make_scene(crs=None)
    elif kind == "bands":
        scene = make_scene(count=4)
    else:
        scene = tmp_path / "nope.tif"
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["predict", str(scene), "-m", str(tiny_model), "-o", str(out), "-q"]
    )
    assert message in one_line_error(result)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["predict", "x.tif", "--batch-size", "0"], "--batch-size"),
        (["predict", "x.tif", "--simplify", "-1"], "--simplify"),
        (["predict", "x.tif", "--no-such-option"], "--no-such-option"),
        (["predict"], "SCENE"),
        (["vectorize", "p.tif", "--out", "f.gpkg", "--min-area", "big"], "--min-area"),
        (["no-such-command"], "no-such-command"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], name: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and name in lines[0]
    assert "--help" in lines[0] and "╭" not in result.output


def test_bad_model_gives_one_line_error(make_scene: MakeScene, tmp_path: Path) -> None:
    pickled = tmp_path / "model.pt"
    torch.save({"a": torch.zeros(1)}, pickled)
    result = runner.invoke(app, ["predict", str(make_scene()), "-m", str(pickled), "-q"])
    assert "refuses pickles" in one_line_error(result)
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    result = runner.invoke(app, ["predict", str(make_scene()), "-m", str(truncated), "-q"])
    assert "truncated or corrupted" in one_line_error(result)


def test_no_bundled_model_says_pass_model(
    make_scene: MakeScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint_mod, "BUNDLED_MODEL", "absent.safetensors")
    result = runner.invoke(app, ["predict", str(make_scene()), "-q"])
    assert "--model" in one_line_error(result)


def test_python_dash_m_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "geounet", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"geounet {__version__}"


def test_early_error_prints_no_progress_bar_line(tmp_path: Path) -> None:
    # without --quiet too: the progress display starts with the first stage, not before
    result = runner.invoke(app, ["predict", str(tmp_path / "nope.tif"), "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"Error: {tmp_path / 'nope.tif'} does not exist; check the path"
    ]


@pytest.mark.slow
def test_workers_give_a_byte_identical_probability_raster(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # the provenance's time, fixed
    scene = make_scene(height=150, width=110, seed=3, alpha=np.full((150, 110), 255))
    common = ["predict", str(scene), "-m", str(tiny_model), "--tile", "64", "--overlap", "16"]
    common += ["--precision", "float32", "--device", "cpu", "--no-footprints", "-q"]
    runs: dict[str, list[str]] = {
        "plain": [],
        "workers": ["--workers", "2"],
        # the workflow passes --scheduler= (empty) when no scheduler is configured
        "no_scheduler": ["--scheduler="],
        # the workers are told the test-time augmentation too
        "flips": ["--tta", "flips"],
        "flips_workers": ["--tta", "flips", "--workers", "2"],
    }
    data: dict[str, bytes] = {}
    for name, extra in runs.items():
        result = runner.invoke(app, [*common, *extra, "-o", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        data[name] = (tmp_path / name / f"{scene.stem}.prob.tif").read_bytes()
    assert data["workers"] == data["plain"]
    assert data["no_scheduler"] == data["plain"]
    assert data["flips_workers"] == data["flips"] != data["plain"]


def test_more_workers_than_tiles_is_a_warning(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    scene = make_scene(height=20, width=20)
    args = ["predict", str(scene), "-m", str(tiny_model), "--tile", "64", "--border", "0"]
    result = runner.invoke(app, [*args, "--workers", "2", "-o", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 0, result.output
    assert "warning: --workers 2 is more than the 1 tile(s) of this scene" in result.output
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "p"), "-q"])
    assert "warning" not in result.output
