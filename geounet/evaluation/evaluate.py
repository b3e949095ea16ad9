"""Evaluate the building predictions of one scene against true footprints.

The library side of ``geounet evaluate``. :func:`evaluate_scene` reads the scene, the true
footprints and the outputs of ``geounet predict`` (a probability raster, footprints, or
both) and returns an :class:`Evaluation`: a JSON-ready report plus the data of its figures.
Writing the report is :mod:`geounet.evaluation.report`'s job.

- Pixel level: over the valid pixels of the scene (its dataset mask, and the probability
  raster's mask), truth rasterised on the scene grid (pixel centres inside a polygon).
  Counts stream over row blocks of the raster, so memory stays bounded.
- Object level: the SpaceNet rule of :mod:`geounet.core.objects`; objects are clipped to the
  scene's valid-data area; polygons under the minimum size are ignored on both sides.
- Threshold sweep (with a probability raster): pixel counts at thresholds 0.05..0.95 and
  the best-F1 threshold; the same at object level by polygonising the thresholded raster
  when the scene is small enough (``object_sweep``).

Which prediction feeds which level:

========================  ==================================  =================================
inputs                    pixel level                         object level
========================  ==================================  =================================
``prob`` and footprints   probability >= ``threshold``        the footprints
``prob`` only             probability >= ``threshold``        polygons of the thresholded raster
footprints only           the footprints, rasterised          the footprints
========================  ==================================  =================================
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
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
from rasterio.features import rasterize, shapes
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geounet import __version__
from geounet.core.codec import at_least, decode, uint8_table
from geounet.core.metrics import ConfusionCounts, confusion
from geounet.core.objects import Matching, ObjectCounts, match_objects, pair_ious, rule_text
from geounet.core.thresholds import THRESHOLD_GRID
from geounet.errors import InputError

MinSizeUnit = Literal["px", "m2"]

#: Thresholds of the sweep: 0.05, 0.10, ..., 0.95.
SWEEP_THRESHOLDS = THRESHOLD_GRID

#: Largest scene (pixels) for which the object-level sweep runs when not asked explicitly.
OBJECT_SWEEP_MAX_PIXELS = 16_000_000

#: Longest side, in pixels, of the pictures in the report.
PICTURE_MAX_PX = 1600

#: Pixels per row block of the streaming pixel pass.
BLOCK_PIXELS = 4_194_304

REPORT_FORMAT = "geounet-evaluation"
REPORT_VERSION = 1

# Categories of the pixel error map.
ERR_INVALID, ERR_TN, ERR_TP, ERR_FP, ERR_FN = 0, 1, 2, 3, 4


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


@dataclass
class Evaluation:
    """The result of :func:`evaluate_scene`: the report and the data of its figures.

    Attributes:
        report: JSON-ready report (see ``geounet.evaluation.report`` for its layout).
        rgb: Downsampled picture of the scene, (rows, cols, 3) uint8, or ``None``.
        error_map: Downsampled pixel error map, (rows, cols) uint8 of the ``ERR_*``
            categories, or ``None``.
        extent: (left, right, bottom, top) of the pictures in CRS units.
        tp: Predicted footprints that matched (object array).
        fp: Predicted footprints without a match.
        fn: True footprints without a match.
        ignored: Footprints of either side ignored as too small.
        truth_best_iou: Per true footprint, its highest IoU with any prediction.
        tp_iou: IoU of each match, in the order of ``tp``.
        fp_iou: Per false positive, its highest IoU with any true footprint (0 when none).
        fn_iou: Per false negative, its highest IoU with any prediction (0 when none).
        crs: The scene's CRS (the CRS of all the geometries above).
    """

    report: dict[str, Any]
    rgb: npt.NDArray[np.uint8] | None = None
    error_map: npt.NDArray[np.uint8] | None = None
    extent: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0)
    tp: npt.NDArray[np.object_] = field(default_factory=lambda: np.empty(0, dtype=object))
    fp: npt.NDArray[np.object_] = field(default_factory=lambda: np.empty(0, dtype=object))
    fn: npt.NDArray[np.object_] = field(default_factory=lambda: np.empty(0, dtype=object))
    ignored: npt.NDArray[np.object_] = field(default_factory=lambda: np.empty(0, dtype=object))
    truth_best_iou: npt.NDArray[np.float64] = field(
        default_factory=lambda: np.zeros(0, dtype=np.float64)
    )
    tp_iou: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    fp_iou: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    fn_iou: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    crs: CRS | None = None


# ----------------------------------------------------------------------------- inputs


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
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} file not found: {p}")
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
    read = len(frame)
    invalid = ~shapely.is_valid(geoms)
    repaired = int(invalid.sum())
    if repaired:
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    kept = _keep_polygonal(clip(geoms, grid.footprint if clip_to is None else clip_to))
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


def _keep_polygonal(geoms: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
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


# ------------------------------------------------------------------------ pixel pass


@dataclass
class _PixelPass:
    counts: ConfusionCounts
    sweep: npt.NDArray[np.int64] | None  # (thresholds, 4): tp, fp, fn, tn
    error_map: npt.NDArray[np.uint8]


def _row_blocks(grid: SceneGrid, step: int) -> Iterator[Window]:
    rows = max(step, (BLOCK_PIXELS // max(grid.width, 1)) // step * step)
    for r0 in range(0, grid.height, rows):
        yield Window(0, r0, grid.width, min(rows, grid.height - r0))


def _burn(
    geoms: npt.NDArray[np.object_],
    tree: shapely.STRtree | None,
    win: Window,
    grid: SceneGrid,
) -> npt.NDArray[np.bool_]:
    out_shape = (int(win.height), int(win.width))
    wt = window_transform(win, grid.transform)
    if tree is None:
        return np.zeros(out_shape, dtype=bool)
    corners = [(0, 0), (out_shape[1], out_shape[0])]
    (x0, y0), (x1, y1) = (wt * c for c in corners)
    idx = tree.query(shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    if len(idx) == 0:
        return np.zeros(out_shape, dtype=bool)
    burned = rasterize(
        ((g, 1) for g in geoms[idx]), out_shape=out_shape, transform=wt, fill=0, dtype="uint8"
    )
    return burned.astype(bool)


def _to_probability(values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Probabilities from raster values (:func:`geounet.core.codec.decode`), in float64."""
    if values.dtype == np.uint8:
        return decode(values).astype(np.float64)
    return values.astype(np.float64)


