"""The training loop: data in memory in, the best epoch's checkpoint out.

:func:`run` builds or loads the network, trains it on chips drawn place by place from the
training part of the scenes (:mod:`geounet.train.arrays`), validates each epoch on the
held-out strips (cut into chips: cheap), keeps the best checkpoint, stops early or when the
time budget is spent, and can resume. It reads no raster and needs no GDAL: ``geounet
train`` calls it on scenes it has just read, and ``python -m geounet.train.pack`` on a pack
of them, on a machine (a GPU node) that has only torch.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import math
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from geounet.core.extents import merge_extents
from geounet.errors import CheckpointError, InputError, OutputExistsError
from geounet.io.progress import progress_display
from geounet.model.checkpoint import ModelCard, Normalization, load_checkpoint, save_checkpoint
from geounet.model.device import autocast, resolve_precision, select_device
from geounet.model.network import ModelConfig, build_model
from geounet.train.arrays import (
    ChipDataset,
    PlaceSampler,
    SceneArrays,
    TrainingData,
    crop,
    place_statistics,
)
from geounet.train.augment import COLOUR_JITTER, Augmenter
from geounet.train.config import (
    BODY_TARGETS,
    FREEZABLE,
    TrainConfig,
    check_resume_options,
    resume_options,
)
from geounet.train.copypaste import paste_batch
from geounet.train.losses import LossConfig, SegmentationLoss, class_balance
from geounet.train.recolour import recolour_batch
from geounet.train.state import TrainState, load_state, save_state, state_path
from geounet.train.targets import TargetOptions
from geounet.train.validation import (
    DEFAULT_THRESHOLDS,
    ThresholdScore,
    merge_scores,
    sweep_thresholds,
)


@dataclass
class RunOutcome:
    """What :func:`run` kept.

    Attributes:
        card: The model card (thresholds not yet chosen on the strip as predicted).
        model: The network with the kept epoch's weights.
        record: The run's record (epochs, history, best epoch and figures).
        stopped: Why the run stopped (``epochs``, ``early-stopping``, ``time-budget``).
    """

    card: ModelCard
    model: torch.nn.Module
    record: dict[str, Any]
    stopped: str


@dataclass
class _ValidationSet:
    """Validation chips loaded once, and the canvases they stitch into."""

    chips: list[dict[str, Any]]
    canvases: list[dict[str, Any]]


def _collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return batch


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _model_config(cfg: TrainConfig, bands: int, classes: int) -> ModelConfig:
    if cfg.arch not in ("unet", "smp-unet"):
        raise InputError(f"unknown --arch {cfg.arch!r}; use unet or smp-unet")
    if cfg.upsampling not in ("transpose", "bilinear"):
        raise InputError(f"unknown --upsampling {cfg.upsampling!r}; use transpose or bilinear")
    return ModelConfig(
        arch=cfg.arch,  # type: ignore[arg-type]
        in_channels=bands,
        classes=classes,
        depth=cfg.depth,
        base_width=cfg.width,
        upsampling=cfg.upsampling,  # type: ignore[arg-type]
        dropout=cfg.dropout,
        encoder_name=cfg.encoder,
    )


def _starts(n: int, size: int) -> list[int]:
    """Chip starts that cover ``n`` pixels with chips of ``size`` (the last flush with the end)."""
    starts = list(range(0, n - size + 1, size))
    if starts and starts[-1] + size < n:
        starts.append(n - size)
    return starts


def _strip_box(scene: SceneArrays) -> tuple[int, int, int, int]:
    """Rows and columns ``(r0, r1, c0, c1)`` of the box around a scene's strip."""
    rows, cols = scene.shape
    if scene.held_out is None:
        return 0, rows, scene.val_start, cols
    r = np.flatnonzero(scene.held_out.any(axis=1))
    c = np.flatnonzero(scene.held_out.any(axis=0))
    if not len(r):
        return 0, 0, cols, cols
    return int(r[0]), int(r[-1]) + 1, int(c[0]), int(c[-1]) + 1


