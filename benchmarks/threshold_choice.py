"""What choosing a model's thresholds costs once the strip is predicted.

Predicts the eastern strip of Banepa's west scene (dense touching roofs) with the bundled
model once, as ``geounet calibrate`` and ``geounet finetune`` do, then times the sweep
they choose from (:func:`geounet.train.strip.choice_sweep`: every building and body
threshold, then every smallest seed and confidence near the best pixel IoU, about 2,300
rows) twice:

- **now**: each labelling's object pairs are found once, and every smallest confidence
  is counted on them (a footprint dropped whole changes no other one's pixels);
- **afresh**: every row matched on its own as ``object_counts`` matches, the truths numbered
  again and the pairs counted by sorting for each, as geounet did until 2026-12-06
  (then the truths were numbered by sorting too).

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

from geounet.core.objects import ObjectCounts
from geounet.core.thresholds import BODY_THRESHOLDS, MIN_CONFIDENCES, SEED_AREAS_M2
from geounet.inference.options import PredictOptions
from geounet.model.checkpoint import load_checkpoint
from geounet.train import validation
from geounet.train.datasets import scene_split
from geounet.train.strip import choice_sweep, predict_strips
from geounet.train.validation import (
    DEFAULT_THRESHOLDS,
    ThresholdScore,
    TruthObjects,
    object_overlaps,
)

ROOT = Path(__file__).resolve().parents[1]


class Afresh:
    """Stands in for :class:`geounet.train.validation.ObjectOverlaps`: each row afresh."""

    def __init__(self, pred: npt.ArrayLike, truth: TruthObjects) -> None:
        self.pred = np.asarray(pred).astype(np.int64)
        self.truth = truth

    def counts(
        self, keep: npt.NDArray[np.bool_] | None = None, iou_threshold: float = 0.5
    ) -> ObjectCounts:
        """The row's counts, its footprints matched on their own, as ``object_counts`` does."""
        pred = self.pred if keep is None else np.where(keep[self.pred], self.pred, 0)
        truth = TruthObjects.of(self.truth.ids, self.truth.valid, self.truth.min_pixels)
        return object_overlaps(pred, truth).counts(iou_threshold=iou_threshold)


def timed_sweep(strips: list, *, afresh: bool) -> tuple[float, list[ThresholdScore]]:
    """Seconds the choice's sweep takes, and its rows."""
    original = validation.object_overlaps, validation.PAIR_TABLE_CELLS
    if afresh:
        validation.object_overlaps = Afresh  # type: ignore[assignment]
        validation.PAIR_TABLE_CELLS = 0  # pairs counted by sorting, as then
    try:
        start = time.perf_counter()
        rows = choice_sweep(
            strips, DEFAULT_THRESHOLDS, BODY_THRESHOLDS, SEED_AREAS_M2, MIN_CONFIDENCES
        )
        return time.perf_counter() - start, rows
    finally:
        validation.object_overlaps, validation.PAIR_TABLE_CELLS = original


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
