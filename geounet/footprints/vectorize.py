"""From a stitched probability raster to building footprints, in bounded memory.

The raster is read in square blocks, each with a halo around it. In each window the
building mask is split into instances: its 4-connected components, or, when the model has
a ``body`` channel (building interiors) and/or a ``contact`` channel (pixels between
touching buildings), components holding several seeds (body pixels away from contacts)
are divided among them by a marker-based watershed. A component belongs to the block that
holds its first pixel in raster order; if it reaches the window's edge the window grows
until it does not, so every footprint is vectorised whole, exactly once, and none is cut
at a seam. Each instance becomes one polygon in pixel coordinates (exact integers) with
its pixel count and probability sum; polygons are then filtered by area, their small
holes filled, simplified, georeferenced and given an area in square metres and a
confidence (mean probability inside).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import rasterio
import rasterio.features
import shapely
from affine import Affine
from rasterio.transform import array_bounds
from rasterio.windows import Window
from scipy import ndimage
from shapely.geometry import Polygon, shape

from geounet.core.codec import PROBABILITY_SCALE, uint8_table
from geounet.core.instances import split_instances
from geounet.core.resampling import detail_scale
from geounet.core.shape import corners
from geounet.core.threads import joined_pool
from geounet.core.thresholds import DEFAULT_SEED_AREA_M2
from geounet.errors import InputError
from geounet.footprints import SIMPLIFY_M
from geounet.footprints.alignment import align_to_neighbours
from geounet.footprints.corners import square_cut_corners_that_fit
from geounet.footprints.geometry import iou as polygon_iou
from geounet.footprints.geometry import largest_polygon, snap_onto
from geounet.footprints.slivers import tidy_cut
from geounet.footprints.walls import fit_walls
from geounet.io import layers
from geounet.io.atomic import atomic_path
from geounet.io.raster import GDAL_CACHE_BYTES, ground_pixel_size_m
from geounet.io.styles import style_footprints

LAYER = layers.FOOTPRINTS


_POLYGONIZE_LOCK = threading.Lock()
"""rasterio's in-memory datasets for polygonising are created one thread at a time (done
concurrently, they raise spurious NotGeoreferencedWarnings)."""

SPLIT_CHANNELS = ("body", "contact")

"""Output channels, besides ``building``, that split touching buildings (see
:func:`geounet.core.instances.label_instances`)."""

OUTLINES_TAG = "GEOUNET_OUTLINES"
"""Footprint layers' metadata item saying how the outlines were drawn: ``squared``
(:func:`regularize_footprints`) or ``traced`` (``--no-regularize``)."""


def outline_tags(squared: bool) -> dict[str, str]:
    """The footprint layer's metadata item :data:`OUTLINES_TAG`."""
    return {OUTLINES_TAG: "squared" if squared else "traced"}


@dataclass(frozen=True)
class Piece:
    """One building instance, in scene pixel coordinates."""

    geometry: Polygon
    pixels: int
    prob_sum: float


def size_limits(
    min_area_m2: float, px_m: float, seed_area_m2: float = DEFAULT_SEED_AREA_M2
) -> tuple[float, int]:
    """The smallest footprint and the smallest seed that vectorising keeps, in pixels.

    Args:
        min_area_m2: Smallest footprint kept, in square metres (``--min-area``).
        px_m: Ground size of a pixel, in metres.
        seed_area_m2: Smallest seed that starts a footprint of its own, in square metres
            (the model card's ``seed_area_m2``).

    Returns:
        ``(min_pixels, min_seed)``: footprints (and holes) of fewer pixels are dropped
        (filled); seeds of fewer pixels (at least 4) do not start a footprint of their own.
    """
    pixel_area = px_m * px_m
    return min_area_m2 / pixel_area, max(4, int(seed_area_m2 / pixel_area))


@dataclass(frozen=True)
class Block:
    """A core block of the scene, in scene pixels: ``rows`` and ``cols`` are (start, stop)."""

    rows: tuple[int, int]
    cols: tuple[int, int]


