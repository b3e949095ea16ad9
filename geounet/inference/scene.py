"""``geounet predict``: one scene into a probability COG and a footprint GeoPackage."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, closing
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio

from geounet.core.extents import extents_to_json
from geounet.core.provenance import Provenance, file_sha256, now_utc, this_version
from geounet.core.tiling import TilePlan
from geounet.errors import InputError
from geounet.footprints.vectorize import (
    SPLIT_CHANNELS,
    outline_tags,
    vectorize,
    write_footprints,
)
from geounet.inference.engine import (
    local_tile_batches,
    make_predictor,
    warp_to_scene,
    working_grid,
)
from geounet.inference.executors import _dask_batches, check_scheduler
from geounet.inference.options import (
    PredictOptions,
    PredictResult,
    Progress,
    default_batch_size,
    needs_resampling,
    plan_for_grid,
)
from geounet.inference.stitch import TileResult, stitch_to_raster
from geounet.io.atomic import atomic_path
from geounet.io.raster import (
    GDAL_CACHE_BYTES,
    Reader,
    add_tags,
    check_outputs,
    ground_pixel_size_m,
    open_scene,
    select_bands,
    squashed_pixels,
    write_cog,
)
from geounet.io.remote import is_local, source_stem
from geounet.io.styles import write_probability_style
from geounet.model.checkpoint import Checkpoint, bundled_model_path, load_checkpoint
from geounet.model.compiled import check_compile, wants_compile
from geounet.model.device import select_device
from geounet.model.tta import check_mode


def predict_scene(
    scene: str | Path,
    out_dir: str | Path = ".",
    model: str | Path | Checkpoint | None = None,
    options: PredictOptions | None = None,
    progress: Progress | None = None,
) -> PredictResult:
    """Predict a scene into ``<stem>.prob.tif`` and ``<stem>.buildings.gpkg``.

    With ``footprints=False`` only the raster is written, plus ``<stem>.split.tif``
    (the body and/or contact probabilities, for ``geounet vectorize --split``) when the
    model has such channels.

    Args:
        scene: A georeferenced raster: a path, an http(s) URL, a GDAL virtual path
            (``/vsicurl/...``) or a tile-service window (see :mod:`geounet.io.remote`).
        out_dir: Folder for the outputs (created if needed).
        model: A checkpoint path, a loaded checkpoint, or ``None`` for the bundled model.
        options: Prediction settings.
        progress: Optional progress callback.

    Returns:
        Paths and figures of the run.

    Raises:
        InputError: On an unusable scene or settings.
        CheckpointError: On an unusable model.
        OutputExistsError: If an output exists and ``overwrite`` is false.
        OutputError: If outputs cannot be written.
    """
    t0 = time.perf_counter()
    opts = options or PredictOptions()
    scene = os.fspath(scene)
    out = Path(out_dir)
    stem = opts.name or source_stem(scene)
    if "/" in stem or stem in {".", ".."}:
        raise InputError(f"--name {stem!r} must be a plain file name stem, without folders")
    prob_path, fp_path = out / f"{stem}.prob.tif", out / f"{stem}.buildings.gpkg"
    split_path = out / f"{stem}.split.tif"
    ckpt = model if isinstance(model, Checkpoint) else load_checkpoint(model)
    card = ckpt.card
    split_bands = {
        name: card.class_names.index(name) + 1
        for name in SPLIT_CHANNELS
        if name in card.class_names
    }
    keep_split = bool(split_bands) and not opts.footprints
    threshold = card.threshold if opts.threshold is None else opts.threshold
    if not 0.0 < threshold < 1.0:
        raise InputError(f"threshold {threshold} must lie strictly between 0 and 1")
    seed_area = seed_area_of(ckpt, opts)
    if seed_area < 0:
        raise InputError(f"--seed-area {seed_area} must not be negative")
    min_confidence = min_confidence_of(ckpt, opts)
    if not 0.0 <= min_confidence < 1.0:
        raise InputError(f"--min-confidence {min_confidence} must be at least 0 and below 1")
    tta = check_mode(card.tta if opts.tta is None else opts.tta)
    check_compile(opts.compile)
    if opts.scheduler:
        check_scheduler(opts.scheduler)  # before any work: a bad address fails at once
    device = select_device(opts.device)

    with (
        rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES),
        open_scene(scene) as src,
        ExitStack() as landing,
    ):
        bands = select_bands(src, card.model.in_channels, opts.bands)
        _check_dtype(src, card.normalization.scale, opts.value_range)
        outputs = [prob_path, fp_path] if opts.footprints else [prob_path]
        check_outputs(outputs + ([split_path] if keep_split else []), opts.overwrite)
        px_m = ground_pixel_size_m(src)
        resampled = needs_resampling(px_m, card.pixel_size_m, opts.resample)
        predictor, precision, note = make_predictor(
            ckpt, device, opts.precision, opts.value_range, tta
        )
        batch = opts.batch_size or default_batch_size(device)
        timings: dict[str, float] = {}
        notes: list[str] = [note] if note else []
        if squashed := squashed_pixels(src, Path(str(scene)).name, card.pixel_size_m):
            notes.append(squashed)
        # the raster's companion (footprints, or the split raster) is written under a
        # temporary name and renamed right after the raster: the outputs land together
        # without --overwrite an output lands only if no other run wrote it meanwhile
        land = {"overwrite": opts.overwrite}
        fp_tmp = landing.enter_context(atomic_path(fp_path, **land)) if opts.footprints else None
        split_tmp = landing.enter_context(atomic_path(split_path, **land)) if keep_split else None
        with atomic_path(prob_path, **land) as final_tmp:
            work_tmp = final_tmp.with_name(final_tmp.name + ".work.tif")
            try:
                with working_grid(src, card.pixel_size_m / px_m if resampled else 1.0) as grid:
                    plan = opts.plan or plan_for_grid(grid.height, grid.width, card, opts)
                    if (plan.height, plan.width) != (grid.height, grid.width):
                        raise InputError(
                            f"the tile plan was made for a {plan.width} x {plan.height} px grid "
                            f"but this scene's is {grid.width} x {grid.height}; re-plan it "
                            "with the same model and settings"
                        )
                    if opts.workers > len(plan) and not opts.scheduler:
                        notes.append(
                            f"--workers {opts.workers} is more than the {len(plan)} tile(s) of "
                            "this scene: the extra workers only add start-up time; "
                            f"use --workers {max(1, len(plan))} or fewer"
                        )
                    t = time.perf_counter()
                    batches_ctx: AbstractContextManager[Iterator[list[TileResult]]]
                    computed = len(plan) * plan.tile_height * plan.tile_width
                    compiled = wants_compile(opts.compile, device, computed)
                    if opts.workers > 1 or opts.scheduler:
                        batches_ctx = _dask_batches(
                            ckpt, scene, src, bands, plan, resampled, card, opts, batch, compiled
                        )
                    else:
                        if compiled:
                            predictor.compile()
                        # closed on any error before the scene is: its read-ahead
                        # thread must not outlive the dataset it reads
                        batches_ctx = closing(
                            local_tile_batches(grid, bands, plan, predictor, batch)
                        )
                    advance = _stage(progress, "predict", len(plan))
                    with batches_ctx as batches:
                        stitch_to_raster(
                            grid, plan, batches, work_tmp, opts.float32, advance, card.class_names
                        )
                    timings["predict"] = time.perf_counter() - t
                    notes += [predictor.note] if predictor.note else []
                    # the model's buffers (OpenVINO's stay allocated while it lives) are
                    # freed before the raster is written and vectorised
                    del predictor, batches_ctx
                prov = provenance(scene, ckpt, threshold, tta, plan, opts, precision)
                if resampled:
                    t = time.perf_counter()
                    regridded = final_tmp.with_name(final_tmp.name + ".regrid.tif")
                    try:
                        warp_to_scene(work_tmp, src, regridded)
                        work_tmp.unlink()
                        regridded.rename(work_tmp)
                    finally:
                        regridded.unlink(missing_ok=True)
                    timings["resample"] = time.perf_counter() - t
                add_tags(work_tmp, prov.tags())  # copied into the outputs
                t = time.perf_counter()
                # the user-facing raster is the building band; other channels stay internal
                multi = len(card.class_names) > 1
                write_cog(work_tmp, final_tmp, band=1 if multi else None)
                if split_tmp is not None:
                    # raster-only runs keep the split channels for `geounet vectorize`
                    write_cog(work_tmp, split_tmp, band=list(split_bands.values()))
                timings["cog"] = time.perf_counter() - t
                buildings = None
                if fp_tmp is not None:
                    t = time.perf_counter()
                    done_rows = _stage(progress, "vectorise", src.height)
                    gdf = vectorize(
                        work_tmp,  # band 1 is the raster just copied, faster to decode
                        threshold,
                        opts.min_area_m2,
                        opts.simplify_m,
                        advance=done_rows,
                        regularize=opts.regularize,
                        split=(work_tmp, split_bands) if split_bands else None,
                        body_threshold=card.body_threshold,
                        model_pixel_m=card.pixel_size_m,
                        seed_area_m2=seed_area,
                        min_confidence=min_confidence,
                        advance_squared=_squaring(progress),
                    )
                    # renamed to fp_path after the raster
                    tags = {**prov.tags(), **outline_tags(opts.regularize)}
                    write_footprints(gdf, fp_tmp, metadata=tags)
                    timings["vectorise"] = time.perf_counter() - t
                    buildings = len(gdf)
            finally:
                work_tmp.unlink(missing_ok=True)
    # QGIS style sidecars (.qml, .qmd), replaced only once the raster has landed
    write_probability_style(prob_path)
    return PredictResult(
        probability=prob_path,
        footprints=fp_path if opts.footprints else None,
        tiles=len(plan),
        buildings=buildings,
        seconds=time.perf_counter() - t0,
        pixel_size_m=px_m,
        model_pixel_size_m=card.pixel_size_m,
        resampled=resampled,
        device=str(device),
        precision=precision,
        redundancy=plan.redundancy,
        tta=tta,
        timings=timings,
        warnings=notes,
    )


def predict_to_raster(
    src: Reader,
    bands: list[int],
    plan: TilePlan,
    predictor: Callable[[npt.NDArray[Any]], npt.NDArray[np.float32]],
    path: Path,
    batch_size: int = 2,
    float32: bool = False,
    progress: Progress | None = None,
    class_names: tuple[str, ...] = ("building",),
) -> None:
    """Predict a plan in this process and stitch it into a GeoTIFF (the sequential path).

    Args:
        src: The grid to predict (a scene or a resampling VRT).
        bands: 1-based bands, in the model's order.
        plan: The tile plan of ``src``.
        predictor: Maps raw tiles (N, C, H, W) to probabilities (N, H, W).
        path: Output GeoTIFF.
        batch_size: Tiles per predictor call.
        float32: Write float32 probabilities instead of uint8.
        progress: Optional progress callback.
        class_names: Names of the predictor's output channels.
    """
    advance = _stage(progress, "predict", len(plan))
    with closing(local_tile_batches(src, bands, plan, predictor, batch_size)) as batches:
        stitch_to_raster(src, plan, batches, path, float32, advance, class_names)


def seed_area_of(ckpt: Checkpoint, opts: PredictOptions) -> float:
    """The smallest seed of the split, in square metres: the option's, else the card's."""
    return ckpt.card.seed_area_m2 if opts.seed_area_m2 is None else opts.seed_area_m2


def min_confidence_of(ckpt: Checkpoint, opts: PredictOptions) -> float:
    """The smallest confidence of a footprint kept: the option's, else the card's."""
    return ckpt.card.min_confidence if opts.min_confidence is None else opts.min_confidence


def provenance(
    scene: str,
    ckpt: Checkpoint,
    threshold: float,
    tta: str,
    plan: TilePlan,
    opts: PredictOptions,
    precision: str = "",
) -> Provenance:
    """The record of how a prediction is made (see :mod:`geounet.core.provenance`)."""
    source = ckpt.source
    if source is None:
        model, digest = "in memory", ""
    else:
        model = source.name
        if source.resolve() == bundled_model_path().resolve():
            model = f"bundled ({source.name})"
        digest = file_sha256(source)
    return Provenance(
        version=this_version(),
        model=model,
        model_sha256=digest,
        threshold=threshold,
        body_threshold=ckpt.card.body_threshold,
        seed_area_m2=seed_area_of(ckpt, opts),
        min_confidence=min_confidence_of(ckpt, opts),
        tta=tta,
        tile=max(plan.tile_width, plan.tile_height),
        overlap=plan.overlap,
        border=plan.border,
        scene=opts.label or (Path(scene).name if is_local(scene) else scene),
        created=now_utc(),
        trained_on=extents_to_json(ckpt.card.trained_on),
        model_pixel_size_m=ckpt.card.pixel_size_m,
        precision=precision,
    )


def _stage(progress: Progress | None, stage: str, total: int) -> Callable[[int], None] | None:
    if progress is None:
        return None
    progress(stage, 0, total)
    return lambda n: progress(stage, n, total)


def _squaring(progress: Progress | None) -> Callable[[int, int], None] | None:
    """The ``square`` stage's callback: ``(footprints done, footprints in all)``."""
    if progress is None:
        return None
    return lambda n, total: progress("square", n, total)


def _check_dtype(src: Reader, scale: float, value_range: tuple[float, float] | None) -> None:
    if value_range is not None:
        lo, hi = value_range
        if not hi > lo:
            raise InputError(f"--value-range {lo},{hi}: the maximum must exceed the minimum")
        return
    dtype = np.dtype(src.dtypes[0])
    if abs(scale - 1 / 255) < 1e-9 and dtype != np.uint8:
        hint = "0,65535 (or 0,4095 for 12-bit)" if dtype.kind in "ui" else "0,1 for reflectance"
        raise InputError(
            f"the model expects 8-bit imagery but the scene is {dtype}; pass "
            f"--value-range MIN,MAX to map the scene's values onto 0..255, e.g. {hint}"
        )
