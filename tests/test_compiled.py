"""``--compile``: torch.compile for prediction, when it is used, and its fallback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch

from geounet.errors import InputError
from geounet.inference.engine import TilePredictor
from geounet.inference.options import PredictOptions
from geounet.inference.scene import predict_scene
from geounet.model.checkpoint import load_checkpoint
from geounet.model.compiled import COMPILE_MIN_PIXELS, CompiledNet, check_compile, wants_compile
from geounet.model.network import ModelConfig, build_model, fuse_for_inference
from tests.conftest import MakeScene

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_compiles_large_scenes_on_the_cpu_only() -> None:
    assert wants_compile("auto", CPU, COMPILE_MIN_PIXELS)
    assert not wants_compile("auto", CPU, COMPILE_MIN_PIXELS - 1)
    assert not wants_compile("auto", CUDA, 10 * COMPILE_MIN_PIXELS)
    assert wants_compile("on", CUDA, 1) and wants_compile("on", CPU, 1)
    assert not wants_compile("off", CPU, 10 * COMPILE_MIN_PIXELS)
    assert check_compile("auto") == "auto"
    with pytest.raises(InputError, match="--compile must be one of auto, on, off, got yes"):
        check_compile("yes")


def test_an_int8_model_is_not_compiled(tiny_model: Path) -> None:
    """OpenVINO compiles an int8 model itself; compile() leaves it as it is."""
    net = _net()
    predictor = TilePredictor(load_checkpoint(tiny_model), CPU, torch.float32, net=net)
    predictor.compile()
    assert predictor.compiled is None and predictor.note == ""


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return fuse_for_inference(build_model(ModelConfig(depth=2, base_width=4, classes=3)))


def test_compiled_network_gives_the_same_output() -> None:
    net = _net()
    x = torch.randn(1, 3, 64, 64)
    compiled = CompiledNet(net)
    with torch.inference_mode():
        want, got = net(x), compiled(x)
    assert compiled.failure == "" and compiled.note == ""
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def _broken_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.compile whose compiled network fails on its first call, as without a compiler."""

    def compile_(net: torch.nn.Module, **_: Any) -> Any:
        def run(x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("no C++ compiler found\nlong traceback")

        return run

    monkeypatch.setattr(torch, "compile", compile_)


def test_a_failed_compile_runs_the_network_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    _broken_compiler(monkeypatch)
    net = _net()
    x = torch.randn(1, 3, 32, 32)
    compiled = CompiledNet(net)
    with torch.inference_mode():
        torch.testing.assert_close(compiled(x), net(x))
        torch.testing.assert_close(compiled(x), net(x))  # and from then on
    assert compiled.failure == "RuntimeError: no C++ compiler found"
    assert compiled.note == (
        "--compile: torch.compile failed (RuntimeError: no C++ compiler found); "
        "predicted uncompiled"
    )


def test_predict_with_a_failed_compile_says_so_and_writes_the_same(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene = make_scene()
    plain = predict_scene(scene, tmp_path / "plain", tiny_model, PredictOptions(tile=64))
    _broken_compiler(monkeypatch)
    auto = predict_scene(scene, tmp_path / "auto", tiny_model, PredictOptions(tile=64))
    assert not any("--compile" in w for w in auto.warnings)  # auto: too few pixels to compile
    on = predict_scene(scene, tmp_path / "on", tiny_model, PredictOptions(tile=64, compile="on"))
    assert any("torch.compile failed (RuntimeError" in w for w in on.warnings)
    with rasterio.open(plain.probability) as a, rasterio.open(on.probability) as b:
        assert np.array_equal(a.read(), b.read())
    assert on.buildings == plain.buildings
    with pytest.raises(InputError, match="--compile must be one of auto, on, off, got yes"):
        predict_scene(scene, tmp_path / "bad", tiny_model, PredictOptions(compile="yes"))


def test_dask_workers_compile_when_the_job_says_so(tiny_model: Path) -> None:
    from geounet.inference.executors import _worker_predictor

    plain = _worker_predictor(str(tiny_model), "cpu", "auto", None, None, False)
    compiled = _worker_predictor(str(tiny_model), "cpu", "auto", None, None, True)
    assert plain.compiled is None
    assert isinstance(compiled.compiled, CompiledNet)
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(compiled(x), plain(x), atol=1e-5)
