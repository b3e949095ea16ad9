"""Object figures of an evaluation at each threshold (polygonised, matched by the SpaceNet rule)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio

from geounet.core.codec import at_least
from geounet.core.objects import Matching, ObjectCounts, match_objects
from geounet.evaluation.inputs import (
    MinSizeUnit,
    SceneGrid,
    areas,
    polygonise,
)


@dataclass
class ObjectResult:
    """Object counts and the matching behind them."""

    counts: ObjectCounts
    matching: Matching
    pred: npt.NDArray[np.object_]
    truth: npt.NDArray[np.object_]
    ignored_pred: npt.NDArray[np.object_]
    ignored_truth: npt.NDArray[np.object_]


def split_small(
    geoms: npt.NDArray[np.object_], grid: SceneGrid, min_size: float, unit: MinSizeUnit
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.object_]]:
    """Footprints at least ``min_size`` large, and the smaller ones (ignored)."""
    if len(geoms) == 0 or min_size <= 0:
        return geoms, geoms[:0]
    big = areas(geoms, grid, unit) >= min_size
    return geoms[big], geoms[~big]


def match(
    pred: npt.NDArray[np.object_],
    truth: npt.NDArray[np.object_],
    grid: SceneGrid,
    min_size: float,
    unit: MinSizeUnit,
    iou_threshold: float,
) -> ObjectResult:
    """Match by the SpaceNet rule, small footprints ignored on both sides."""
    pred_kept, pred_small = split_small(pred, grid, min_size, unit)
    truth_kept, truth_small = split_small(truth, grid, min_size, unit)
    matching = match_objects(pred_kept, truth_kept, iou_threshold)
    return ObjectResult(matching.counts, matching, pred_kept, truth_kept, pred_small, truth_small)


def object_sweep_rows(
    scene: str | Path,
    prob: Path,
    grid: SceneGrid,
    truth: npt.NDArray[np.object_],
    thresholds: npt.NDArray[np.float64],
    min_size: float,
    unit: MinSizeUnit,
    iou_threshold: float,
) -> list[dict[str, float | int]]:
    """Object figures at each threshold of the sweep (footprints by thresholding alone)."""
    raw, valid = read_prob(scene, prob)
    truth_kept, _ = split_small(truth, grid, min_size, unit)
    rows: list[dict[str, float | int]] = []
    for thr in thresholds:
        binary = above_threshold(raw, float(thr)) & valid
        pred_kept, _ = split_small(polygonise(binary, grid.transform), grid, min_size, unit)
        c = match_objects(pred_kept, truth_kept, iou_threshold).counts
        rows.append({"threshold": float(thr), **c.to_dict(), "predicted": len(pred_kept)})
    return rows


def read_prob(scene: str | Path, prob: Path) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """The whole probability raster (raw values) and the mask of pixels valid in both."""
    with rasterio.open(prob) as src:
        raw = src.read(1)
        valid = src.read_masks(1) != 0
    with rasterio.open(scene) as src:
        valid &= src.dataset_mask() != 0
    if raw.dtype.kind == "f":
        valid &= np.isfinite(raw)
    return raw, valid


def above_threshold(raw: npt.NDArray[Any], threshold: float) -> npt.NDArray[np.bool_]:
    """Where a probability raster's values reach ``threshold`` (:mod:`geounet.core.codec`)."""
    if raw.dtype == np.uint8:
        return at_least(raw, threshold)
    return np.asarray(raw.astype(np.float64) >= threshold, dtype=bool)
