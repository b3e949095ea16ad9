"""Measure a model on area b of the Kampala sample, which no training ever reads.

geounet's own predict, vectorize and evaluate make the figures; the script prints a
markdown table.

Rows: the footprints from thresholding alone (connected regions), from the watershed split
on the model's body and contact channels (when it has them: seeds are body pixels away from
contacts), and from that split with right-angle regularisation. Scenes: area b at z21
(0.075 m, resampled on the fly to the model's pixel size) and at z20 (0.149 m).
Evaluation: pixel figures over valid pixels, object figures by the SpaceNet rule
(one-to-one matches at IoU >= 0.5, polygons under 20 px ignored).

Usage: python scripts/evaluate_bundled_model.py [CHECKPOINT] > table.md
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from geounet.checkpoint import bundled_model_path, read_card
from geounet.evaluate import evaluate_scene
from geounet.predict import PredictOptions, predict_scene
from geounet.vectorize import split_bands, vectorize, write_footprints

ROOT = Path(__file__).resolve().parents[1]
SCENES = ("kampala_b_z21", "kampala_b_z20")
TRUTH = ROOT / "sample_data" / "buildings.gpkg"


def measure(model: Path) -> list[dict[str, object]]:
    """Predict and evaluate every scene and footprint variant; one dict per table row."""
    card = read_card(model)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for name in SCENES:
            scene = ROOT / "sample_data" / f"{name}.tif"
            res = predict_scene(scene, out, model, PredictOptions(footprints=False, overwrite=True))
            variants: list[tuple[str, dict[str, object]]] = [("threshold only", {})]
            split_path = out / f"{name}.split.tif"
            if split_path.exists():
                split = (split_path, split_bands(split_path))
                seeds = " and ".join(split[1])
                body = {"split": split, "body_threshold": card.body_threshold}
                variants += [
                    (f"watershed split ({seeds})", body),
                    ("split + regularisation", {**body, "regularize": True}),
                ]
            else:
                variants += [("threshold + regularisation", {"regularize": True})]
            for label, kwargs in variants:
                gdf = vectorize(res.probability, card.threshold, **kwargs)  # type: ignore[arg-type]
                fp = out / f"{name}.{len(rows)}.gpkg"
                write_footprints(gdf, fp)
                report = evaluate_scene(
                    scene,
                    TRUTH,
                    prob=res.probability,
                    footprints=fp,
                    threshold=card.threshold,
                    pictures=False,
                    object_sweep=False,
                ).report
                rows.append(
                    {
                        "scene": name,
                        "footprints": label,
                        "polygons": len(gdf),
                        **{
                            f"pixel_{k}": report["pixel"][k]
                            for k in ("iou", "precision", "sensitivity", "accuracy", "f1")
                        },
                        **{
                            f"object_{k}": report["objects"][k]
                            for k in ("precision", "recall", "f1")
                        },
                    }
                )
    return rows


def table(rows: list[dict[str, object]]) -> str:
    """Render the rows as a markdown table."""
    head = (
        "| scene | footprints | polygons | pixel IoU | pixel precision | sensitivity | "
        "pixel accuracy | pixel F1 | object precision | object recall | object F1 |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|"
    )
    body = [
        f"| {r['scene']} | {r['footprints']} | {r['polygons']} | {r['pixel_iou']:.3f} | "
        f"{r['pixel_precision']:.3f} | {r['pixel_sensitivity']:.3f} | {r['pixel_accuracy']:.3f} | "
        f"{r['pixel_f1']:.3f} | {r['object_precision']:.3f} | {r['object_recall']:.3f} | "
        f"{r['object_f1']:.3f} |"
        for r in rows
    ]
    return "\n".join([head, *body])


def main() -> None:
    """Print the table for the checkpoint given, or the bundled model."""
    model = Path(sys.argv[1]) if len(sys.argv) > 1 else bundled_model_path()
    print(table(measure(model)))


if __name__ == "__main__":
    main()
