"""The inputs of an evaluation: the scene's grid, footprints (reprojected, clipped) and areas."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyogrio
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.features import shapes
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geounet.errors import InputError
from geounet.io.remote import apply_http_defaults, gdal_path, is_local

MinSizeUnit = Literal["px", "m2"]


#: Longest side, in pixels, of the pictures in the report.
PICTURE_MAX_PX = 1600


@dataclass(frozen=True)
class SceneGrid:
    """The pixel grid of a scene.

    Attributes:
        crs: Coordinate reference system.
        transform: Affine transform from (col, row) pixel coordinates to CRS (x, y).
        width: Columns.
        height: Rows.
    """

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def pixel_area(self) -> float:
        """Area of one pixel in CRS units squared."""
        t = self.transform
        return abs(t.a * t.e - t.b * t.d)

    @property
    def footprint(self) -> BaseGeometry:
        """The scene's outline as a polygon in its CRS."""
        corners = [(0, 0), (self.width, 0), (self.width, self.height), (0, self.height)]
        return shapely.Polygon([self.transform * c for c in corners])

    def matches(self, other: SceneGrid) -> bool:
        """Whether ``other`` is the same grid (CRS, size and transform within 1e-6 px)."""
        if (self.width, self.height) != (other.width, other.height) or self.crs != other.crs:
            return False
        tol = 1e-6 * max(abs(self.transform.a), abs(self.transform.e), 1e-12)
        return all(
            math.isclose(x, y, rel_tol=0.0, abs_tol=tol)
            for x, y in zip(self.transform[:6], other.transform[:6], strict=True)
        )


@dataclass(frozen=True)
class Polygons:
    """Footprints read from a vector file, in the scene's CRS, clipped to the scene.

    Attributes:
        geometries: Polygonal geometries (one per feature kept), object array.
        path: The file read.
        layer: The layer read.
        read: Features in the layer.
        repaired: Invalid geometries repaired with ``make_valid``.
        outside: Features dropped because nothing of them lies in the scene's valid area.
        reprojected_from: The file's CRS when it differed from the scene's, else ``None``.
    """

    geometries: npt.NDArray[np.object_]
    path: str
    layer: str
    read: int
    repaired: int
    outside: int
    reprojected_from: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (without the geometries)."""
        return {
            "path": self.path,
            "layer": self.layer,
            "features_read": self.read,
            "repaired": self.repaired,
            "outside_scene": self.outside,
            "in_scene": len(self.geometries),
            "reprojected_from": self.reprojected_from,
        }


def read_grid(path: str | Path, what: str = "scene") -> SceneGrid:
    """Read the pixel grid of a raster.

    Args:
        path: The raster.
        what: How to name the raster in error messages.

    Returns:
        Its grid.

    Raises:
        InputError: If the file is missing, not a raster, or has no CRS.
    """
    remote = not is_local(path)
    p: str | Path = gdal_path(path) if remote else Path(path)
    if not remote and not Path(p).is_file():
        raise InputError(f"{what} file not found: {p}")
    if remote:
        apply_http_defaults()
    try:
        with rasterio.open(p) as src:
            grid = SceneGrid(src.crs, src.transform, src.width, src.height)
    except RasterioError as exc:
        raise InputError(f"cannot read {what} {p} as a raster: {exc}") from exc
    if grid.crs is None:
        raise InputError(f"{what} {p} has no CRS; assign one (gdal_edit.py -a_srs EPSG:...)")
    return grid


def load_polygons(
    path: str | Path,
    grid: SceneGrid,
    *,
    what: str = "truth",
    clip_to: BaseGeometry | None = None,
) -> Polygons:
    """Read footprints, reproject them to the scene CRS, repair them and clip them.

    The layer ``buildings`` is read when present, otherwise the file's only layer.
    Invalid geometries are repaired with ``shapely.make_valid`` (and counted); only the
    polygonal parts are kept; each feature is clipped to ``clip_to`` (default: the scene
    outline) and dropped when nothing of it remains.

    Args:
        path: A vector file readable by GDAL (GeoPackage, GeoJSON, Shapefile, ...).
        grid: The scene grid.
        what: How to name the file in error messages.
        clip_to: Area to clip to, in the scene CRS (default: the scene's outline).

    Returns:
        The footprints.

    Raises:
        InputError: If the file is missing, unreadable, has several layers but none named
            ``buildings``, or has no CRS.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} file not found: {p}")
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(p)]
    except Exception as exc:  # pyogrio raises several unrelated types
        raise InputError(f"cannot read {what} {p} as a vector file: {exc}") from exc
    if "buildings" in layers:
        layer = "buildings"
    elif len(layers) == 1:
        layer = layers[0]
    else:
        raise InputError(
            f"{what} {p} has layers {layers} and none is named 'buildings'; "
            "rename the footprint layer to 'buildings'"
        )
    try:
        frame = gpd.read_file(p, layer=layer)
    except Exception as exc:
        raise InputError(f"cannot read layer {layer!r} of {what} {p}: {exc}") from exc
    if frame.crs is None and len(frame):
        raise InputError(f"{what} {p} has no CRS; assign one (ogr2ogr -a_srs EPSG:...)")
    reprojected_from = None
    if frame.crs is not None and CRS.from_user_input(frame.crs) != grid.crs:
        reprojected_from = frame.crs.to_string()
        frame = frame.to_crs(grid.crs.to_wkt())
    geoms = np.asarray(frame.geometry.to_numpy(), dtype=object)
    geoms = geoms[~shapely.is_missing(geoms)]
    kinds = set(shapely.get_type_id(geoms[~shapely.is_empty(geoms)]).tolist())
    if kinds and not kinds & _POLYGONAL_TYPE_IDS:
        names = sorted({str(g.geom_type) for g in geoms if g is not None and not g.is_empty})
        raise InputError(
            f"{what} {p} holds {', '.join(names)} geometries, not footprint polygons; "
            "pass building outlines (polygons)"
        )
    read = len(frame)
    invalid = ~shapely.is_valid(geoms)
    repaired = int(invalid.sum())
    if repaired:
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    kept = keep_polygonal(clip(geoms, grid.footprint if clip_to is None else clip_to))
    return Polygons(
        geometries=kept,
        path=str(p),
        layer=layer,
        read=read,
        repaired=repaired,
        outside=read - len(kept),
        reprojected_from=reprojected_from,
    )


