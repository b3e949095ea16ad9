"""Fine-tuning: the base model's card fixes the options; chips stay inside the area of interest."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import torch
from typer.testing import CliRunner

from geounet.cli import app
from geounet.errors import InputError
from geounet.model.checkpoint import read_card
from geounet.train import TrainConfig, train
from geounet.train.arrays import PlaceSampler
from geounet.train.config import options_from_card
from geounet.train.datasets import build_training_data, scene_split
from geounet.train.finetune import finetune, training_area

TINY = dict(depth=2, width=4, chip_size=64, batch_size=2, epochs=1, steps_per_epoch=2)
TINY |= dict(workers=0, progress=False, val_fraction=0.3, command="pytest")


def _base(scene: Path, labels: Path, out: Path, **targets: object) -> Path:
    train(TrainConfig(images=[scene], labels=[labels], out=out, **TINY, **targets))  # type: ignore[arg-type]
    return out


def _box_aoi(scene: Path, folder: Path, west: float, east: float) -> Path:
    """A rectangle over the given fractions of the scene's width, as a GeoPackage."""
    with rasterio.open(scene) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs
    box = shapely.box(left + west * (right - left), bottom, left + east * (right - left), top)
    path = folder / "aoi.gpkg"
    gpd.GeoDataFrame(geometry=[box], crs=crs).to_file(path, layer="aoi")
    return path


@pytest.mark.parametrize("targets", [{}, {"body_target": "depth", "contact_radius": 3.0}])
def test_finetune_keeps_what_the_base_card_fixes(
    crop: tuple[Path, Path, Path], tmp_path: Path, targets: dict[str, object]
) -> None:
    scene, gpkg, geojson = crop
    base = _base(scene, gpkg, tmp_path / "base.safetensors", **targets)
    card = read_card(base)
    aoi = _box_aoi(scene, tmp_path, 0.0, 1.0)
    out = tmp_path / "tuned.safetensors"
    result, area = finetune(
        [scene], [geojson], out, model=base, aoi=aoi, minutes=None, epochs=1,
        steps_per_epoch=2, batch_size=2, workers=0, progress=False, val_fraction=0.3,
        chip_size=64,
    )  # fmt: skip
    tuned = read_card(out)
    assert tuned.class_names == card.class_names
    assert tuned.targets == card.targets
    assert tuned.targets["body_target"] == targets.get("body_target", "eroded")
    assert tuned.pixel_size_m == card.pixel_size_m
    assert tuned.normalization == card.normalization
    assert area.buildings > 0 and area.source == f"--aoi {aoi}"
    assert out.with_suffix(".aoi.gpkg").exists()
    assert result.strip_buildings > 0
    with pytest.raises(InputError, match="fixes body_target"):
        finetune([scene], [gpkg], tmp_path / "x.safetensors", model=base, body_target="depth")


def test_options_the_card_fixes_are_taken_and_typed_ones_that_disagree_refused(
    crop: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    scene, gpkg, _ = crop
    base = _base(scene, gpkg, tmp_path / "base.safetensors", body_target="depth")
    card = read_card(base)
    cfg = TrainConfig(images=[scene], labels=[gpkg], out=tmp_path / "m.safetensors", init=base)
    taken = options_from_card(cfg, card)  # nothing typed: the card's values
    assert (taken.body_target, taken.pixel_size_m) == ("depth", card.pixel_size_m)
    with pytest.raises(InputError, match="--body-target eroded \\(the model has depth\\)"):
        options_from_card(cfg, card, explicit={"body_target"})
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--images", str(scene), "--labels", str(gpkg), "--out",
                              str(tmp_path / "c.safetensors"), "--init", str(base),
                              "--body-target", "eroded", "--no-progress"])  # fmt: skip
    assert res.exit_code == 2
    assert "--body-target eroded (the model has depth)" in res.output
    assert not (tmp_path / "c.safetensors").exists()


def test_chips_and_the_strip_stay_inside_the_area_of_interest(make_scene, tmp_path: Path) -> None:
    scene = make_scene(height=96, width=200, seed=4, name="town.tif")
    with rasterio.open(scene) as src:
        left, bottom, right, top = src.bounds
        transform = src.transform
    # buildings all over the scene; only the western half is labelled completely
    xs = np.linspace(left + 1, right - 3, 12)
    boxes = [shapely.box(x, bottom + 2, x + 1.5, bottom + 3.5) for x in xs]
    labels = tmp_path / "labels.gpkg"
    gpd.GeoDataFrame(geometry=boxes, crs="EPSG:32636").to_file(labels, layer="buildings")
    aoi_path = _box_aoi(scene, tmp_path, 0.0, 0.5)
    area = training_area([scene], [labels], aoi_path)
    data = build_training_data(
        [scene], [labels], chip_size=16, val_fraction=0.25, aoi=area.geometry
    )
    [s] = data.scenes
    inside = rasterio.features.geometry_mask(
        [area.geometry], out_shape=s.shape, transform=transform, invert=True
    )
    assert not (s.trainable & ~inside).any()  # no chip pixel outside the area
    assert s.held_out is not None and not (s.held_out & ~inside).any()
    assert not (s.trainable & s.held_out).any()
    # the strip is the eastern quarter of the area, not of the scene
    cols = np.flatnonzero(s.held_out.any(axis=0))
    assert cols.min() == pytest.approx(75, abs=1) and cols.max() == pytest.approx(99, abs=1)
    sampler = PlaceSampler(data.scenes, 16, 500, torch.Generator().manual_seed(0))
    assert all(spec.col + 16 <= 75 for spec in sampler)
    split = scene_split([scene], 0.25, area.geometry)
    assert split.aoi and split.val_roi.within(area.geometry.buffer(1e-6))
    # by default the area is the footprints' convex hull, and every footprint lies in it
    hull = training_area([scene], [labels])
    assert hull.source == "the footprints' convex hull" and hull.buildings == 12