def owned_components(
    comps: npt.NDArray[np.int32],
    n: int,
    origin: tuple[int, int],
    block: Block,
    scene_shape: tuple[int, int],
) -> npt.NDArray[np.bool_] | None:
    """Which components of a window the core block owns, or ``None`` to read a larger window.

    A component belongs to the block that holds its first pixel in raster order, so
    every component has exactly one owner. A component that reaches the window's edge
    (where the scene goes on) may be cut: if its first pixel lies in the core, the
    window is too small (``None``); otherwise its first pixel in the window is not in the
    core, and neither is the whole component's, so another block owns it.

    Args:
        comps: Component labels of the window, 1..n.
        n: Number of components.
        origin: Scene (row, col) of the window's first pixel.
        block: The core block.
        scene_shape: Scene (rows, cols).

    Returns:
        A boolean array indexed by label (index 0 is background, never owned).
    """
    owned = np.zeros(n + 1, dtype=bool)
    (r0, c0), (h, w) = origin, comps.shape
    open_top, open_left = r0 > 0, c0 > 0
    open_bottom, open_right = r0 + h < scene_shape[0], c0 + w < scene_shape[1]
    for label, box in enumerate(ndimage.find_objects(comps, max_label=n), start=1):
        if box is None:
            continue
        rows, cols = box
        first_row = rows.start + r0
        if not block.rows[0] <= first_row < block.rows[1]:
            continue
        first_col = cols.start + c0 + int(np.argmax(comps[rows.start, cols] == label))
        if not block.cols[0] <= first_col < block.cols[1]:
            continue
        if (
            (open_top and rows.start == 0)
            or (open_left and cols.start == 0)
            or (open_bottom and rows.stop == h)
            or (open_right and cols.stop == w)
        ):
            return None
        owned[label] = True
    return owned


def window_pieces(
    labels: npt.NDArray[np.int32],
    comps: npt.NDArray[np.int32],
    owned: npt.NDArray[np.bool_],
    prob: npt.NDArray[Any],
    origin: tuple[int, int],
    min_pixels: float = 0,
) -> list[Piece]:
    """Polygonise the instances of a window that lie in its owned components.

    Args:
        labels: Instance labels of the window (0 = background).
        comps: Component labels of the window (each instance lies inside one component).
        owned: Owned components, indexed by component label.
        prob: Building probabilities of the window (any scale: sums are in its units).
        origin: Scene (row, col) of the window's first pixel.
        min_pixels: Instances of fewer pixels are skipped.

    Returns:
        One piece per owned instance of at least ``min_pixels``, in scene pixel
        coordinates.
    """
    selected = owned[comps]
    if not selected.any():
        return []
    n = int(labels.max())
    flat = labels[selected]
    counts = np.bincount(flat, minlength=n + 1)
    if min_pixels > 0:
        selected &= (counts >= min_pixels)[labels]
        if not selected.any():
            return []
    sums = np.bincount(labels[selected], weights=prob[selected], minlength=n + 1)
    # rasterio warns that an identity transform is "not georeferenced": the window at the
    # scene's origin is polygonised one row down and moved back
    row, col = origin
    nudge = 1 if (row, col) == (0, 0) else 0
    shift = Affine.translation(col, row + nudge)
    with _POLYGONIZE_LOCK:
        shapes = list(
            rasterio.features.shapes(labels, mask=selected, connectivity=4, transform=shift)
        )
    pieces = [
        Piece(geometry=shape(geom), pixels=int(counts[int(v)]), prob_sum=float(sums[int(v)]))
        for geom, v in shapes
    ]
    if nudge:
        pieces = [
            Piece(shapely.transform(p.geometry, lambda xy: xy - [0, nudge]), p.pixels, p.prob_sum)
            for p in pieces
        ]
    return pieces


def fill_small_holes(geom: Polygon, min_hole: float) -> Polygon:
    """Drop interior rings smaller than ``min_hole`` (in the geometry's units squared)."""
    if not geom.interiors:
        return geom
    holes = [r for r in geom.interiors if Polygon(r).area >= min_hole]
    return Polygon(geom.exterior, holes)