def valid_area(path: str | Path, grid: SceneGrid) -> BaseGeometry | None:
    """The area of a scene's valid (non-nodata) pixels, or ``None`` when all are valid.

    The dataset mask is read at most :data:`PICTURE_MAX_PX` * 2 pixels on a side (nearest
    neighbour), so on very large scenes the outline is approximate by a few pixels.

    Args:
        path: The scene.
        grid: Its grid.

    Returns:
        A polygonal geometry in the scene CRS, or ``None``.
    """
    step = max(1, math.ceil(max(grid.width, grid.height) / (2 * PICTURE_MAX_PX)))
    shape_out = (math.ceil(grid.height / step), math.ceil(grid.width / step))
    with rasterio.open(path) as src:
        mask = src.dataset_mask(out_shape=shape_out, resampling=Resampling.nearest)
    if mask.all():
        return None
    scaled = grid.transform * Affine.scale(grid.width / shape_out[1], grid.height / shape_out[0])
    valid = (mask != 0).astype(np.uint8)
    parts = [shape(g) for g, _ in shapes(valid, mask=valid.astype(bool), transform=scaled)]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def clip(geoms: npt.NDArray[np.object_], area: BaseGeometry) -> npt.NDArray[np.object_]:
    """Intersect geometries with ``area``, skipping those that lie inside it."""
    out = geoms.copy()
    if len(out) == 0:
        return out
    shapely.prepare(area)
    todo = ~shapely.contains_properly(area, out)
    if todo.any():
        out[todo] = shapely.intersection(out[todo], area)
    return out


_POLYGONAL_TYPE_IDS = {3, 6, 7}
"""shapely type ids of Polygon, MultiPolygon and GeometryCollection (which may hold one)."""


def keep_polygonal(geoms: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """Keep the polygonal part of each geometry; drop those with no area."""
    out = []
    for g in geoms:
        if g is None or g.is_empty:
            continue
        if g.geom_type not in ("Polygon", "MultiPolygon"):
            polys = [
                part
                for part in shapely.get_parts(g)
                if part.geom_type in ("Polygon", "MultiPolygon") and part.area > 0
            ]
            if not polys:
                continue
            g = shapely.union_all(polys)
        if g.area > 0:
            out.append(g)
    arr = np.empty(len(out), dtype=object)
    arr[:] = out
    return arr


def areas(
    geoms: npt.NDArray[np.object_], grid: SceneGrid, unit: MinSizeUnit
) -> npt.NDArray[np.float64]:
    """Areas of footprints in pixels of the scene or in square metres on the ground.

    Square metres are measured in the UTM zone of the scene (``estimate_utm_crs``), not in
    the scene CRS, which may distort areas (Web Mercator does, by 1 / cos(latitude)^2).

    Args:
        geoms: Polygons in the scene CRS.
        grid: The scene grid.
        unit: ``"px"`` or ``"m2"``.

    Returns:
        One area per polygon.
    """
    if len(geoms) == 0:
        return np.zeros(0, dtype=np.float64)
    if unit == "px":
        return np.asarray(shapely.area(geoms), dtype=np.float64) / grid.pixel_area
    crs = grid.crs.to_wkt()
    utm = gpd.GeoSeries([grid.footprint], crs=crs).estimate_utm_crs()
    return np.asarray(gpd.GeoSeries(geoms, crs=crs).to_crs(utm).area, dtype=np.float64)


def polygonise(binary: npt.NDArray[np.bool_], transform: Affine) -> npt.NDArray[np.object_]:
    """Polygons of the connected building regions (4-connected) of a binary raster.

    Args:
        binary: Building mask, (rows, cols).
        transform: Its affine transform.

    Returns:
        Polygons in the raster's CRS (object array).
    """
    b = np.ascontiguousarray(binary, dtype=np.uint8)
    polys = [shape(g) for g, _ in shapes(b, mask=b.astype(bool), transform=transform)]
    arr = np.empty(len(polys), dtype=object)
    arr[:] = polys
    return arr
