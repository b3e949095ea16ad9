"""Test-time augmentation: the averaged model, its card setting, predict and calibrate."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from torch import nn
from typer.testing import CliRunner

from geounet.cli import app
from geounet.errors import CheckpointError, InputError
from geounet.inference.engine import TilePredictor
from geounet.model.checkpoint import ModelCard, load_checkpoint, read_card, save_checkpoint
from geounet.model.device import select_device
from geounet.model.tta import TTA_MODES, passes, with_tta
from tests.conftest import MakeScene

runner = CliRunner()


def _net() -> nn.Module:
    """A small network that is not equivariant under flips or rotations."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 5, padding=2)
    ).eval()


def _d4(x: torch.Tensor) -> list[tuple[torch.Tensor, object]]:
    """The eight symmetries of the square applied to ``x``, as rotations of x and its mirror."""
    out = []
    for mirror in (False, True):
        base = torch.flip(x, (3,)) if mirror else x
        for k in range(4):
            out.append((torch.rot90(base, k, (2, 3)), (mirror, k)))
    return out


def _undo(y: torch.Tensor, key: object) -> torch.Tensor:
    mirror, k = key  # type: ignore[misc]
    y = torch.rot90(y, -k, (2, 3))
    return torch.flip(y, (3,)) if mirror else y


def test_d4_averages_the_probabilities_of_all_eight_symmetries() -> None:
    net, x = _net(), torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        expected = torch.stack([_undo(torch.sigmoid(net(xt)), key) for xt, key in _d4(x)]).mean(0)
        got = torch.sigmoid(with_tta(net, "d4")(x))
        plain = torch.sigmoid(net(x))
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, plain, atol=1e-3)  # the network itself is not symmetric
    assert passes("d4") == 8 and passes("flips") == 4 and passes("none") == 1


@pytest.mark.parametrize("mode", ["flips", "d4"])
def test_averaged_model_is_equivariant_under_its_transforms(mode: str) -> None:
    net, x = _net(), torch.rand(1, 3, 16, 16)
    averaged = with_tta(net, mode)
    transforms = {"lr": lambda t: torch.flip(t, (3,)), "tb": lambda t: torch.flip(t, (2,))}
    if mode == "d4":
        transforms["rot90"] = lambda t: torch.rot90(t, 1, (2, 3))
    with torch.no_grad():
        for name, g in transforms.items():
            assert torch.allclose(averaged(g(x)), g(averaged(x)), atol=1e-4), name
            assert not torch.allclose(net(g(x)), g(net(x)), atol=1e-3), name


def test_unknown_mode_is_refused_and_none_is_the_network_itself() -> None:
    net = _net()
    assert with_tta(net, "none") is net
    with pytest.raises(InputError, match="unknown test-time augmentation 'd8'; use one of none"):
        with_tta(net, "d8")
    assert set(TTA_MODES) == {"none", "flips", "d4"}


def _with_card_tta(source: Path, out: Path, mode: str) -> Path:
    ck = load_checkpoint(source)
    save_checkpoint(out, dataclasses.replace(ck.card, tta=mode), ck.model)
    return out


def test_card_keeps_its_mode_and_older_cards_read_as_none(tiny_model: Path, tmp_path: Path) -> None:
    assert read_card(tiny_model).tta == "none"
    d4 = _with_card_tta(tiny_model, tmp_path / "d4.safetensors", "d4")
    assert read_card(d4).tta == "d4"
    older = json.loads(read_card(tiny_model).to_json())
    del older["tta"]  # a card written before the setting existed
    assert ModelCard.from_json(json.dumps(older)).tta == "none"
    bad = _with_card_tta(tiny_model, tmp_path / "bad.safetensors", "zz")
    with pytest.raises(CheckpointError, match="unknown test-time augmentation 'zz'"):
        load_checkpoint(bad)


def test_tile_predictor_mirrors_its_answer_for_a_mirrored_tile(tiny_model: Path) -> None:
    ck = load_checkpoint(tiny_model)
    device = select_device("cpu")
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, size=(1, 3, 32, 32)).astype(np.uint8)
    mirrored = np.ascontiguousarray(tiles[..., ::-1])
    for mode, symmetric in (("none", False), ("flips", True)):
        predict = TilePredictor(ck, device, torch.float32, tta=mode)
        assert predict.tta == mode
        a, b = predict(tiles), predict(mirrored)[..., ::-1]
        assert np.allclose(a, b, atol=1e-5) is symmetric, mode


def test_predict_uses_the_cards_mode_unless_told(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    scene = make_scene(alpha=np.full((45, 67), 255))
    d4 = _with_card_tta(tiny_model, tmp_path / "d4.safetensors", "d4")
    common = ["predict", str(scene), "--precision", "float32", "--no-footprints", "-q"]
    probs = {}
    for name, extra in {
        "card_d4": ["-m", str(d4)],
        "asked_d4": ["-m", str(tiny_model), "--tta", "d4"],
        "asked_none": ["-m", str(d4), "--tta", "none"],
        "card_none": ["-m", str(tiny_model)],
    }.items():
        result = runner.invoke(app, [*common, *extra, "-o", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert ("d4 test-time augmentation" in result.output) is name.endswith("d4")
        with rasterio.open(tmp_path / name / f"{scene.stem}.prob.tif") as src:
            probs[name] = src.read(1)
    assert np.array_equal(probs["card_d4"], probs["asked_d4"])
    assert np.array_equal(probs["asked_none"], probs["card_none"])
    assert not np.array_equal(probs["card_d4"], probs["card_none"])


def test_unknown_mode_is_a_one_line_error_and_writes_nothing(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["predict", str(make_scene()), "-m", str(tiny_model), "--tta", "d8", "-o", str(out)]
    result = runner.invoke(app, [*args, "-q"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: Invalid value for '--tta': Value error, 'd8' is not one of 'none', 'flips', "
        "'d4'. (see geounet predict --help)"
    ]
    assert not out.exists() or not any(out.iterdir())