def test_the_progress_bar_says_how_long_is_left() -> None:
    from geounet.train.loop import _time_left

    assert _time_left(0.0, 0, 100, None) == ""
    assert _time_left(60.0, 10, 100, None) == "about 9 min left"  # 90 steps at 6 s
    assert _time_left(60.0, 10, 100, 120.0) == "about 1 min left"  # the budget ends first
    assert _time_left(200.0, 10, 100, 120.0) == "about 0 min left"


@pytest.mark.parametrize(("argv", "patience"), [([], 0), (["--patience", "5"], 5)])
def test_finetune_spends_its_whole_budget_unless_told_to_stop_early(
    crop: tuple[Path, Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    patience: int,
) -> None:
    import geounet.train.training as module

    scene, gpkg, _ = crop
    base = _base(scene, gpkg, tmp_path / "base.safetensors")
    seen: list[TrainConfig] = []

    def record(cfg: TrainConfig, **_: object) -> None:
        seen.append(cfg)
        raise InputError("recorded")

    monkeypatch.setattr(module, "train", record)
    out = tmp_path / "tuned.safetensors"
    command = ["finetune", "-i", str(scene), "-l", str(gpkg), "-o", str(out), "--model", str(base)]
    done = CliRunner().invoke(app, [*command, *argv])
    assert done.exit_code != 0 and "recorded" in done.output
    assert [cfg.patience for cfg in seen] == [patience]
    assert TrainConfig(images=[scene], labels=[gpkg], out=out).patience > 0  # training's rule


def test_a_spent_time_budget_ends_the_run_within_the_epoch(
    crop: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    from geounet.train.state import load_state, state_path

    scene, gpkg, _ = crop
    out = tmp_path / "m.safetensors"
    cfg = TrainConfig(images=[scene], labels=[gpkg], out=out, **(TINY | {"steps_per_epoch": 50}))  # type: ignore[arg-type]
    result = train(dataclasses.replace(cfg, epochs=5, minutes=1e-4))
    assert result.stopped == "time-budget" and result.epochs_run == 1
    assert 1 <= load_state(state_path(out)).record["step"] < 50  # not the whole epoch


def test_cards_without_targets_are_read_back_from_their_recorded_commands() -> None:
    from geounet.model.checkpoint import ModelCard
    from geounet.model.network import ModelConfig
    from geounet.train.config import card_targets

    run = "geounet train --images a.tif --w0 10 --body-target depth --contact-radius 3"
    card = ModelCard(
        model=ModelConfig(), provenance={"member1.command": run, "member2.command": run}
    )
    assert card_targets(card) == {
        "w0": 10.0, "sigma": 5.0, "contact_radius": 3.0, "body_erosion": 0.0,
        "body_target": "depth", "wall_w0": 0.0,
    }  # fmt: skip
    other = {"member1.command": run, "member2.command": run.replace("depth", "eroded")}
    assert card_targets(ModelCard(model=ModelConfig(), provenance=other)) == {}  # they disagree
    assert card_targets(ModelCard(model=ModelConfig())) == {}
    written = ModelCard(model=ModelConfig(), targets={"body_target": "depth"}, provenance=other)
    assert card_targets(written) == {"body_target": "depth"}  # the field wins


def test_freeze_keeps_the_part_named_and_trains_the_rest(
    crop: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    from geounet.model.checkpoint import load_checkpoint

    scene, gpkg, _ = crop
    base = _base(scene, gpkg, tmp_path / "base.safetensors")
    out = tmp_path / "tuned.safetensors"
    finetune(
        [scene], [gpkg], out, model=base, freeze=["encoder"], minutes=None, epochs=1,
        steps_per_epoch=2, batch_size=2, workers=0, progress=False, val_fraction=0.3,
        chip_size=64, lr=1e-2,
    )  # fmt: skip
    before = dict(load_checkpoint(base).model.named_parameters())
    after = dict(load_checkpoint(out).model.named_parameters())
    changed = {name for name, w in after.items() if not torch.equal(w, before[name])}
    assert changed and all(not name.startswith("encoder.") for name in changed)
    assert any(name.startswith("decoder.") for name in changed)


def test_freeze_refuses_a_part_it_does_not_know(
    crop: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    scene, gpkg, _ = crop
    out = tmp_path / "t.safetensors"  # the bundled model is the base: refused before training
    command = ["finetune", "-i", str(scene), "-l", str(gpkg), "-o", str(out)]
    done = CliRunner().invoke(app, [*command, "--freeze", "bottleneck", "--no-progress"])
    assert done.exit_code != 0 and "Traceback" not in done.output
    assert "unknown --freeze 'bottleneck'; use encoder or decoder" in " ".join(done.output.split())
    assert not out.exists()


def test_freeze_names_parts_anywhere_in_a_weight_name_and_refuses_absent_ones() -> None:
    from torch import nn

    from geounet.train.loop import trainable

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.members = nn.ModuleList(
                nn.ModuleDict({"encoder": nn.Linear(2, 2), "head": nn.Linear(2, 1)})
                for _ in range(2)
            )  # as an ensemble names its members' weights

    net = Net()
    weights = trainable(net, ["encoder"])
    assert {id(w) for w in weights} == {id(m["head"].weight) for m in net.members} | {
        id(m["head"].bias) for m in net.members
    }
    assert not any(m["encoder"].weight.requires_grad for m in net.members)
    with pytest.raises(InputError, match="--freeze decoder names no part of this network"):
        trainable(net, ["decoder"])
