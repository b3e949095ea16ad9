"""Tile plans and blending weights for overlap-tile inference (pure: no I/O, no torch).

Axis order is always (row, col) = (y, x); every size and offset is in pixels of the grid
being predicted. A plan covers the scene extended on every side by a mirrored ``border``,
so that pixels at the scene edge see context, as in the U-Net paper's overlap-tile
strategy. Tile origins are spaced evenly so that the last tile ends flush with the far
edge of the extended scene (the nnU-Net rule); no tile reads past it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Tile:
    """One tile of a plan.

    Attributes:
        index: Position in the plan, row-major.
        row: Top row of the tile in scene pixels; negative in the mirrored border.
        col: Left column of the tile in scene pixels; negative in the mirrored border.
        height: Rows of the tile.
        width: Columns of the tile.
    """

    index: int
    row: int
    col: int
    height: int
    width: int

    @property
    def row_stop(self) -> int:
        """One past the last row (may exceed the scene height in the border)."""
        return self.row + self.height

    @property
    def col_stop(self) -> int:
        """One past the last column (may exceed the scene width in the border)."""
        return self.col + self.width


@dataclass(frozen=True)
class TilePlan:
    """A regular grid of equally sized, overlapping tiles over one scene.

    Attributes:
        height: Scene rows.
        width: Scene columns.
        tile_height: Rows of every tile.
        tile_width: Columns of every tile.
        overlap: Minimum overlap between neighbouring tiles, in pixels.
        border: Mirrored context added on every side of the scene, in pixels.
        row_starts: Top row of each tile row.
        col_starts: Left column of each tile column.
    """

    height: int
    width: int
    tile_height: int
    tile_width: int
    overlap: int
    border: int
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    def __iter__(self) -> Iterator[Tile]:
        for r, row in enumerate(self.row_starts):
            for c, col in enumerate(self.col_starts):
                yield Tile(
                    r * len(self.col_starts) + c, row, col, self.tile_height, self.tile_width
                )

    def tile_rows(self) -> Iterator[list[Tile]]:
        """Yield the tiles one tile row at a time, top to bottom."""
        tiles = list(self)
        n = len(self.col_starts)
        for r in range(len(self.row_starts)):
            yield tiles[r * n : (r + 1) * n]

    @property
    def redundancy(self) -> float:
        """Pixels computed per scene pixel (1.0 means no overlap and no border)."""
        return len(self) * self.tile_height * self.tile_width / (self.height * self.width)


def tile_starts(
    length: int, tile: int, min_overlap: int, border: int = 0, multiple: int = 1
) -> tuple[int, ...]:
    """Evenly spaced tile origins along one axis, on a grid of ``multiple`` pixels.

    The first tile starts at ``-border``; every origin lies a multiple of ``multiple``
    pixels from it, so that every tile of a U-Net (``multiple`` = 2**depth) pools the
    scene on the same grid: a tile seen from another origin would be pooled at another
    phase, and predicted differently. The last tile ends at ``length + border``, or up to
    ``multiple - 1`` pixels past it (more mirrored border). The spacing is as even as the
    grid allows and never leaves less than ``min_overlap`` between neighbours. A scene
    shorter than one tile gets one tile.

    Args:
        length: Scene length along the axis, in pixels (>= 1).
        tile: Tile length, in pixels.
        min_overlap: Minimum overlap of neighbouring tiles (0 <= min_overlap < tile).
        border: Mirrored context on both ends, in pixels.
        multiple: Origins lie on this grid (1: anywhere).

    Returns:
        The start of each tile, increasing.

    Raises:
        ValueError: On non-positive sizes, an overlap not smaller than the tile, or one
            that leaves no step of the grid between origins.
    """
    if length < 1 or tile < 1 or multiple < 1:
        raise ValueError(f"length, tile and multiple must be positive, got {length}, {tile}")
    if not 0 <= min_overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got {min_overlap} for tile {tile}")
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    span = length + 2 * border
    if span <= tile:
        return (-border,)
    stride = (tile - min_overlap) // multiple  # the longest step, in grid units
    if stride < 1:
        raise ValueError(
            f"overlap {min_overlap} leaves no step of {multiple} px between tiles of {tile}"
        )
    units = math.ceil((span - tile) / multiple)  # the last origin, in grid units
    n = math.ceil(units / stride) + 1
    return tuple(-border + multiple * round(i * units / (n - 1)) for i in range(n))


def plan_tiles(
    height: int,
    width: int,
    tile: int,
    overlap: int,
    border: int = 0,
    multiple: int = 1,
) -> TilePlan:
    """Plan the tiles of a scene.

    ``tile`` is the largest tile side. Along each axis the plan takes the fewest tiles of
    that size that cover the scene (plus its borders) with at least ``overlap`` between
    neighbours, then shrinks them to the smallest side (a multiple of ``multiple``, so the
    network accepts it) with which that many tiles still do: the extra overlap that a
    fixed size would leave is not computed. At 16384 px, tile 1024 and overlap 128 this
    cuts the pixels computed from 1.41 to 1.32 times the scene's.

    Args:
        height: Scene rows.
        width: Scene columns.
        tile: Tile size in pixels (a multiple of ``multiple``).
        overlap: Minimum overlap between neighbouring tiles, in pixels.
        border: Mirrored context around the scene, in pixels.
        multiple: Tile sides are multiples of this (2**depth for a U-Net).

    Returns:
        The plan.

    Raises:
        ValueError: If the tile is not a multiple of ``multiple`` or sizes are invalid.
    """
    if tile % multiple:
        raise ValueError(f"tile size {tile} must be a multiple of {multiple}")
    if overlap > tile - multiple:
        raise ValueError(f"overlap {overlap} must be at most the tile size {tile} less {multiple}")

    def starts(length: int, size: int) -> tuple[int, ...]:
        return tile_starts(length, size, min(overlap, size - multiple), border, multiple)

    def axis(length: int) -> tuple[int, tuple[int, ...]]:
        span = length + 2 * border
        size = min(tile, _round_up(span, multiple))
        if span > size:
            n = len(starts(length, size))
            # the smallest side with which as many tiles still cover the span
            while (
                size - multiple - overlap >= multiple and len(starts(length, size - multiple)) <= n
            ):
                size -= multiple
        return size, starts(length, size)

    tile_h, rows = axis(height)
    tile_w, cols = axis(width)
    return TilePlan(height, width, tile_h, tile_w, overlap, border, rows, cols)


def blend_weights_1d(size: int, ramp: int) -> npt.NDArray[np.float32]:
    """Cosine ramp weights along one axis: rising over ``ramp`` pixels at each end, 1 inside.

    Every weight is strictly positive, so every pixel of a tile contributes.

    Args:
        size: Tile length.
        ramp: Length of each ramp in pixels (usually the overlap); 0 gives flat weights.

    Returns:
        float32 weights of shape (size,).
    """
    pos = np.arange(size, dtype=np.float64) + 0.5
    dist = np.minimum(pos, size - pos)
    if ramp <= 0:
        return np.ones(size, dtype=np.float32)
    t = np.clip(dist / ramp, 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)


def coverage_weights_1d(
    length: int, starts: tuple[int, ...], size: int, ramp: int
) -> npt.NDArray[np.float32]:
    """Sum of the 1-D blending weights of every tile over each scene pixel along one axis.

    Because tile weights are separable and the tiles form a regular grid, the total
    weight at scene pixel (y, x) is ``rows[y] * cols[x]``: the normaliser never needs a
    full-size accumulator.

    Args:
        length: Scene length along the axis.
        starts: Tile starts along the axis.
        size: Tile length along the axis.
        ramp: Ramp length used for the tile weights.

    Returns:
        float32 array of shape (length,), strictly positive where a tile covers.
    """
    total = np.zeros(length, dtype=np.float64)
    w = blend_weights_1d(size, ramp).astype(np.float64)
    for s in starts:
        lo, hi = max(s, 0), min(s + size, length)
        if hi > lo:
            total[lo:hi] += w[lo - s : hi - s]
    return total.astype(np.float32)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
