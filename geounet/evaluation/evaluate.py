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
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.enums import Resampling
from shapely.geometry.base import BaseGeometry

from geounet import __version__
from geounet.core.extents import SEEN_FRACTION, overlap
from geounet.core.objects import pair_ious, rule_text
from geounet.core.provenance import Provenance
from geounet.core.shape import ShapeFigures, shape_figures
from geounet.core.thresholds import THRESHOLD_GRID
from geounet.errors import InputError
from geounet.evaluation.inputs import (
    PICTURE_MAX_PX,
    MinSizeUnit,
    SceneGrid,
    load_polygons,
    polygonise,
    read_grid,
    valid_area,
)
from geounet.evaluation.object_sweep import (
    above_threshold,
    match,
    object_sweep_rows,
    read_prob,
)
from geounet.evaluation.pixels import (
    best,
    pixel_pass,
    pixel_sweep_rows,
)
from geounet.io.raster import lonlat_bounds, read_provenance
from geounet.io.remote import gdal_path, is_local

#: Thresholds of the sweep: 0.05, 0.10, ..., 0.95.
SWEEP_THRESHOLDS = THRESHOLD_GRID


#: Largest scene (pixels) for which the object-level sweep runs when not asked explicitly.
OBJECT_SWEEP_MAX_PIXELS = 16_000_000


REPORT_FORMAT = "geounet-evaluation"


REPORT_VERSION = 1


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


def _picture_step(grid: SceneGrid) -> int:
    return max(1, math.ceil(max(grid.width, grid.height) / PICTURE_MAX_PX))


def _read_picture(scene: str | Path, grid: SceneGrid, step: int) -> npt.NDArray[np.uint8]:
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


DEFAULT_THRESHOLD = 0.5
"""Threshold of a probability raster that does not say how it was made."""


SHAPE_RULE = (
    "Outlines of the matched pairs, in the local UTM zone: vertex_ratio = predicted corners "
    "over true corners (collinear points not counted); right-angle offset = mean distance of "
    "each corner's angle from 90 or 270 degrees; polis_m = mean PoLiS distance (corners to "
    "the other outline, both ways, halved), metres; turn_deg = mean angle between the "
    "predicted and true outlines' main wall directions (modulo 90), degrees. Pairs that "
    "the edge of the evaluated "
    "area (the scene, less its no-data) cuts are left out: a cut is not a wall."
)


def matched_shapes(
    pred: npt.NDArray[np.object_],
    truth: npt.NDArray[np.object_],
    matches: Sequence[tuple[int, int, float]],
    crs: CRS,
    area: BaseGeometry | None = None,
) -> ShapeFigures:
    """Outline figures (:mod:`geounet.core.shape`) of the matched pairs, in metres.

    Args:
        pred: Predicted footprints (clipped to ``area``).
        truth: True footprints (clipped to ``area``).
        matches: ``(pred index, truth index, IoU)`` of the matched pairs.
        crs: Their CRS.
        area: The evaluated area: pairs with an outline on its edge (cut by the scene's
            edge or its no-data, so part of the outline is the cut) are left out.
    """
    p_idx = [p for p, _, _ in matches]
    t_idx = [t for _, t, _ in matches]
    if area is not None and matches:
        shapely.prepare(area)
        whole = shapely.contains_properly(area, pred[p_idx]) & shapely.contains_properly(
            area, truth[t_idx]
        )
        p_idx = [p for p, keep in zip(p_idx, whole, strict=True) if keep]
        t_idx = [t for t, keep in zip(t_idx, whole, strict=True) if keep]
    if not p_idx:
        return ShapeFigures()
    both = gpd.GeoSeries([*pred[p_idx], *truth[t_idx]], crs=crs)
    geoms = list(both.to_crs(both.estimate_utm_crs()))  # ground metres, whatever the CRS
    return shape_figures(geoms[: len(p_idx)], geoms[len(p_idx) :])


