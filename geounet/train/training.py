"""``geounet train`` and ``geounet calibrate``: read the data, train, choose the thresholds.

:func:`train` reads the scenes and footprints whole onto the model's grid
(:mod:`geounet.train.datasets`), runs the loop (:mod:`geounet.train.loop`), then chooses
the kept epoch's thresholds on the held-out strip as ``geounet predict`` predicts it
(:mod:`geounet.train.strip`) and writes them in its model card. :func:`calibrate` does the
last step alone, for a model trained elsewhere (a pack on a GPU node, an ensemble).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from pathlib import Path

import rasterio
from rich.console import Console
from shapely.geometry.base import BaseGeometry

from geounet.core.extents import merge_extents
from geounet.core.thresholds import BODY_THRESHOLDS, MIN_CONFIDENCES, SEED_AREAS_M2
from geounet.errors import InputError, OutputExistsError
from geounet.inference.options import PredictOptions
from geounet.io.raster import scene_extent
from geounet.model.checkpoint import Checkpoint, load_checkpoint, read_card, save_checkpoint
from geounet.model.device import resolve_precision, select_device
from geounet.model.tta import check_mode
from geounet.train.arrays import TrainingData
from geounet.train.config import (
    BODY_THRESHOLD_FIXED,
    TrainConfig,
    TrainResult,
    options_from_card,
)
from geounet.train.datasets import (
    Split,
    build_training_data,
    inspect_scenes,
    read_area,
    scene_split,
)
from geounet.train.loop import check_options, save_best, start
from geounet.train.pack import save_pack
from geounet.train.strip import choice_sweep, predict_strips
from geounet.train.targets import TargetOptions
from geounet.train.validation import (
    DEFAULT_THRESHOLDS,
    ThresholdScore,
    choose_score,
)


def train(
    cfg: TrainConfig,
    console: Console | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    aoi: BaseGeometry | None = None,
    explicit: Collection[str] = (),
) -> TrainResult:
    """Train a U-Net on scenes and footprints and write the best checkpoint.

    With ``cfg.init`` the run fine-tunes that model, and the options its card fixes (what
    the channels learn, the pixel size) are taken from the card
    (:func:`~geounet.train.config.options_from_card`).

    Args:
        cfg: The run's options.
        console: Where progress and per-epoch lines go (a stderr console by default).
        on_epoch: Optional callback receiving each epoch's record.
        aoi: Area of interest (first scene's CRS): chips, the strip and its truth stay
            inside it (see :func:`~geounet.train.datasets.scene_split`).
        explicit: Options the user typed: with ``cfg.init``, one that disagrees with the
            card is an error instead of being replaced by the card's value.

    Returns:
        What the run produced.

    Raises:
        InputError: If the data or options are unusable.
        CheckpointError: If ``--init`` or ``--resume`` files are unusable.
        OutputExistsError: If ``out`` exists and neither ``overwrite`` nor ``resume`` is set.
    """
    console = console or Console(stderr=True)
    check_options(cfg)
    if cfg.init is not None:
        cfg = options_from_card(cfg, read_card(cfg.init), explicit)
    pixel_size = cfg.pixel_size_m
    data = build_training_data(
        cfg.images,
        cfg.labels,
        places=cfg.places,
        pixel_size_m=pixel_size,
        class_column=cfg.class_column,
        val_fraction=cfg.val_fraction,
        chip_size=cfg.chip_size,
        targets=TargetOptions.of(cfg),
        aoi=aoi,
    )
    outcome, device, dtype = start(cfg, data, console, on_epoch)
    record = outcome.record
    # the kept epoch's thresholds, chosen again on the strip as predict will see it
    best = choose_thresholds(
        Checkpoint(outcome.card, outcome.model),
        cfg.images,
        cfg.labels,
        scene_split(cfg.images, cfg.val_fraction, aoi),
        PredictOptions(device=cfg.device, precision=cfg.precision),
        None if cfg.threshold is None else (cfg.threshold,),
        class_column=cfg.class_column,
    )
    record.update(
        best_threshold=best.threshold,
        best_body_threshold=best.body_threshold,
        best_seed_area_m2=best.seed_area_m2,
        best_min_confidence=best.min_confidence,
        best_figures=best.figures(),
    )
    body = "" if best.body_threshold is None else f", body {best.body_threshold:.2f}"
    body += "" if best.seed_area_m2 is None else f", smallest seed {best.seed_area_m2:g} m2"
    body += "" if not best.min_confidence else f", confidence >= {best.min_confidence:g}"
    console.print(
        f"thresholds chosen on the validation strip as predicted: building "
        f"{best.threshold:.2f}{body} (IoU {best.pixels.iou:.3f}, objF1 {best.objects.f1:.3f})"
    )
    save_best(cfg, data, Path(cfg.out), outcome.card, outcome.model, record, device, dtype)
    return TrainResult(
        checkpoint=Path(cfg.out),
        best_epoch=int(record["best_epoch"]),
        epochs_run=int(record["epoch"]),
        threshold=float(record["best_threshold"]),
        figures=dict(record["best_figures"]),
        elapsed_s=float(record["elapsed_s"]),
        stopped=outcome.stopped,
        history=list(record["history"]),
        strip_buildings=best.objects.tp + best.objects.fn,
    )


def write_pack(cfg: TrainConfig, path: Path) -> TrainingData:
    """Read the training data as :func:`train` would and write it as a pack instead.

    See :mod:`geounet.train.pack`. The target options (``w0``, ``body_target``...) are
    not packed: the run from the pack gives them.

    Raises:
        InputError: If the data are unusable or ``path`` is not an ``.npz`` file.
        OutputExistsError: If ``path`` exists and ``cfg.overwrite`` is false.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"--pack must end in .npz (got {path.name})")
    if path.exists() and not cfg.overwrite:
        raise OutputExistsError(f"{path} exists; pass --overwrite to replace it")
    data = build_training_data(
        cfg.images,
        cfg.labels,
        places=cfg.places,
        pixel_size_m=cfg.pixel_size_m,
        class_column=cfg.class_column,
        val_fraction=cfg.val_fraction,
        chip_size=cfg.chip_size,
        targets=None,
    )
    save_pack(path, data)
    return data