def _validation_set(data: TrainingData, chip: int, multiple: int) -> _ValidationSet:
    """The held-out strip of every scene, cut into chips, with a canvas per scene."""
    chips: list[dict[str, Any]] = []
    canvases: list[dict[str, Any]] = []
    for scene in data.scenes:
        r0, r1, c0, c1 = _strip_box(scene)
        height, span = r1 - r0, c1 - c0
        size = min(chip, (min(height, span) // multiple) * multiple)
        if size < multiple:
            continue
        index = len(canvases)
        canvases.append({"shape": (height, span), "scene": scene.name, "place": scene.place})
        for r in _starts(height, size):
            for c in _starts(span, size):
                rows_ = slice(r0 + r, r0 + r + size)
                cols_ = slice(c0 + c, c0 + c + size)
                sample = crop(scene, rows_, cols_)
                if scene.held_out is not None:  # only the strip's pixels count
                    strip = scene.held_out[rows_, cols_]
                    sample["valid"] = sample["valid"] & torch.from_numpy(strip.copy())
                sample["canvas"] = index
                sample["offset"] = (r, c)
                chips.append(sample)
    if not chips:
        raise InputError(
            "the validation strip is too small to validate on; raise --val-fraction "
            "or lower --chip-size"
        )
    return _ValidationSet(chips, canvases)


class _Normalizer:
    """Normalise images already scaled to [0, 1] (the card's normalisation with scale 1)."""

    def __init__(self, norm: Normalization, device: torch.device) -> None:
        self.mean = torch.tensor(norm.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(norm.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def __call__(self, x01: torch.Tensor) -> torch.Tensor:
        return (x01 - self.mean) / self.std


def _lr_at(progress: float, base: float, warmup: float = 0.03) -> float:
    """Linear warm-up then cosine decay to 1 % of ``base``; ``progress`` in [0, 1]."""
    if progress < warmup:
        return base * max(progress / warmup, 0.05)
    p = min((progress - warmup) / (1 - warmup), 1.0)
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * p)))


def _evaluate(
    model: torch.nn.Module,
    vset: _ValidationSet,
    loss_fn: SegmentationLoss | None,
    normalize: _Normalizer,
    scale: float,
    device: torch.device,
    dtype: torch.dtype,
    classes: int,
    thresholds: tuple[float, ...] | None,
    scored: int | None = None,
    names: tuple[str, ...] = (),
    body_thresholds: tuple[float, ...] = (0.5,),
) -> tuple[float, list[ThresholdScore]]:
    """Validation loss and threshold sweep on the held-out strip.

    Only the first ``scored`` channels (the label classes, not ``body`` or ``contact``)
    are scored; objects are split with the ``body`` and ``contact`` channels (named in
    ``names``) as prediction splits them, at each of ``body_thresholds`` (one score per
    threshold and body threshold). Without ``loss_fn`` the loss is NaN.
    """
    model.eval()
    probs = [np.zeros((classes, *c["shape"]), dtype=np.float32) for c in vset.canvases]
    targets = [np.zeros((classes, *c["shape"]), dtype=np.float32) for c in vset.canvases]
    inst = [np.zeros(c["shape"], dtype=np.int64) for c in vset.canvases]
    valid = [np.zeros(c["shape"], dtype=bool) for c in vset.canvases]
    total, weight = 0.0, 0.0
    with torch.no_grad():
        for s in vset.chips:
            x = normalize(s["image"].unsqueeze(0).to(device) * scale)
            with autocast(device, dtype):
                logits = model(x.contiguous(memory_format=torch.channels_last))
            logits = logits.float()
            v = s["valid"].unsqueeze(0).to(device)
            n = float(v.sum())
            if n and loss_fn is not None:
                loss = loss_fn(
                    logits,
                    s["target"].unsqueeze(0).to(device),
                    s["weight"].unsqueeze(0).to(device),
                    v,
                )
                total += float(loss) * n
                weight += n
            k, (r, c) = s["canvas"], s["offset"]
            h, w = s["valid"].shape
            probs[k][:, r : r + h, c : c + w] = torch.sigmoid(logits[0]).cpu().numpy()
            targets[k][: len(s["target"]), r : r + h, c : c + w] = s["target"].numpy()
            inst[k][r : r + h, c : c + w] = s["instances"].numpy()
            valid[k][r : r + h, c : c + w] = s["valid"].numpy()
    model.train()
    scores: list[ThresholdScore] | None = None
    n = classes if scored is None else scored
    split = {name: k for k, name in enumerate(names) if name in ("body", "contact")}
    for p, t, i, v in zip(probs, targets, inst, valid, strict=True):
        part = [
            score
            for body_threshold in (body_thresholds if "body" in split else (0.5,))
            for score in sweep_thresholds(
                p[:n],
                t[:n],
                i,
                v,
                DEFAULT_THRESHOLDS if thresholds is None else thresholds,
                body=p[split["body"]] if "body" in split else None,
                contact=p[split["contact"]] if "contact" in split else None,
                body_threshold=body_threshold,
            )
        ]
        scores = part if scores is None else merge_scores(scores, part)
    assert scores is not None
    return (total / weight if weight else float("nan")), scores


def _time_left(elapsed: float, step: int, total_steps: int, budget: float | None) -> str:
    """About how long the run has left: by its time budget, or by its pace so far."""
    left = (total_steps - step) * elapsed / max(step, 1)
    if budget is not None:
        left = min(left, budget - elapsed)
    return f"about {max(left, 0.0) / 60:.0f} min left" if step else ""


def _done_fraction(elapsed: float, step: int, total_steps: int, budget: float | None) -> float:
    """How much of the run is done: by its steps, or by its time budget when that is nearer."""
    done = step / max(total_steps, 1)
    if budget is not None:
        done = max(done, elapsed / budget)
    return min(done, 1.0)


def _infinite(loader: DataLoader[Any]) -> Iterator[dict[str, Any]]:
    while True:
        yield from loader


def _provenance(
    cfg: TrainConfig,
    data: TrainingData,
    elapsed: float,
    epoch: int,
    figures: dict[str, float],
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, str]:
    import geounet

    places = ", ".join(
        f"{place}: " + " + ".join(s.name for s in data.scenes if s.place == place)
        for place in data.places
    )
    return {
        "data.images": ", ".join(data.sources) or ", ".join(s.name for s in data.scenes),
        "data.labels": ", ".join(data.labels),
        "data.places": places,
        "data.footprints": str(data.footprints),
        "data.split": data.split,
        "command": cfg.command,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "geounet": geounet.__version__,
        "torch": torch.__version__,
        "training_time_s": f"{elapsed:.0f}",
        "best_epoch": str(epoch),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"{device.type}, {str(dtype).replace('torch.', '')}",
        "validation": ", ".join(f"{k}={v:.4f}" for k, v in figures.items()),
        "seed": str(cfg.seed),
    }


def save_best(
    cfg: TrainConfig,
    data: TrainingData,
    out: Path,
    card: ModelCard,
    model: torch.nn.Module,
    record: dict[str, Any],
    device: torch.device,
    dtype: torch.dtype,
) -> None:
    """Write the kept model with its card: thresholds, figures and provenance of the run."""
    figures = dict(record["best_figures"])
    final = dataclasses.replace(
        card,
        threshold=float(record["best_threshold"]),
        body_threshold=float(record.get("best_body_threshold") or 0.5),
        seed_area_m2=float(record.get("best_seed_area_m2") or card.seed_area_m2),
        min_confidence=float(record.get("best_min_confidence") or 0.0),
        provenance=_provenance(
            cfg, data, float(record["elapsed_s"]), int(record["best_epoch"]), figures, device, dtype
        ),
    )
    save_checkpoint(out, final, model)


def trainable(model: nn.Module, freeze: Sequence[str]) -> list[nn.Parameter]:
    """The weights that train: all but those of the parts named in ``freeze``.

    A part is a module name anywhere in a weight's dotted name (``encoder`` freezes
    ``encoder.blocks.0.0.weight``, and ``members.1.encoder...`` in an ensemble).

    Raises:
        InputError: If the network has no part of that name.
    """
    weights, named = [], set()
    for name, weight in model.named_parameters():
        parts = set(name.split("."))
        named |= parts
        weight.requires_grad_(not parts & set(freeze))
        if weight.requires_grad:
            weights.append(weight)
    absent = [part for part in freeze if part not in named]
    if absent:
        raise InputError(f"--freeze {absent[0]} names no part of this network; drop it")
    return weights


def run(
    cfg: TrainConfig,
    data: TrainingData,
    out: Path,
    device: torch.device,
    dtype: torch.dtype,
    resumed: TrainState | None,
    init_card: ModelCard | None,
    init_model: torch.nn.Module | None,
    console: Console,
    on_epoch: Callable[[dict[str, float]], None] | None,
) -> RunOutcome:
    """Train on data in memory and keep the best epoch (see the module's description).

    Args:
        cfg: The run's options.
        data: The training data, targets made.
        out: Where the best checkpoint goes.
        device: Where to train.
        dtype: Autocast precision.
        resumed: The state of the run to resume, if any.
        init_card: The card of the model to fine-tune from, if any.
        init_model: That model.
        console: Where progress and per-epoch lines go.
        on_epoch: Optional callback receiving each epoch's record.

    Returns:
        The kept model, its card and the run's record.

    Raises:
        InputError: If the options do not suit the data.
        CheckpointError: If the ``--init`` model does not suit the data.
    """
    names = data.output_names
    classes = len(names)  # output channels: the label classes (+ body, contact)
    scored = len(data.class_names)  # channels scored on validation
    bands = len(data.band_names)
    scale = data.scale
    generator = torch.Generator().manual_seed(cfg.seed)

    if resumed is not None:
        card = ModelCard.from_json(resumed.record["card"])
        norm = card.normalization
        pos_w = tuple(resumed.record["pos_weight"])
        neg_w = tuple(resumed.record["neg_weight"])
        model = build_model(card.model)
    else:
        mean, std, pos_frac = place_statistics(data)
        if init_card is not None and init_model is not None:
            if init_card.model.classes != classes or init_card.model.in_channels != bands:
                raise CheckpointError(
                    f"--init model has {init_card.model.in_channels} bands and "
                    f"{init_card.model.classes} classes; these labels need {bands} and {classes}"
                )
            norm = init_card.normalization
            model_cfg = init_card.model
            model = init_model
        else:
            norm = Normalization(scale=scale, mean=mean, std=std)
            model_cfg = _model_config(cfg, bands, classes)
            model = build_model(model_cfg)
        if cfg.balance:
            pairs = [class_balance(f) for f in pos_frac]
            pos_w = tuple(round(p, 4) for p, _ in pairs)
            neg_w = tuple(round(n, 4) for _, n in pairs)
        else:
            pos_w, neg_w = (1.0,) * classes, (1.0,) * classes
        card = ModelCard(
            model=model_cfg,
            bands=data.band_names,
            normalization=norm,
            pixel_size_m=round(data.pixel_size_m, 6),
            tile_size=cfg.tile_size,
            threshold=0.5,
            class_names=names,
            targets=dataclasses.asdict(TargetOptions.of(cfg)),
            trained_on=merge_extents(
                () if init_card is None else init_card.trained_on,
                (s.extent for s in data.scenes if s.extent is not None),
            ),
        )
    if cfg.chip_size % card.model.size_multiple:
        raise InputError(
            f"--chip-size {cfg.chip_size} must be a multiple of {card.model.size_multiple} "
            "for this architecture"
        )
    model = model.to(device).to(memory_format=torch.channels_last)
    model.train()
    loss_fn = SegmentationLoss(LossConfig(name=cfg.loss, pos_weight=pos_w, neg_weight=neg_w)).to(
        device
    )
    optimizer = torch.optim.AdamW(
        trainable(model, cfg.freeze), lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    augmenter = (
        Augmenter(COLOUR_JITTER[cfg.colour], bands=bands).to(device) if cfg.augment else None
    )
    normalize = _Normalizer(norm, device)
    vset = _validation_set(data, cfg.chip_size, card.model.size_multiple)
    thresholds = None if cfg.threshold is None else (cfg.threshold,)

    record: dict[str, Any] = {
        "epoch": 0,
        "step": 0,
        "elapsed_s": 0.0,
        "best_score": -1.0,
        "best_epoch": 0,
        "best_threshold": 0.5,
        "best_figures": {},
        "stale": 0,
        "history": [],
        "card": card.to_json(),
        "options": resume_options(cfg),
        "pos_weight": list(pos_w),
        "neg_weight": list(neg_w),
    }
    ema = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        if cfg.ema_decay > 0
        else None
    )
    kept: torch.nn.Module = model if ema is None else ema.module  # validated and saved
    best_state = copy.deepcopy(kept.state_dict())
    if resumed is not None:
        model.load_state_dict(resumed.model)
        if ema is not None:
            if not resumed.ema:
                raise InputError(
                    "the run to resume kept no weight average; resume without --ema-decay"
                )
            ema.load_state_dict(resumed.ema)
        optimizer.load_state_dict(resumed.optimizer)
        record.update(resumed.record)
        if "torch" in resumed.rng:
            torch.set_rng_state(resumed.rng["torch"])
        if "sampler" in resumed.rng:
            generator.set_state(resumed.rng["sampler"])
        if out.exists():
            best_state = load_checkpoint(out).model.state_dict()

    sampler = PlaceSampler(
        data.scenes, cfg.chip_size, cfg.steps_per_epoch * cfg.batch_size, generator
    )
    loader: DataLoader[Any] = DataLoader(
        ChipDataset(data.scenes, cfg.chip_size),
        batch_size=cfg.batch_size,
        sampler=sampler,
        collate_fn=_collate,
        num_workers=cfg.workers,
        worker_init_fn=_worker_init if cfg.workers else None,
        persistent_workers=cfg.workers > 0,
        prefetch_factor=4 if cfg.workers else None,
    )
    total_steps = cfg.epochs * cfg.steps_per_epoch
    budget = cfg.minutes * 60 if cfg.minutes is not None else None
    start = time.monotonic() - float(record["elapsed_s"])
    stopped = "epochs"
    console.print(
        f"training {card.model.arch} (depth {card.model.depth}, width {card.model.base_width}) "
        f"on {len(data.scenes)} scene(s) of {len(data.places)} place(s), "
        f"{data.footprints} footprints, "
        f"{data.pixel_size_m:.4f} m pixels, {device.type} {str(dtype).replace('torch.', '')}; "
        f"{len(vset.chips)} validation chips"
    )
    progress = progress_display(
        TextColumn("epoch {task.fields[epoch]}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[left]}"),
        console=console,
        disable=not cfg.progress,
        transient=True,
    )
    batches = _infinite(loader)
    with progress:
        while record["epoch"] < cfg.epochs:
            epoch = int(record["epoch"]) + 1
            task = progress.add_task(
                f"training epoch {epoch}/{cfg.epochs}",
                total=cfg.steps_per_epoch,
                epoch=epoch,
                loss=0.0,
                left="",
                overall=None,
            )
            losses: list[float] = []
            for _ in range(cfg.steps_per_epoch):
                elapsed = time.monotonic() - start
                if budget is not None and elapsed >= budget and losses:
                    break  # the budget is spent: validate this (short) epoch and stop
                frac = record["step"] / total_steps
                if budget is not None:
                    frac = max(frac, elapsed / budget)
                lr = _lr_at(min(frac, 1.0), cfg.lr)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch = next(batches)
                if cfg.copy_paste > 0 and data.chip_transform is not None:
                    rng = np.random.default_rng([cfg.seed, int(record["step"])])
                    batch = paste_batch(batch, cfg.copy_paste, data.chip_transform.targets, rng)
                image = batch["image"].to(device) * scale
                if cfg.recolour > 0:
                    rng = np.random.default_rng([cfg.seed, int(record["step"]), 1])
                    image = recolour_batch(image, batch["instances"].to(device), cfg.recolour, rng)
                maps = torch.cat(
                    [
                        batch["target"].to(device),
                        batch["weight"].to(device).unsqueeze(1),
                        batch["valid"].to(device).unsqueeze(1).float(),
                    ],
                    dim=1,
                )
                if augmenter is not None:
                    image, maps = augmenter(image, maps)
                target = maps[:, :classes]
                border = maps[:, classes] if cfg.w0 > 0 or cfg.wall_w0 > 0 else None
                valid = maps[:, classes + 1] > 0.5
                x = normalize(image).contiguous(memory_format=torch.channels_last)
                with autocast(device, dtype):
                    logits = model(x)
                loss = loss_fn(logits.float(), target, border, valid)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                optimizer.step()
                if ema is not None:
                    ema.update_parameters(model)
                record["step"] += 1
                losses.append(float(loss.detach()))
                elapsed = time.monotonic() - start
                progress.update(
                    task,
                    advance=1,
                    loss=float(np.mean(losses)),
                    left=_time_left(elapsed, record["step"], total_steps, budget),
                    overall=_done_fraction(elapsed, record["step"], total_steps, budget),
                )
            progress.remove_task(task)
            val_loss, scores = _evaluate(
                kept,
                vset,
                loss_fn,
                normalize,
                scale,
                device,
                dtype,
                classes,
                thresholds,
                scored,
                names,
            )
            best = max(scores, key=lambda s: s.score)
            elapsed = time.monotonic() - start
            entry: dict[str, float] = {
                "epoch": epoch,
                "loss": float(np.mean(losses)),
                "val_loss": val_loss,
                "lr": lr,
                "elapsed_s": round(elapsed, 1),
                **best.figures(),
            }
            record["history"].append(entry)
            record["epoch"] = epoch
            record["elapsed_s"] = elapsed
            improved = best.score > record["best_score"] + 1e-4
            if improved:
                record.update(
                    best_score=best.score,
                    best_epoch=epoch,
                    best_threshold=best.threshold,
                    best_figures=best.figures(),
                    stale=0,
                )
                best_state = copy.deepcopy(kept.state_dict())
                save_best(cfg, data, out, card, kept, record, device, dtype)
            else:
                record["stale"] += 1
            console.print(
                f"epoch {epoch:3d}  loss {entry['loss']:.4f}  val_loss {val_loss:.4f}  "
                f"IoU {best.pixels.iou:.3f}  acc {best.pixels.accuracy:.3f}  "
                f"sens {best.pixels.sensitivity:.3f}  prec {best.pixels.precision:.3f}  "
                f"objF1 {best.objects.f1:.3f}  thr {best.threshold:.2f}  "
                f"lr {lr:.2e}  {elapsed / 60:.1f} min{'  *' if improved else ''}"
            )
            if on_epoch is not None:
                on_epoch(entry)
            save_state(
                state_path(out),
                TrainState(
                    model=model.state_dict(),
                    optimizer=optimizer.state_dict(),
                    ema={} if ema is None else ema.state_dict(),
                    rng={"torch": torch.get_rng_state(), "sampler": generator.get_state()},
                    record=record,
                ),
            )
            if cfg.patience and record["stale"] >= cfg.patience:
                stopped = "early-stopping"
                break
            if budget is not None and elapsed >= budget:
                stopped = "time-budget"
                break
    model = kept
    model.load_state_dict(best_state)
    return RunOutcome(card=card, model=model, record=record, stopped=stopped)


def check_options(cfg: TrainConfig) -> None:
    """Refuse unusable options before any data is read.

    Raises:
        InputError: Naming the option and its allowed values.
        OutputExistsError: If ``out`` exists and neither ``overwrite`` nor ``resume`` is set.
    """
    out = Path(cfg.out)
    if out.suffix != ".safetensors":
        raise InputError(f"--out must end in .safetensors (got {out.name})")
    if out.exists() and not (cfg.overwrite or cfg.resume):
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it or --resume")
    for name, value in (
        ("--epochs", cfg.epochs),
        ("--steps-per-epoch", cfg.steps_per_epoch),
        ("--batch-size", cfg.batch_size),
        ("--chip-size", cfg.chip_size),
    ):
        if value < 1:
            raise InputError(f"{name} must be at least 1, got {value}")
    if cfg.minutes is not None and cfg.minutes <= 0:
        raise InputError(f"--minutes must be positive, got {cfg.minutes}")
    if cfg.colour not in COLOUR_JITTER:
        raise InputError(f"unknown --colour {cfg.colour!r}; use {' or '.join(COLOUR_JITTER)}")
    if not 0 <= cfg.ema_decay < 1:
        raise InputError(f"--ema-decay must be in [0, 1), got {cfg.ema_decay}")
    if not 0 <= cfg.copy_paste <= 1:
        raise InputError(f"--copy-paste must be in [0, 1], got {cfg.copy_paste}")
    if cfg.body_target not in BODY_TARGETS:
        raise InputError(
            f"unknown --body-target {cfg.body_target!r}; use {' or '.join(BODY_TARGETS)}"
        )
    if not 0 <= cfg.recolour <= 1:
        raise InputError(f"--recolour must be in [0, 1], got {cfg.recolour}")
    for part in cfg.freeze:
        if part not in FREEZABLE:
            raise InputError(f"unknown --freeze {part!r}; use {' or '.join(FREEZABLE)}")


def start(
    cfg: TrainConfig,
    data: TrainingData,
    console: Console,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> tuple[RunOutcome, torch.device, torch.dtype]:
    """Seed, pick the device, load what ``--resume`` and ``--init`` name, and :func:`run`.

    Returns:
        The outcome, and the device and precision it ran with.
    """
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    device = select_device(cfg.device)
    dtype = resolve_precision(device, cfg.precision)
    out = Path(cfg.out)
    resumed = load_state(state_path(out)) if cfg.resume else None
    if resumed is not None:
        check_resume_options(cfg, resumed.record.get("options", {}))
    init_card: ModelCard | None = None
    init_model: torch.nn.Module | None = None
    if cfg.init is not None:
        ck = load_checkpoint(cfg.init)
        init_card, init_model = ck.card, ck.model
    outcome = run(cfg, data, out, device, dtype, resumed, init_card, init_model, console, on_epoch)
    return outcome, device, dtype