def vectorize(
    prob_path: str | Path,
    threshold: float = 0.5,
    min_area_m2: float = 2.0,
    simplify_m: float = SIMPLIFY_M,
    block: int = 1024,
    advance: Callable[[int], None] | None = None,
    regularize: bool = False,
    split: tuple[str | Path, dict[str, int]] | None = None,
    contact_threshold: float = 0.5,
    halo: int = 128,
    body_threshold: float = 0.5,
    threads: int | None = None,
    model_pixel_m: float | None = None,
    seed_area_m2: float = DEFAULT_SEED_AREA_M2,
    min_confidence: float = 0.0,
    advance_squared: Callable[[int, int], None] | None = None,
) -> gpd.GeoDataFrame:
    """Turn a probability raster into building footprints, block by block.

    The scene is cut into square core blocks; each is read with a halo around it, its
    building mask split into instances (:func:`split_instances`), and the components
    whose first pixel lies in the core are polygonised (:func:`owned_components`). A
    component cut by the window's edge makes the window grow until it is whole, so every
    footprint is vectorised whole, exactly once, and none is cut at a seam. Memory is
    bounded by one window (``block + 2 * halo`` square, times a few bytes per pixel)
    whatever the scene's size, unless a single building is larger.

    Args:
        prob_path: Probability raster (uint8 = probability * 255, or float32), single band,
            no data marked by its mask.
        threshold: Probability at or above which a pixel is a building.
        min_area_m2: Footprints (and holes) smaller than this, in square metres, are dropped.
        simplify_m: Simplification tolerance in ground metres (0 disables it): see
            :data:`SIMPLIFY_M`.
        block: Side of the core blocks in pixels.
        advance: Called with the number of rows done after each row of blocks (progress).
        regularize: Square the footprints (:func:`square_footprints`: walls at right
            angles, few corners, touching ones cut apart), as ``geounet predict`` does by
            default; ``False`` keeps the outlines as traced. A raster in degrees is
            squared in its UTM zone (right angles on the ground, not in degrees).
        split: ``(raster, {channel: band})``: the model's ``body`` and/or ``contact``
            probabilities on the same grid (bands 1-based), to split touching buildings by
            watershed; ``None`` splits by connectivity.
        contact_threshold: Contact probability at or above which a pixel is a border.
        halo: Pixels read around each block (doubled while a building is cut by it).
        body_threshold: Body probability at or above which a pixel seeds a building.
        threads: Blocks vectorised at once (default: :func:`default_threads`).
        model_pixel_m: Ground pixel of the model that made the probabilities, in metres
            (``None``: the raster's). Where the raster is finer (a scene predicted on
            the model's grid and resampled back), footprints are squared at the model's
            pixel (:func:`~geounet.core.resampling.detail_scale`), so ``regularize``
            does the same on a 7.5 cm scene as on a 15 cm one.
        seed_area_m2: Smallest seed that starts a footprint of its own when ``split``
            divides touching buildings, in square metres (the model card's).
        min_confidence: Footprints whose confidence (mean building probability of
            their pixels) is below this are dropped (the model card's; 0 keeps all).
        advance_squared: Called with ``(footprints squared, footprints to square)`` as
            squaring goes on (progress).

    Returns:
        Footprints in the raster's CRS with columns ``id``, ``area_m2``, ``confidence``
        and ``geometry``, ordered top to bottom.
    """
    if block < 1 or halo < 1:
        raise ValueError(f"block ({block}) and halo ({halo}) must be positive")
    with (
        rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES),
        rasterio.open(prob_path) as src,
        rasterio.open(split[0]) if split else nullcontext() as ssrc,
    ):
        channels = split[1] if split else {}
        if unknown := set(channels) - set(SPLIT_CHANNELS):
            raise InputError(f"unknown split channel(s) {sorted(unknown)}; use body, contact")
        if ssrc is not None and (ssrc.shape, ssrc.transform) != (src.shape, src.transform):
            raise InputError(
                f"the split raster {split and split[0]} is not on the grid of {prob_path}; "
                "pass the pair written by the same geounet predict run"
            )
        px_m = ground_pixel_size_m(src)
        transform, crs, height, width = src.transform, src.crs, src.height, src.width
        min_pixels, min_seed = size_limits(min_area_m2, px_m, seed_area_m2)
        blocks = _Blocks(
            prob_path, split[0] if split else None, channels, (height, width), halo,
            (threshold, body_threshold, contact_threshold), min_pixels, min_seed,
            simplify_m / px_m,
        )  # fmt: skip
        cores = [
            Block((top, min(top + block, height)), (left, min(left + block, width)))
            for top in range(0, height, block)
            for left in range(0, width, block)
        ]
        pieces: list[Piece] = []
        # GDAL reads, labelling, watershed and polygonising release the GIL: blocks run
        # on every core, each thread with its own dataset handles
        # on an error or Ctrl-C, blocks not started are dropped; the running ones finish
        # before their dataset handles are closed
        with blocks, joined_pool(threads or default_threads(), "geounet-vectorise") as pool:
            for core, found in zip(cores, pool.map(blocks.pieces, cores), strict=True):
                pieces.extend(found)
                if advance and core.cols[1] == width:
                    advance(core.rows[1] - core.rows[0])
    geoms = np.array([p.geometry for p in pieces], dtype=object)
    a = transform
    geoms = shapely.transform(
        geoms, lambda xy: np.column_stack([a.a * xy[:, 0] + a.b * xy[:, 1] + a.c,
                                           a.d * xy[:, 0] + a.e * xy[:, 1] + a.f])
    )  # fmt: skip
    conf = np.asarray([p.prob_sum / p.pixels for p in pieces], dtype=np.float64)
    if min_confidence > 0:
        keep = conf >= min_confidence
        geoms, conf = geoms[keep], conf[keep]
    gdf = gpd.GeoDataFrame({"confidence": conf}, geometry=geoms, crs=crs)
    if regularize and len(gdf):
        total = len(gdf)
        done = None if advance_squared is None else lambda n: advance_squared(n, total)
        if gdf.crs is not None and gdf.crs.is_geographic:
            # a right angle in degrees is not one on the ground: square in metres
            local = gdf.estimate_utm_crs()
            pixel = px_m * detail_scale(px_m, model_pixel_m)
            gdf = square_footprints(gdf.to_crs(local), pixel, advance=done).to_crs(crs)
        else:
            pixel = abs(a.a) * detail_scale(px_m, model_pixel_m)
            gdf = square_footprints(gdf, pixel, advance=done)
        gdf = clip_to_extent(gdf, array_bounds(height, width, transform))
    if len(gdf):
        order = np.lexsort(
            (gdf.geometry.bounds["minx"].to_numpy(), -gdf.geometry.bounds["maxy"].to_numpy())
        )
        gdf = gdf.iloc[order].reset_index(drop=True)
    gdf.insert(0, "id", np.arange(1, len(gdf) + 1, dtype=np.int64))
    gdf.insert(1, "area_m2", area_m2(gdf))
    return gdf