def choose_thresholds(
    checkpoint: Checkpoint,
    images: list[Path],
    labels: list[Path],
    split: Split,
    options: PredictOptions,
    thresholds: tuple[float, ...] | None = None,
    body_thresholds: tuple[float, ...] = BODY_THRESHOLDS,
    class_column: str | None = None,
    on_sweep: Callable[[list[ThresholdScore]], None] | None = None,
    seed_areas_m2: tuple[float, ...] = SEED_AREAS_M2,
    min_confidences: tuple[float, ...] = MIN_CONFIDENCES,
) -> ThresholdScore:
    """Choose the thresholds, the smallest seed and confidence on the held-out strip.

    The strip is predicted as ``geounet predict`` predicts a scene (see
    :mod:`geounet.train.strip`), then every pair of a building threshold (``thresholds``,
    or the default sweep) and a body threshold (``body_thresholds``, for a model with a
    ``body`` channel) is scored as prediction would split the footprints; among the pairs
    whose pixel IoU is near the best, the best score (mean of pixel IoU and object F1)
    wins (see :func:`~geounet.train.validation.choose_score`). For a model that splits
    touching roofs, the building thresholds near the best pixel IoU (the only ones that
    can win: the split leaves the mask as it is) are scored again with every body
    threshold and each smallest seed of ``seed_areas_m2`` (the first is the one of the
    first sweep), and with each smallest confidence of ``min_confidences`` that a
    footprint must reach (the first, the first sweep's), and the winner is chosen among
    all. The confidence leaves the mask as it is too; it drops faint false footprints.

    Args:
        checkpoint: The model and its card.
        images: The scenes whose strip is held out.
        labels: Their footprint files.
        split: The split of those scenes (its ``val_roi`` is the strip).
        options: How to predict (device, precision, test-time augmentation).
        thresholds: Building thresholds to try (default: the usual sweep).
        body_thresholds: Body thresholds to try.
        class_column: The label column of the classes, if any: only footprints of the
            first class (channel 0, the one predict writes) are the truth.
        on_sweep: Optional callback receiving every score of the sweep.
        seed_areas_m2: Smallest seed areas to try, in square metres (at least one).
        min_confidences: Smallest footprint confidences to try (at least one).

    Returns:
        The winning score, with its thresholds, smallest seed and smallest confidence.
    """
    first = checkpoint.card.class_names[0] if class_column else None
    strips = predict_strips(
        checkpoint, images, labels, split.val_roi, split.crs, options,
        class_column=class_column, only_class=first, only_roi=split.aoi,
    )  # fmt: skip
    grid = DEFAULT_THRESHOLDS if thresholds is None else thresholds
    scores = choice_sweep(strips, grid, body_thresholds, seed_areas_m2, min_confidences)
    if on_sweep is not None:
        on_sweep(scores)
    return choose_score(scores)


