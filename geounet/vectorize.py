"""From a stitched probability raster to building footprints, in bounded memory.

The raster is read in row strips. Each strip is thresholded and labelled (4-connected);
every labelled region becomes one polygon in pixel coordinates (exact integers), carrying
its pixel count and the sum of its probabilities. Regions that touch a strip seam are
merged with their neighbours across it by a shared edge, so no footprint is cut at a seam
and the result equals vectorising the whole raster at once. Polygons are then filtered by
area, their small holes filled, simplified, georeferenced and given an area in square
metres and a confidence (mean probability inside).
"""

from __future__ import annotations

from collections.abc import Callable
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
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely.geometry import Polygon, shape

from geounet.raster import GDAL_CACHE_MB, atomic_path, ground_pixel_size_m
from geounet.styles import style_footprints

LAYER = "buildings"


@dataclass(frozen=True)
class Piece:
    """One labelled region of one strip, in scene pixel coordinates."""

    geometry: Polygon
    pixels: int
    prob_sum: float
    on_seam: bool


def strip_pieces(
    prob: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    row_offset: int,
    threshold: float,
    seam_above: bool,
    seam_below: bool,
) -> list[Piece]:
    """Polygonise one strip of a probability raster.

    Args:
        prob: Probabilities of the strip, shape (rows, cols).
        valid: Validity mask of the strip (False = no data, never a building).
        row_offset: Scene row of the strip's first row.
        threshold: A pixel is a building where ``prob >= threshold``.
        seam_above: Whether another strip lies above (regions touching row 0 may continue).
        seam_below: Whether another strip lies below.

    Returns:
        One piece per 4-connected building region.
    """
    mask = (prob >= threshold) & valid
    labels, n = ndimage.label(mask)
    if n == 0:
        return []
    index = np.arange(1, n + 1)
    counts = ndimage.sum_labels(mask, labels, index)
    sums = ndimage.sum_labels(prob, labels, index)
    top = set(np.unique(labels[0])) if seam_above else set()
    bottom = set(np.unique(labels[-1])) if seam_below else set()
    transform = Affine.translation(0, row_offset)
    pieces = []
    for geom, value in rasterio.features.shapes(
        labels.astype(np.int32), mask=mask, connectivity=4, transform=transform
    ):
        lab = int(value)
        pieces.append(
            Piece(
                geometry=shape(geom),
                pixels=int(counts[lab - 1]),
                prob_sum=float(sums[lab - 1]),
                on_seam=lab in top or lab in bottom,
            )
        )
    return pieces


def merge_seams(pieces: list[Piece]) -> list[Piece]:
    """Merge pieces that share an edge across strip seams; others pass through unchanged."""
    seam = [p for p in pieces if p.on_seam]
    rest = [p for p in pieces if not p.on_seam]
    if not seam:
        return rest
    geoms = np.array([p.geometry for p in seam], dtype=object)
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    # Pixel-aligned polygons that only meet at a corner are separate 4-connected objects.
    shared = shapely.length(shapely.intersection(geoms[left], geoms[right])) > 0
    left, right = left[shared], right[shared]
    n = len(seam)
    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(n, n))
    _, group = connected_components(graph, directed=False)
    merged = []
    for g in np.unique(group):
        members = [seam[i] for i in np.flatnonzero(group == g)]
        geom = (
            members[0].geometry
            if len(members) == 1
            else shapely.union_all([m.geometry for m in members])
        )
        merged.append(
            Piece(
                geometry=geom,
                pixels=sum(m.pixels for m in members),
                prob_sum=sum(m.prob_sum for m in members),
                on_seam=False,
            )
        )
    return rest + merged


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
    simplify_px: float = 0.75,
    strip_rows: int = 2048,
    advance: Callable[[int], None] | None = None,
    regularize: bool = False,
) -> gpd.GeoDataFrame:
    """Turn a probability raster into building footprints.

    Args:
        prob_path: Probability raster (uint8 = probability * 255, or float32), single band,
            no data marked by its mask.
        threshold: Probability at or above which a pixel is a building.
        min_area_m2: Footprints (and holes) smaller than this, in square metres, are dropped.
        simplify_px: Simplification tolerance in pixels (0 disables simplification).
        strip_rows: Rows read per strip (bounds memory to strip_rows x width).
        advance: Called with the number of rows done after each strip (progress).
        regularize: Square the footprints (edges aligned to right angles, with
            buildingregulariser).

    Returns:
        Footprints in the raster's CRS with columns ``id``, ``area_m2``, ``confidence``
        and ``geometry``, ordered top to bottom.
    """
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), rasterio.open(prob_path) as src:
        scale = 1.0 / 255.0 if src.dtypes[0] == "uint8" else 1.0
        px_m = ground_pixel_size_m(src)
        transform, crs, height, width = src.transform, src.crs, src.height, src.width
        pieces: list[Piece] = []
        for top in range(0, height, strip_rows):
            rows = min(strip_rows, height - top)
            win = rasterio.windows.Window(0, top, width, rows)
            prob = src.read(1, window=win).astype(np.float32) * np.float32(scale)
            valid = src.read_masks(1, window=win) > 0
            pieces.extend(strip_pieces(prob, valid, top, threshold, top > 0, top + rows < height))
            if advance:
                advance(rows)
    pieces = merge_seams(pieces)
    min_pixels = min_area_m2 / (px_m * px_m)
    pieces = [p for p in pieces if p.pixels >= min_pixels]
    geoms = [fill_small_holes(p.geometry, min_pixels) for p in pieces]
    if simplify_px > 0:
        geoms = [g.simplify(simplify_px, preserve_topology=True) for g in geoms]
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
