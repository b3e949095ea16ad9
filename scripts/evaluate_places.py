"""Measure models place by place: the validation strips, Kampala b, leave-one-place-out.

Every figure is made the same way: the scenes are predicted whole, as ``geounet predict``
predicts them (tiles, overlap, mirrored borders, uint8 probabilities, the card's
test-time augmentation), the footprints are split as predict splits them (the card's
building and body thresholds, watershed on the body and contact channels, predict's
smallest footprint), and only the region named is scored against the footprints burned
on the same grid: pixel IoU, precision and recall; object F1, precision and recall by the
SpaceNet rule (one-to-one matches at IoU >= 0.5, objects under 20 px ignored on both
sides). Training places come from ``sample_data/places.csv``; their strips are the eastern
20 % of each scene, as training and calibration cut them.

Rows:
- ``strip``: a place's validation strip. The bundled model chose its epochs and thresholds
  on the union of these strips, so they are validation figures, not test figures.
- ``kampala_b_z21`` / ``kampala_b_z20``: the test scene, never used to choose anything.
- ``lopo``: a network trained on the other three places (``--lopo DIR`` holds
  ``lopo_<place>.safetensors``, thresholds chosen on those three places' strips), scored on
  the whole of the place it never saw: what a user in a new town should expect.
  ``--lopo-from`` copies these rows, and what they say of their origin, from an earlier
  results file instead (when the networks are not at hand); the card says so.

Usage:
  python scripts/evaluate_places.py MODEL [--lopo DIR | --lopo-from EARLIER.json] [--name NAME]
      --json OUT.json
  python scripts/evaluate_places.py MODEL --whole-place P [--precision int8]  (one JSON row:
      place P scored whole, its training part included: for comparing precisions)
  python scripts/evaluate_places.py --card RESULTS.json [RESULTS.json ...] > tables.md
  python scripts/evaluate_places.py --summary BUNDLED.json [PREVIOUS.json]  (README table)
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import shapely

from geounet.inference.options import PredictOptions
from geounet.model.checkpoint import load_checkpoint
from geounet.train.datasets import scene_split
from geounet.train.strip import predict_strips, scores_at_card
from geounet.train.validation import ThresholdScore

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
TEST_SCENES = ("kampala_b_z21", "kampala_b_z20")
VAL_FRACTION = 0.2
PRECISIONS = ("auto", "float32", "bfloat16", "int8")
"""The precisions a measurement may predict at (``auto``: as ``geounet predict`` does,
int8 for the bundled model on a CPU with int8 instructions since 2026-12-06)."""


def add_precision_option(parser: argparse.ArgumentParser) -> None:
    """``--precision``: the precision to predict at (figures before 2026-12-06: bfloat16)."""
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="predict at this precision (default: as geounet predict does; the figures "
        "in the docs before 2026-12-06 were measured in bfloat16)",
    )


def places() -> dict[str, tuple[list[Path], list[Path]]]:
    """The training places of ``sample_data/places.csv``: images and label files."""
    out: dict[str, tuple[list[Path], list[Path]]] = {}
    with open(SAMPLE / "places.csv", newline="") as f:
        for row in csv.DictReader(f):
            images, labels = out.setdefault(row["place"], ([], []))
            images.append(SAMPLE / row["image"])
            if SAMPLE / row["labels"] not in labels:
                labels.append(SAMPLE / row["labels"])
    return out


def figures(score: ThresholdScore) -> dict[str, Any]:
    """The figures of one scored region."""
    o = score.objects
    return {
        "pixel_iou": score.pixels.iou,
        "pixel_precision": score.pixels.precision,
        "pixel_recall": score.pixels.sensitivity,
        "object_f1": o.f1,
        "object_precision": o.precision,
        "object_recall": o.recall,
        "tp": o.tp,
        "fp": o.fp,
        "fn": o.fn,
    }


def score(
    model: Path,
    images: Sequence[Path],
    labels: Sequence[Path],
    whole: bool,
    precision: str = "auto",
    min_confidence: float | None = None,
) -> dict[str, Any]:
    """Predict the scenes whole and score their strips (or, with ``whole``, all of them).

    ``min_confidence`` overrides the card's smallest footprint confidence, as
    ``geounet predict --min-confidence`` does.
    """
    (row,) = score_each(model, images, labels, whole, (min_confidence,), precision)
    return row


def score_each(
    model: Path,
    images: Sequence[Path],
    labels: Sequence[Path],
    whole: bool,
    min_confidences: Sequence[float | None],
    precision: str = "auto",
) -> list[dict[str, Any]]:
    """:func:`score` at each smallest confidence (``None``: the card's), predicted once."""
    ck = load_checkpoint(model)
    split = scene_split(list(images), VAL_FRACTION)
    roi = shapely.union_all([split.train_roi, split.val_roi]) if whole else split.val_roi
    options = PredictOptions(tta=ck.card.tta, precision=precision)
    strips = predict_strips(ck, images, labels, roi, split.crs, options)
    scores = scores_at_card(ck, strips, options, min_confidences)
    return [figures(s) for s in scores]


def measure(
    model: Path,
    lopo: Path | None,
    name: str,
    lopo_from: Path | None = None,
    precision: str = "auto",
) -> dict[str, Any]:
    """Every row for one model (see the module's description)."""
    rows: dict[str, Any] = {"name": name, "model": str(model), "strip": {}, "test": {}, "lopo": {}}
    if lopo_from is not None:
        earlier = json.loads(lopo_from.read_text())
        rows["lopo"] = earlier["lopo"]
        rows["lopo_source"] = earlier.get("lopo_source", str(lopo_from))
    for place, (images, labels) in places().items():
        rows["strip"][place] = score(model, images, labels, False, precision)
        print(f"{name} strip {place}: {rows['strip'][place]}", file=sys.stderr)
        if lopo is not None:
            lopo_model = lopo / f"lopo_{place}.safetensors"
            rows["lopo"][place] = score(lopo_model, images, labels, True, precision)
            print(f"{name} lopo {place}: {rows['lopo'][place]}", file=sys.stderr)
    for scene in TEST_SCENES:
        rows["test"][scene] = score(
            model, [SAMPLE / f"{scene}.tif"], [SAMPLE / "buildings.gpkg"], True, precision
        )
        print(f"{name} test {scene}: {rows['test'][scene]}", file=sys.stderr)
    return rows


def _row(label: str, f: dict[str, Any]) -> str:
    return (
        f"| {label} | {f['pixel_iou']:.3f} | {f['pixel_precision']:.3f} | "
        f"{f['pixel_recall']:.3f} | {f['object_f1']:.3f} | {f['object_precision']:.3f} | "
        f"{f['object_recall']:.3f} | {f['tp']} / {f['fp']} / {f['fn']} | "
        f"{(f['tp'] + f['fp']) / max(f['tp'] + f['fn'], 1):.2f} |"
    )


HEADER = (
    "| {} | pixel IoU | pixel P | pixel R | object F1 | object P | object R | TP / FP / FN "
    "| objects found / true |\n|---|---|---|---|---|---|---|---|---|"
)


def tables(results: Sequence[dict[str, Any]]) -> str:
    """Markdown tables of the results of :func:`measure` (the first is the bundled model)."""
    out = []
    for kind, title in (
        ("strip", "Validation strips (eastern 20 % of each scene of the place)"),
        ("test", "Test: Kampala area b (never used to choose anything)"),
        (
            "lopo",
            "Leave one place out: trained on the other three places, scored on all of this one",
        ),
    ):
        if not any(r[kind] for r in results):
            continue
        out.append(f"### {title}\n")
        for r in results:
            if not r[kind]:
                continue
            out.append(f"{r['name']}:\n")
            out.append(HEADER.format("place" if kind != "test" else "scene"))
            out.extend(_row(k, v) for k, v in r[kind].items())
            out.append("")
    return "\n".join(out)


def summary(bundled: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """The README's table: pixel IoU / object F1 per place, strip and leave-one-place-out."""

    def pair(f: dict[str, Any] | None) -> str:
        return "-" if f is None else f"{f['pixel_iou']:.3f} / {f['object_f1']:.3f}"

    head = "| place | validation strip | leave-one-place-out |"
    rule = "|---|---|---|"
    if previous is not None:
        head += " previous model, strip |"
        rule += "---|"
    lines = [head, rule]
    for place, f in bundled["strip"].items():
        row = f"| {place} | {pair(f)} | {pair(bundled['lopo'].get(place))} |"
        if previous is not None:
            row += f" {pair(previous['strip'].get(place))} |"
        lines.append(row)
    for scene, f in bundled["test"].items():
        row = f"| {scene} (test) | {pair(f)} | - |"
        if previous is not None:
            row += f" {pair(previous['test'].get(scene))} (test) |"
        lines.append(row)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure a model, or print the tables of measured results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path)
    parser.add_argument("--lopo", type=Path, help="folder with lopo_<place>.safetensors")
    parser.add_argument("--lopo-from", type=Path, help="copy the lopo rows from this results file")
    parser.add_argument(
        "--lopo-place", help="with --lopo: print only this place's leave-one-place-out row"
    )
    parser.add_argument(
        "--whole-place", help="with MODEL: print only this place's row, scored whole"
    )
    parser.add_argument("--name", default="model")
    add_precision_option(parser)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--card", nargs="+", type=Path, help="print tables of these results")
    parser.add_argument(
        "--summary", nargs="+", type=Path, help="print the README's table of BUNDLED [PREVIOUS]"
    )
    args = parser.parse_args(argv)
    if args.summary:
        loaded = [json.loads(p.read_text()) for p in args.summary]
        print(summary(loaded[0], loaded[1] if len(loaded) > 1 else None))
        return 0
    if args.card:
        print(tables([json.loads(p.read_text()) for p in args.card]))
        return 0
    if args.lopo_place or args.whole_place:
        if args.lopo_place and args.lopo is None:
            parser.error("--lopo-place needs --lopo")
        if args.whole_place and args.model is None:
            parser.error("--whole-place needs MODEL")
        place = args.lopo_place or args.whole_place
        images, labels = places()[place]
        model = args.lopo / f"lopo_{place}.safetensors" if args.lopo_place else args.model
        print(json.dumps(score(model, images, labels, True, args.precision)))
        return 0
    if args.model is None or args.json is None:
        parser.error("give MODEL and --json, or --card")
    if args.lopo is not None and args.lopo_from is not None:
        parser.error("give --lopo or --lopo-from, not both")
    rows = measure(args.model, args.lopo, args.name, args.lopo_from, args.precision)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
