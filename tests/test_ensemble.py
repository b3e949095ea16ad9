"""Ensembles: checkpoints that average the probabilities of several networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from typer.testing import CliRunner

from geounet.cli import app
from geounet.core.extents import Extent
from geounet.errors import CheckpointError, InputError, OutputExistsError
from geounet.inference.options import PredictOptions
from geounet.inference.scene import predict_scene
from geounet.model.checkpoint import (
    ModelCard,
    Normalization,
    load_checkpoint,
    read_card,
    save_checkpoint,
)
from geounet.model.ensemble import combine, members_of
from geounet.model.network import Ensemble, ModelConfig, build_model
from tests.conftest import MakeScene


def _checkpoint(path: Path, seed: int, **card: object) -> Path:
    torch.manual_seed(seed)
    cfg = ModelConfig(depth=2, base_width=4, classes=3)
    model = build_model(cfg)
    base: dict[str, object] = dict(
        model=cfg,
        pixel_size_m=0.15,
        tile_size=64,
        class_names=("building", "body", "contact"),
        threshold=0.4 + 0.2 * (seed % 2),
        provenance={"command": f"geounet train --seed {seed}"},
    )
    base.update(card)
    save_checkpoint(path, ModelCard(**base), model)  # type: ignore[arg-type]
    return path


def test_ensemble_output_is_the_mean_of_the_members_probabilities() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(depth=2, base_width=4, classes=2, members=3)
    model = build_model(cfg).eval()
    assert isinstance(model, Ensemble) and len(model.members) == 3
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        mean = torch.stack([torch.sigmoid(m(x)) for m in model.members]).mean(0)
        got = torch.sigmoid(model(x))
    assert got.shape == (2, 2, 32, 32)
    torch.testing.assert_close(got, mean, atol=1e-6, rtol=1e-5)
    # members differ, so the mean is not any one of them
    assert not torch.allclose(got, torch.sigmoid(model.members[0](x)), atol=1e-3)


def test_ensemble_of_one_network_twice_predicts_like_the_network() -> None:
    torch.manual_seed(0)
    single = build_model(ModelConfig(depth=2, base_width=4)).eval()
    twice = Ensemble([single, single]).eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(torch.sigmoid(twice(x)), torch.sigmoid(single(x)))


def test_members_below_one_is_a_checkpoint_error() -> None:
    with pytest.raises(CheckpointError, match="at least 1 member"):
        build_model(ModelConfig(members=0))


def test_combine_writes_a_checkpoint_that_predicts_the_mean(
    tmp_path: Path, make_scene: MakeScene
) -> None:
    here, there = Extent("here", (1.0, 2.0, 1.1, 2.1)), Extent("there", (3.0, 4.0, 3.1, 4.1))
    a = _checkpoint(tmp_path / "a.safetensors", 1, trained_on=(here,))
    # Members trained with other normalisation statistics each see their own.
    b = _checkpoint(
        tmp_path / "b.safetensors",
        2,
        normalization=Normalization(scale=1 / 255, mean=(0.3, 0.4, 0.5), std=(0.2, 0.25, 0.3)),
        trained_on=(there, here),
    )
    out = tmp_path / "ens.safetensors"
    card = combine([a, b], out, command="geounet ensemble a b")
    assert card.normalization == read_card(a).normalization
    assert card.model.members == 2
    assert card.threshold == pytest.approx(0.5)  # mean of 0.6 and 0.4
    assert card.provenance["member1.command"] == "geounet train --seed 1"
    assert card.provenance["member2.command"] == "geounet train --seed 2"
    assert read_card(out).model.members == 2
    assert read_card(out).trained_on == (here, there)  # every member's scenes, each once
    ens = load_checkpoint(out).model

    # An ensemble joins another checkpoint as its networks, not as one member.
    c = _checkpoint(
        tmp_path / "c.safetensors",
        3,
        normalization=Normalization(scale=1 / 1000, mean=(0.1, 0.2, 0.3), std=(0.1, 0.1, 0.2)),
    )
    three = tmp_path / "three.safetensors"
    assert combine([c, out], three).model.members == 3
    nets = members_of(load_checkpoint(three).model)
    assert torch.equal(nets[1].head.weight, members_of(ens)[0].head.weight)

    # Predict reads an ensemble as any checkpoint: its raster is the mean of the members'.
    scene = make_scene(height=96, width=80)
    opts = PredictOptions(footprints=False, batch_size=2, precision="float32", float32=True)
    probs = {}
    for model in (a, b, c, out, three):
        res = predict_scene(scene, tmp_path / model.stem, model, opts)
        with rasterio.open(res.probability) as src:
            probs[model.stem] = src.read(1, masked=True).astype(np.float64)
    assert np.ma.count(probs["ens"]) > 0
    assert np.abs(probs["ens"] - (probs["a"] + probs["b"]) / 2).max() < 1e-5
    assert np.abs(probs["three"] - (probs["a"] + probs["b"] + probs["c"]) / 3).max() < 1e-5


def test_combine_refuses_what_cannot_be_averaged(tmp_path: Path) -> None:
    a = _checkpoint(tmp_path / "a.safetensors", 1)
    other_px = _checkpoint(tmp_path / "px.safetensors", 2, pixel_size_m=0.3)
    out = tmp_path / "ens.safetensors"
    with pytest.raises(InputError, match=r"ground pixel size \(0.15 vs 0.3\) differs"):
        combine([a, other_px], out)
    with pytest.raises(InputError, match="at least two checkpoints, got 1"):
        combine([a], out)
    with pytest.raises(InputError, match="must end in .safetensors"):
        combine([a, a], tmp_path / "ens.pt")
    assert not out.exists()
    combine([a, a], out)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        combine([a, a], out)


def test_cli_ensemble_reports_and_errors_in_one_line(tmp_path: Path) -> None:
    a = _checkpoint(tmp_path / "a.safetensors", 1)
    b = _checkpoint(tmp_path / "b.safetensors", 2)
    out = tmp_path / "ens.safetensors"
    runner = CliRunner()
    ok = runner.invoke(app, ["ensemble", str(a), str(b), "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert "ensemble of 2 networks (threshold 0.50, body 0.50" in ok.output
    two = _checkpoint(tmp_path / "two.safetensors", 3, class_names=("building", "roof", "x"))
    bad = runner.invoke(
        app, ["ensemble", str(a), str(two), "--out", str(tmp_path / "e.safetensors")]
    )
    assert bad.exit_code != 0
    lines = bad.output.strip().splitlines()
    assert len(lines) == 1 and "output channels" in lines[0], bad.output
    assert not (tmp_path / "e.safetensors").exists()
