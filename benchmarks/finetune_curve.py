"""Fine-tuning curve: how many local buildings a town needs (issue 22's measure).

Leave Banepa out: start from the network that never saw it (``lopo_banepa.safetensors``,
made by ``scripts/train_from_pack.sh``), fine-tune it with ``geounet finetune`` on the 25,
50, 100 and 200 buildings of Banepa's west scene nearest to the middle of its training
part, and on all of them, each inside the convex hull of its buildings (a mapper's
digitised area), and score every model, and the start, on the scene's held-out eastern
strip (never fine-tuned on) as ``geounet predict`` predicts it. Wall time is measured
around each fine-tuning (training, then choosing thresholds on the area's own held-out
part). Writes ``OUT/curve.json``, ``OUT/curve.md`` and ``OUT/curve.png``.

Usage: python benchmarks/finetune_curve.py BASE.safetensors --out-dir docs/finetune [--minutes 12]
       [--patience N] [--seed N] [--counts 25 50 all]

Each row also scores the network with every footprint kept (``--min-confidence 0``), to
show what the card's smallest confidence does, and names the confidence and seed chosen.
``--counts`` reruns only those points and keeps the other rows of ``OUT/curve.json`` (a
new ``OUT`` starts with the zero-shot row);
``--patience`` overrides ``geounet finetune``'s early stopping for the measurement, and
``--seed`` its random seed (chips drawn, augmentation, initial order), to see how far a
point moves from run to run.
``--recalibrate`` fine-tunes nothing: it chooses the thresholds (and the smallest seed) of
the networks already in ``OUT/work`` again, on the held-out part of each one's area as
``geounet finetune`` chooses them (for a change in how they are chosen), scores them,
and adds the seconds it took to each row's wall time. The zero-shot row is scored with
``BASE`` as it is (calibrate it first to match).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import geopandas as gpd
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from evaluate_places import score, score_each  # noqa: E402

from geounet.model.checkpoint import load_checkpoint  # noqa: E402
from geounet.train.datasets import scene_split  # noqa: E402
from geounet.train.finetune import finetune  # noqa: E402
from geounet.train.training import calibrate  # noqa: E402

SCENE = ROOT / "sample_data" / "banepa" / "banepa_west_z19.tif"
LABELS = ROOT / "sample_data" / "banepa" / "buildings.gpkg"
COUNTS = (25, 50, 100, 200, None)  # None: every building of the training part


def subsets(work: Path, counts: tuple[int | None, ...] = COUNTS) -> list[tuple[str, Path, Path]]:
    """(name, labels, area) of each run: the nearest buildings and their convex hull."""
    split = scene_split([SCENE], 0.2)
    frame = gpd.read_file(LABELS).to_crs(split.crs)
    train = frame[frame.geometry.within(split.train_roi)]
    middle = split.train_roi.centroid
    train = train.assign(d=train.geometry.centroid.distance(middle)).sort_values("d")
    runs = []
    for n in counts:
        part = train if n is None else train.iloc[:n]
        name = "all" if n is None else str(n)
        labels = work / f"labels_{name}.gpkg"
        part[["geometry"]].to_file(labels, layer="buildings")
        area = split.train_roi if n is None else shapely.convex_hull(part.union_all())
        aoi = work / f"aoi_{name}.gpkg"
        gpd.GeoDataFrame(geometry=[area], crs=split.crs).to_file(aoi, layer="aoi")
        runs.append((name, labels, aoi))
    return runs


def recalibrate(model: Path, labels: Path, out: Path) -> float:
    """Choose a fine-tuned network's thresholds again, as ``geounet finetune`` does.

    ``geounet calibrate --aoi`` on the area the network was tuned in (its
    ``<stem>.aoi.gpkg``): the eastern 20 % of it is the held-out part. Writes ``out``;
    returns the seconds it took.
    """
    start = time.monotonic()
    calibrate(model, [SCENE], [labels], out, overwrite=True, aoi=model.with_suffix(".aoi.gpkg"))
    return time.monotonic() - start


def scored(model: Path) -> dict[str, object]:
    """The strip's figures at the model's card, and object F1 with every footprint kept."""
    card = load_checkpoint(model).card
    # the strip predicted once, scored at the card's confidence and with every footprint
    at_card, kept = score_each(model, [SCENE], [LABELS], False, (None, 0.0))
    return {
        **at_card,
        "min_confidence": card.min_confidence,
        "seed_area_m2": card.seed_area_m2,
        "object_f1_every_footprint": kept["object_f1"],
        "object_precision_every_footprint": kept["object_precision"],
    }


def plot(rows: list[dict[str, object]], minutes: float, out: Path) -> None:
    """The curve as a PNG: object F1 and pixel IoU against local buildings, zero-shot dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    tuned = rows[1:]
    xs = [int(str(r["buildings"])) for r in tuned]
    ax.plot(xs, [float(str(r["object_f1"])) for r in tuned], "o-", label="object F1")
    ax.plot(xs, [float(str(r["pixel_iou"])) for r in tuned], "s-", label="pixel IoU")
    start = {k: float(str(rows[0][k])) for k in ("object_f1", "pixel_iou")}
    ax.axhline(start["object_f1"], color="C0", ls=":", label="object F1, zero-shot")
    ax.axhline(start["pixel_iou"], color="C1", ls=":", label="pixel IoU, zero-shot")
    ax.set_xscale("log")
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.minorticks_off()
    ax.set_xlabel("local buildings fine-tuned on (Banepa west)")
    ax.set_ylabel("held-out strip")
    ax.set_title(f"Fine-tuning a model that never saw Banepa ({minutes:g} min each)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out)


def main() -> int:
    """Run the curve; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--patience", type=int, help="early stopping (default: finetune's)")
    parser.add_argument("--seed", type=int, help="fine-tuning's random seed (default: finetune's)")
    parser.add_argument("--counts", nargs="+", help="rerun these points only (25 ... all)")
    parser.add_argument("--replot", action="store_true", help="redraw OUT/curve.png only")
    parser.add_argument("--recalibrate", action="store_true",
                        help="choose the thresholds of OUT/work's networks again; no training")  # fmt: skip
    args = parser.parse_args()
    if args.replot:
        plot(
            json.loads((args.out_dir / "curve.json").read_text()),
            args.minutes,
            args.out_dir / "curve.png",
        )
        return 0
    work = args.out_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    schedule = {} if args.patience is None else {"patience": args.patience}
    schedule |= {} if args.seed is None else {"seed": args.seed}
    counts: tuple[int | None, ...] = COUNTS
    rows: list[dict[str, object]] = []
    if args.counts:
        counts = tuple(None if c == "all" else int(c) for c in args.counts)
    if args.counts and (args.out_dir / "curve.json").exists():
        rows = json.loads((args.out_dir / "curve.json").read_text())
    else:
        rows = [{"buildings": 0, "name": "zero-shot", "minutes": 0.0, **scored(args.base)}]
        print(rows[-1], flush=True)
    if args.recalibrate:
        rows = json.loads((args.out_dir / "curve.json").read_text())
        rows[0] = {**rows[0], **score(args.base, [SCENE], [LABELS], whole=False)}
        print(rows[0], flush=True)
        for row in rows[1:]:
            name = str(row["name"])
            tuned = work / f"tuned_{name}.safetensors"
            out = work / f"tuned_{name}.recalibrated.safetensors"
            seconds = recalibrate(tuned, work / f"labels_{name}.gpkg", out)
            row.update(minutes=round(float(row["minutes"]) + seconds / 60, 1),  # type: ignore[arg-type]
                       recalibrate_s=round(seconds, 1),
                       **score(out, [SCENE], [LABELS], whole=False))  # fmt: skip
            print(row, flush=True)
        counts = ()
    for name, labels, aoi in subsets(work, counts):
        out = work / f"tuned_{name}.safetensors"
        start = time.monotonic()
        result, area = finetune([SCENE], [labels], out, model=args.base, aoi=aoi,
                                minutes=args.minutes, overwrite=True, progress=False,
                                **schedule)  # fmt: skip
        wall = (time.monotonic() - start) / 60
        row = {"buildings": area.buildings, "name": name, "minutes": round(wall, 1),
               "epochs": result.epochs_run, "stopped": result.stopped,
               "strip_buildings": result.strip_buildings, **schedule,
               **scored(out)}  # fmt: skip
        rows = [r for r in rows if r["name"] != name] + [row]
        print(row, flush=True)
    rows.sort(key=lambda r: int(r["buildings"]))  # type: ignore[call-overload]
    (args.out_dir / "curve.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| local buildings | wall time (min) | pixel IoU | object F1 | object P / R "
             "| smallest confidence | object F1 / P, every footprint kept |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        every = r.get("object_f1_every_footprint")
        kept = "" if every is None else f"{every:.3f} / {r['object_precision_every_footprint']:.3f}"
        lines.append(f"| {r['buildings']} ({r['name']}) | {r['minutes']} | {r['pixel_iou']:.3f} | "
                     f"{r['object_f1']:.3f} | {r['object_precision']:.3f} / "
                     f"{r['object_recall']:.3f} | {r.get('min_confidence', '')} | {kept} |")  # fmt: skip
    (args.out_dir / "curve.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(rows, args.minutes, args.out_dir / "curve.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
