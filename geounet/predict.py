"""Predict a whole scene into a georeferenced probability raster and building footprints.

Tiles are streamed through the U-Net, blended, written, then vectorised.

Memory stays bounded by one tile row (tile height x scene width), whatever the scene's
area: tiles are read with rasterio windows, predicted in batches, blended into a rolling
accumulator, and every finished row strip is written straight to disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
import torch
from affine import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from geounet.checkpoint import Checkpoint, ModelCard, load_checkpoint
from geounet.device import autocast, resolve_precision, select_device
from geounet.errors import InputError
from geounet.model import TRACE_GUARD, fuse_for_inference
from geounet.raster import (
    GDAL_CACHE_BYTES,
    GDAL_LOCK,
    Reader,
    atomic_path,
    check_outputs,
    describe_probability,
    ground_pixel_size_m,
    open_scene,
    probability_profile,
    read_window,
    select_bands,
    write_cog,
)
from geounet.stitch import TileResult, stitch_to_raster
from geounet.styles import write_probability_style
from geounet.tiling import Tile, TilePlan, plan_tiles
from geounet.tta import check_mode, with_tta
from geounet.vectorize import SPLIT_CHANNELS, vectorize, write_footprints

Progress = Callable[[str, int, int], None]
"""Progress callback: ``(stage, done_increment, stage_total)``."""

RESAMPLE_TOLERANCE = 0.15
"""Relative pixel-size difference under which a scene is predicted on its own grid."""


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
        regularize: Square footprint outlines (right angles).
        value_range: Raw values mapped onto 0..255 before the model's normalisation
            (16-bit or float scenes with an 8-bit model).
        name: Stem of the output files (default: the scene's file name stem).
        tta: Test-time augmentation, ``none``, ``flips`` or ``d4`` (default: the card's,
            the one its thresholds were chosen with; see :mod:`geounet.tta`).
    """

    tile: int | None = None
    overlap: int | None = None
    border: int = 32
    batch_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    threshold: float | None = None
    min_area_m2: float = 2.0
    simplify_m: float = 0.11
    resample: bool = True
    float32: bool = False
    bands: list[int] | None = None
    overwrite: bool = False
    plan: TilePlan | None = None
    footprints: bool = True
    workers: int = 1
    scheduler: str | None = None
    regularize: bool = False
    value_range: tuple[float, float] | None = None
    name: str | None = None
    tta: str | None = None


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


def rescale_to_8bit(x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """Map raw values in ``value_range`` linearly onto 0..255 (clipped), as float32."""
    lo, hi = value_range
    return ((x.to(torch.float32) - lo) * (255.0 / (hi - lo))).clamp_(0.0, 255.0)


class TilePredictor:
    """Runs batches of raw tiles through the model: numpy in, numpy out.

    Args:
        checkpoint: The model and its card.
        device: Device to run on.
        dtype: Autocast dtype (``torch.float32`` disables autocast).
        value_range: Raw values mapped linearly onto 0..255 before the model's own
            normalisation (for 16-bit or float scenes fed to an 8-bit model).
        tta: Test-time augmentation (``None``: the card's; see :mod:`geounet.tta`).
    """

    def __init__(
        self,
        checkpoint: Checkpoint,
        device: torch.device,
        dtype: torch.dtype,
        value_range: tuple[float, float] | None = None,
        tta: str | None = None,
    ):
        self.card = checkpoint.card
        self.value_range = value_range
        self.device = device
        self.dtype = dtype
        self.tta = check_mode(self.card.tta if tta is None else tta)
        # batch norms folded into their convolutions (a copy: the checkpoint is untouched)
        net = fuse_for_inference(checkpoint.model).to(device)
        self.model = with_tta(net.to(memory_format=torch.channels_last), self.tta)

    @torch.inference_mode()
    def __call__(self, images: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """Predict building probabilities.

        Args:
            images: Raw tiles, shape (N, bands, H, W), in the scene's value range.

        Returns:
            float32 probabilities of every output channel, shape (N, C, H, W); channel 0
            is ``building``.
        """
        x = torch.from_numpy(np.ascontiguousarray(images))
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        if self.value_range is not None:
            x = rescale_to_8bit(x, self.value_range)
        x = self.card.normalization.apply(x).contiguous(memory_format=torch.channels_last)
        with TRACE_GUARD.predicting(), autocast(self.device, self.dtype):
            logits = self.model(x)
        prob = torch.sigmoid(logits.float())
        return prob.cpu().numpy()


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
        scene: Path of a georeferenced raster.
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
    scene = Path(scene)
    out = Path(out_dir)
    stem = opts.name or scene.stem
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
    tta = check_mode(card.tta if opts.tta is None else opts.tta)
    device = select_device(opts.device)
    dtype = resolve_precision(device, opts.precision)

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
        predictor = TilePredictor(ckpt, device, dtype, opts.value_range, tta)
        batch = opts.batch_size or default_batch_size(device)
        timings: dict[str, float] = {}
        # the raster's companion (footprints, or the split raster) is written under a
        # temporary name and renamed right after the raster: the outputs land together
        fp_tmp = landing.enter_context(atomic_path(fp_path)) if opts.footprints else None
        split_tmp = landing.enter_context(atomic_path(split_path)) if keep_split else None
        with atomic_path(prob_path) as final_tmp:
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
                    t = time.perf_counter()
                    batches_ctx: AbstractContextManager[Iterator[list[TileResult]]]
                    if opts.workers > 1 or opts.scheduler:
                        batches_ctx = _dask_batches(
                            ckpt, scene, src, bands, plan, resampled, card, opts, batch
                        )
                    else:
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
                    )
                    write_footprints(gdf, fp_tmp)  # renamed to fp_path after the raster
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
        precision=str(dtype).removeprefix("torch."),
        redundancy=plan.redundancy,
        tta=tta,
        timings=timings,
    )


