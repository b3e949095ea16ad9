"""Which seeds should start a footprint of their own: by area, by peak depth, or by share?

A footprint grows from each seed (a patch of the body channel above the body threshold)
that is at least the card's smallest seed in area (``seed_area_m2``, chosen on the
validation strips). Two other rules, from the watershed literature, are scored here
beside it, each on top of the area rule:

- ``peak``: a seed counts only if its body (each roof's depth, 1 along the roof's middle)
  reaches P somewhere: its dynamics above the body threshold, which does not depend on
  the roof's size, so small houses could keep their seeds where pieces of a large roof's
  depth map lose theirs;
- ``share``: a seed counts only if it is at least F times the largest seed of its
  connected building region, so a roof whose depth map broke into one large patch and
  specks keeps the large one.

The model predicts each place's validation strip (and Kampala b, reported only) once, as
``geounet predict`` does; each rule is then swept over body thresholds and smallest seeds
at the card's building threshold, scored on the union of the strips as ``geounet
calibrate`` scores (SpaceNet rule). Nothing here chooses for the bundled model: it records
whether either rule is worth building.

Usage:
    python scripts/seed_rules.py [MODEL] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from scipy import ndimage

from geounet.core.instances import seed_mask
from geounet.inference.options import PredictOptions
from geounet.model.checkpoint import bundled_model_path, load_checkpoint
from geounet.train.datasets import scene_split
from geounet.train.strip import StripPrediction, predict_strips, sweep_strips
from geounet.train.validation import ThresholdScore, merge_scores

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_places import (  # noqa: E402
    SAMPLE,
    TEST_SCENES,
    VAL_FRACTION,
    add_precision_option,
    places,
)

BODY_THRESHOLDS = (0.3, 0.4)
SEED_AREAS_M2 = (0.5, 2.0, 4.0, 8.0, 12.0)
PEAKS = (0.5, 0.6, 0.7, 0.8)
SHARES = (0.1, 0.2, 0.3)
TEST = " (test)"
"""Suffix of the test scenes' names: reported, left out of the union that is scored."""

Keep = Callable[[npt.NDArray[np.int32], int, StripPrediction, float], npt.NDArray[np.bool_]]
"""A rule: given the seeds (labelled), their count, the strip and the building threshold,
which seeds (index 0 = background) keep their body."""


def _seeds(s: StripPrediction, threshold: float, body_threshold: float) -> tuple[Any, int]:
    """The seeds that prediction's split would use, labelled (:func:`seed_mask`)."""
    mask = (s.prob >= threshold) & s.valid
    seeds = seed_mask(mask, s.channels["body"], body_threshold, s.channels.get("contact"))
    labels, n = ndimage.label(seeds)
    return labels, int(n)


def peak_rule(p: float) -> Keep:
    """Seeds whose body reaches ``p``."""

    def keep(seeds: Any, n: int, s: StripPrediction, threshold: float) -> npt.NDArray[np.bool_]:
        peaks = np.zeros(n + 1)
        peaks[1:] = ndimage.maximum(s.channels["body"], seeds, index=np.arange(1, n + 1))
        return peaks >= p

    return keep


def share_rule(f: float) -> Keep:
    """Seeds of at least ``f`` times the largest seed of their building region."""

    def keep(seeds: Any, n: int, s: StripPrediction, threshold: float) -> npt.NDArray[np.bool_]:
        regions, m = ndimage.label((s.prob >= threshold) & s.valid)
        sizes = np.bincount(seeds.ravel(), minlength=n + 1)
        region_of = np.zeros(n + 1, dtype=np.int64)
        at = seeds > 0
        region_of[seeds[at]] = regions[at]
        largest = np.zeros(m + 1)
        np.maximum.at(largest, region_of[1:], sizes[1:])
        return sizes >= f * largest[region_of]

    return keep


def with_rule(
    s: StripPrediction, rule: Keep, threshold: float, body_threshold: float
) -> StripPrediction:
    """The strip with the body of every seed that ``rule`` rejects set to 0."""
    seeds, n = _seeds(s, threshold, body_threshold)
    if n == 0:
        return s
    keep = rule(seeds, n, s, threshold)
    keep[0] = True
    body = np.where(keep[seeds], s.channels["body"], 0.0).astype(np.float32)
    return dataclasses.replace(s, channels={**s.channels, "body": body})


def sweep(
    strips: dict[str, list[StripPrediction]], threshold: float, rule: Keep | None
) -> list[dict[str, Any]]:
    """Every body threshold and smallest seed under ``rule``: the union and each place."""
    rows: list[dict[str, Any]] = []
    for body_threshold in BODY_THRESHOLDS:
        per: dict[str, list[ThresholdScore]] = {}
        for name, parts in strips.items():
            ruled = [p if rule is None else with_rule(p, rule, threshold, body_threshold)
                     for p in parts]  # fmt: skip
            per[name] = sweep_strips(ruled, (threshold,), (body_threshold,), SEED_AREAS_M2)
        union: list[ThresholdScore] = []
        for name in strips:
            if not name.endswith(TEST):
                union = merge_scores(union, per[name]) if union else per[name]
        for k, u in enumerate(union):
            rows.append({
                "body": body_threshold, "seed_m2": u.seed_area_m2, "pixel_iou": u.pixels.iou,
                "object_f1": u.objects.f1, "score": u.score,
                "places": {name: per[name][k].objects.f1 for name in strips},
            })  # fmt: skip
    return rows


def table(results: dict[str, list[dict[str, Any]]], names: Sequence[str]) -> str:
    """The best row of each rule on the union of the strips (by calibrate's score)."""
    head = "| rule | body | smallest seed (m2) | union object F1 | " + " | ".join(names) + " |"
    lines = [head, "|" + "---|" * (4 + len(names))]
    for rule, rows in results.items():
        best = max(rows, key=lambda r: r["score"])
        cells = [f"{best['places'][n]:.3f}" for n in names]
        lines.append(f"| {rule} | {best['body']:g} | {best['seed_m2']:g} | "
                     f"{best['object_f1']:.3f} | " + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Predict the strips once, sweep each rule, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, nargs="?", default=bundled_model_path())
    parser.add_argument("--json", type=Path, help="write every row here")
    add_precision_option(parser)
    args = parser.parse_args(argv)
    ck = load_checkpoint(args.model)
    if "body" not in ck.card.class_names:
        parser.error(f"{args.model} has no body channel: it has no seeds to choose")
    options = PredictOptions(tta=ck.card.tta, precision=args.precision)
    strips: dict[str, list[StripPrediction]] = {}
    for place, (images, labels) in places().items():
        split = scene_split(list(images), VAL_FRACTION)
        strips[place] = predict_strips(ck, images, labels, split.val_roi, split.crs, options)
    for scene in TEST_SCENES:  # reported, never chosen on
        images = [SAMPLE / f"{scene}.tif"]
        split = scene_split(images, VAL_FRACTION)
        whole = shapely.union_all([split.train_roi, split.val_roi])
        labels = [SAMPLE / "buildings.gpkg"]
        strips[scene + TEST] = predict_strips(ck, images, labels, whole, split.crs, options)
    threshold = ck.card.threshold
    rules: dict[str, Keep | None] = {"area only (the card's rule)": None}
    rules |= {f"peak {p:g}": peak_rule(p) for p in PEAKS}
    rules |= {f"share {f:g}": share_rule(f) for f in SHARES}
    results = {name: sweep(strips, threshold, rule) for name, rule in rules.items()}
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results, list(strips)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
