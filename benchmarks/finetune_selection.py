"""How much of the fine-tuning curve's gap a better choice of thresholds could close.

``geounet finetune`` chooses a network's building and body thresholds, smallest seed and
smallest confidence on the held-out part of the mapper's area: 28 buildings when 100 are
labelled, 145 when all 640 of Banepa's west scene are. Is the 100-building network held
back by that small choice, or by what it learnt? For each network this scores the curve's
strip (``benchmarks/finetune_curve.py``: Banepa west's eastern strip, never fine-tuned on)

- at the network's card (the thresholds its held-out part chose, as ``geounet predict``
  would), and
- at the thresholds the strip itself would choose by the same rule
  (:func:`~geounet.train.strip.choice_sweep` and
  :func:`~geounet.train.validation.choose_score`), and at the strip's best object F1 over
  the same grid.

The last two use the strip to choose, so they are ceilings, never figures to expect: if
even they stay far below the 640-building network, no rule for choosing on the held-out
part can close the gap, and what is missing is in the network.

Usage:
    python benchmarks/finetune_selection.py MODEL.safetensors [MODEL ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from evaluate_places import VAL_FRACTION, add_precision_option, figures  # noqa: E402

from geounet.core.thresholds import (  # noqa: E402
    BODY_THRESHOLDS,
    MIN_CONFIDENCES,
    SEED_AREAS_M2,
)
from geounet.inference.options import PredictOptions  # noqa: E402
from geounet.model.checkpoint import load_checkpoint  # noqa: E402
from geounet.train.datasets import scene_split  # noqa: E402
from geounet.train.strip import choice_sweep, predict_strips, scores_at_card  # noqa: E402
from geounet.train.validation import (  # noqa: E402
    DEFAULT_THRESHOLDS,
    ThresholdScore,
    choose_score,
)

SCENE = ROOT / "sample_data" / "banepa" / "banepa_west_z19.tif"
LABELS = ROOT / "sample_data" / "banepa" / "buildings.gpkg"


def settings(score: ThresholdScore) -> dict[str, Any]:
    """The thresholds a score was made at."""
    return {
        "threshold": score.threshold,
        "body_threshold": score.body_threshold,
        "seed_area_m2": score.seed_area_m2,
        "min_confidence": score.min_confidence,
    }


def measure(model: Path, precision: str = "auto") -> dict[str, Any]:
    """The strip's figures of one network: at its card, and the strip's own two ceilings."""
    ck = load_checkpoint(model)
    card = ck.card
    split = scene_split([SCENE], VAL_FRACTION)
    options = PredictOptions(tta=card.tta, precision=precision)
    strips = predict_strips(ck, [SCENE], [LABELS], split.val_roi, split.crs, options)
    (at_card,) = scores_at_card(ck, strips, options)
    sweep = choice_sweep(
        strips, DEFAULT_THRESHOLDS, BODY_THRESHOLDS, SEED_AREAS_M2, MIN_CONFIDENCES
    )
    by_rule = choose_score(sweep)
    best_f1 = max(sweep, key=lambda s: s.objects.f1)
    return {
        "model": str(model),
        "at_card": {**figures(at_card), **settings(at_card)},
        "strip_choice": {**figures(by_rule), **settings(by_rule)},
        "strip_best_object_f1": {**figures(best_f1), **settings(best_f1)},
    }


def main() -> int:
    """Measure each network; print a table row each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, help="write the rows here")
    add_precision_option(parser)
    args = parser.parse_args()
    rows = []
    print("| network | at its card: pixel IoU / object F1 | strip's choice | strip's best F1 |")
    print("|---|---|---|---|")
    for model in args.models:
        row = measure(model, args.precision)
        rows.append(row)
        cells = [
            f"{row[k]['pixel_iou']:.3f} / {row[k]['object_f1']:.3f}"
            for k in ("at_card", "strip_choice", "strip_best_object_f1")
        ]
        print(f"| {model.name} | " + " | ".join(cells) + " |", flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