@contextmanager
def _dask_batches(
    ckpt: Checkpoint,
    scene: Path,
    src: Reader,
    bands: list[int],
    plan: TilePlan,
    resampled: bool,
    card: ModelCard,
    opts: PredictOptions,
    batch: int,
) -> Iterator[Iterator[list[TileResult]]]:
    """Run the plan's tiles on a dask cluster, ``batch`` tiles a task (:mod:`geounet.parallel`)."""
    from geounet.parallel import TileJob, dask_client, dask_tile_batches

    if ckpt.source is None:
        raise InputError("dask workers load the model from a file: pass --model PATH")
    px_m = ground_pixel_size_m(src)
    job = TileJob(
        scene=str(scene.resolve()),
        factor=card.pixel_size_m / px_m if resampled else 1.0,
        bands=tuple(bands),
        model=str(Path(ckpt.source).resolve()),
        device=opts.device,
        precision=opts.precision,
        value_range=opts.value_range,
        tta=opts.tta,
    )
    with dask_client(opts.workers, opts.scheduler) as client:
        n = max(len(client.scheduler_info().get("workers", {})), 1)
        with closing(dask_tile_batches(client, job, plan, batch, in_flight=2 * n + 1)) as batches:
            yield batches


def default_batch_size(device: torch.device) -> int:
    """Tiles per forward pass when none is given: 1 on CPUs, 4 on GPUs.

    On the CPU one tile at a time is fastest (0.29 s per 992 px tile against 0.35-0.36 s
    in batches of 2 or 4 on this project's AMX CPU, ``benchmarks/levers_cpu.txt``: the
    activations of one tile stay closer to the cores' caches) and takes less memory.
    """
    return 4 if device.type == "cuda" else 1


def needs_resampling(scene_px_m: float, model_px_m: float, allowed: bool = True) -> bool:
    """Whether a scene is resampled to the model's pixel size before prediction."""
    return allowed and abs(model_px_m / scene_px_m - 1.0) > RESAMPLE_TOLERANCE


