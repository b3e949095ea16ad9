"""What choosing a model's thresholds costs once the strip is predicted.

Predicts the eastern strip of Banepa's west scene (dense touching roofs) with the bundled
model once, as ``geounet calibrate`` and ``geounet finetune`` do, then times the sweep
they choose from (:func:`geounet.train.strip.choice_sweep`: every building and body
threshold, then every smallest seed and confidence near the best pixel IoU, about 2,300
rows) twice:

- **now**: each labelling's object pairs are found once, and every smallest confidence
  is counted on them (a footprint dropped whole changes no other one's pixels);
- **afresh**: every row matched on its own, its footprints relabelled, the truths
  renumbered and the pairs counted by sorting, as geounet did until 2026-12-06.

Both must give the same rows; the script stops if they do not. The labelling (the
watershed split of touching roofs) is the same work in both.

Usage:
    python benchmarks/threshold_choice.py [--scene sample_data/banepa/banepa_west_z19.tif]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from geounet.core.objects import ObjectCounts, greedy_matches
from geounet.core.thresholds import BODY_THRESHOLDS, MIN_CONFIDENCES, SEED_AREAS_M2
from geounet.inference.options import PredictOptions
from geounet.model.checkpoint import load_checkpoint
from geounet.train import validation
from geounet.train.datasets import scene_split
from geounet.train.strip import choice_sweep, predict_strips
from geounet.train.validation import DEFAULT_THRESHOLDS, ThresholdScore, TruthObjects

ROOT = Path(__file__).resolve().parents[1]


def counts_afresh(
    pred: npt.NDArray[np.int64], truth: npt.NDArray[np.int64], min_pixels: int
) -> ObjectCounts:
    """One row's object counts found on their own, pairs counted by sorting."""
    _, t = np.unique(truth, return_inverse=True)
    t = t.reshape(truth.shape)
    n_pred, n_true = int(pred.max()) + 1, int(t.max()) + 1
    psize = np.bincount(pred.ravel(), minlength=n_pred)
    tsize = np.bincount(t.ravel(), minlength=n_true)
    keep_p = int(np.count_nonzero(psize[1:] >= min_pixels))
    keep_t = int(np.count_nonzero(tsize[1:] >= min_pixels))
    both = (pred > 0) & (t > 0)
    ids, inter = np.unique(pred[both] * n_true + t[both], return_counts=True)
    pi, ti = ids // n_true, ids % n_true
    ok = (psize[pi] >= min_pixels) & (tsize[ti] >= min_pixels)
    iou = inter / (psize[pi] + tsize[ti] - inter)
    tp = len(greedy_matches(pi[ok], ti[ok], iou[ok])) if keep_p and keep_t else 0
    return ObjectCounts(tp, keep_p - tp, keep_t - tp)


class Afresh:
    """Stands in for :class:`geounet.train.validation.ObjectOverlaps`: each count afresh."""

    def __init__(self, pred: npt.ArrayLike, truth: TruthObjects) -> None:
        plab = np.asarray(pred).astype(np.int64)
        self.pred = plab if truth.valid is None else np.where(truth.valid, plab, 0)
        self.truth = truth

    def counts(
        self, keep: npt.NDArray[np.bool_] | None = None, iou_threshold: float = 0.5
    ) -> ObjectCounts:
        """The row's counts, its footprints relabelled and matched on their own."""
        pred = self.pred if keep is None else np.where(keep[self.pred], self.pred, 0)
        return counts_afresh(pred, self.truth.ids, self.truth.min_pixels)


def timed_sweep(strips: list, *, afresh: bool) -> tuple[float, list[ThresholdScore]]:
    """Seconds the choice's sweep takes, and its rows."""
    original = validation.object_overlaps
    if afresh:
        validation.object_overlaps = Afresh  # type: ignore[assignment]
    try:
        start = time.perf_counter()
        rows = choice_sweep(
            strips, DEFAULT_THRESHOLDS, BODY_THRESHOLDS, SEED_AREAS_M2, MIN_CONFIDENCES
        )
        return time.perf_counter() - start, rows
    finally:
        validation.object_overlaps = original


def main() -> int:
    """Print the seconds of each way and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scene", type=Path, default=ROOT / "sample_data/banepa/banepa_west_z19.tif"
    )
    parser.add_argument("--labels", type=Path, default=ROOT / "sample_data/banepa/buildings.gpkg")
    args = parser.parse_args()
    ck = load_checkpoint()
    split = scene_split([args.scene], 0.2, None)
    start = time.perf_counter()
    strips = predict_strips(
        ck, [args.scene], [args.labels], split.val_roi, split.crs, PredictOptions()
    )
    predicted = time.perf_counter() - start
    shape = "+".join(f"{s.prob.shape[1]}x{s.prob.shape[0]}" for s in strips)
    print(f"{args.scene.name}: strip {shape} px, predicted in {predicted:.1f} s")
    now, rows = timed_sweep(strips, afresh=False)
    before, reference = timed_sweep(strips, afresh=True)
    if rows != reference:
        raise SystemExit("the two ways gave different rows")
    print(f"rows: {len(rows)} (the same both ways)")
    print(f"now: {now:.1f} s; afresh: {before:.1f} s; ratio: {before / now:.1f} x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
