"""Write the bundled model's card (geounet/data/MODEL_CARD.md) from its checkpoint and figures.

The card's facts come from the checkpoint's own card (architecture, thresholds, pixel
size, normalisation, the members' recorded commands and training provenance) and its
tables from ``scripts/evaluate_places.py`` results (JSON). Nothing in it is typed by hand
except the template's prose.

Usage:
  python scripts/evaluate_places.py geounet/data/buildings_unet.safetensors --precision bfloat16 \
      --lopo build/places --name "bundled model" --json build/places/bundled.json
  python scripts/evaluate_places.py build/places/kampala_only.safetensors \
      --name "previous model (Kampala a only)" --json build/places/kampala_only.json
  python scripts/write_model_card.py build/places/bundled.json build/places/kampala_only.json

The card of this checkout was written from ``docs/model/*.json`` (see docs/model/README.md).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_places import tables  # noqa: E402

from geounet.core.thresholds import BODY_THRESHOLDS, MIN_CONFIDENCES, SEED_AREAS_M2  # noqa: E402
from geounet.model.checkpoint import bundled_model_path, read_card  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "geounet" / "data" / "MODEL_CARD.md"

GOALS = {
    "test": ("Kampala b", 0.80, 0.70),
    "strip": ("every place's validation strip", 0.75, 0.60),
    "lopo": ("leave-one-place-out, every place", 0.60, None),
}
"""Issue 21's goals: (where, pixel IoU, object F1)."""


def goal_lines(result: dict[str, Any]) -> list[str]:
    """One line per goal: met, or by how much each row misses it."""
    lines = []
    for kind, (where, iou_goal, f1_goal) in GOALS.items():
        rows = result.get(kind) or {}
        if not rows:
            continue
        misses = []
        for name, f in rows.items():
            if f["pixel_iou"] < iou_goal:
                misses.append(
                    f"{name} pixel IoU {f['pixel_iou']:.3f} ({f['pixel_iou'] - iou_goal:+.3f})"
                )
            if f1_goal is not None and f["object_f1"] < f1_goal:
                misses.append(
                    f"{name} object F1 {f['object_f1']:.3f} ({f['object_f1'] - f1_goal:+.3f})"
                )
        goal = f"pixel IoU >= {iou_goal:.2f}" + (f", object F1 >= {f1_goal:.2f}" if f1_goal else "")
        state = "met" if not misses else "not met: " + "; ".join(misses)
        lines.append(f"- {where} ({goal}): {state}.")
    return lines


def lacks(result: dict[str, Any]) -> list[str]:
    """What the rows say the data or the model lack, one line per finding, from the figures."""
    lines = []
    for kind, label in (("strip", "strip"), ("test", "test"), ("lopo", "left out")):
        for name, f in (result.get(kind) or {}).items():
            true = f["tp"] + f["fn"]
            found = (f["tp"] + f["fp"]) / max(true, 1)
            where = f"{name} ({label})"
            if true < 30:
                lines.append(
                    f"- {where}: {true} true buildings; one more or less found moves object "
                    f"F1 by about {1 / max(true, 1):.2f}: too few to judge by."
                )
            elif found > 1.2 and f["pixel_precision"] < 0.75:
                lines.append(
                    f"- {where}: {found:.2f} objects found per true building at pixel precision "
                    f"{f['pixel_precision']:.2f}: ground, roads or other surfaces taken for "
                    "roofs; more places like it in training would teach what is not a roof."
                )
            elif found > 1.2:
                lines.append(
                    f"- {where}: {found:.2f} objects found per true building at pixel precision "
                    f"{f['pixel_precision']:.2f}: the roofs are found but cut into pieces (or "
                    "roofs the labels lack); the split of touching roofs is what falls short."
                )
            elif f["pixel_recall"] < 0.7:
                lines.append(
                    f"- {where}: pixel recall {f['pixel_recall']:.2f}: roofs missed; roofs "
                    "unlike any in training (material, colour, size)."
                )
    return lines


def members(card: Any) -> list[str]:
    """The recorded command, machine and time of each member."""
    prov = card.provenance
    out = []
    k = 1
    while f"member{k}.command" in prov:
        p = f"member{k}."
        out.append(
            f"- member {k}: `{prov[p + 'command']}`  \n"
            f"  best epoch {prov[p + 'best_epoch']}, "
            f"{int(prov[p + 'training_time_s']) / 60:.1f} min on {prov[p + 'machine']}, "
            f"torch {prov[p + 'torch']}, {prov[p + 'date']}"
        )
        k += 1
    return out


def extent_lines(card: Any) -> list[str]:
    """One line per training scene of the card: its name and bounds."""
    return [
        f"- {e.name}: {e.bounds[0]:.5f}, {e.bounds[1]:.5f} to {e.bounds[2]:.5f}, {e.bounds[3]:.5f}"
        for e in card.trained_on
    ] or ["- (not recorded)"]


def int8_note(results: list[dict[str, Any]]) -> str:
    """What the int8 rows are, when the results hold some."""
    if not any("int8" in r["name"] for r in results):
        return ""
    return (
        " The int8 rows are the same model run with `geounet predict --precision int8`"
        " (its OpenVINO int8 version, which ships beside it, written by"
        " `bash scripts/quantize_bundled_model.sh` and calibrated on the strips), thresholds"
        " unchanged; `--precision auto` runs it on a CPU with int8 instructions."
    )


def lopo_source(result: dict[str, Any]) -> str:
    """Where the leave-one-place-out rows come from, when not measured with the others."""
    source = result.get("lopo_source")
    return "" if not source else f" Those rows were {source}."


