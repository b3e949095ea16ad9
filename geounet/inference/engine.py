"""The tile engine: raw tiles through the model (numpy in, numpy out), batch by batch."""

from __future__ import annotations

from collections.abc import Callable, Generator
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

from geounet.core.threads import joined_pool
from geounet.core.tiling import Tile, TilePlan
from geounet.inference.stitch import TileResult
from geounet.io.raster import (
    GDAL_LOCK,
    Reader,
    describe_probability,
    probability_profile,
    read_window,
)
from geounet.model.checkpoint import Checkpoint
from geounet.model.compiled import CompiledNet
from geounet.model.device import autocast, resolve_precision
from geounet.model.int8 import int8_checked, int8_units, load_int8
from geounet.model.network import TRACE_GUARD, fuse_for_inference
from geounet.model.tta import check_mode, with_tta


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
        tta: Test-time augmentation (``None``: the card's; see :mod:`geounet.model.tta`).
        net: The network to run instead of the checkpoint's (its int8 model, see
            :func:`make_predictor`); it runs without autocast.
    """

    def __init__(
        self,
        checkpoint: Checkpoint,
        device: torch.device,
        dtype: torch.dtype,
        value_range: tuple[float, float] | None = None,
        tta: str | None = None,
        net: torch.nn.Module | None = None,
    ):
        self.card = checkpoint.card
        self.value_range = value_range
        self.device = device
        self.dtype = dtype
        self.tta = check_mode(self.card.tta if tta is None else tta)
        self.compiled: CompiledNet | None = None
        self.int8 = net is not None
        if net is not None:
            self.dtype = torch.float32  # an int8 model: its precision is its own
            self.net = net
            self.model = with_tta(net, self.tta)
            return
        # batch norms folded into their convolutions (a copy: the checkpoint is untouched)
        folded = fuse_for_inference(checkpoint.model).to(device)
        self.net = folded.to(memory_format=torch.channels_last)
        self.model = with_tta(self.net, self.tta)

    def compile(self) -> None:
        """Run the network through ``torch.compile`` from now on.

        See :mod:`geounet.model.compiled`: if compiling fails, the network runs as it is
        and :attr:`note` says so. An int8 model is left as it is (OpenVINO compiles it).
        """
        if self.compiled is None and not self.int8:
            self.compiled = CompiledNet(self.net)
            self.model = with_tta(self.compiled, self.tta)

    @property
    def note(self) -> str:
        """A line for the user about how the network ran (``""`` if nothing to say)."""
        return "" if self.compiled is None else self.compiled.note

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


def make_predictor(
    checkpoint: Checkpoint,
    device: torch.device,
    precision: str,
    value_range: tuple[float, float] | None = None,
    tta: str | None = None,
) -> tuple[TilePredictor, str, str]:
    """The tile predictor for a precision, int8 included.

    ``int8`` runs the checkpoint's int8 model with OpenVINO (:mod:`geounet.model.int8`) on
    the CPU; where it cannot (a GPU, OpenVINO missing, no int8 model beside the checkpoint,
    or one made from another checkpoint) prediction falls back to ``auto`` with a note.
    ``auto`` on a CPU with int8 instructions runs the int8 model too where one was checked
    within :data:`~geounet.model.int8.TOLERANCE` of the default precision on the model's
    validation strips (``geounet quantize --labels``); otherwise it autocasts.

    Returns:
        The predictor, the precision it runs at, and the note (empty if none).

    Raises:
        InputError: If the precision is unknown, or float16 is asked for on the CPU.
    """
    checked = (
        precision == "auto"
        and device.type == "cpu"
        and checkpoint.source is not None
        and int8_checked(checkpoint.source)
        and int8_units()
    )
    if checked:
        net, _ = load_int8(checkpoint)
        if net is not None:
            int8 = TilePredictor(checkpoint, device, torch.float32, value_range, tta, net)
            return int8, "int8", ""
    if precision != "int8":
        dtype = resolve_precision(device, precision)
        predictor = TilePredictor(checkpoint, device, dtype, value_range, tta)
        return predictor, str(dtype).removeprefix("torch."), ""
    net, why = (None, "int8 runs on the CPU") if device.type != "cpu" else load_int8(checkpoint)
    if net is None:
        dtype = resolve_precision(device, "auto")
        name = str(dtype).removeprefix("torch.")
        predictor = TilePredictor(checkpoint, device, dtype, value_range, tta)
        return predictor, name, f"--precision int8: {why}; predicted in {name}"
    return TilePredictor(checkpoint, device, torch.float32, value_range, tta, net), "int8", ""


def infer_batch(
    batch: list[ReadTile],
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
    holding :data:`~geounet.io.raster.GDAL_LOCK`, and each batch is yielded holding it (the
    consumer writes the output then), so reads never overlap writes. Batches follow the
    plan's order and may span two tile rows, so every batch but the last is full.

    Yields:
        The results of each batch, in plan order.
    """
    batches = plan_batches(plan, batch_size)

    def read(tiles: list[Tile]) -> list[ReadTile]:
        with GDAL_LOCK:
            return read_tiles(src, bands, tiles)

    with joined_pool(1, "geounet-read") as pool:
        pending = pool.submit(read, batches[0])
        for k in range(len(batches)):
            data = pending.result()
            if k + 1 < len(batches):
                pending = pool.submit(read, batches[k + 1])
            results = infer_batch(data, predictor)
            with GDAL_LOCK:
                yield results


def plan_batches(plan: TilePlan, size: int) -> list[list[Tile]]:
    """The plan's tiles in batches of ``size``, in plan order (the last may be short)."""
    tiles = list(plan)
    step = max(size, 1)
    return [tiles[i : i + step] for i in range(0, len(tiles), step)]


ReadTile = tuple[Tile, npt.NDArray[Any], npt.NDArray[np.bool_]]
"""A tile, its raw pixels (bands, H, W) and their validity (H, W)."""


def read_tiles(src: Reader, bands: list[int], tiles: list[Tile]) -> list[ReadTile]:
    """Read the windows of ``tiles`` from ``src``.

    The caller holds :data:`~geounet.io.raster.GDAL_LOCK` where other threads use GDAL.
    """
    return [(t, *read_window(src, bands, t.row, t.col, t.height, t.width)) for t in tiles]


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
