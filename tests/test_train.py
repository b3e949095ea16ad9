"""End-to-end training on a small crop of area a (tiny network, a few steps)."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from geounet.cli import app
from geounet.errors import InputError, OutputExistsError
from geounet.io.raster import scene_extent
from geounet.model.checkpoint import ModelCard, load_checkpoint, read_card, save_checkpoint
from geounet.model.network import ModelConfig, build_model
from geounet.train import TrainConfig, train
from geounet.train.arrays import crop as crop_chip
from geounet.train.datasets import build_training_data, scene_split
from geounet.train.losses import LossConfig, SegmentationLoss
from geounet.train.state import load_state
from geounet.train.validation import object_counts


def _cfg(scene: Path, labels: Path, out: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        images=[scene],
        labels=[labels],
        out=out,
        depth=2,
        width=4,
        chip_size=64,
        batch_size=2,
        epochs=1,
        steps_per_epoch=3,
        workers=0,
        progress=False,
        val_fraction=0.3,
        command="pytest",
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_a_scene_whose_pixels_are_not_square_on_the_ground_is_refused(tmp_path: Path) -> None:
    # EPSG:4326, pixels as many degrees wide as tall, at 60 degrees north: half as wide
    # as tall on the ground; trained on as it is, the network would learn squashed roofs
    import geopandas as gpd
    import rasterio
    from rasterio.transform import from_origin
    from shapely.geometry import box

    step = 0.15 / 111_320
    scene = tmp_path / "north.tif"
    profile = {"driver": "GTiff", "height": 128, "width": 128, "count": 3, "dtype": "uint8",
               "crs": "EPSG:4326", "transform": from_origin(15.0, 60.0, step, step)}  # fmt: skip
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(np.full((3, 128, 128), 100, dtype=np.uint8))
    roof = box(15.0 + 40 * step, 60.0 - 80 * step, 15.0 + 80 * step, 60.0 - 40 * step)
    labels = tmp_path / "north.gpkg"
    gpd.GeoDataFrame(geometry=[roof], crs="EPSG:4326").to_file(labels, layer="buildings")
    with pytest.raises(
        InputError, match=r"north.tif: its pixels are .* gdalwarp -t_srs EPSG:32633"
    ):
        build_training_data([scene], [labels], chip_size=64, val_fraction=0.3)


def test_split_is_by_area_and_labels_in_another_crs_line_up(crop: tuple[Path, Path, Path]) -> None:
    scene, gpkg, geojson = crop
    a = build_training_data([scene], [gpkg], chip_size=64, val_fraction=0.3)
    b = build_training_data([scene], [geojson], chip_size=64, val_fraction=0.3)
    split = scene_split([scene], 0.3)
    assert split.train_roi.intersection(split.val_roi).area == pytest.approx(0.0, abs=1e-9)
    assert split.val_roi.bounds[0] > split.train_roi.bounds[0]
    assert a.pixel_size_m == pytest.approx(0.1493, rel=0.01)  # ground metres
    [sa], [sb] = a.scenes, b.scenes
    assert sa.image.shape == (3, 160, 240)  # read as it is: no resampling within 2 %
    # 30 % of 240 columns held out: the strip starts at column 168, training stops there
    assert sa.val_start == 168
    assert sa.trainable[:, :168].all() and not sa.trainable[:, 168:].any()
    assert sa.target is not None and sa.target.sum() > 0
    assert sb.target is not None
    agree = (sa.target == sb.target).mean()
    assert agree > 0.99  # EPSG:4326 labels reprojected onto the image grid
    assert sa.valid.mean() > 0.99  # one pixel of the crop has alpha 0
    assert a.footprints == len(np.unique(sa.instances)) - 1 > 0


def test_a_few_steps_on_a_small_crop_reduce_the_loss(crop: tuple[Path, Path, Path]) -> None:
    scene, gpkg, _ = crop
    torch.manual_seed(0)
    data = build_training_data([scene], [gpkg], chip_size=64)
    [s] = data.scenes
    samples = [crop_chip(s, slice(40, 104), slice(x, x + 64)) for x in (0, 64)]
    x = torch.stack([s["image"] for s in samples]) / 255.0
    x = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / x.std(dim=(0, 2, 3), keepdim=True)
    target = torch.stack([s["target"] for s in samples])
    border = torch.stack([s["weight"] for s in samples])
    valid = torch.stack([s["valid"] for s in samples])
    model = build_model(ModelConfig(depth=2, base_width=8))
    loss_fn = SegmentationLoss(LossConfig())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        loss = loss_fn(model(x), target, border, valid)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_train_writes_a_checkpoint_that_round_trips_and_resumes(
    crop: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    scene, gpkg, _ = crop
    out = tmp_path / "m.safetensors"
    result = train(_cfg(scene, gpkg, out))
    assert out.is_file() and (tmp_path / "m.state.safetensors").is_file()
    assert result.epochs_run == 1 and result.best_epoch == 1
    assert set(result.figures) >= {"iou", "accuracy", "sensitivity", "precision", "object_f1"}
    ck = load_checkpoint(out)
    card = ck.card
    assert card.bands == ("red", "green", "blue")
    assert card.class_names == ("building",)
    assert card.pixel_size_m == pytest.approx(0.1493, rel=0.01)
    assert card.threshold == pytest.approx(result.threshold)
    assert card.provenance["command"] == "pytest"
    assert "torch" in card.provenance and "training_time_s" in card.provenance
    # the card says where the model was trained: the scene's bounds in degrees
    assert card.trained_on == (scene_extent(scene),)
    assert card.trained_on[0].bounds[0] < card.trained_on[0].bounds[2]
    # Round trip: saving and loading again predicts identically.
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before = ck.model(x)
    save_checkpoint(tmp_path / "again.safetensors", card, ck.model)
    with torch.no_grad():
        after = load_checkpoint(tmp_path / "again.safetensors").model(x)
    assert torch.equal(before, after)
    # Resume continues from the saved state.
    resumed = train(_cfg(scene, gpkg, out, epochs=2, resume=True))
    assert resumed.epochs_run == 2 and len(resumed.history) == 2
    # Fine-tuning from it keeps its architecture.
    tuned = train(_cfg(scene, gpkg, tmp_path / "ft.safetensors", init=out, width=32))
    tuned_card = load_checkpoint(tuned.checkpoint).card
    assert tuned_card.model.base_width == 4
    assert tuned_card.trained_on == card.trained_on  # the base's scenes, the same one once


def test_train_is_reproducible(crop: tuple[Path, Path, Path], tmp_path: Path) -> None:
    scene, gpkg, _ = crop
    kw = dict(augment=False, precision="float32", steps_per_epoch=2)
    a = train(_cfg(scene, gpkg, tmp_path / "a.safetensors", **kw))
    b = train(_cfg(scene, gpkg, tmp_path / "b.safetensors", **kw))
    assert a.history[0]["loss"] == b.history[0]["loss"]


def test_copy_paste_reaches_every_training_batch(
    crop: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene, gpkg, _ = crop
    calls: list[tuple[float, int, int]] = []

    def spy(
        batch: dict[str, torch.Tensor],
        probability: float,
        targets: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        rng: np.random.Generator,
    ) -> dict[str, torch.Tensor]:
        target, _ = targets(batch["instances"][0])
        calls.append((probability, target.shape[0], len(batch["image"])))
        return batch

    monkeypatch.setattr("geounet.train.loop.paste_batch", spy)
    kw = dict(augment=False, precision="float32", steps_per_epoch=2, body_erosion=3.0)
    train(_cfg(scene, gpkg, tmp_path / "a.safetensors", **kw))
    assert calls == []
    train(_cfg(scene, gpkg, tmp_path / "b.safetensors", copy_paste=0.5, **kw))
    assert calls == [(0.5, 2, 2), (0.5, 2, 2)]  # each step; building and body targets


def test_recolour_reaches_every_training_batch_with_its_instances(
    crop: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene, gpkg, _ = crop
    calls: list[tuple[float, int, bool]] = []

    def spy(
        image: torch.Tensor,
        instances: torch.Tensor,
        probability: float,
        rng: np.random.Generator,
    ) -> torch.Tensor:
        assert image.shape[-2:] == instances.shape[-2:]
        calls.append((probability, len(image), bool((instances > 0).any())))
        assert float(image.min()) >= 0 and float(image.max()) <= 1  # scaled to [0, 1]
        return image

    monkeypatch.setattr("geounet.train.loop.recolour_batch", spy)
    kw = dict(augment=False, precision="float32", steps_per_epoch=2)
    train(_cfg(scene, gpkg, tmp_path / "a.safetensors", **kw))
    assert calls == []
    train(_cfg(scene, gpkg, tmp_path / "b.safetensors", recolour=0.5, **kw))
    assert [c[:2] for c in calls] == [(0.5, 2), (0.5, 2)]
    assert any(c[2] for c in calls)  # the crop's roofs arrive as instances


def test_bad_inputs_raise_input_errors(crop: tuple[Path, Path, Path], tmp_path: Path) -> None:
    scene, gpkg, _ = crop
    with pytest.raises(InputError, match="unknown --colour 'neon'"):
        train(_cfg(scene, gpkg, tmp_path / "c.safetensors", colour="neon"))
    with pytest.raises(InputError, match="--ema-decay must be in"):
        train(_cfg(scene, gpkg, tmp_path / "e.safetensors", ema_decay=1.0))
    with pytest.raises(InputError, match=r"--copy-paste must be in \[0, 1\], got 1.5"):
        train(_cfg(scene, gpkg, tmp_path / "p.safetensors", copy_paste=1.5))
    with pytest.raises(InputError, match=r"--recolour must be in \[0, 1\], got -0.1"):
        train(_cfg(scene, gpkg, tmp_path / "r.safetensors", recolour=-0.1))
    with pytest.raises(InputError, match="unknown --body-target 'ridge'; use eroded or depth"):
        train(_cfg(scene, gpkg, tmp_path / "t.safetensors", body_target="ridge"))
    with pytest.raises(InputError, match="does not exist"):
        train(_cfg(scene, tmp_path / "missing.gpkg", tmp_path / "x.safetensors"))
    with pytest.raises(InputError, match="no column"):
        train(_cfg(scene, gpkg, tmp_path / "x.safetensors", class_column="kind"))
    with pytest.raises(InputError, match="safetensors"):
        train(_cfg(scene, gpkg, tmp_path / "x.pt"))


def test_object_counts_match_one_to_one() -> None:
    truth = np.zeros((40, 40), dtype=np.int64)
    truth[2:12, 2:12] = 1
    truth[2:12, 20:30] = 2
    pred = np.zeros((40, 40), dtype=bool)
    pred[2:12, 3:12] = True  # IoU 0.9 with building 1
    pred[30:38, 30:38] = True  # a false positive
    counts = object_counts(pred, truth)
    assert (counts.tp, counts.fp, counts.fn) == (1, 1, 1)
    assert counts.f1 == pytest.approx(0.5)


def test_object_counts_of_a_selection_equal_counting_the_selection_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from scipy import ndimage

    from geounet.train import validation
    from geounet.train.validation import TruthObjects, object_overlaps

    rng = np.random.default_rng(3)
    for case in range(20):
        field = ndimage.gaussian_filter(rng.random((2, 80, 90)), 3)
        truth = ndimage.label(field[0] > np.quantile(field[0], 0.6))[0]
        pred = ndimage.label(field[1] + 0.3 * field[0] > np.quantile(field[1], 0.5))[0]
        valid = rng.random((80, 90)) > 0.05
        keep = rng.random(pred.max() + 1) > 0.4
        selected = np.where(keep[pred], pred, 0)
        overlaps = object_overlaps(pred, TruthObjects.of(truth, valid, min_pixels=8))
        for iou in (0.3, 0.5):
            expected = object_counts(selected, truth, valid, iou, min_pixels=8)
            assert overlaps.counts(keep, iou) == expected, case
            # the pairs counted by sorting (tables too large for one bincount) agree
            monkeypatch.setattr(validation, "PAIR_TABLE_CELLS", 0)
            assert object_counts(selected, truth, valid, iou, min_pixels=8) == expected
            monkeypatch.undo()
        assert overlaps.counts() == object_counts(pred, truth, valid, min_pixels=8)


def test_object_counts_when_one_building_covers_the_canvas() -> None:
    truth = np.full((30, 30), 7, dtype=np.int64)  # no background pixel at all
    pred = np.ones((30, 30), dtype=bool)
    counts = object_counts(pred, truth)
    assert (counts.tp, counts.fp, counts.fn) == (1, 0, 0)


def test_validation_splits_objects_with_the_body_channel() -> None:
    from geounet.train.validation import sweep_thresholds

    truth = np.zeros((20, 30), dtype=np.int64)
    truth[2:12, 2:12] = 1  # two roofs sharing a wall: one blob for the threshold alone
    truth[2:12, 12:22] = 2
    prob = (truth > 0).astype(np.float32)[None] * 0.9
    target = (truth > 0).astype(np.float32)[None]
    body = np.zeros((20, 30), dtype=np.float32)
    body[4:10, 4:10] = body[4:10, 14:20] = 0.9
    valid = np.ones((20, 30), dtype=bool)
    merged = sweep_thresholds(prob, target, truth, valid, (0.5,))[0].objects
    split = sweep_thresholds(prob, target, truth, valid, (0.5,), body=body)[0].objects
    assert (merged.tp, merged.fp, merged.fn) == (1, 0, 1)  # the blob has IoU 0.5 with one
    assert (split.tp, split.fp, split.fn) == (2, 0, 0)


def test_threshold_choice_keeps_the_mask_near_its_best_then_prefers_objects() -> None:
    from geounet.core.metrics import ConfusionCounts
    from geounet.core.objects import ObjectCounts
    from geounet.train.validation import CHOICE_IOU_TOLERANCE, ThresholdScore, choose_score

    def at(threshold: float, iou_tp: int, objects: tuple[int, int, int]) -> ThresholdScore:
        # pixel IoU = tp / 1000; object F1 = 2 tp / (2 tp + fp + fn)
        pixels = ConfusionCounts(tp=iou_tp, fp=(1000 - iou_tp) // 2, fn=(1000 - iou_tp + 1) // 2)
        return ThresholdScore(threshold, pixels, ObjectCounts(*objects), 0.5)

    # A strip of detached houses: the best pixel IoU at 0.55, a noisy object F1 that
    # rises as the masks shrink, the best plain score at 0.85 where the mask has lost much.
    sweep = [
        at(0.45, 631, (17, 23, 23)),  # IoU 0.631, object F1 0.425
        at(0.55, 636, (15, 24, 24)),  # IoU 0.636 (best), object F1 0.385
        at(0.65, 621, (20, 20, 20)),  # IoU 0.621: more than CHOICE_IOU_TOLERANCE below the best
        at(0.85, 533, (29, 19, 19)),  # IoU 0.533, object F1 0.604 (best plain score)
    ]
    assert max(sweep, key=lambda s: s.score).threshold == 0.85
    chosen = choose_score(sweep)
    assert chosen.threshold == 0.45  # the best score among IoU within 0.01 of 0.636
    assert 0.636 - chosen.pixels.iou <= CHOICE_IOU_TOLERANCE < 0.636 - 0.621
    assert choose_score(sweep[1:]).threshold == 0.55  # 0.65 and 0.85 fall outside
    assert choose_score(sweep[3:]).threshold == 0.85  # a sweep of one is its own choice


def test_cli_bad_labels_path_is_a_one_line_error(
    crop: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    scene, _, _ = crop
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--images",
            str(scene),
            "--labels",
            str(tmp_path / "nope.gpkg"),
            "--out",
            str(tmp_path / "m.safetensors"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 2
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and "nope.gpkg" in message and "does not exist" in message
    assert "Traceback" not in result.output


def test_cli_unknown_colour_jitter_is_a_one_line_error(
    crop: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    scene, gpkg, _ = crop
    out = tmp_path / "m.safetensors"
    args = ["train", "-i", str(scene), "-l", str(gpkg), "-o", str(out), "--colour", "neon"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.output.strip() == "Error: unknown --colour 'neon'; use mild or strong"
    assert not out.exists()


def test_body_model_thresholds_are_chosen_on_validation_and_recalibrated(
    crop: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geounet.core.thresholds import BODY_THRESHOLDS
    from geounet.train import calibrate
    from geounet.train.training import BODY_THRESHOLD_FIXED

    scene, gpkg, _ = crop
    out = tmp_path / "body.safetensors"
    kw = dict(precision="float32", body_erosion=2.0, contact_radius=2.0)
    result = train(_cfg(scene, gpkg, out, **kw))
    card = load_checkpoint(out).card
    assert card.class_names == ("building", "body", "contact")
    assert card.body_threshold in BODY_THRESHOLDS
    assert result.figures["body_threshold"] == card.body_threshold
    assert card.threshold == pytest.approx(result.threshold)
    # calibrating the same model on the same split chooses the same thresholds
    again = tmp_path / "again.safetensors"
    best = calibrate(out, [scene], [gpkg], again, val_fraction=0.3,
                     precision="float32")  # fmt: skip
    recal = load_checkpoint(again).card
    assert (best.threshold, best.body_threshold) == (card.threshold, card.body_threshold)
    assert (recal.threshold, recal.body_threshold) == (card.threshold, card.body_threshold)
    assert "calibration" in recal.provenance
    with pytest.raises(OutputExistsError, match="--overwrite"):
        calibrate(out, [scene], [gpkg], again, val_fraction=0.3)
    # a fixed body threshold is kept (even one the sweep never tries); the building
    # threshold is still chosen, and the card says the body one was fixed
    fixed = tmp_path / "fixed.safetensors"
    best = calibrate(out, [scene], [gpkg], fixed, val_fraction=0.3,
                     precision="float32", body_threshold=0.55)  # fmt: skip
    pinned = load_checkpoint(fixed).card
    assert 0.55 not in BODY_THRESHOLDS
    assert best.body_threshold == pinned.body_threshold == 0.55
    assert pinned.threshold == best.threshold
    assert pinned.provenance["calibration"].endswith(f"{BODY_THRESHOLD_FIXED} 0.55")
    with pytest.raises(InputError, match="--body-threshold must be between 0 and 1, got 1.5"):
        calibrate(out, [scene], [gpkg], fixed, overwrite=True, body_threshold=1.5)
    # thresholds chosen with test-time augmentation: the card keeps the mode for predict
    import geounet.inference.engine

    seen: list[str] = []  # the modes the strip was predicted with
    real = geounet.inference.engine.with_tta
    monkeypatch.setattr(
        geounet.inference.engine, "with_tta", lambda net, mode: seen.append(mode) or real(net, mode)
    )
    flips = tmp_path / "flips.safetensors"
    best = calibrate(out, [scene], [gpkg], flips, val_fraction=0.3,
                     precision="float32", tta="flips")  # fmt: skip
    flipped = load_checkpoint(flips).card
    assert (read_card(fixed).tta, flipped.tta) == ("none", "flips")
    assert flipped.provenance["calibration"].endswith("; with flips test-time augmentation")
    again_flips = calibrate(flips, [scene], [gpkg], flips, val_fraction=0.3,
                            precision="float32", overwrite=True)  # fmt: skip
    assert load_checkpoint(flips).card.tta == "flips"  # kept when not asked
    assert again_flips.pixels.iou == best.pixels.iou
    assert seen == ["flips", "flips"]


def test_depth_body_target_makes_and_records_the_body_channel(
    crop: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    scene, gpkg, _ = crop
    out = tmp_path / "depth.safetensors"
    train(_cfg(scene, gpkg, out, precision="float32", augment=False, body_target="depth"))
    card = load_checkpoint(out).card
    assert card.class_names == ("building", "body")  # made without --body-erosion
    assert (
        load_state(tmp_path / "depth.state.safetensors").record["options"]["body_target"] == "depth"
    )
    with pytest.raises(InputError, match="--body-target depth, not --body-target eroded;"):
        train(_cfg(scene, gpkg, out, epochs=2, resume=True, precision="float32", augment=False))


def test_cli_calibrate_refuses_a_wrong_output_name(
    crop: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    scene, gpkg, _ = crop
    model = tmp_path / "m.safetensors"
    save_checkpoint(model, ModelCard(ModelConfig(depth=2, base_width=4)), build_model(
        ModelConfig(depth=2, base_width=4)))  # fmt: skip
    args = [
        "calibrate",
        str(model),
        "-i",
        str(scene),
        "-l",
        str(gpkg),
        "-o",
        str(tmp_path / "x.pt"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: --out must end in .safetensors (got x.pt)"
    ]
    # a body threshold for a model without a body channel
    args[-1] = str(tmp_path / "x.safetensors")
    result = CliRunner().invoke(app, [*args, "--body-threshold", "0.5"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: {model} has no body channel (channels: building); drop --body-threshold"
    ]
    assert not (tmp_path / "x.safetensors").exists()


def test_ema_keeps_and_resumes_the_weight_average(
    crop: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    scene, gpkg, _ = crop
    out = tmp_path / "ema.safetensors"
    kw = dict(augment=False, precision="float32", ema_decay=0.5)
    train(_cfg(scene, gpkg, out, **kw))
    state = load_state(tmp_path / "ema.state.safetensors")
    saved = load_checkpoint(out).model.state_dict()
    average = {k.removeprefix("module."): v for k, v in state.ema.items() if k != "n_averaged"}
    assert int(state.ema["n_averaged"]) == 3  # one update per step
    # The checkpoint holds the average (the only epoch is the best), not the raw weights.
    assert all(torch.equal(saved[k], average[k]) for k in saved)
    assert any(not torch.equal(saved[k], state.model[k]) for k in saved if k.endswith("weight"))
    resumed = train(_cfg(scene, gpkg, out, epochs=2, resume=True, **kw))
    assert resumed.epochs_run == 2
    assert int(load_state(tmp_path / "ema.state.safetensors").ema["n_averaged"]) == 6
    plain = tmp_path / "plain.safetensors"
    train(_cfg(scene, gpkg, plain, augment=False, precision="float32"))
    with pytest.raises(InputError, match="started with --ema-decay 0.0, not --ema-decay 0.5"):
        train(_cfg(scene, gpkg, plain, epochs=2, resume=True, **kw))


def test_resume_refuses_other_training_options(
    crop: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    scene, gpkg, _ = crop
    out = tmp_path / "run.safetensors"
    train(_cfg(scene, gpkg, out, augment=False, precision="float32"))
    before = out.read_bytes()
    with pytest.raises(InputError, match="started with --no-augment, not --augment;"):
        train(_cfg(scene, gpkg, out, epochs=2, resume=True, precision="float32"))
    with pytest.raises(InputError, match="--copy-paste 0.0, not --copy-paste 0.5;"):
        train(_cfg(scene, gpkg, out, epochs=2, resume=True, augment=False, copy_paste=0.5))
    with pytest.raises(InputError, match="--wall-w0 0.0, not --wall-w0 10.0;"):
        train(_cfg(scene, gpkg, out, epochs=2, resume=True, augment=False, wall_w0=10.0))
    # Nothing was trained or rewritten; the same options resume.
    assert load_state(tmp_path / "run.state.safetensors").record["epoch"] == 1
    assert out.read_bytes() == before
    resumed = train(_cfg(scene, gpkg, out, epochs=2, resume=True, augment=False))
    assert resumed.epochs_run == 2
