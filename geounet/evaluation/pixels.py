"""The pixel pass of an evaluation: confusion counts streamed in row blocks, and their sweep."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from geounet.core.codec import decode, uint8_table
from geounet.core.metrics import ConfusionCounts, confusion
from geounet.evaluation.inputs import (
    SceneGrid,
)

#: Pixels per row block of the streaming pixel pass.
BLOCK_PIXELS = 4_194_304


ERR_INVALID, ERR_TN, ERR_TP, ERR_FP, ERR_FN = 0, 1, 2, 3, 4


@dataclass
class PixelPass:
    """The counts of the pixel pass, its threshold sweep and pictures."""

    counts: ConfusionCounts
    sweep: npt.NDArray[np.int64] | None  # (thresholds, 4): tp, fp, fn, tn
    error_map: npt.NDArray[np.uint8]


def row_blocks(grid: SceneGrid, step: int) -> Iterator[Window]:
    """Windows of whole rows of about :data:`BLOCK_PIXELS`, a multiple of ``step`` high."""
    rows = max(step, (BLOCK_PIXELS // max(grid.width, 1)) // step * step)
    for r0 in range(0, grid.height, rows):
        yield Window(0, r0, grid.width, min(rows, grid.height - r0))


def burn(
    geoms: npt.NDArray[np.object_],
    tree: shapely.STRtree | None,
    win: Window,
    grid: SceneGrid,
) -> npt.NDArray[np.bool_]:
    """Burn footprints onto one window of the grid (True inside)."""
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


def to_probability(values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Probabilities from raster values (:func:`geounet.core.codec.decode`), in float64."""
    if values.dtype == np.uint8:
        return decode(values).astype(np.float64)
    return values.astype(np.float64)


def count_ge(
    values: npt.NDArray[Any], thresholds: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """For each threshold, how many probabilities (of raw raster values) are >= it."""
    if values.dtype == np.uint8:
        hist = np.bincount(values, minlength=256)
        table = uint8_table()[None, :] >= thresholds[:, None]
        return (table.astype(np.int64) @ hist).astype(np.int64)
    s = np.sort(values.astype(np.float64))
    return (s.size - np.searchsorted(s, thresholds, side="left")).astype(np.int64)


def pixel_pass(
    scene: str | Path,
    grid: SceneGrid,
    truth: npt.NDArray[np.object_],
    *,
    prob: Path | None,
    footprints: npt.NDArray[np.object_] | None,
    threshold: float,
    thresholds: npt.NDArray[np.float64],
    step: int,
) -> PixelPass:
    """Stream the scene in row blocks: confusion counts, the sweep, the pictures."""
    truth_tree = shapely.STRtree(truth) if len(truth) else None
    fp_tree = shapely.STRtree(footprints) if footprints is not None and len(footprints) else None
    counts = ConfusionCounts()
    sweep = np.zeros((len(thresholds), 4), dtype=np.int64) if prob is not None else None
    err_rows: list[npt.NDArray[np.uint8]] = []
    with rasterio.open(scene) as src:
        psrc = rasterio.open(prob) if prob is not None else None
        try:
            for win in row_blocks(grid, step):
                valid = src.dataset_mask(window=win) != 0
                t = burn(truth, truth_tree, win, grid)
                if psrc is not None:
                    raw = psrc.read(1, window=win)
                    valid &= psrc.read_masks(1, window=win) != 0
                    if raw.dtype.kind == "f":
                        valid &= np.isfinite(raw)
                    pred = to_probability(raw) >= threshold
                    assert sweep is not None
                    v_pos, v_neg = raw[valid & t], raw[valid & ~t]
                    tp = count_ge(v_pos, thresholds)
                    fp = count_ge(v_neg, thresholds)
                    sweep += np.stack([tp, fp, v_pos.size - tp, v_neg.size - fp], axis=1)
                else:
                    assert footprints is not None
                    pred = burn(footprints, fp_tree, win, grid)
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
    return PixelPass(counts=counts, sweep=sweep, error_map=error_map)


def pixel_sweep_rows(
    thresholds: npt.NDArray[np.float64], sweep: npt.NDArray[np.int64]
) -> list[dict[str, float | int]]:
    """One row of figures per threshold of the pixel sweep."""
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


def best(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The row with the highest F1 (the lowest threshold among ties).

    ``None`` when there are no rows or no threshold scores above F1 0 (e.g. no true
    footprints): then no threshold is better than another.
    """
    if not rows:
        return None
    best = max(rows, key=lambda r: (r["f1"], -r["threshold"]))
    return best if best["f1"] > 0 else None