class _Thresholded:
    """Reads one band of a probability raster and thresholds it, in its own dtype.

    uint8 rasters (probability * 255) are compared through a 256-entry table of their
    decoded probabilities (:func:`geounet.core.codec.uint8_table`).
    """

    def __init__(self, src: Any, band: int, threshold: float, above: bool):
        self.src, self.band, self.above = src, band, above
        self.threshold = threshold
        self.uint8 = src.dtypes[band - 1] == "uint8"
        self.scale = PROBABILITY_SCALE if self.uint8 else 1.0
        values = uint8_table()
        self.table = values >= threshold if above else values < threshold

    def read(self, window: Window) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
        """The raw values of a window and where they pass the threshold."""
        raw = self.src.read(self.band, window=window)
        if self.uint8:
            return raw, self.table[raw]
        return raw, (raw >= self.threshold) if self.above else (raw < self.threshold)

    def elevation(self, raw: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Watershed elevation: low where the probability is high."""
        return 255 - raw if self.uint8 else -raw


def default_threads() -> int:
    """Threads that vectorise blocks at once: one per available core, at most 4.

    Each thread holds one window in memory.
    """
    return max(1, min(4, len(os.sched_getaffinity(0))))


class _Blocks:
    """Vectorises core blocks of a raster; safe to call from several threads.

    Each thread opens its own dataset handles (a rasterio handle must not be shared).

    Args:
        prob_path: The building probability raster.
        split_path: The raster of split channels, or ``None``.
        channels: ``{channel: band}`` of the split raster.
        shape: Scene (rows, cols).
        halo: Pixels read around each block at first.
        thresholds: Building, body and contact thresholds.
        min_pixels: Smallest instance (and hole) kept, in pixels.
        min_seed: Smallest watershed seed, in pixels.
        simplify_px: Simplification tolerance in pixels (0 disables it).
    """

    def __init__(
        self,
        prob_path: str | Path,
        split_path: str | Path | None,
        channels: dict[str, int],
        shape: tuple[int, int],
        halo: int,
        thresholds: tuple[float, float, float],
        min_pixels: float,
        min_seed: int,
        simplify_px: float,
    ):
        self.prob_path, self.split_path, self.channels = prob_path, split_path, channels
        self.shape, self.halo, self.thresholds = shape, halo, thresholds
        self.min_pixels, self.min_seed, self.simplify_px = min_pixels, min_seed, simplify_px
        self.local = threading.local()
        self.opened: list[Any] = []
        self.lock = threading.Lock()

    def __enter__(self) -> _Blocks:
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.opened:
            handle.close()

    def _readers(self) -> tuple[Any, _Thresholded, list[_Thresholded]]:
        if not hasattr(self.local, "readers"):
            threshold, body_threshold, contact_threshold = self.thresholds
            src = rasterio.open(self.prob_path)
            handles = [src]
            seeds = []
            if self.split_path is not None:
                ssrc = rasterio.open(self.split_path)
                handles.append(ssrc)
                seeds = [
                    _Thresholded(ssrc, band, body_threshold, above=True)
                    if name == "body"
                    else _Thresholded(ssrc, band, contact_threshold, above=False)
                    for name, band in self.channels.items()
                ]
            with self.lock:
                self.opened.extend(handles)
            self.local.readers = (src, _Thresholded(src, 1, threshold, above=True), seeds)
        return self.local.readers

    def pieces(self, core: Block) -> list[Piece]:
        """The footprints (in pixel coordinates) whose first pixel lies in ``core``."""
        src, building, seeds = self._readers()
        height, width = self.shape
        grow = self.halo
        while True:
            r0, c0 = max(0, core.rows[0] - grow), max(0, core.cols[0] - grow)
            r1, c1 = min(height, core.rows[1] + grow), min(width, core.cols[1] + grow)
            win = Window(c0, r0, c1 - c0, r1 - r0)
            raw, mask = building.read(win)
            mask &= src.read_masks(1, window=win) > 0
            comps, n = ndimage.label(mask, output=np.int32)
            owned = owned_components(comps, n, (r0, c0), core, self.shape)
            if owned is not None:
                break
            grow *= 2  # a building cut by the window: look further
        if not owned.any():
            return []
        labels = comps
        if seeds:
            seed_mask = np.logical_and.reduce([channel.read(win)[1] for channel in seeds])
            # split only the owned components: the others are another block's
            mine = owned[comps]
            labels, _ = split_instances(
                mask & mine, seed_mask, building.elevation(raw), self.min_seed,
                components=(np.where(mine, comps, 0), n),
            )  # fmt: skip
        found = window_pieces(labels, comps, owned, raw, (r0, c0), self.min_pixels)
        # finished here, per block: only simplified outlines pile up, not pixel staircases
        geoms = np.array([p.geometry for p in found], dtype=object)
        holed = np.flatnonzero(shapely.get_num_interior_rings(geoms) > 0)
        geoms[holed] = [fill_small_holes(g, self.min_pixels) for g in geoms[holed]]
        if self.simplify_px > 0 and len(geoms):
            # as one coverage: roofs that share a wall keep sharing it, without gaps or
            # overlaps (each outline simplified alone would move the wall twice)
            geoms = shapely.coverage_simplify(geoms, self.simplify_px)
        return [
            Piece(g, p.pixels, p.prob_sum * building.scale)
            for g, p in zip(geoms, found, strict=True)
        ]


def split_bands(path: str | Path) -> dict[str, int]:
    """The split channels of a ``<stem>.split.tif``, by band description.

    Args:
        path: A raster written by ``geounet predict --no-footprints`` for a model with
            ``body`` and/or ``contact`` channels (band descriptions ``body probability``,
            ``contact probability``).

    Returns:
        ``{channel: band}`` (bands 1-based).

    Raises:
        InputError: If the raster names no split channel.
    """
    with rasterio.open(path) as src:
        descriptions = src.descriptions
    found = {
        d.removesuffix(" probability"): i
        for i, d in enumerate(descriptions, start=1)
        if d and d.removesuffix(" probability") in SPLIT_CHANNELS
    }
    if not found:
        raise InputError(
            f"{path} has no body or contact band; pass the .split.tif of geounet predict"
        )
    return found


SQUARING_TOLERANCES_PX: tuple[float, ...] = (8.0, 5.5, 4.0, 3.0)
"""Simplification tolerances (model pixels) squaring tries, coarsest first."""

SQUARING_FIT = 0.85
"""The IoU with its traced outline at which a squared outline is kept (see
:func:`regularize_footprints`)."""

LIBRARY_GAVE_UP = "(Regularized polygon has low IoU|Error creating regularized polygon)"
"""The start of buildingregulariser's warnings when it returns an outline unsquared."""

NEIGHBOUR_ROTATION_DEG = 10.0
"""How far a squared outline may turn to its touching neighbours' direction (see
:func:`regularize_footprints`; 5 until the smallest seed was chosen, 2026-12-05)."""

WALL_REACH_PX = 1.0
"""How far each squared wall may move onto its roof, in model pixels (see
:func:`regularize_footprints`; 0, walls not moved, until 2026-12-05)."""


def regularize_footprints(
    gdf: gpd.GeoDataFrame,
    pixel: float,
    tolerances_px: Sequence[float] = SQUARING_TOLERANCES_PX,
    fit: float = SQUARING_FIT,
    parallel_px: float = 4.0,
    allow_45: bool = True,
    allow_circles: bool = True,
    match_area: bool = True,
    wall_reach_px: float = WALL_REACH_PX,
    overlap_weight: float = 10.0,
    neighbour_rotation_deg: float = NEIGHBOUR_ROTATION_DEG,
    neighbour_reach_px: float = 2.0,
    wall_passes: int = 1,
    square_corners: bool = True,
    advance: Callable[[int], None] | None = None,
) -> gpd.GeoDataFrame:
    """Align footprint edges to right angles (and 45 degrees) with buildingregulariser.

    Tolerances are in pixels, so the result does not depend on the CRS units. The outline
    is first simplified (Douglas-Peucker), so that each wall is one edge before edges are
    aligned to the footprint's main direction: at too small a tolerance the alignment turns
    every leftover step of a slanted wall into a staircase of right angles, at too large a
    one it cuts off the wings of an L or a T. So each footprint is squared at the coarsest
    of ``tolerances_px`` whose squared outline overlaps its traced one with an IoU of at
    least ``fit`` (the fewest walls that still fit the roof), or the best fitting one.
    Simplifying cuts corners, so the squared walls are then moved out (or in) until the
    outline has its traced area again, and each squared outline turns, by up to
    ``neighbour_rotation_deg``, to the direction of the roofs it touches, so that the walls
    two roofs share are parallel and cutting them apart leaves right angles, and each wall
    moves, parallel to itself and by up to ``wall_reach_px``, to where the outline best
    overlaps its traced one, and a corner cut at 45 degrees becomes a right angle where the
    outline still fits. The defaults were chosen on the four places' validation strips
    (``scripts/footprint_shapes.py``): of the settings tried, the one with the highest
    object F1 among those with at most 1.5 corners per true corner and corners at most 10
    degrees off a right angle on average (on every strip, at equal object F1). Touching
    outlines can overlap afterwards; :func:`remove_overlaps` cuts them apart (snapping
    within half a pixel), and :func:`~geounet.footprints.slivers.tidy_cut` opens and
    closes away the teeth and notches the cut leaves.

    Args:
        gdf: Footprints in a projected CRS.
        pixel: Pixel size in CRS units.
        tolerances_px: Simplification tolerances before aligning, in pixels, tried in
            this order.
        fit: A squared outline whose IoU with its traced outline reaches this is kept;
            the next tolerance is tried on the others (0: the first tolerance for all).
        parallel_px: Nearly parallel edges closer than this merge, in pixels.
        allow_45: Allow edges at 45 degrees to the main direction.
        allow_circles: Replace nearly round outlines by circles.
        match_area: Move the walls of each squared outline in or out, all by the same
            distance (a mitred buffer, so right angles stay right), until its area is the
            traced outline's: simplifying cuts the corners of a roof, and squaring keeps
            the loss.
        wall_reach_px: Then move each wall of each squared outline, parallel to itself and
            at most this far (pixels, in quarter-pixel steps), to where the outline best
            overlaps the traced one (:func:`~geounet.footprints.walls.fit_walls`; 0: not).
        overlap_weight: How much wall fitting weighs the overlap with neighbours.
        neighbour_rotation_deg: Before walls are fitted, turn each squared outline by up
            to this many degrees to the main direction of the squared outlines within
            ``neighbour_reach_px`` (:func:`~geounet.footprints.alignment.align_to_neighbours`;
            0: not), so that the walls touching roofs share are parallel.
        neighbour_reach_px: How far a neighbour may be, in pixels.
        wall_passes: Rounds of wall fitting over each outline's walls (a second round
            changed nothing on the strips and doubled the time, 2026-12-05).
        square_corners: Last, make each corner that squaring cut at 45 degrees (a wall
            at 45 degrees between two at right angles) a right angle, where the
            outline still fits its traced one by ``fit``
            (:func:`~geounet.footprints.corners.square_cut_corners_that_fit`; off until
            2026-12-06).
        advance: Called with the number of footprints done, as they are done
            (progress; they are ``len(gdf)`` in all).

    Returns:
        The footprints with regular outlines, in their order; attributes are kept. A
        footprint that no tolerance squares into one polygon keeps its traced outline,
        simplified at the finest tolerance.
    """
    from buildingregulariser import regularize_geodataframe

    traced = gdf.reset_index(drop=True)
    outlines = traced.geometry.to_numpy()
    chosen = outlines.copy()
    best = np.full(len(traced), -1.0)
    direction = np.zeros(len(traced))
    todo = np.arange(len(traced))
    for tolerance in tolerances_px:
        if not len(todo):
            break
        with warnings.catch_warnings():
            # where squaring fails, buildingregulariser warns and hands back the outline
            # as it came (its IoU 0): it is tried at the next tolerance instead
            warnings.filterwarnings("ignore", LIBRARY_GAVE_UP, UserWarning)
            out = regularize_geodataframe(
                gpd.GeoDataFrame({"_row": todo}, geometry=list(outlines[todo]), crs=gdf.crs),
                parallel_threshold=parallel_px * pixel,
                simplify_tolerance=tolerance * pixel,
                allow_45_degree=allow_45,
                allow_circles=allow_circles,
                num_cores=1,
                include_metadata=True,
            )
        out = out[~out.geometry.is_empty & out.geometry.notna() & (out["iou"] > 0)]
        out = out.dissolve("_row").reset_index()  # an outline squaring split: its parts joined
        out = out[out.geom_type == "Polygon"]
        rows, squared = out["_row"].to_numpy(), out.geometry.to_numpy()
        if match_area:
            squared = _area_matched(squared, outlines[rows])
        iou = polygon_iou(squared, outlines[rows])
        better = iou > best[rows]
        chosen[rows[better]] = squared[better]
        best[rows[better]] = iou[better]
        direction[rows[better]] = out["main_direction"].to_numpy(float)[better]
        todo = np.setdiff1d(todo, rows[iou >= fit])
    unsquared = best < 0
    squared_rows = np.flatnonzero(~unsquared)
    if neighbour_rotation_deg > 0:
        chosen[squared_rows], _ = align_to_neighbours(
            chosen[squared_rows], direction[squared_rows], neighbour_reach_px * pixel,
            neighbour_rotation_deg,
        )  # fmt: skip
    if wall_reach_px > 0:
        chosen[squared_rows] = fit_walls(
            chosen[squared_rows],
            outlines[squared_rows],
            wall_reach_px * pixel,
            pixel / 4,
            overlap_weight,
            wall_passes,
            advance,
        )
    if square_corners:
        chosen[squared_rows] = square_cut_corners_that_fit(
            chosen[squared_rows], outlines[squared_rows], fit
        )
    chosen[unsquared] = shapely.simplify(
        outlines[unsquared], min(tolerances_px) * pixel, preserve_topology=True
    )
    if advance is not None:  # the footprints that fit_walls did not count
        advance(len(traced) - (len(squared_rows) if wall_reach_px > 0 else 0))
    return gpd.GeoDataFrame(
        traced.drop(columns=traced.geometry.name), geometry=list(chosen), crs=gdf.crs
    )


def square_footprints(
    gdf: gpd.GeoDataFrame,
    pixel: float,
    advance: Callable[[int], None] | None = None,
    tidy: bool = True,
    **options: Any,
) -> gpd.GeoDataFrame:
    """Footprints squared as ``geounet predict`` squares them.

    :func:`regularize_footprints`, then :func:`remove_overlaps` (snapping within half a
    pixel), then :func:`~geounet.footprints.slivers.tidy_cut`.

    Args:
        gdf: Footprints in a projected CRS, with a ``confidence`` column.
        pixel: The model's pixel size in CRS units.
        advance: Progress, as :func:`regularize_footprints` reports it.
        tidy: Tidy the cut (``False``: as until 2026-12-06).
        **options: :func:`regularize_footprints`' settings, where not its defaults.

    Returns:
        The squared footprints, none overlapping another; attributes kept.
    """
    squared = regularize_footprints(gdf, pixel, advance=advance, **options)
    cut = remove_overlaps(squared, snap=pixel / 2)
    if not tidy:
        return cut
    return cut.set_geometry(list(tidy_cut(cut.geometry.to_numpy(), pixel)))


def _area_matched(
    squared: npt.NDArray[np.object_], traced: npt.NDArray[np.object_]
) -> npt.NDArray[np.object_]:
    """Each squared outline offset by (traced area - its area) / its perimeter, mitred."""
    offset = (shapely.area(traced) - shapely.area(squared)) / np.maximum(
        shapely.length(squared), 1e-12
    )
    moved = shapely.buffer(squared, offset, join_style="mitre", mitre_limit=10.0)
    ok = shapely.is_valid(moved) & ~shapely.is_empty(moved) & (shapely.get_type_id(moved) == 3)
    return np.where(ok, moved, squared)


def remove_overlaps(
    gdf: gpd.GeoDataFrame,
    snap: float = 0.0,
    add_vertices: bool = False,
    fewest_corners: bool = True,
) -> gpd.GeoDataFrame:
    """Cut the overlaps between footprints, so that touching ones share a wall.

    Squaring two touching outlines moves their shared wall twice, so they overlap. The
    footprints are placed by confidence (then by order), and each one that overlaps those
    placed before it is cut along their outlines, unless cutting them along its own
    outline instead leaves fewer corners in all (``fewest_corners``): where a wall of one
    crosses only part of the other's wall, cutting the other would leave a step in it.
    A footprint cut in pieces keeps its largest piece; one with nothing left is dropped.

    Args:
        gdf: Footprints with a ``confidence`` column.
        snap: Before a footprint is cut, its corners within this distance (CRS units) of
            the more confident outlines are moved onto them, so that walls meeting at a
            hair's breadth leave no notch, and walls that squaring left a hair's breadth
            apart touch again (0: no snapping). No corner is added
            (:func:`~geounet.footprints.geometry.snap_onto`).
        add_vertices: Snap with :func:`shapely.snap` instead, as the cut did until
            2026-12-06: it also adds the neighbours' corners within ``snap`` of a wall to
            it, a kink of a few degrees each (on the strips, corners further from right
            angles and object F1 no higher: ``scripts/footprint_shapes.py``).
        fewest_corners: Cut whichever side leaves fewer corners (``False``: always
            the less confident one, as until 2026-12-06).

    Returns:
        The footprints, none overlapping another; attributes kept.
    """
    geoms = np.asarray(gdf.geometry.to_list(), dtype=object)
    if len(geoms) < 2:
        return gdf
    tree = shapely.STRtree(geoms)
    order = np.argsort(-gdf["confidence"].to_numpy(), kind="stable")
    placed = np.zeros(len(geoms), dtype=bool)
    out = geoms.copy()

    def cut(geom: Polygon, cutter: shapely.Geometry) -> Polygon:
        if snap <= 0:
            mine = geom
        elif add_vertices:
            mine = shapely.make_valid(shapely.snap(geom, cutter, snap))
        else:
            mine = snap_onto(geom, cutter, snap)
        return largest_polygon(shapely.difference(mine, cutter))

    for i in order:
        near = tree.query(geoms[i], predicate="dwithin", distance=snap)  # 0: intersecting
        ahead = [j for j in near if placed[j]]
        if ahead:
            rest = cut(out[i], shapely.union_all(out[ahead]))
            crossed = [
                j for j in ahead if fewest_corners and shapely.intersection(out[j], out[i]).area
            ]
            if crossed:
                others = [cut(out[j], out[i]) for j in crossed]  # they yield instead
                theirs = sum(map(corners, others)) - sum(corners(out[j]) for j in crossed)
                mine = corners(rest) - corners(out[i])
                if theirs < mine and not any(g.is_empty for g in others):
                    out[crossed], rest = others, out[i]
            out[i] = rest
        placed[i] = True
    keep = ~shapely.is_empty(out)
    return gpd.GeoDataFrame(
        gdf[keep].reset_index(drop=True).drop(columns="geometry"),
        geometry=list(out[keep]),
        crs=gdf.crs,
    )


def clip_to_extent(
    gdf: gpd.GeoDataFrame, bounds: tuple[float, float, float, float]
) -> gpd.GeoDataFrame:
    """Footprints cut to a raster's extent (squaring can move a wall past its edge).

    Args:
        gdf: Footprints.
        bounds: ``(west, south, east, north)`` in their CRS.

    Returns:
        The footprints, each its largest part inside the extent; none left empty.
    """
    extent = shapely.box(*bounds)
    geoms = np.asarray(gdf.geometry.to_list(), dtype=object)
    out = ~shapely.covered_by(geoms, extent)
    if not out.any():
        return gdf
    geoms[out] = [largest_polygon(g) for g in shapely.intersection(geoms[out], extent)]
    keep = ~shapely.is_empty(geoms)
    return gpd.GeoDataFrame(
        gdf[keep].reset_index(drop=True).drop(columns=gdf.geometry.name),
        geometry=list(geoms[keep]),
        crs=gdf.crs,
    )


def area_m2(gdf: gpd.GeoDataFrame) -> pd.Series:
    """Ground area of each geometry in square metres, measured in the local UTM zone."""
    if gdf.empty:
        return pd.Series([], dtype=np.float64, index=gdf.index)
    utm = gdf.estimate_utm_crs()
    return gdf.geometry.to_crs(utm).area.astype(np.float64)


def write_footprints(
    gdf: gpd.GeoDataFrame,
    path: Path,
    overwrite: bool = True,
    metadata: dict[str, str] | None = None,
) -> None:
    """Write footprints as the GeoPackage layer ``buildings`` with its QGIS style, atomically.

    Args:
        gdf: The footprints.
        path: The GeoPackage.
        overwrite: Replace ``path`` if it exists (see :func:`~geounet.io.atomic.atomic_path`).
        metadata: Layer metadata items (the provenance of the footprints), stored with the
            GeoPackage metadata extension.
    """
    with atomic_path(path, overwrite=overwrite) as tmp:
        gdf.to_file(
            tmp,
            layer=LAYER,
            driver="GPKG",
            engine="pyogrio",
            dataset_options=layers.GPKG_OPTIONS,
            layer_metadata=metadata or None,
        )
        style_footprints(tmp, LAYER)