def training_overlap(grid: SceneGrid, made: Provenance | None) -> dict[str, Any]:
    """Whether a scene is held out from the model that predicted it.

    Args:
        grid: The scene's grid.
        made: The probability raster's provenance, with the model's training extents.

    Returns:
        ``held_out`` (``None`` when the provenance does not list the extents), the
        ``fraction`` of the scene inside them, the training ``scenes`` it overlaps, and
        the ``rule``.
    """
    rule = (
        f"held out when at most {SEEN_FRACTION:.0%} of the scene's bounding box lies in the "
        "bounding boxes of the scenes the model was trained or tuned on (its card's trained_on)"
    )
    extents = made.extents() if made is not None else ()
    bounds = lonlat_bounds(grid.crs, grid.footprint.bounds)
    if not extents or bounds is None:
        return {"held_out": None, "fraction": None, "scenes": [], "rule": rule}
    seen = overlap(bounds, extents)
    return {
        "held_out": seen.held_out,
        "fraction": round(seen.fraction, 4),
        "scenes": list(seen.scenes),
        "rule": rule,
    }


def evaluate_scene(
    scene: str | Path,
    truth: str | Path,
    *,
    prob: str | Path | None = None,
    footprints: str | Path | None = None,
    min_size: float = 20.0,
    min_size_unit: MinSizeUnit = "px",
    iou_threshold: float = 0.5,
    threshold: float | None = None,
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
        threshold: Probability at or above which a pixel is building; ``None``: the one
            the probability raster was made with (its provenance, see
            :mod:`geounet.core.provenance`), else :data:`DEFAULT_THRESHOLD`.
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
    made = read_provenance(prob) if prob is not None else None
    threshold_from = "given"
    if threshold is None:
        threshold = made.threshold if made is not None else DEFAULT_THRESHOLD
        threshold_from = "the probability raster's provenance" if made else "the default"
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"probability threshold must be in (0, 1], got {threshold}")

    # a URL or GDAL path stays a string (Path would fold its "//")
    scene_path: str | Path = Path(scene) if is_local(scene) else gdal_path(scene)
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
    seen = training_overlap(grid, made)
    if seen["held_out"] is False:
        warnings.append(
            f"{seen['fraction']:.0%} of the scene lies where the model was trained or tuned "
            f"({', '.join(seen['scenes'])}): its figures are not a held-out measure"
        )

    thresholds = np.array(sorted({*SWEEP_THRESHOLDS, round(threshold, 6)}), dtype=np.float64)
    step = _picture_step(grid)
    pix = pixel_pass(
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
        raw, pvalid = read_prob(scene_path, prob_path)
        pred_geoms = polygonise(above_threshold(raw, threshold) & pvalid, grid.transform)
        del raw, pvalid
        object_source = f"polygons of the probability raster at threshold {threshold:g}"
    obj = match(pred_geoms, truth_polys.geometries, grid, min_size, min_size_unit, iou_threshold)
    if len(obj.pred) == 0:
        warnings.append("no predicted footprint to evaluate: object precision is 0 by convention")

    # Sweeps.
    sweep: dict[str, Any] = {"thresholds": [float(t) for t in thresholds]}
    if pix.sweep is not None:
        rows = pixel_sweep_rows(thresholds, pix.sweep)
        sweep["pixel"] = rows
        sweep["best_pixel"] = best(rows)
    if object_sweep is None:
        object_sweep = grid.width * grid.height <= OBJECT_SWEEP_MAX_PIXELS
    if prob_path is not None and object_sweep:
        orows = object_sweep_rows(
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
        sweep["best_objects"] = best(orows)
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
            "name": name or (Path(scene).name if is_local(scene) else os.fspath(scene)),
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
        "provenance": made.as_dict() if made is not None else None,
        "training_overlap": seen,
        "settings": {
            "threshold": threshold,
            "threshold_from": threshold_from,
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
            "shape": {
                "rule": SHAPE_RULE,
                **matched_shapes(
                    obj.pred, obj.truth, obj.matching.matches, grid.crs, area
                ).to_dict(),
            },
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