def _count_ge(
    values: npt.NDArray[Any], thresholds: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """For each threshold, how many probabilities (of raw raster values) are >= it."""
    if values.dtype == np.uint8:
        hist = np.bincount(values, minlength=256)
        table = uint8_table()[None, :] >= thresholds[:, None]
        return (table.astype(np.int64) @ hist).astype(np.int64)
    s = np.sort(values.astype(np.float64))
    return (s.size - np.searchsorted(s, thresholds, side="left")).astype(np.int64)


def _pixel_pass(
    scene: Path,
    grid: SceneGrid,
    truth: npt.NDArray[np.object_],
    *,
    prob: Path | None,
    footprints: npt.NDArray[np.object_] | None,
    threshold: float,
    thresholds: npt.NDArray[np.float64],
    step: int,
) -> _PixelPass:
    truth_tree = shapely.STRtree(truth) if len(truth) else None
    fp_tree = shapely.STRtree(footprints) if footprints is not None and len(footprints) else None
    counts = ConfusionCounts()
    sweep = np.zeros((len(thresholds), 4), dtype=np.int64) if prob is not None else None
    err_rows: list[npt.NDArray[np.uint8]] = []
    with rasterio.open(scene) as src:
        psrc = rasterio.open(prob) if prob is not None else None
        try:
            for win in _row_blocks(grid, step):
                valid = src.dataset_mask(window=win) != 0
                t = _burn(truth, truth_tree, win, grid)
                if psrc is not None:
                    raw = psrc.read(1, window=win)
                    valid &= psrc.read_masks(1, window=win) != 0
                    if raw.dtype.kind == "f":
                        valid &= np.isfinite(raw)
                    pred = _to_probability(raw) >= threshold
                    assert sweep is not None
                    v_pos, v_neg = raw[valid & t], raw[valid & ~t]
                    tp = _count_ge(v_pos, thresholds)
                    fp = _count_ge(v_neg, thresholds)
                    sweep += np.stack([tp, fp, v_pos.size - tp, v_neg.size - fp], axis=1)
                else:
                    assert footprints is not None
                    pred = _burn(footprints, fp_tree, win, grid)
                counts = counts + confusion(pred, t, valid)
                err = np.full(pred.shape, ERR_TN, dtype=np.uint8)
                err[pred & t] = ERR_TP
                err[pred & ~t] = ERR_FP
                err[~pred & t] = ERR_FN
                err[~valid] = ERR_INVALID
                err_rows.append(err[::step, ::step])
        finally:
            if psrc is not None:
                psrc.close()
    error_map = np.concatenate(err_rows, axis=0) if err_rows else np.zeros((0, 0), dtype=np.uint8)
    return _PixelPass(counts=counts, sweep=sweep, error_map=error_map)


def _pixel_sweep_rows(
    thresholds: npt.NDArray[np.float64], sweep: npt.NDArray[np.int64]
) -> list[dict[str, float | int]]:
    rows = []
    for thr, (tp, fp, fn, tn) in zip(thresholds, sweep, strict=True):
        c = ConfusionCounts(int(tp), int(fp), int(fn), int(tn))
        rows.append(
            {
                "threshold": float(thr),
                "tp": c.tp,
                "fp": c.fp,
                "fn": c.fn,
                "tn": c.tn,
                "precision": c.precision,
                "recall": c.sensitivity,
                "iou": c.iou,
                "f1": c.f1,
            }
        )
    return rows


def _best(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The row with the highest F1 (the lowest threshold among ties).

    ``None`` when there are no rows or no threshold scores above F1 0 (e.g. no true
    footprints): then no threshold is better than another.
    """
    if not rows:
        return None
    best = max(rows, key=lambda r: (r["f1"], -r["threshold"]))
    return best if best["f1"] > 0 else None


# ------------------------------------------------------------------------ object level


@dataclass
class _ObjectResult:
    counts: ObjectCounts
    matching: Matching
    pred: npt.NDArray[np.object_]
    truth: npt.NDArray[np.object_]
    ignored_pred: npt.NDArray[np.object_]
    ignored_truth: npt.NDArray[np.object_]


def _split_small(
    geoms: npt.NDArray[np.object_], grid: SceneGrid, min_size: float, unit: MinSizeUnit
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.object_]]:
    if len(geoms) == 0 or min_size <= 0:
        return geoms, geoms[:0]
    big = areas(geoms, grid, unit) >= min_size
    return geoms[big], geoms[~big]


def _match(
    pred: npt.NDArray[np.object_],
    truth: npt.NDArray[np.object_],
    grid: SceneGrid,
    min_size: float,
    unit: MinSizeUnit,
    iou_threshold: float,
) -> _ObjectResult:
    pred_kept, pred_small = _split_small(pred, grid, min_size, unit)
    truth_kept, truth_small = _split_small(truth, grid, min_size, unit)
    matching = match_objects(pred_kept, truth_kept, iou_threshold)
    return _ObjectResult(matching.counts, matching, pred_kept, truth_kept, pred_small, truth_small)


def _object_sweep_rows(
    scene: Path,
    prob: Path,
    grid: SceneGrid,
    truth: npt.NDArray[np.object_],
    thresholds: npt.NDArray[np.float64],
    min_size: float,
    unit: MinSizeUnit,
    iou_threshold: float,
) -> list[dict[str, float | int]]:
    raw, valid = _read_prob(scene, prob)
    truth_kept, _ = _split_small(truth, grid, min_size, unit)
    rows: list[dict[str, float | int]] = []
    for thr in thresholds:
        binary = _threshold(raw, float(thr)) & valid
        pred_kept, _ = _split_small(polygonise(binary, grid.transform), grid, min_size, unit)
        c = match_objects(pred_kept, truth_kept, iou_threshold).counts
        rows.append({"threshold": float(thr), **c.to_dict(), "predicted": len(pred_kept)})
    return rows


def _read_prob(scene: Path, prob: Path) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """The whole probability raster (raw values) and the mask of pixels valid in both."""
    with rasterio.open(prob) as src:
        raw = src.read(1)
        valid = src.read_masks(1) != 0
    with rasterio.open(scene) as src:
        valid &= src.dataset_mask() != 0
    if raw.dtype.kind == "f":
        valid &= np.isfinite(raw)
    return raw, valid


def _threshold(raw: npt.NDArray[Any], threshold: float) -> npt.NDArray[np.bool_]:
    if raw.dtype == np.uint8:
        return at_least(raw, threshold)
    return np.asarray(raw.astype(np.float64) >= threshold, dtype=bool)


# ------------------------------------------------------------------------ pictures


def _picture_step(grid: SceneGrid) -> int:
    return max(1, math.ceil(max(grid.width, grid.height) / PICTURE_MAX_PX))


def _read_picture(scene: Path, grid: SceneGrid, step: int) -> npt.NDArray[np.uint8]:
    """A downsampled RGB (or grey) picture of the scene, nodata white, (rows, cols, 3)."""
    out = (math.ceil(grid.height / step), math.ceil(grid.width / step))
    with rasterio.open(scene) as src:
        bands = [1, 2, 3] if src.count >= 3 else [1]
        data = src.read(bands, out_shape=(len(bands), *out), resampling=Resampling.nearest)
        mask = src.dataset_mask(out_shape=out, resampling=Resampling.nearest) != 0
    img = np.moveaxis(data, 0, -1)
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    if img.dtype != np.uint8:
        vals = img[mask].astype(np.float64)
        lo, hi = np.percentile(vals, [2, 98]) if vals.size else (0.0, 1.0)
        scale = (hi - lo) or 1.0
        img = np.clip((img.astype(np.float64) - lo) / scale * 255, 0, 255).astype(np.uint8)
    img = img.copy()
    img[~mask] = 255
    return img


# ------------------------------------------------------------------------ entry point


def evaluate_scene(
    scene: str | Path,
    truth: str | Path,
    *,
    prob: str | Path | None = None,
    footprints: str | Path | None = None,
    min_size: float = 20.0,
    min_size_unit: MinSizeUnit = "px",
    iou_threshold: float = 0.5,
    threshold: float = 0.5,
    object_sweep: bool | None = None,
    pictures: bool = True,
    name: str | None = None,
) -> Evaluation:
    """Evaluate one scene's predictions against true footprints.

    Args:
        scene: The scene GeoTIFF that was predicted (its grid and valid-pixel mask are used).
        truth: True footprints (any vector format and CRS; reprojected, repaired, clipped).
        prob: ``<stem>.prob.tif`` of ``geounet predict`` (uint8 = probability * 255, or
            float32 probability), on exactly the scene's grid.
        footprints: ``<stem>.buildings.gpkg`` of ``geounet predict``.
        min_size: Polygons smaller than this are ignored on both sides (object level).
        min_size_unit: ``"px"`` (pixels of the scene) or ``"m2"`` (ground square metres).
        iou_threshold: Minimum IoU of an object match (SpaceNet: 0.5, which counts).
        threshold: Probability at or above which a pixel is building.
        object_sweep: Also sweep the threshold at object level (polygonising the raster at
            each threshold); ``None``: only for scenes up to :data:`OBJECT_SWEEP_MAX_PIXELS`.
        pictures: Read the data of the report's pictures.
        name: Name of the scene in the report and in catalogue summaries (default: the
            scene's file name), e.g. the workflow's scene id.

    Returns:
        The evaluation.

    Raises:
        InputError: If an input is missing or unusable, neither ``prob`` nor ``footprints``
            is given, or an option is out of range.
    """
    if prob is None and footprints is None:
        raise InputError("nothing to evaluate: give a probability raster, footprints, or both")
    if min_size_unit not in ("px", "m2"):
        raise InputError(f"min-size unit must be 'px' or 'm2', got {min_size_unit!r}")
    if min_size < 0:
        raise InputError(f"min-size must be >= 0, got {min_size}")
    if not 0.0 < iou_threshold <= 1.0:
        raise InputError(f"IoU threshold must be in (0, 1], got {iou_threshold}")
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"probability threshold must be in (0, 1], got {threshold}")

    scene_path = Path(scene)
    grid = read_grid(scene_path, "scene")
    prob_path = Path(prob) if prob is not None else None
    if prob_path is not None:
        pgrid = read_grid(prob_path, "probability raster")
        if not pgrid.matches(grid):
            raise InputError(
                f"probability raster {prob_path} is not on the grid of scene {scene_path} "
                f"({pgrid.width}x{pgrid.height} vs {grid.width}x{grid.height}, or another "
                "CRS or transform); pass the prob.tif that geounet predict wrote for this scene"
            )
    valid = valid_area(scene_path, grid)
    area = grid.footprint if valid is None else shapely.intersection(grid.footprint, valid)
    truth_polys = load_polygons(truth, grid, what="truth", clip_to=area)
    pred_polys = (
        load_polygons(footprints, grid, what="footprints", clip_to=area)
        if footprints is not None
        else None
    )

    warnings: list[str] = []
    for polys in (truth_polys, pred_polys):
        if polys is None:
            continue
        source = Path(polys.path).name
        if polys.repaired:
            warnings.append(
                f"{polys.repaired} invalid polygon(s) in {source} were repaired with make_valid"
            )
        if polys.reprojected_from:
            warnings.append(f"{source} was reprojected from {polys.reprojected_from}")
    if len(truth_polys.geometries) == 0:
        warnings.append("no true footprint lies in the scene: object recall is 0 by convention")

    thresholds = np.array(sorted({*SWEEP_THRESHOLDS, round(threshold, 6)}), dtype=np.float64)
    step = _picture_step(grid)
    pix = _pixel_pass(
        scene_path,
        grid,
        truth_polys.geometries,
        prob=prob_path,
        footprints=pred_polys.geometries if pred_polys is not None else None,
        threshold=threshold,
        thresholds=thresholds,
        step=step,
    )

    # Object level.
    if pred_polys is not None:
        pred_geoms = pred_polys.geometries
        object_source = "footprints"
    else:
        assert prob_path is not None
        raw, pvalid = _read_prob(scene_path, prob_path)
        pred_geoms = polygonise(_threshold(raw, threshold) & pvalid, grid.transform)
        del raw, pvalid
        object_source = f"polygons of the probability raster at threshold {threshold:g}"
    obj = _match(pred_geoms, truth_polys.geometries, grid, min_size, min_size_unit, iou_threshold)
    if len(obj.pred) == 0:
        warnings.append("no predicted footprint to evaluate: object precision is 0 by convention")

    # Sweeps.
    sweep: dict[str, Any] = {"thresholds": [float(t) for t in thresholds]}
    if pix.sweep is not None:
        rows = _pixel_sweep_rows(thresholds, pix.sweep)
        sweep["pixel"] = rows
        sweep["best_pixel"] = _best(rows)
    if object_sweep is None:
        object_sweep = grid.width * grid.height <= OBJECT_SWEEP_MAX_PIXELS
    if prob_path is not None and object_sweep:
        orows = _object_sweep_rows(
            scene_path,
            prob_path,
            grid,
            truth_polys.geometries,
            thresholds,
            min_size,
            min_size_unit,
            iou_threshold,
        )
        sweep["objects"] = orows
        sweep["best_objects"] = _best(orows)
    if "best_pixel" in sweep or "best_objects" in sweep:
        sweep["note"] = (
            "The best-F1 thresholds are chosen on this scene itself, so they flatter it: "
            "choose the working threshold on held-out data."
        )

    ious = obj.matching.truth_best_iou
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "geounet_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "scene": {
            "path": str(scene_path),
            "name": name or scene_path.name,
            "crs": grid.crs.to_string(),
            "width": grid.width,
            "height": grid.height,
            "pixel_size": [abs(grid.transform.a), abs(grid.transform.e)],
            "valid_pixels": pix.counts.total,
        },
        "inputs": {
            "prob": str(prob_path) if prob_path is not None else None,
            "footprints": str(footprints) if footprints is not None else None,
            "truth": truth_polys.to_dict(),
            "predictions": pred_polys.to_dict() if pred_polys is not None else None,
        },
        "settings": {
            "threshold": threshold,
            "iou_threshold": iou_threshold,
            "min_size": min_size,
            "min_size_unit": min_size_unit,
        },
        "warnings": warnings,
        "pixel": {
            "source": (
                f"probability >= {threshold:g}"
                if prob_path is not None
                else "footprints rasterised"
            ),
            "rule": (
                "Over the valid pixels of the scene (and of the probability raster); truth "
                "rasterised on the scene grid (a pixel is building when its centre is inside "
                "a true footprint)."
            ),
            **pix.counts.to_dict(),
        },
        "objects": {
            "source": object_source,
            "rule": rule_text(iou_threshold, min_size, min_size_unit),
            **obj.counts.to_dict(),
            "truth_evaluated": len(obj.truth),
            "predicted_evaluated": len(obj.pred),
            "truth_ignored_small": len(obj.ignored_truth),
            "predicted_ignored_small": len(obj.ignored_pred),
            "truth_best_iou": [round(float(v), 4) for v in ious],
        },
        "sweep": sweep,
    }

    m = obj.matching
    ignored = np.concatenate([obj.ignored_pred, obj.ignored_truth])
    ev = Evaluation(
        report=report,
        error_map=pix.error_map if pictures else None,
        tp=obj.pred[[p for p, _, _ in m.matches]] if m.matches else obj.pred[:0],
        fp=obj.pred[m.unmatched_pred],
        fn=obj.truth[m.unmatched_truth],
        ignored=ignored,
        truth_best_iou=ious,
        tp_iou=np.array([iou for _, _, iou in m.matches], dtype=np.float64),
        fp_iou=_best_iou(obj.pred[m.unmatched_pred], obj.truth),
        fn_iou=np.asarray(ious, dtype=np.float64)[m.unmatched_truth],
        crs=grid.crs,
    )
    left, bottom, right, top = _bounds(grid)
    ev.extent = (left, right, bottom, top)
    if pictures:
        ev.rgb = _read_picture(scene_path, grid, step)
    return ev


def _best_iou(
    geoms: npt.NDArray[np.object_], others: npt.NDArray[np.object_]
) -> npt.NDArray[np.float64]:
    """Per geometry, its highest IoU with any of ``others`` (0.0 when none overlaps)."""
    best = np.zeros(len(geoms), dtype=np.float64)
    gi, _, iou = pair_ious(geoms, others)
    if iou.size:
        np.maximum.at(best, gi, iou)
    return best


def _bounds(grid: SceneGrid) -> tuple[float, float, float, float]:
    xs, ys = shapely.get_coordinates(grid.footprint).T
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())