def calibrate(
    model: str | Path,
    images: list[Path],
    labels: list[Path],
    out: str | Path,
    val_fraction: float = 0.2,
    device: str = "auto",
    precision: str = "auto",
    overwrite: bool = False,
    body_threshold: float | None = None,
    tta: str | None = None,
    on_sweep: Callable[[list[ThresholdScore]], None] | None = None,
    aoi: Path | None = None,
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
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``auto``, ``float32``, ``bfloat16`` or ``float16``.
        overwrite: Replace an existing ``out``.
        body_threshold: Keep this body threshold instead of choosing one (models with
            a ``body`` channel only).
        tta: Test-time augmentation to choose the thresholds with, written into the card
            for prediction to use (``None``: the card's; see :mod:`geounet.model.tta`).
        on_sweep: Optional callback receiving every score of the strip's sweep.
        aoi: Polygons where the labels are complete (a mapper's digitised area): the
            eastern ``val_fraction`` of the part of the scenes inside them is the strip,
            as ``geounet finetune`` holds it out. ``None``: each scene's eastern strip.

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
    # bad values fail before any work (int8 falls back by itself, with a note)
    resolve_precision(select_device(device), "auto" if precision == "int8" else precision)
    inspect_scenes([Path(p) for p in images])
    region = None
    if aoi is not None:
        with rasterio.open(images[0]) as src:
            region = read_area(aoi, src.crs)
    best = choose_thresholds(
        ck,
        images,
        labels,
        scene_split(images, val_fraction, region),
        PredictOptions(device=device, precision=precision, tta=mode),
        body_thresholds=BODY_THRESHOLDS if body_threshold is None else (body_threshold,),
        on_sweep=on_sweep,
    )
    figures = best.figures()
    final = dataclasses.replace(
        card,
        threshold=best.threshold,
        body_threshold=card.body_threshold if best.body_threshold is None else best.body_threshold,
        seed_area_m2=card.seed_area_m2 if best.seed_area_m2 is None else best.seed_area_m2,
        min_confidence=best.min_confidence or 0.0,
        tta=mode,
        trained_on=merge_extents(
            card.trained_on, (e for e in map(scene_extent, images) if e is not None)
        ),
        provenance={
            **card.provenance,
            "validation": ", ".join(f"{k}={v:.4f}" for k, v in figures.items()),
            "calibration": f"thresholds chosen on the validation strip "
            f"(eastern {val_fraction:.0%}) of {', '.join(str(p) for p in images)}"
            + ("" if aoi is None else f" inside {aoi}")
            + ("" if body_threshold is None else f"; {BODY_THRESHOLD_FIXED} {body_threshold}")
            + ("" if mode == "none" else f"; with {mode} test-time augmentation"),
        },
    )
    save_checkpoint(out, final, ck.model.cpu())
    return best


__all__ = [
    "TrainConfig",
    "TrainResult",
    "calibrate",
    "choose_thresholds",
    "train",
    "write_pack",
]