def write(results: list[dict[str, Any]]) -> str:
    """The card's text."""
    path = bundled_model_path()
    card = read_card(path)
    m = card.model
    prov = card.provenance
    norm = card.normalization
    size_mb = path.stat().st_size / 1e6
    places = prov.get("member1.data.places", prov.get("data.places", ""))
    return f"""# Model card: `{path.name}` (geounet's bundled model)

## What it is
An ensemble of {m.members} classic U-Nets (Ronneberger et al. 2015; depth {m.depth}, base width
{m.base_width}, {m.upsampling} up-sampling, batch norm) whose probabilities are averaged, with
{len(card.class_names)} output channels ({", ".join(card.class_names)}): the building mask, each
roof's depth (0 on its outline, 1 along its middle) and the contacts between touching roofs.
`geounet predict` grows one footprint per roof from the depth seeds by watershed and cuts at
contacts. File size {size_mb:.1f} MB (safetensors, no pickle).

- Pixel size: trained at {card.pixel_size_m} m ground pixels; `geounet predict` resamples
  scenes whose pixel size differs by more than 15 %.
- Thresholds: building **{card.threshold:.2f}**, body **{card.body_threshold:.2f}**, smallest
  seed **{card.seed_area_m2:g} m²** (a seed of the depth map smaller than this starts no footprint
  of its own), smallest confidence **{card.min_confidence:g}** (a footprint whose pixels' mean
  building probability is lower is dropped; 0 keeps all), chosen on the union of the four
  places' validation strips as `geounet predict` predicts them (never on Kampala b), body
  thresholds {", ".join(f"{t:g}" for t in BODY_THRESHOLDS)}, seeds of
  {", ".join(f"{t:g}" for t in SEED_AREAS_M2)} m² and confidences of
  {", ".join(f"{t:g}" for t in MIN_CONFIDENCES)} tried (the sweep:
  `docs/model/bundled.sweep.md`, printed by `geounet calibrate --show-sweep`).
  Test-time augmentation: {card.tta}.
- Input: 8-bit imagery (0..255), bands {", ".join(card.bands)}; normalisation raw x
  {norm.scale:.6f}, then mean {norm.mean}, std {norm.std} (the four places weighted equally).

## Data and licence
Four places of OpenAerialMap imagery with OpenStreetMap footprints, at 0.13-0.15 m
(`sample_data/places.csv`; `python sample_data/make_places.py` copies them from the
project's shared data): {places}.
Footprints in the scenes: {prov.get("member1.data.footprints", "?")}.
Split: {prov.get("member1.data.split", "?")}; training chips never touch a strip.
Kampala area b (`sample_data/kampala_b_z2*.tif`) is the test scene and is never read
by training or calibration.
The card's `trained_on` lists these scenes' bounds (longitude / latitude); `geounet
evaluate` flags a scene that lies there as not held out, and summaries leave it out of
their totals:

{chr(10).join(extent_lines(card))}

Imagery: OpenAerialMap contributors, CC BY 4.0.
Building footprints: (c) OpenStreetMap contributors, ODbL 1.0, via HOT fAIr.

## How it was trained
`bash scripts/train_bundled_model.sh` (see its header) packs the four places
(`geounet train --pack`), trains the networks from the pack
(`scripts/train_from_pack.sh`), averages them (`geounet ensemble`) and chooses the
thresholds (`geounet calibrate`). Chips are drawn from the four places equally often,
whatever their area; epochs are compared on the strips cut into chips at threshold 0.5.
Loss: BCE + Dice per channel with the U-Net border weight map (w0 = 10, sigma = 5 px);
augmentation (kornia): flips, 90-degree rotations, scale jitter 0.75-1.33, elastic
deformation, colour jitter. The members ran exactly:

{chr(10).join(members(card))}

## Figures
Every figure below comes from `python scripts/evaluate_places.py` (see the usage in
`scripts/write_model_card.py`): scenes predicted whole as `geounet predict` predicts them,
footprints split as it splits them, pixel IoU / precision / recall and object F1 /
precision / recall by the SpaceNet rule (one-to-one at IoU >= 0.5). The objects are the
footprints as traced (`--no-regularize`); squared, as `geounet predict` writes them by
default since 2026-12-06, they match as many roofs or more on every strip
(`docs/footprints.md`).
The strips chose this model's epochs and thresholds: they are validation figures, somewhat
optimistic. Kampala b and the leave-one-place-out rows are test figures. The
leave-one-place-out networks are single networks of member 1's recipe (not ensembles),
each calibrated on its three training places' strips.{lopo_source(results[0])}{int8_note(results)}

{tables(results)}
## Against the goals (issue 21)
{chr(10).join(goal_lines(results[0]))}

## What the data and the model lack
Read off the rows above (`objects found / true` over 1.2 means over-split or false roofs;
pixel precision says which):

{chr(10).join(lacks(results[0]))}

## Limits
- Four places, some 1,650 footprints: towns unlike all four (other roof materials, high-rise,
  snow, 0.3 m satellite imagery) will score lower than the leave-one-place-out rows.
- OSM labels miss some sheds and are off by decimetres here and there; part of the false
  positives on the strips are unlabelled buildings.
- The networks trained for 3,000 steps (6 minutes on a GPU) and were still improving.
"""


def main(argv: list[str]) -> int:
    """Write the card from results files (the bundled model's first)."""
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    results = [json.loads(Path(p).read_text()) for p in argv]
    text = write(results)
    fd, tmp = tempfile.mkstemp(dir=CARD.parent, prefix=".card.", suffix=".md")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, CARD)
    print(f"wrote {CARD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
