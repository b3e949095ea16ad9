"""Does a calibration choice travel? Choose on three places' strips, score the fourth.

``geounet calibrate`` chooses the card's thresholds (building, body, smallest seed,
smallest confidence) on the union of the four places' validation strips, where Banepa
holds most of the roofs. This script asks whether what is chosen there suits a place it
was not chosen on: for each place, the thresholds are chosen by calibrate's rule
(:func:`~geounet.train.validation.choose_score`) on the other three places' strips, and
the place's own strips are scored at that choice; once with the smallest confidence
fixed at 0 (every footprint kept) and once with it swept as well. The mean over the four
held-out places says which sweep chooses better for a town it has not seen.

The strips are predicted once, as ``geounet predict`` predicts the scenes
(:func:`~geounet.train.strip.predict_strips`). The grid is smaller than calibrate's, to
keep the run to minutes: building thresholds 0.30-0.50, body thresholds 0.2-0.5 and
seeds of 4-12 m2 (every choice calibrate made for the bundled model lies inside it).
Kampala b is not read.

Usage:
  python scripts/calibration_cv.py [MODEL] --json docs/model/calibration_cv.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from geounet.core.thresholds import MIN_CONFIDENCES
from geounet.inference.options import PredictOptions
from geounet.model.checkpoint import bundled_model_path, load_checkpoint
from geounet.train.datasets import scene_split
from geounet.train.strip import StripPrediction, predict_strips, sweep_strips
from geounet.train.validation import ThresholdScore, choose_score, merge_scores

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_places import VAL_FRACTION, add_precision_option, figures, places  # noqa: E402

THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5)
BODY_THRESHOLDS = (0.2, 0.3, 0.4, 0.5)
SEED_AREAS_M2 = (4.0, 6.0, 8.0, 12.0)


def place_sweeps(model: Path, precision: str = "auto") -> dict[str, list[ThresholdScore]]:
    """Every place's strips predicted and swept over the grid, counts summed per place."""
    ck = load_checkpoint(model)
    sweeps: dict[str, list[ThresholdScore]] = {}
    for place, (images, labels) in places().items():
        split = scene_split(list(images), VAL_FRACTION)
        strips: list[StripPrediction] = predict_strips(
            ck,
            images,
            labels,
            split.val_roi,
            split.crs,
            PredictOptions(tta=ck.card.tta, precision=precision),
        )
        sweeps[place] = sweep_strips(
            strips, THRESHOLDS, BODY_THRESHOLDS, SEED_AREAS_M2, MIN_CONFIDENCES
        )
        print(f"{place}: {len(sweeps[place])} settings scored", file=sys.stderr)
    return sweeps


def held_out(sweeps: dict[str, list[ThresholdScore]], confidence: bool) -> dict[str, Any]:
    """Each place scored at the choice made on the other places' strips."""
    first = next(iter(sweeps.values()))
    keep = [i for i, s in enumerate(first) if confidence or not s.min_confidence]
    rows: dict[str, Any] = {}
    for place in sweeps:
        others = [[sweeps[p][i] for i in keep] for p in sweeps if p != place]
        pooled = others[0]
        for more in others[1:]:
            pooled = merge_scores(pooled, more)
        best = choose_score(pooled)
        mine = sweeps[place][keep[pooled.index(best)]]
        rows[place] = {
            "chosen": {
                "threshold": best.threshold,
                "body_threshold": best.body_threshold,
                "seed_area_m2": best.seed_area_m2,
                "min_confidence": best.min_confidence,
            },
            **figures(mine),
        }
    rows["mean"] = {
        key: float(np.mean([rows[p][key] for p in sweeps])) for key in ("pixel_iou", "object_f1")
    }
    return rows


def table(results: dict[str, Any]) -> str:
    """The held-out figures side by side, one row per place."""
    lines = [
        "| place held out | chosen on the others, confidence fixed at 0 | pixel IoU / object F1 "
        "| chosen on the others, confidence swept | pixel IoU / object F1 |",
        "|---|---|---|---|---|",
    ]
    fixed, swept = results["without_confidence"], results["with_confidence"]

    def choice(c: dict[str, Any]) -> str:
        return (
            f"{c['threshold']:.2f} / {c['body_threshold']:.2f} / {c['seed_area_m2']:g} m² "
            f"/ {c['min_confidence']:g}"
        )

    for place in fixed:
        if place == "mean":
            continue
        a, b = fixed[place], swept[place]
        lines.append(
            f"| {place} | {choice(a['chosen'])} | {a['pixel_iou']:.3f} / {a['object_f1']:.3f} "
            f"| {choice(b['chosen'])} | {b['pixel_iou']:.3f} / {b['object_f1']:.3f} |"
        )
    a, b = fixed["mean"], swept["mean"]
    lines.append(
        f"| mean of the four | | {a['pixel_iou']:.3f} / {a['object_f1']:.3f} "
        f"| | {b['pixel_iou']:.3f} / {b['object_f1']:.3f} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the cross-check and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, default=None)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--table", type=Path, help="print the table of these results")
    add_precision_option(parser)
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return 0
    sweeps = place_sweeps(args.model or bundled_model_path(), args.precision)
    results = {
        "model": str(args.model or "bundled"),
        "without_confidence": held_out(sweeps, confidence=False),
        "with_confidence": held_out(sweeps, confidence=True),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
