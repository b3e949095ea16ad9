"""The options of ``geounet train`` and what a run produces."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geounet.errors import InputError
from geounet.model.checkpoint import ModelCard
from geounet.train.losses import LossName
from geounet.train.targets import TargetOptions


@dataclass
class TrainConfig:
    """Options of a training run (the CLI's options, one to one).

    Attributes:
        images: Training scenes.
        labels: Footprint files (GeoPackage, GeoJSON, Shapefile), any CRS.
        places: The place of each scene, in the order of ``images`` (empty: one place);
            chips are drawn from each place equally often.
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
        freeze: Parts of the network whose weights stay as they are: ``encoder`` (the
            contracting path) and/or ``decoder`` (the expanding path; see
            :data:`FREEZABLE`); empty trains every weight. Frozen parts' batch norms
            still follow the new chips' statistics.
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
    places: list[str] = field(default_factory=list)
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
    freeze: list[str] = field(default_factory=list)
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
        strip_buildings: True buildings on the strip the thresholds were chosen on (how
            far its figures can be trusted).
    """

    checkpoint: Path
    best_epoch: int
    epochs_run: int
    threshold: float
    figures: dict[str, float]
    elapsed_s: float
    stopped: str
    history: list[dict[str, float]] = field(default_factory=list)
    strip_buildings: int = 0


BODY_TARGETS = ("eroded", "depth")
"""What the ``body`` channel learns: each roof eroded by ``--body-erosion`` pixels, or each
roof's depth (0 on its outline, 1 along its middle; see
:func:`geounet.train.weights.depth_map`)."""

FREEZABLE = ("encoder", "decoder")
"""Parts of a network that ``freeze`` may keep as they are."""

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
    "freeze",
    "weight_decay",
    "seed",
)
"""Options a resumed run must share with the run it continues (what it learns from)."""


def resume_options(cfg: TrainConfig) -> dict[str, Any]:
    """The options of ``cfg`` that a resumed run must keep (see :data:`RESUME_FIXED`)."""
    return {name: getattr(cfg, name) for name in RESUME_FIXED}


def check_resume_options(cfg: TrainConfig, saved: dict[str, Any]) -> None:
    """Refuse to resume with other training options than the run was started with.

    Args:
        cfg: The options of the resuming command.
        saved: The options recorded by the run to resume (empty for runs recorded before
            options were kept: nothing is checked then).

    Raises:
        InputError: Naming the first option that differs and the value to resume with.
    """
    now = resume_options(cfg)
    for name, value in saved.items():
        if name in now and now[name] != value:
            raise InputError(
                f"this run was started with {as_flag(name, value)}, not "
                f"{as_flag(name, now[name])}; resume with the same options "
                "(or drop --resume to start again)"
            )


def as_flag(name: str, value: Any) -> str:
    """An option as typed on the command line (``--colour strong``, ``--no-augment``)."""
    flag = name.replace("_", "-")
    if isinstance(value, list):
        return " ".join(f"--{flag} {v}" for v in value) or f"no --{flag}"
    if isinstance(value, bool):
        return f"--{flag}" if value else f"--no-{flag}"
    return f"--{flag} {value}"


def options_from_card(
    cfg: TrainConfig, card: ModelCard, explicit: Collection[str] = ()
) -> TrainConfig:
    """Take the target options and pixel size of a model to fine-tune from its card.

    Args:
        cfg: The options as given (defaults included).
        card: The card of the model to fine-tune (``--init``).
        explicit: Names of the options the user typed; one that disagrees with the card
            is an error rather than silently replaced.

    Returns:
        ``cfg`` with the card's target options and pixel size.

    Raises:
        InputError: Naming each typed option that disagrees with the card, and its value
            in the card.
    """
    known = card_targets(card)
    changes: dict[str, object] = dict(known)
    if cfg.pixel_size_m is None or "pixel_size_m" not in explicit:
        changes["pixel_size_m"] = card.pixel_size_m
    conflicts = [
        f"--{name.replace('_', '-')} {getattr(cfg, name)} (the model has {value})"
        for name, value in known.items()
        if name in explicit and getattr(cfg, name) != value
    ]
    if (
        "pixel_size_m" in explicit
        and cfg.pixel_size_m is not None
        and abs(cfg.pixel_size_m - card.pixel_size_m) > 1e-6
    ):
        conflicts.append(f"--pixel-size {cfg.pixel_size_m} (the model has {card.pixel_size_m})")
    if conflicts:
        raise InputError(
            "the model to fine-tune fixes these options; drop them or set the model's "
            "values: " + "; ".join(conflicts)
        )
    return dataclasses.replace(cfg, **changes)  # type: ignore[arg-type]


def card_targets(card: ModelCard) -> dict[str, object]:
    """The target options a model was trained with, as its card records them.

    Cards written before the ``targets`` field existed hold them only in the recorded
    command of the run (or of each ensemble member, which must agree); those are read
    back from there, for the options :class:`~geounet.train.targets.TargetOptions` has.

    Returns:
        The options found (empty when the card says nothing of them).
    """
    names = TargetOptions.__dataclass_fields__
    if card.targets:
        return {k: v for k, v in card.targets.items() if k in names}
    import shlex

    found: list[dict[str, object]] = []
    for key, command in sorted(card.provenance.items()):
        if not (key == "command" or key.endswith(".command")) or "train" not in command:
            continue
        words = shlex.split(command)
        options: dict[str, object] = {}
        defaults = TargetOptions()
        for name in names:
            flag = "--" + name.replace("_", "-")
            values = [words[i + 1] for i, w in enumerate(words[:-1]) if w == flag]
            default = getattr(defaults, name)
            options[name] = type(default)(values[-1]) if values else default
        found.append(options)
    if not found or any(f != found[0] for f in found):
        return {}
    return found[0]