def plan_for_grid(height: int, width: int, card: ModelCard, opts: PredictOptions) -> TilePlan:
    """Plan the tiles of a working grid with the options' (or the model card's) settings.

    Raises:
        InputError: If the tile is not a multiple the network accepts or the overlap is
            out of range.
    """
    tile = opts.tile or card.tile_size
    multiple = card.model.size_multiple
    if tile <= 0 or tile % multiple:
        raise InputError(f"--tile {tile} must be a positive multiple of {multiple} for this model")
    overlap = min(128, tile // 4) if opts.overlap is None else opts.overlap
    if not 0 <= overlap < tile:
        raise InputError(f"--overlap {overlap} must be in [0, tile size {tile})")
    if opts.border < 0:
        raise InputError(f"--border {opts.border} must be >= 0")
    return plan_tiles(height, width, tile, overlap, opts.border, multiple)


def predict_tiles(
    src: Reader,
    bands: list[int],
    tiles: list[Tile],
    predictor: Callable[[npt.NDArray[Any]], npt.NDArray[np.float32]],
) -> list[TileResult]:
    """Read a batch of tiles and predict them; tiles without valid pixels are skipped.

    Args:
        src: The working grid.
        bands: 1-based bands, in the model's order.
        tiles: The batch.
        predictor: Maps raw tiles (N, C, H, W) to probabilities (N, H, W).

    Returns:
        One result per tile, in order.
    """
    return infer_batch(
        [(t, *read_window(src, bands, t.row, t.col, t.height, t.width)) for t in tiles], predictor
    )


def infer_batch(
    batch: list[tuple[Tile, npt.NDArray[Any], npt.NDArray[np.bool_]]],
    predictor: Callable[[npt.NDArray[Any]], npt.NDArray[np.float32]],
) -> list[TileResult]:
    """Predict a batch of read tiles in one forward pass (skipping all-no-data tiles)."""
    live = [i for i, (_, _, valid) in enumerate(batch) if valid.any()]
    probs: dict[int, npt.NDArray[np.float32]] = {}
    if live:
        out = predictor(np.stack([batch[i][1] for i in live]))
        if out.ndim == 3:  # single-channel predictors may drop the channel axis
            out = out[:, None]
        probs = dict(zip(live, out, strict=True))
    return [(t, probs.get(i), valid) for i, (t, _, valid) in enumerate(batch)]


def local_tile_batches(
    src: Reader,
    bands: list[int],
    plan: TilePlan,
    predictor: Callable[[npt.NDArray[Any]], npt.NDArray[np.float32]],
    batch_size: int = 2,
) -> Generator[list[TileResult], None, None]:
    """Predict a plan batch by batch in this process, reading the next batch in a thread.

    While the model works on one batch, a background thread reads the windows of the
    next; only this thread touches ``src`` then, so the handle is never shared. It reads
    holding :data:`~geounet.raster.GDAL_LOCK`, and each batch is yielded holding it (the
    consumer writes the output then), so reads never overlap writes. Batches follow the
    plan's order and may span two tile rows, so every batch but the last is full.

    Yields:
        The results of each batch, in plan order.
    """
    batches = list(_batches(list(plan), batch_size))

    def read(tiles: list[Tile]) -> list[tuple[Tile, npt.NDArray[Any], npt.NDArray[np.bool_]]]:
        with GDAL_LOCK:
            return [(t, *read_window(src, bands, t.row, t.col, t.height, t.width)) for t in tiles]

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="geounet-read") as pool:
        pending = pool.submit(read, batches[0])
        for k in range(len(batches)):
            data = pending.result()
            if k + 1 < len(batches):
                pending = pool.submit(read, batches[k + 1])
            results = infer_batch(data, predictor)
            with GDAL_LOCK:
                yield results


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


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), max(size, 1)):
        yield items[i : i + size]


def _stage(progress: Progress | None, stage: str, total: int) -> Callable[[int], None] | None:
    if progress is None:
        return None
    progress(stage, 0, total)
    return lambda n: progress(stage, n, total)


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


class working_grid:  # noqa: N801 - used as a context manager like open()
    """The grid the model sees: the scene itself, or a VRT resampled by ``factor``.

    Args:
        src: The open scene.
        factor: Model pixel size / scene pixel size (1.0 keeps the scene's grid).
    """

    def __init__(self, src: Any, factor: float):
        self.src = src
        self.factor = factor
        self.vrt: WarpedVRT | None = None

    def __enter__(self) -> Reader:
        if self.factor == 1.0:
            return self.src
        width = max(1, round(self.src.width / self.factor))
        height = max(1, round(self.src.height / self.factor))
        transform = self.src.transform @ Affine.scale(
            self.src.width / width, self.src.height / height
        )
        self.vrt = WarpedVRT(
            self.src,
            crs=self.src.crs,
            transform=transform,
            width=width,
            height=height,
            resampling=Resampling.average if self.factor > 1 else Resampling.bilinear,
        )
        return self.vrt

    def __exit__(self, *exc: object) -> None:
        if self.vrt is not None:
            self.vrt.close()


def warp_to_scene(work: Path, scene: Any, out: Path, strip_rows: int = 2048) -> None:
    """Resample a probability raster on the model's grid back onto the scene's grid.

    Streams in row strips; pixels invalid in the scene stay no data.

    Args:
        work: Probability GeoTIFF on the working grid.
        scene: The open scene (target grid and validity mask).
        out: Output GeoTIFF on the scene grid.
        strip_rows: Rows per strip.
    """
    with (
        rasterio.open(work) as wsrc,
        WarpedVRT(
            wsrc,
            crs=scene.crs,
            transform=scene.transform,
            width=scene.width,
            height=scene.height,
            resampling=Resampling.bilinear,
        ) as vrt,
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(out, "w", **probability_profile(scene, wsrc.dtypes[0], wsrc.count)) as dst,
    ):
        float32 = wsrc.dtypes[0] == "float32"
        names = tuple(d or f"channel {i}" for i, d in enumerate(wsrc.descriptions))
        describe_probability(dst, 1.0 if float32 else 1.0 / 255.0, names)
        for top in range(0, scene.height, strip_rows):
            win = Window(0, top, scene.width, min(strip_rows, scene.height - top))
            data = vrt.read(window=win)
            valid = (vrt.read_masks(1, window=win) > 0) & (scene.read_masks(1, window=win) > 0)
            dst.write(np.where(valid, data, 0).astype(data.dtype), window=win)
            dst.write_mask(np.where(valid, 255, 0).astype(np.uint8), window=win)
