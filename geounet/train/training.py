"""The training loop behind ``geounet train``.

One call, :func:`train`, does everything: opens the data (torchgeo), builds or loads the
network, trains with random chips from the training part of the scenes, validates each epoch
on the held-out strip (cut into chips: cheap), keeps the best checkpoint, stops early or
when the time budget is spent, and can resume. The kept epoch's thresholds are chosen at
the end on the strip as ``geounet predict`` predicts it (:mod:`geounet.train.strip`) and
written in its model card.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import math
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio.features
import rasterio.transform
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from shapely.geometry.base import BaseGeometry
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

from geounet.checkpoint import (
    Checkpoint,
    ModelCard,
    Normalization,
    load_checkpoint,
    save_checkpoint,
)
from geounet.device import autocast, resolve_precision, select_device
from geounet.errors import CheckpointError, InputError, OutputExistsError
from geounet.model import ModelConfig, build_model
from geounet.predict import PredictOptions
from geounet.train.augment import COLOUR_JITTER, Augmenter
from geounet.train.copypaste import paste_batch
from geounet.train.datasets import TrainingData, build_training_data
from geounet.train.losses import LossConfig, LossName, SegmentationLoss, class_balance
from geounet.train.recolour import recolour_batch
from geounet.train.state import TrainState, load_state, save_state, state_path
from geounet.train.strip import predict_strips, sweep_strips
from geounet.train.validation import (
    BODY_THRESHOLDS,
    DEFAULT_THRESHOLDS,
    ThresholdScore,
    choose_score,
    merge_scores,
    sweep_thresholds,
)
from geounet.tta import check_mode


@dataclass
class TrainConfig:
    """Options of a training run (the CLI's options, one to one).

    Attributes:
        images: Training scenes.
        labels: Footprint files (GeoPackage, GeoJSON, Shapefile), any CRS.
        out: Where the best checkpoint goes (``.safetensors``).
        class_column: Label column naming the class of each footprint (one channel per
            class); ``None`` trains one ``building`` channel.
        arch: ``unet`` or ``smp-unet``.
        encoder: smp encoder name (``resnet18``...) for ``smp-unet``.
        depth: U-Net levels (max-pools of the classic U-Net, encoder depth 1-5 of smp-unet).
        width: Base width of the classic U-Net.
        upsampling: ``transpose`` or ``bilinear``.
        dropout: Dropout before the bottleneck.
        init: Checkpoint to fine-tune from (its architecture, bands and normalisation win).
        resume: Continue the run whose state lies beside ``out``; the options of
            :data:`RESUME_FIXED` must be those the run was started with.
        pixel_size_m: Ground pixel size to train at, in metres (default: the first scene's).
        chip_size: Training chip size, in pixels.
        batch_size: Chips per step.
        epochs: Maximum number of epochs.
        steps_per_epoch: Optimizer steps per epoch.
        minutes: Time budget in minutes (``None``: no limit); the learning-rate schedule
            follows it.
        lr: Peak learning rate (AdamW).
        weight_decay: AdamW weight decay.
        val_fraction: Fraction of each scene's width (its eastern strip) held out.
        patience: Epochs without improvement before stopping early (0 disables it).
        seed: Seed of every random choice.
        loss: ``bce-dice``, ``bce`` or ``dice``.
        w0: Border weight amplitude (0 disables the border weight map).
        sigma: Border weight width, in pixels.
        wall_w0: Border weight amplitude on building pixels near another building, so
            the walls that touching roofs share weigh as the gaps between roofs do (0
            disables it: the paper's map weighs background pixels only).
        contact_radius: When positive, the model gets a ``contact`` output channel trained
            on pixels within this many pixels of two different buildings; prediction then
            splits touching buildings there by watershed.
        body_erosion: When positive, the model gets a ``body`` output channel trained on
            building pixels at least this many pixels from outlines and neighbours;
            prediction grows one footprint from each body (watershed).
        body_target: What the ``body`` channel learns: ``eroded`` (building pixels
            ``body_erosion`` pixels from outlines and neighbours) or ``depth`` (each
            roof's depth, 0 on its outline and 1 along its middle; the channel is then
            made whatever ``body_erosion`` is). See :data:`BODY_TARGETS`.
        ema_decay: When positive, validate and keep an exponential moving average of the
            weights (and batch-norm statistics) with this decay per step instead of the raw
            weights; 0 disables it. The average smooths the step-to-step noise of small
            batches (0.995 averages over about the last 200 steps).
        balance: Weight the classes to balance their pixel counts.
        augment: Augment the training chips.
        colour: Colour jitter of the augmentation: ``mild`` or ``strong`` (see
            :data:`geounet.train.augment.COLOUR_JITTER`).
        copy_paste: Chance that a training chip gets whole buildings of the other chips
            of its batch pasted in, most of them against a roof already there (see
            :mod:`geounet.train.copypaste`); 0 disables it.
        recolour: Chance that each building of a training chip gets a random colour of
            its own, the ground left as it is (see :mod:`geounet.train.recolour`); 0
            disables it.
        threshold: Fixed default threshold for the card (``None``: chosen on validation).
        tile_size: Prediction tile size recorded in the card.
        device: ``auto``, ``cpu``, ``cuda``.
        precision: ``auto``, ``float32``, ``bfloat16``, ``float16``.
        workers: Data-loader worker processes.
        overwrite: Replace an existing ``out``.
        command: The command line, for provenance.
        progress: Show a progress bar.
    """

    images: list[Path]
    labels: list[Path]
    out: Path
    class_column: str | None = None
    arch: str = "unet"
    encoder: str = "resnet18"
    depth: int = 4
    width: int = 16
    upsampling: str = "transpose"
    dropout: float = 0.0
    init: Path | None = None
    resume: bool = False
    pixel_size_m: float | None = None
    chip_size: int = 256
    batch_size: int = 8
    epochs: int = 100
    steps_per_epoch: int = 50
    minutes: float | None = None
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    patience: int = 15
    seed: int = 0
    loss: LossName = "bce-dice"
    w0: float = 10.0
    sigma: float = 5.0
    wall_w0: float = 0.0
    contact_radius: float = 0.0
    body_erosion: float = 0.0
    body_target: str = "eroded"
    ema_decay: float = 0.0
    balance: bool = True
    augment: bool = True
    colour: str = "mild"
    copy_paste: float = 0.0
    recolour: float = 0.0
    threshold: float | None = None
    tile_size: int = 1024
    device: str = "auto"
    precision: str = "auto"
    workers: int = 1
    overwrite: bool = False
    command: str = ""
    progress: bool = True


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        checkpoint: Path of the best checkpoint.
        best_epoch: Epoch (1-based) of the best checkpoint.
        epochs_run: Epochs finished (in total, over resumes).
        threshold: Default threshold stored in the card.
        figures: Validation figures of the best epoch at that threshold.
        elapsed_s: Training time in seconds (over resumes).
        stopped: Why the run stopped (``epochs``, ``early-stopping``, ``time-budget``).
        history: Per-epoch records.
    """

    checkpoint: Path
    best_epoch: int
    epochs_run: int
    threshold: float
    figures: dict[str, float]
    elapsed_s: float
    stopped: str
    history: list[dict[str, float]] = field(default_factory=list)


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


def _scale_for(dtype: str) -> float:
    return {"uint8": 1 / 255, "uint16": 1 / 65535, "int16": 1 / 32767}.get(dtype, 1.0)


def _estimate_statistics(
    data: TrainingData, chip: int, generator: torch.Generator, scale: float, chips: int = 12
) -> tuple[tuple[float, ...], tuple[float, ...], list[float]]:
    """Per-band mean/std (after scaling) and per-class positive fraction of training chips."""
    sampler = RandomGeoSampler(
        data.dataset, size=chip, length=chips, roi=data.train_roi, generator=generator
    )
    sums: torch.Tensor | None = None
    sq: torch.Tensor | None = None
    count = 0.0
    pos: torch.Tensor | None = None
    for query in sampler:
        s = data.dataset[query]
        v = s["valid"]
        x = s["image"][:, v].double() * scale
        t = s["target"][:, v].double()
        sums = x.sum(1) if sums is None else sums + x.sum(1)
        sq = (x**2).sum(1) if sq is None else sq + (x**2).sum(1)
        pos = t.sum(1) if pos is None else pos + t.sum(1)
        count += float(v.sum())
    if sums is None or sq is None or pos is None or count == 0:
        raise InputError("the training part of the scenes holds no valid pixels")
    mean = sums / count
    std = (sq / count - mean**2).clamp(min=1e-8).sqrt()
    return (
        tuple(round(float(m), 5) for m in mean),
        tuple(round(float(s), 5) for s in std),
        [float(p) / count for p in pos],
    )


def _validation_set(data: TrainingData, chip: int, multiple: int) -> _ValidationSet:
    """Read the held-out strip once, chip by chip, with a canvas per scene part."""
    chips: list[dict[str, Any]] = []
    canvases: list[dict[str, Any]] = []
    res_x, res_y = data.res
    probe = GridGeoSampler(data.dataset, size=chip, stride=chip, roi=data.val_roi)
    for geom in probe.index.geometry:
        xmin, ymin, xmax, ymax = geom.bounds
        span = min((xmax - xmin) / res_x, (ymax - ymin) / res_y)
        size = min(chip, int(span // multiple) * multiple)
        if size < multiple:
            continue
        sampler = GridGeoSampler(data.dataset, size=size, stride=size, roi=geom)
        queries = list(sampler)
        if not queries:
            continue
        left = min(q[0].start for q in queries)
        top = max(q[1].stop for q in queries)
        width = round((max(q[0].stop for q in queries) - left) / res_x)
        height = round((top - min(q[1].start for q in queries)) / res_y)
        transform = rasterio.transform.from_origin(left, top, res_x, res_y)
        inside = rasterio.features.geometry_mask(
            [_as_geojson(geom)], out_shape=(height, width), transform=transform, invert=True
        )
        index = len(canvases)
        canvases.append({"inside": inside, "shape": (height, width)})
        for q in queries:
            s = data.dataset[q]
            row = round((top - q[1].stop) / res_y)
            col = round((q[0].start - left) / res_x)
            h, w = s["valid"].shape
            s["valid"] = s["valid"] & torch.from_numpy(inside[row : row + h, col : col + w].copy())
            s["canvas"] = index
            s["offset"] = (row, col)
            chips.append(s)
    if not chips:
        raise InputError(
            "the validation strip is too small to validate on; raise --val-fraction "
            "or lower --chip-size"
        )
    return _ValidationSet(chips, canvases)


def _as_geojson(geom: BaseGeometry) -> dict[str, Any]:
    return dict(geom.__geo_interface__)


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
    import torchgeo

    import geounet

    return {
        "data.images": ", ".join(str(p) for p in cfg.images),
        "data.labels": ", ".join(str(p) for p in cfg.labels),
        "data.footprints": str(data.labels.count),
        "data.split": f"validation = eastern {cfg.val_fraction:.0%} of each scene's width",
        "command": cfg.command,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "geounet": geounet.__version__,
        "torch": torch.__version__,
        "torchgeo": torchgeo.__version__,
        "training_time_s": f"{elapsed:.0f}",
        "best_epoch": str(epoch),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"{device.type}, {str(dtype).replace('torch.', '')}",
        "validation": ", ".join(f"{k}={v:.4f}" for k, v in figures.items()),
        "seed": str(cfg.seed),
    }


def train(
    cfg: TrainConfig,
    console: Console | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train a U-Net on scenes and footprints and write the best checkpoint.

    Args:
        cfg: The run's options.
        console: Where progress and per-epoch lines go (a stderr console by default).
        on_epoch: Optional callback receiving each epoch's record.

    Returns:
        What the run produced.

    Raises:
        InputError: If the data or options are unusable.
        CheckpointError: If ``--init`` or ``--resume`` files are unusable.
        OutputExistsError: If ``out`` exists and neither ``overwrite`` nor ``resume`` is set.
    """
    console = console or Console(stderr=True)
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
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    device = select_device(cfg.device)
    dtype = resolve_precision(device, cfg.precision)
    resumed = load_state(state_path(out)) if cfg.resume else None
    if resumed is not None:
        _check_resume_options(cfg, resumed.record.get("options", {}))

    init_card: ModelCard | None = None
    init_model: torch.nn.Module | None = None
    if cfg.init is not None:
        ck = load_checkpoint(cfg.init)
        init_card, init_model = ck.card, ck.model
    pixel_size = cfg.pixel_size_m
    if pixel_size is None and init_card is not None:
        pixel_size = init_card.pixel_size_m
    data = build_training_data(
        cfg.images,
        cfg.labels,
        pixel_size_m=pixel_size,
        class_column=cfg.class_column,
        val_fraction=cfg.val_fraction,
        w0=cfg.w0,
        sigma=cfg.sigma,
        wall_w0=cfg.wall_w0,
        chip_size=cfg.chip_size,
        contact_radius=cfg.contact_radius,
        body_erosion=cfg.body_erosion,
        body_target=cfg.body_target,
    )
    try:
        return _run(
            cfg, data, out, device, dtype, resumed, init_card, init_model, console, on_epoch
        )
    finally:
        data.labels.cleanup()


BODY_TARGETS = ("eroded", "depth")
"""What the ``body`` channel learns: each roof eroded by ``--body-erosion`` pixels, or each
roof's depth (0 on its outline, 1 along its middle; see
:func:`geounet.train.weights.depth_map`)."""

BODY_THRESHOLD_FIXED = "body threshold fixed at"
"""Words that end a card's ``calibration`` provenance when ``calibrate --body-threshold``
fixed the body threshold (followed by its value)."""

RESUME_FIXED = (
    "loss",
    "w0",
    "sigma",
    "wall_w0",
    "contact_radius",
    "body_erosion",
    "body_target",
    "balance",
    "augment",
    "colour",
    "copy_paste",
    "recolour",
    "ema_decay",
    "chip_size",
    "batch_size",
    "lr",
    "weight_decay",
    "seed",
)
"""Options a resumed run must share with the run it continues (what it learns from)."""


def _resume_options(cfg: TrainConfig) -> dict[str, Any]:
    """The options of ``cfg`` that a resumed run must keep (see :data:`RESUME_FIXED`)."""
    return {name: getattr(cfg, name) for name in RESUME_FIXED}


def _check_resume_options(cfg: TrainConfig, saved: dict[str, Any]) -> None:
    """Refuse to resume with other training options than the run was started with.

    Args:
        cfg: The options of the resuming command.
        saved: The options recorded by the run to resume (empty for runs recorded before
            options were kept: nothing is checked then).

    Raises:
        InputError: Naming the first option that differs and the value to resume with.
    """
    now = _resume_options(cfg)
    for name, value in saved.items():
        if name in now and now[name] != value:
            raise InputError(
                f"this run was started with {_as_flag(name, value)}, not "
                f"{_as_flag(name, now[name])}; resume with the same options "
                "(or drop --resume to start again)"
            )


def _as_flag(name: str, value: Any) -> str:
    """An option as typed on the command line (``--colour strong``, ``--no-augment``)."""
    flag = name.replace("_", "-")
    if isinstance(value, bool):
        return f"--{flag}" if value else f"--no-{flag}"
    return f"--{flag} {value}"


def _run(
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
) -> TrainResult:
    names = data.output_names or data.labels.class_names
    classes = len(names)  # output channels: the label classes (+ contact)
    scored = len(data.labels.class_names)  # channels scored on validation
    bands = len(data.layout.image_bands)
    import rasterio

    with rasterio.open(cfg.images[0]) as src:
        scale = _scale_for(src.dtypes[0])
    generator = torch.Generator().manual_seed(cfg.seed)

    if resumed is not None:
        card = ModelCard.from_json(resumed.record["card"])
        norm = card.normalization
        pos_w = tuple(resumed.record["pos_weight"])
        neg_w = tuple(resumed.record["neg_weight"])
        model = build_model(card.model)
    else:
        mean, std, pos_frac = _estimate_statistics(data, cfg.chip_size, generator, scale)
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
            bands=data.layout.image_bands,
            normalization=norm,
            pixel_size_m=round(data.pixel_size_m, 6),
            tile_size=cfg.tile_size,
            threshold=0.5,
            class_names=names,
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
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
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
        "options": _resume_options(cfg),
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

    sampler = RandomGeoSampler(
        data.dataset,
        size=cfg.chip_size,
        length=cfg.steps_per_epoch * cfg.batch_size,
        roi=data.train_roi,
        generator=generator,
    )
    loader: DataLoader[Any] = DataLoader(
        data.dataset,
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
        f"on {len(cfg.images)} scene(s), {data.labels.count} footprints, "
        f"{data.pixel_size_m:.4f} m pixels, {device.type} {str(dtype).replace('torch.', '')}; "
        f"{len(vset.chips)} validation chips"
    )
    progress = Progress(
        TextColumn("epoch {task.fields[epoch]}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        console=console,
        disable=not cfg.progress,
        transient=True,
    )
    batches = _infinite(loader)
    with progress:
        while record["epoch"] < cfg.epochs:
            epoch = int(record["epoch"]) + 1
            task = progress.add_task("train", total=cfg.steps_per_epoch, epoch=epoch, loss=0.0)
            losses = []
            for _ in range(cfg.steps_per_epoch):
                elapsed = time.monotonic() - start
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
                progress.update(task, advance=1, loss=float(np.mean(losses)))
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
                _save_best(cfg, data, out, card, kept, record, device, dtype)
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
    # the kept epoch's thresholds, chosen again on the strip as predict will see it
    best = choose_thresholds(
        Checkpoint(card, model),
        cfg.images,
        cfg.labels,
        data,
        PredictOptions(device=cfg.device, precision=cfg.precision),
        thresholds,
        class_column=cfg.class_column,
    )
    record.update(
        best_threshold=best.threshold,
        best_body_threshold=best.body_threshold,
        best_figures=best.figures(),
    )
    body = "" if best.body_threshold is None else f", body {best.body_threshold:.2f}"
    console.print(
        f"thresholds chosen on the validation strip as predicted: building "
        f"{best.threshold:.2f}{body} (IoU {best.pixels.iou:.3f}, objF1 {best.objects.f1:.3f})"
    )
    _save_best(cfg, data, out, card, model, record, device, dtype)
    return TrainResult(
        checkpoint=out,
        best_epoch=int(record["best_epoch"]),
        epochs_run=int(record["epoch"]),
        threshold=float(record["best_threshold"]),
        figures=dict(record["best_figures"]),
        elapsed_s=float(record["elapsed_s"]),
        stopped=stopped,
        history=list(record["history"]),
    )


def choose_thresholds(
    checkpoint: Checkpoint,
    images: list[Path],
    labels: list[Path],
    data: TrainingData,
    options: PredictOptions,
    thresholds: tuple[float, ...] | None = None,
    body_thresholds: tuple[float, ...] = BODY_THRESHOLDS,
    class_column: str | None = None,
    on_sweep: Callable[[list[ThresholdScore]], None] | None = None,
) -> ThresholdScore:
    """Choose the building and body thresholds of a model on the held-out strip.

    The strip is predicted as ``geounet predict`` predicts a scene (see
    :mod:`geounet.train.strip`), then every pair of a building threshold (``thresholds``,
    or the default sweep) and a body threshold (``body_thresholds``, for a model with a
    ``body`` channel) is scored as prediction would split the footprints; among the pairs
    whose pixel IoU is near the best, the best score (mean of pixel IoU and object F1)
    wins (see :func:`~geounet.train.validation.choose_score`).

    Args:
        checkpoint: The model and its card.
        images: The scenes whose strip is held out.
        labels: Their footprint files.
        data: The training data of those scenes (its ``val_roi`` is the strip).
        options: How to predict (device, precision, test-time augmentation).
        thresholds: Building thresholds to try (default: the usual sweep).
        body_thresholds: Body thresholds to try.
        class_column: The label column of the classes, if any: only footprints of the
            first class (channel 0, the one predict writes) are the truth.
        on_sweep: Optional callback receiving every score of the sweep.

    Returns:
        The winning score, with its thresholds.
    """
    first = checkpoint.card.class_names[0] if class_column else None
    strips = predict_strips(
        checkpoint, images, labels, data.val_roi, data.dataset.crs, options,
        class_column=class_column, only_class=first,
    )  # fmt: skip
    scores = sweep_strips(
        strips, DEFAULT_THRESHOLDS if thresholds is None else thresholds, body_thresholds
    )
    if on_sweep is not None:
        on_sweep(scores)
    return choose_score(scores)


def calibrate(
    model: str | Path,
    images: list[Path],
    labels: list[Path],
    out: str | Path,
    val_fraction: float = 0.2,
    chip_size: int = 256,
    device: str = "auto",
    precision: str = "auto",
    overwrite: bool = False,
    body_threshold: float | None = None,
    tta: str | None = None,
    on_sweep: Callable[[list[ThresholdScore]], None] | None = None,
) -> ThresholdScore:
    """Choose a trained model's thresholds on the held-out strip of scenes, as training does.

    The scenes are split as ``geounet train`` splits them (the eastern ``val_fraction`` of
    each is the validation strip) and predicted whole as ``geounet predict`` predicts them
    (see :mod:`geounet.train.strip`); the building threshold and, for models with a
    ``body`` channel, the body threshold that score best on the strip go into the card of
    ``out``.
    A fixed ``body_threshold`` is kept and only the building threshold is chosen: for a
    body channel that learns each roof's depth, 0.5 (half depth) gives every roof of the
    target one seed, where a small strip of detached houses is a poor judge of how deep
    the seeds of touching roofs must be.

    Args:
        model: The checkpoint.
        images: Scenes (the training scenes, to reuse their validation strip).
        labels: Footprint files.
        out: Checkpoint to write (may be ``model`` itself with ``overwrite``).
        val_fraction: Fraction of each scene's width held out, as in training.
        chip_size: Training chip size, in pixels: the training part of each scene must
            hold one, as in training.
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``auto``, ``float32``, ``bfloat16`` or ``float16``.
        overwrite: Replace an existing ``out``.
        body_threshold: Keep this body threshold instead of choosing one (models with
            a ``body`` channel only).
        tta: Test-time augmentation to choose the thresholds with, written into the card
            for prediction to use (``None``: the card's; see :mod:`geounet.tta`).
        on_sweep: Optional callback receiving every score of the strip's sweep.

    Returns:
        The winning validation score, with its thresholds.

    Raises:
        InputError: If the data are unusable, or ``body_threshold`` is outside (0, 1) or
            given for a model without a ``body`` channel.
        OutputExistsError: If ``out`` exists and ``overwrite`` is false.
    """
    out = Path(out)
    if out.suffix != ".safetensors":
        raise InputError(f"--out must end in .safetensors (got {out.name})")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
    if body_threshold is not None and not 0.0 < body_threshold < 1.0:
        raise InputError(f"--body-threshold must be between 0 and 1, got {body_threshold}")
    ck = load_checkpoint(model)
    card = ck.card
    mode = check_mode(card.tta if tta is None else tta)
    if body_threshold is not None and "body" not in card.class_names:
        raise InputError(
            f"{model} has no body channel (channels: {', '.join(card.class_names)}); "
            "drop --body-threshold"
        )
    resolve_precision(select_device(device), precision)  # bad values fail before any work
    data = build_training_data(
        images,
        labels,
        pixel_size_m=card.pixel_size_m,
        val_fraction=val_fraction,
        w0=0.0,
        chip_size=chip_size,
    )
    try:
        best = choose_thresholds(
            ck,
            images,
            labels,
            data,
            PredictOptions(device=device, precision=precision, tta=mode),
            body_thresholds=BODY_THRESHOLDS if body_threshold is None else (body_threshold,),
            on_sweep=on_sweep,
        )
    finally:
        data.labels.cleanup()
    figures = best.figures()
    final = dataclasses.replace(
        card,
        threshold=best.threshold,
        body_threshold=card.body_threshold if best.body_threshold is None else best.body_threshold,
        tta=mode,
        provenance={
            **card.provenance,
            "validation": ", ".join(f"{k}={v:.4f}" for k, v in figures.items()),
            "calibration": f"thresholds chosen on the validation strip "
            f"(eastern {val_fraction:.0%}) of {', '.join(str(p) for p in images)}"
            + ("" if body_threshold is None else f"; {BODY_THRESHOLD_FIXED} {body_threshold}")
            + ("" if mode == "none" else f"; with {mode} test-time augmentation"),
        },
    )
    save_checkpoint(out, final, ck.model.cpu())
    return best


def _save_best(
    cfg: TrainConfig,
    data: TrainingData,
    out: Path,
    card: ModelCard,
    model: torch.nn.Module,
    record: dict[str, Any],
    device: torch.device,
    dtype: torch.dtype,
) -> None:
    figures = dict(record["best_figures"])
    final = dataclasses.replace(
        card,
        threshold=float(record["best_threshold"]),
        body_threshold=float(record.get("best_body_threshold") or 0.5),
        provenance=_provenance(
            cfg, data, float(record["elapsed_s"]), int(record["best_epoch"]), figures, device, dtype
        ),
    )
    save_checkpoint(out, final, model)


__all__ = ["TrainConfig", "TrainResult", "calibrate", "train"]
