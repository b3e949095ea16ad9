"""What a prediction is asked to do: its options, its result, and the plan they make."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from geounet.core.resampling import RESAMPLE_TOLERANCE, check_resampling
from geounet.core.tiling import TilePlan, plan_tiles
from geounet.errors import InputError
from geounet.footprints import SIMPLIFY_M
from geounet.model.checkpoint import ModelCard

Progress = Callable[[str, int, int], None]
"""Progress callback: ``(stage, done_increment, stage_total)``."""


@dataclass(frozen=True)
class PredictOptions:
    """Settings of one prediction; ``None`` means "the model card's default".

    Attributes:
        tile: Tile size in pixels of the working grid.
        overlap: Minimum overlap of neighbouring tiles in pixels (default: a quarter of
            the tile, at most 128 px, about the U-Net's receptive field).
        border: Mirrored context added around the scene in pixels.
        batch_size: Tiles per forward pass (default :func:`default_batch_size`).
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``auto``, ``float32``, ``bfloat16`` or ``float16``.
        threshold: Footprint probability threshold.
        min_area_m2: Smallest footprint kept, in square metres.
        seed_area_m2: Smallest seed, in square metres, that starts a footprint of its own
            where touching roofs are split (default: the card's).
        min_confidence: Smallest confidence (mean building probability) of a footprint
            kept (default: the card's; 0 keeps every footprint).
        simplify_m: Footprint simplification tolerance, in ground metres (0 disables it).
        resample: Resample scenes whose pixel size differs from the model's.
        float32: Store probabilities as float32 instead of uint8 (value / 255).
        bands: 1-based scene bands to use, in the model's order.
        overwrite: Replace existing outputs.
        plan: A ready tile plan of the working grid (from ``geounet plan``); ``None``
            plans with ``tile``, ``overlap`` and ``border``.
        footprints: Also vectorise footprints (``False`` writes only the raster).
        workers: Local dask worker processes; 1 runs the plain in-process pipeline.
        scheduler: Address of a dask.distributed scheduler to run the tiles on.
        regularize: Square footprint outlines (right angles, few corners); ``False``
            keeps them as traced.
        value_range: Raw values mapped onto 0..255 before the model's normalisation
            (16-bit or float scenes with an 8-bit model).
        name: Stem of the output files (default: the scene's file name stem).
        tta: Test-time augmentation, ``none``, ``flips`` or ``d4`` (default: the card's,
            the one its thresholds were chosen with; see :mod:`geounet.model.tta`).
        label: How the outputs' provenance names the scene (default: its file name, or
            its URL).
        compile: Run the network through ``torch.compile``: ``auto`` (on a CPU, for
            scenes of many tiles), ``on`` or ``off`` (see :mod:`geounet.model.compiled`).
    """

    tile: int | None = None
    overlap: int | None = None
    border: int = 32
    batch_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    threshold: float | None = None
    min_area_m2: float = 2.0
    seed_area_m2: float | None = None
    min_confidence: float | None = None
    simplify_m: float = SIMPLIFY_M
    resample: bool = True
    float32: bool = False
    bands: list[int] | None = None
    overwrite: bool = False
    plan: TilePlan | None = None
    footprints: bool = True
    workers: int = 1
    scheduler: str | None = None
    regularize: bool = True
    value_range: tuple[float, float] | None = None
    name: str | None = None
    tta: str | None = None
    label: str | None = None
    compile: str = "auto"


@dataclass
class PredictResult:
    """What a prediction produced."""

    probability: Path
    footprints: Path | None
    tiles: int
    buildings: int | None
    seconds: float
    pixel_size_m: float
    model_pixel_size_m: float
    resampled: bool
    device: str
    precision: str
    redundancy: float
    tta: str = "none"
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def default_batch_size(device: torch.device) -> int:
    """Tiles per forward pass when none is given: 1 on CPUs, 4 on GPUs.

    On the CPU one tile at a time is fastest (0.29 s per 992 px tile against 0.35-0.36 s
    in batches of 2 or 4 on this project's AMX CPU, ``benchmarks/levers_cpu.txt``: the
    activations of one tile stay closer to the cores' caches) and takes less memory.
    """
    return 4 if device.type == "cuda" else 1


def needs_resampling(scene_px_m: float, model_px_m: float, allowed: bool = True) -> bool:
    """Whether a scene is resampled to the model's pixel size before prediction.

    Raises:
        InputError: If resampling is allowed but the factor is absurd (see
            :func:`~geounet.core.resampling.check_resampling`).
    """
    if not allowed:
        return False
    check_resampling(scene_px_m, model_px_m)
    return abs(model_px_m / scene_px_m - 1.0) > RESAMPLE_TOLERANCE


def plan_for_grid(height: int, width: int, card: ModelCard, opts: PredictOptions) -> TilePlan:
    """Plan the tiles of a working grid with the options' (or the model card's) settings.

    Raises:
        InputError: If the tile is not a multiple the network accepts or the overlap is
            out of range.
    """
    tile = card.tile_size if opts.tile is None else opts.tile
    multiple = card.model.size_multiple
    if tile <= 0 or tile % multiple:
        raise InputError(f"--tile {tile} must be a positive multiple of {multiple} for this model")
    overlap = min(128, tile // 4) if opts.overlap is None else opts.overlap
    if not 0 <= overlap <= tile - multiple:
        raise InputError(
            f"--overlap {overlap} must be between 0 and the tile size less {multiple} "
            f"({tile - multiple})"
        )
    if not 0 <= opts.border <= tile // 2:
        raise InputError(
            f"--border {opts.border} must be between 0 and half the tile ({tile // 2} px); "
            "a tile must not lie wholly in the mirrored border"
        )
    return plan_tiles(height, width, tile, overlap, opts.border, multiple)
