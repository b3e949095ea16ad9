"""From a stitched probability raster to building footprints, in bounded memory.

The raster is read in overlapping row windows: a core strip plus a halo above and below.
In each window the building mask is split into instances: 4-connected regions, or, when
the model has a ``body`` channel (building interiors) and/or a ``contact`` channel (pixels
between touching buildings), a marker-based watershed whose seeds are the body pixels away
from contacts. An instance belongs
to the strip that holds its top row; if it reaches the window's edge the window grows
until it does not, so every footprint is vectorised whole, exactly once, and none is cut
at a seam. Each instance becomes one polygon in pixel coordinates (exact integers) with
its pixel count and probability sum; polygons are then filtered by area, their small
holes filled, simplified, georeferenced and given an area in square metres and a
confidence (mean probability inside).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import rasterio
import rasterio.features
import shapely
from affine import Affine
from scipy import ndimage
from shapely.geometry import Polygon, shape

from geounet.errors import InputError
from geounet.raster import GDAL_CACHE_BYTES, atomic_path, ground_pixel_size_m
from geounet.styles import style_footprints

LAYER = "buildings"

SPLIT_CHANNELS = ("body", "contact")
"""Output channels, besides ``building``, that split touching buildings (see
:func:`label_instances`)."""


@dataclass(frozen=True)
class Piece:
    """One building instance, in scene pixel coordinates."""

    geometry: Polygon
    pixels: int
    prob_sum: float


def label_instances(
    prob: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    threshold: float,
    contact: npt.NDArray[np.float32] | None = None,
    contact_threshold: float = 0.5,
    min_seed_pixels: int = 4,
    body: npt.NDArray[np.float32] | None = None,
    body_threshold: float = 0.5,
) -> tuple[npt.NDArray[np.int32], int]:
    """Split the building mask of a window into instances.

    Without split channels, instances are the 4-connected regions of the mask. With a
    ``body`` channel (building interiors, shrunk away from outlines and neighbours) and/or
    a ``contact`` channel (pixels between touching buildings), seeds are the building
    pixels that are body (``body >= body_threshold``) and not contact
    (``contact < contact_threshold``), as 4-connected regions of at least
    ``min_seed_pixels``; a marker-based watershed over the building probability grows them
    to the whole mask. Cuts happen only where the model separates bodies or sees a
    contact, so one roof with one body stays whole. Building regions without a seed stay
    one instance each.

    Args:
        prob: Building probabilities, shape (rows, cols).
        valid: Validity mask (False = no data, never a building).
        threshold: A pixel is a building where ``prob >= threshold``.
        contact: Contact probabilities, or ``None``.
        contact_threshold: Contact probability at or above which a pixel is a border.
        min_seed_pixels: Smaller seeds are ignored (their pixels join a neighbour).
        body: Body probabilities, or ``None``.
        body_threshold: Body probability at or above which a pixel can seed a building.

    Returns:
        ``(labels, n)``: int32 labels 1..n (0 = background) and the number of instances.
    """
    mask = (prob >= threshold) & valid
    if contact is None and body is None:
        labels, n = ndimage.label(mask)
        return labels.astype(np.int32), int(n)
    from skimage.segmentation import watershed

    seed_mask = mask.copy()
    if body is not None:
        seed_mask &= body >= body_threshold
    if contact is not None:
        seed_mask &= contact < contact_threshold
    seeds, n_seeds = ndimage.label(seed_mask)
    if n_seeds:
        sizes = np.bincount(seeds.ravel(), minlength=n_seeds + 1)
        small = sizes < min_seed_pixels
        small[0] = True
        seeds[small[seeds]] = 0
    labels = watershed(-prob, markers=seeds, mask=mask, connectivity=1).astype(np.int32)
    orphans, n_orphans = ndimage.label(mask & (labels == 0))
    if n_orphans:
        labels[orphans > 0] = orphans[orphans > 0] + labels.max()
    # renumber 1..n
    used = np.unique(labels)
    used = used[used > 0]
    lut = np.zeros(int(labels.max()) + 1, dtype=np.int32)
    lut[used] = np.arange(1, len(used) + 1, dtype=np.int32)
    return lut[labels], len(used)


def window_pieces(
    prob: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    contact: npt.NDArray[np.float32] | None,
    window_top: int,
    core: tuple[int, int],
    at_bottom: bool,
    threshold: float,
    contact_threshold: float = 0.5,
    min_seed_pixels: int = 4,
    body: npt.NDArray[np.float32] | None = None,
    body_threshold: float = 0.5,
) -> list[Piece] | None:
    """Polygonise the instances of a window whose top row lies in the core strip.

    Args:
        prob: Building probabilities of the window.
        valid: Validity of the window.
        contact: Contact probabilities of the window, or ``None``.
        window_top: Scene row of the window's first row.
        core: ``(first, stop)`` scene rows of the core strip.
        at_bottom: Whether the window reaches the scene's last row.
        threshold: Building probability threshold.
        contact_threshold: Contact probability threshold.
        min_seed_pixels: Smallest watershed seed.
        body: Body probabilities of the window, or ``None``.
        body_threshold: Body probability threshold.

    Returns:
        The pieces, or ``None`` if one of them reaches the window's bottom edge before
        the scene ends (the caller retries with a taller window).
    """
    labels, n = label_instances(
        prob, valid, threshold, contact, contact_threshold, min_seed_pixels, body, body_threshold
    )
    if n == 0:
        return []
    boxes = ndimage.find_objects(labels)
    keep = np.zeros(n + 1, dtype=bool)
    for i, box in enumerate(boxes, start=1):
        if box is None:
            continue
        first = box[0].start + window_top
        if core[0] <= first < core[1]:
            if box[0].stop == labels.shape[0] and not at_bottom:
                return None
            keep[i] = True
    if not keep.any():
        return []
    index = np.flatnonzero(keep)
    counts = ndimage.sum_labels(np.ones_like(prob), labels, index)
    sums = ndimage.sum_labels(prob, labels, index)
    stats = {int(i): (int(c), float(v)) for i, c, v in zip(index, counts, sums, strict=True)}
    selected = keep[labels]
    pieces = []
    for geom, value in rasterio.features.shapes(
        labels, mask=selected, connectivity=4, transform=Affine.translation(0, window_top)
    ):
        count, total = stats[int(value)]
        pieces.append(Piece(geometry=shape(geom), pixels=count, prob_sum=total))
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
    simplify_m: float = 0.11,
    strip_rows: int = 2048,
    advance: Callable[[int], None] | None = None,
    regularize: bool = False,
    split: tuple[str | Path, dict[str, int]] | None = None,
    contact_threshold: float = 0.5,
    halo_rows: int = 256,
    body_threshold: float = 0.5,
) -> gpd.GeoDataFrame:
    """Turn a probability raster into building footprints.

    Args:
        prob_path: Probability raster (uint8 = probability * 255, or float32), single band,
            no data marked by its mask.
        threshold: Probability at or above which a pixel is a building.
        min_area_m2: Footprints (and holes) smaller than this, in square metres, are dropped.
        simplify_m: Simplification tolerance in ground metres (Douglas-Peucker, topology
            preserved; 0 disables it). The default, 0.11 m, is 0.75 px at the bundled
            model's 0.149 m pixels, above the 0.71 px (1/sqrt(2)) needed to smooth the
            pixel staircase of 45 degree edges.
        strip_rows: Rows read per strip (bounds memory to strip_rows x width).
        advance: Called with the number of rows done after each strip (progress).
        regularize: Square the footprints (edges aligned to right angles, with
            buildingregulariser).
        split: ``(raster, {channel: band})``: the model's ``body`` and/or ``contact``
            probabilities on the same grid (bands 1-based), to split touching buildings by
            watershed; ``None`` splits by connectivity.
        contact_threshold: Contact probability at or above which a pixel is a border.
        halo_rows: Rows read above and below each strip (grown when a building is taller).
        body_threshold: Body probability at or above which a pixel seeds a building.

    Returns:
        Footprints in the raster's CRS with columns ``id``, ``area_m2``, ``confidence``
        and ``geometry``, ordered top to bottom.
    """
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
        scale = 1.0 / 255.0 if src.dtypes[0] == "uint8" else 1.0
        px_m = ground_pixel_size_m(src)
        transform, crs, height, width = src.transform, src.crs, src.height, src.width
        min_pixels = min_area_m2 / (px_m * px_m)
        min_seed = max(4, int(min_pixels / 4))
        pieces: list[Piece] = []
        for top in range(0, height, strip_rows):
            bottom = min(top + strip_rows, height)
            grow = halo_rows
            while True:
                w0, w1 = max(0, top - grow), min(height, bottom + grow)
                win = rasterio.windows.Window(0, w0, width, w1 - w0)
                prob = src.read(1, window=win).astype(np.float32) * np.float32(scale)
                valid = src.read_masks(1, window=win) > 0
                aux: dict[str, npt.NDArray[np.float32]] = {}
                if ssrc is not None:
                    for name, band in channels.items():
                        raw = ssrc.read(band, window=win).astype(np.float32)
                        aux[name] = raw / 255.0 if ssrc.dtypes[0] == "uint8" else raw
                found = window_pieces(
                    prob, valid, aux.get("contact"), w0, (top, bottom), w1 == height,
                    threshold, contact_threshold, min_seed, aux.get("body"), body_threshold,
                )  # fmt: skip
                if found is not None:
                    break
                grow *= 2  # a building taller than the halo: look further
            pieces.extend(found)
            if advance:
                advance(bottom - top)
    pieces = [p for p in pieces if p.pixels >= min_pixels]
    geoms = [fill_small_holes(p.geometry, min_pixels) for p in pieces]
    if simplify_m > 0:  # geometries are still in pixel coordinates here
        tolerance_px = simplify_m / px_m
        geoms = [g.simplify(tolerance_px, preserve_topology=True) for g in geoms]
    a = transform
    matrix = [a.a, a.b, a.d, a.e, a.c, a.f]
    geoms = [shapely.affinity.affine_transform(g, matrix) for g in geoms]
    conf = [p.prob_sum / p.pixels for p in pieces]
    gdf = gpd.GeoDataFrame(
        {"confidence": np.asarray(conf, dtype=np.float64)}, geometry=geoms, crs=crs
    )
    if regularize and len(gdf):
        gdf = regularize_footprints(gdf, pixel=abs(a.a))
    if len(gdf):
        order = np.lexsort(
            (gdf.geometry.bounds["minx"].to_numpy(), -gdf.geometry.bounds["maxy"].to_numpy())
        )
        gdf = gdf.iloc[order].reset_index(drop=True)
    gdf.insert(0, "id", np.arange(1, len(gdf) + 1, dtype=np.int64))
    gdf.insert(1, "area_m2", area_m2(gdf))
    return gdf


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


def regularize_footprints(gdf: gpd.GeoDataFrame, pixel: float) -> gpd.GeoDataFrame:
    """Align footprint edges to right angles (and 45 degrees) with buildingregulariser.

    Tolerances are in pixels, so the result does not depend on the CRS units: the
    pixel staircase is simplified away at 1.5 px and nearly parallel edges closer than
    2 px are merged.

    Args:
        gdf: Footprints in a projected CRS.
        pixel: Pixel size in CRS units.

    Returns:
        The footprints with regular outlines; attributes are kept.
    """
    from buildingregulariser import regularize_geodataframe

    out = regularize_geodataframe(
        gdf, parallel_threshold=2.0 * pixel, simplify_tolerance=1.5 * pixel, num_cores=1
    )
    out = out[~out.geometry.is_empty & out.geometry.notna()]
    return gpd.GeoDataFrame(out.reset_index(drop=True), geometry="geometry", crs=gdf.crs)


def area_m2(gdf: gpd.GeoDataFrame) -> pd.Series:
    """Ground area of each geometry in square metres, measured in the local UTM zone."""
    if gdf.empty:
        return pd.Series([], dtype=np.float64, index=gdf.index)
    utm = gdf.estimate_utm_crs()
    return gdf.geometry.to_crs(utm).area.astype(np.float64)


def write_footprints(gdf: gpd.GeoDataFrame, path: Path) -> None:
    """Write footprints as the GeoPackage layer ``buildings`` with its QGIS style, atomically."""
    with atomic_path(path) as tmp:
        gdf.to_file(tmp, layer=LAYER, driver="GPKG", engine="pyogrio")
        style_footprints(tmp, LAYER)
