"""Blend overlapping tile predictions into one georeferenced raster, in bounded memory.

Tiles arrive in plan order (row by row, left to right). Each is weighted by its cosine
blending window divided by the total weight of all tiles at each pixel (separable, so
known in advance): the weighted tiles then simply add up to the final probabilities, with
no division pass. As soon as no later tile reaches a block of pixels, the block is
written. Only two buffers are kept: the current tile's span (channels x tile height x
tile width) and the rows that the next tile row overlaps (channels x overlap x scene
width), so memory does not grow with the scene's height and only a thin band grows with
its width.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.windows import Window

from geounet.core.tiling import Tile, TilePlan, blend_weights_1d, coverage_weights_1d
from geounet.io.raster import Reader, describe_probability, probability_profile

TileResult = tuple[Tile, npt.NDArray[np.float32] | None, npt.NDArray[np.bool_]]
"""A tile, its probabilities (channels, rows, cols; ``None`` when it holds no valid
pixel) and its validity (rows, cols)."""


def stitch_to_raster(
    src: Reader,
    plan: TilePlan,
    batches: Iterable[list[TileResult]],
    path: Path,
    float32: bool = False,
    advance: Callable[[int], None] | None = None,
    class_names: tuple[str, ...] = ("building",),
) -> None:
    """Blend tile predictions into a tiled GeoTIFF on ``src``'s grid.

    This is the one writer of the output file, whatever produced the predictions.

    Args:
        src: The working grid (its CRS, transform and size are copied).
        plan: The tile plan of ``src``.
        batches: Tile results in plan order, in lists of any length (e.g. one per batch).
        path: Output GeoTIFF (uint8 probability * 255 or float32), one band per output
            channel of the model, mask = valid pixels.
        float32: Write float32 probabilities instead of uint8.
        advance: Called with the number of tiles blended after each list (progress).
        class_names: Names of the model's output channels (band descriptions).
    """
    dtype = "float32" if float32 else "uint8"
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(path, "w", **probability_profile(src, dtype, len(class_names))) as dst,
    ):
        describe_probability(dst, 1.0 if float32 else 1.0 / 255.0, class_names)
        blender = Blender(plan, len(class_names), lambda *a: _write(dst, float32, *a))
        for batch in batches:
            for tile, prob, valid in batch:
                blender.add(tile, prob, valid)
            if advance:
                advance(len(batch))
        blender.check_done()


class Blender:
    """Adds tiles in plan order and hands over every block of pixels that is final.

    Args:
        plan: The tile plan.
        channels: Output channels per tile.
        emit: Called with ``(probabilities, valid, row, col)`` for each finished block
            (scene pixel coordinates of its first pixel); the arrays are only valid
            during the call.
    """

    def __init__(
        self,
        plan: TilePlan,
        channels: int,
        emit: Callable[[npt.NDArray[np.float32], npt.NDArray[np.bool_], int, int], None],
    ):
        self.plan, self.emit = plan, emit
        h, w = plan.height, plan.width
        th, tw = plan.tile_height, plan.tile_width
        # per-pixel normalisers: tile weight / total weight of all tiles, along each axis
        self.row_w = blend_weights_1d(th, plan.overlap) / _padded(
            coverage_weights_1d(h, plan.row_starts, th, plan.overlap), plan.row_starts, th
        )
        self.col_w = blend_weights_1d(tw, plan.overlap) / _padded(
            coverage_weights_1d(w, plan.col_starts, tw, plan.overlap), plan.col_starts, tw
        )
        self.row_done = [_clip(s, h) for s in plan.row_starts[1:]] + [h]
        self.col_done = [_clip(s, w) for s in plan.col_starts[1:]] + [w]
        ends = [_clip(s + th, h) for s in plan.row_starts]
        carry = max(e - d for e, d in zip(ends, self.row_done, strict=True))
        self.span = np.zeros((channels, th, tw), dtype=np.float32)
        self.span_valid = np.zeros((th, tw), dtype=bool)
        self.carry = np.zeros((channels, carry, w), dtype=np.float32)
        self.carry_valid = np.zeros((carry, w), dtype=bool)
        self.carry_rows = 0  # rows of ``carry`` filled by the previous tile row
        self.next = 0  # index of the next tile expected

    def add(
        self, tile: Tile, prob: npt.NDArray[np.float32] | None, valid: npt.NDArray[Any]
    ) -> None:
        """Blend the next tile of the plan.

        Args:
            tile: The tile (must be the next one in plan order).
            prob: Its probabilities (channels, rows, cols), or ``None`` for a tile
                without valid pixels. Scaled in place.
            valid: Its validity (rows, cols).

        Raises:
            ValueError: If the tile is not the next one of the plan.
        """
        if tile.index != self.next:
            raise ValueError(f"tile {tile.index} arrived out of order, expected {self.next}")
        self.next += 1
        plan = self.plan
        n_cols = len(plan.col_starts)
        r, c = divmod(tile.index, n_cols)
        top = _clip(tile.row, plan.height)  # scene rows of this tile row: [top, bottom)
        bottom = _clip(tile.row_stop, plan.height)
        left = 0 if c == 0 else self.col_done[c - 1]  # first column not yet written
        c0, c1 = _clip(tile.col, plan.width), _clip(tile.col_stop, plan.width)
        rows = slice(top - tile.row, bottom - tile.row)
        cols = slice(c0 - tile.col, c1 - tile.col)
        at = slice(c0 - left, c1 - left)  # where the tile lands in the span
        if prob is not None:
            part = prob[:, rows, cols]
            if not part.flags.writeable:
                part = part.copy()
            part *= self.row_w[tile.index // n_cols][rows, None]
            part *= self.col_w[c][None, cols]
            self.span[:, : bottom - top, at] += part
        self.span_valid[: bottom - top, at] |= valid[rows, cols]
        # columns [left, done) receive no more tiles of this row: hand them over
        done = self.col_done[c]
        width = done - left
        out = self.span[:, : bottom - top, :width]
        out_valid = self.span_valid[: bottom - top, :width]
        k = self.carry_rows
        out[:, :k] += self.carry[:, :k, left:done]
        out_valid[:k] |= self.carry_valid[:k, left:done]
        final = self.row_done[r] - top
        if final > 0:
            self.emit(out[:, :final], out_valid[:final], top, left)
        # rows the next tile row overlaps wait in the carry band
        carried = bottom - top - max(final, 0)
        self.carry[:, :carried, left:done] = out[:, max(final, 0) :]
        self.carry_valid[:carried, left:done] = out_valid[max(final, 0) :]
        # shift the span left past the handed-over columns
        keep = c1 - done
        self.span[:, :, :keep] = self.span[:, :, width : width + keep].copy()
        self.span[:, :, keep:] = 0
        self.span_valid[:, :keep] = self.span_valid[:, width : width + keep].copy()
        self.span_valid[:, keep:] = False
        if c == n_cols - 1:
            self.carry_rows = carried

    def check_done(self) -> None:
        """Raise if tiles of the plan never arrived.

        Raises:
            ValueError: If the plan is not complete.
        """
        if self.next != len(self.plan):
            raise ValueError(f"only {self.next} of {len(self.plan)} tiles were blended")


def _write(
    dst: Any,
    float32: bool,
    prob: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    row: int,
    col: int,
) -> None:
    window = Window(col, row, prob.shape[2], prob.shape[1])
    if float32:
        data = np.where(valid, prob, np.float32(0)).astype(np.float32)
    else:
        scaled = np.clip(prob, 0.0, 1.0)
        scaled *= 255.0
        np.rint(scaled, out=scaled)
        data = scaled.astype(np.uint8)
        data[:, ~valid] = 0
    dst.write(data, window=window)
    dst.write_mask(np.where(valid, 255, 0).astype(np.uint8), window=window)


def _clip(value: int, length: int) -> int:
    return min(max(value, 0), length)


def _padded(
    total: npt.NDArray[np.float32], starts: tuple[int, ...], size: int
) -> list[npt.NDArray[np.float32]]:
    """Each tile's slice of the per-pixel total weight; 1 where the tile is off the scene."""
    out = []
    for s in starts:
        part = np.ones(size, dtype=np.float32)
        lo, hi = _clip(s, len(total)), _clip(s + size, len(total))
        part[lo - s : hi - s] = total[lo:hi]
        out.append(part)
    return out
