"""Measure a model on area b of the Kampala sample, which no training ever reads.

geounet's own predict, vectorize and evaluate make the figures; the script prints a
markdown table.

Rows: the footprints from thresholding alone (connected regions), from the watershed split
on the model's body and contact channels (when it has them: seeds are body pixels away from
contacts), and from that split with right-angle regularisation. Scenes: area b at z21
(0.075 m, resampled on the fly to the model's pixel size) and at z20 (0.149 m).
Evaluation: pixel figures over valid pixels, object figures by the SpaceNet rule
(one-to-one matches at IoU >= 0.5, polygons under 20 px ignored).

With ``--truth-split`` each scene gets one more row, a bound rather than a method: the
model's building mask divided among the true footprints (every building pixel goes to the
nearest one). That split knows the true buildings, so the row shows about what a perfect
split of this mask would score; the gap to the watershed row is what the split loses, the
rest is the mask's own error.

With ``--sweep`` it prints instead the watershed split's figures at building thresholds
0.30 to 0.70 (the card's in bold): how much area b's figures move with a threshold that
area a's strip chose.

Usage: python scripts/evaluate_bundled_model.py [CHECKPOINT] [--truth-split | --sweep] > table.md
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
import shapely
from scipy import ndimage

from geounet.checkpoint import bundled_model_path, read_card
from geounet.evaluate import evaluate_scene
from geounet.predict import PredictOptions, predict_scene
from geounet.vectorize import area_m2, split_bands, vectorize, write_footprints

ROOT = Path(__file__).resolve().parents[1]
SCENES = ("kampala_b_z21", "kampala_b_z20")
TRUTH = ROOT / "sample_data" / "buildings.gpkg"


def truth_split(probability: Path, threshold: float) -> gpd.GeoDataFrame:
    """The building mask of ``probability`` divided among the true footprints (a bound).

    Every pixel at or above ``threshold`` goes to the nearest true footprint (rasterised on
    the probability grid); each 4-connected piece of one footprint's pixels is a polygon,
    kept if it is at least as large as ``geounet predict`` keeps footprints (``--min-area``).
    """
    with rasterio.open(probability) as src:
        prob = src.read(1).astype(np.float32)
        if src.dtypes[0] == "uint8":  # as geounet.vectorize compares: value * (1 / 255)
            prob *= np.float32(1 / 255)
        mask = (prob >= threshold) & (src.read_masks(1) > 0)
        transform, crs = src.transform, src.crs
    truth = gpd.read_file(TRUTH).to_crs(crs)
    ids = rasterio.features.rasterize(
        ((g, i) for i, g in enumerate(truth.geometry, start=1)),
        out_shape=mask.shape,
        transform=transform,
        dtype="int32",
    )
    if not ids.any():
        return gpd.GeoDataFrame(geometry=[], crs=crs)
    rows, cols = ndimage.distance_transform_edt(
        ids == 0, return_distances=False, return_indices=True
    )
    labels = np.where(mask, ids[rows, cols], 0).astype(np.int32)
    pieces = rasterio.features.shapes(labels, mask=labels > 0, transform=transform, connectivity=4)
    gdf = gpd.GeoDataFrame(geometry=[shapely.geometry.shape(g) for g, _ in pieces], crs=crs)
    return gdf[area_m2(gdf) >= PredictOptions().min_area_m2]


SWEEP = tuple(round(0.30 + 0.05 * i, 2) for i in range(9))
"""Building thresholds of the sensitivity sweep (``--sweep``): 0.30 to 0.70."""


def _predicted(
    model: Path, body_threshold: float
) -> Iterator[tuple[str, Path, Path, dict[str, object] | None, Path]]:
    """Predict every scene into a temporary folder, one at a time.

    Yields:
        ``(name, scene, probability, split, folder)``: ``split`` is the watershed options
        of ``vectorize`` (``None`` for a model without split channels); ``folder`` is
        where the scene's footprints may be written. The folder is removed at the end.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for name in SCENES:
            scene = ROOT / "sample_data" / f"{name}.tif"
            res = predict_scene(scene, out, model, PredictOptions(footprints=False, overwrite=True))
            split_path = out / f"{name}.split.tif"
            split: dict[str, object] | None = (
                {"split": (split_path, split_bands(split_path)), "body_threshold": body_threshold}
                if split_path.exists()
                else None
            )
            yield name, scene, res.probability, split, out


def _row(
    name: str, scene: Path, probability: Path, gdf: gpd.GeoDataFrame, fp: Path, threshold: float
) -> dict[str, object]:
    """One table row: the footprints' pixel and object figures against the truth."""
    write_footprints(gdf, fp)
    report = evaluate_scene(
        scene,
        TRUTH,
        prob=probability,
        footprints=fp,
        threshold=threshold,
        pictures=False,
        object_sweep=False,
    ).report
    return {
        "scene": name,
        "polygons": len(gdf),
        **{
            f"pixel_{k}": report["pixel"][k]
            for k in ("iou", "precision", "sensitivity", "accuracy", "f1")
        },
        **{f"object_{k}": report["objects"][k] for k in ("precision", "recall", "f1")},
    }


def sweep(model: Path, thresholds: tuple[float, ...] = SWEEP) -> list[dict[str, object]]:
    """The watershed split's figures at other building thresholds than the card's.

    A sensitivity check, not a choice: the card's threshold was chosen on area a's strip,
    and this shows how much area b's figures move around it. The body threshold stays
    the card's. Models without a body channel are swept with thresholding alone.
    """
    card = read_card(model)
    rows: list[dict[str, object]] = []
    for name, scene, probability, split, out in _predicted(model, card.body_threshold):
        for t in thresholds:
            gdf = vectorize(probability, t, **(split or {}))  # type: ignore[arg-type]
            row = _row(name, scene, probability, gdf, out / f"{name}.{len(rows)}.gpkg", t)
            rows.append({**row, "threshold": t, "chosen": abs(t - card.threshold) < 1e-9})
    return rows


def sweep_table(rows: list[dict[str, object]]) -> str:
    """Render sweep rows as a markdown table (the card's threshold in bold)."""
    head = (
        "| scene | building threshold | polygons | pixel IoU | object precision | "
        "object recall | object F1 |\n|---|---|---|---|---|---|---|"
    )
    body = [
        f"| {r['scene']} | {'**' if r['chosen'] else ''}{r['threshold']:.2f}"
        f"{' (card)**' if r['chosen'] else ''} | {r['polygons']} | {r['pixel_iou']:.3f} | "
        f"{r['object_precision']:.3f} | {r['object_recall']:.3f} | {r['object_f1']:.3f} |"
        for r in rows
    ]
    return "\n".join([head, *body])


def measure(model: Path, with_truth_split: bool = False) -> list[dict[str, object]]:
    """Predict and evaluate every scene and footprint variant; one dict per table row."""
    card = read_card(model)
    rows: list[dict[str, object]] = []
    for name, scene, probability, split, out in _predicted(model, card.body_threshold):
        # (label, vectorize's options), or None for the truth-split bound
        variants: list[tuple[str, dict[str, object] | None]] = [("threshold only", {})]
        if split is not None:
            seeds = " and ".join(split["split"][1])  # type: ignore[index]
            variants += [
                (f"watershed split ({seeds})", split),
                ("split + regularisation", {**split, "regularize": True}),
            ]
        else:
            variants += [("threshold + regularisation", {"regularize": True})]
        if with_truth_split:
            variants.append(("bound: mask split by the truth", None))
        for label, kwargs in variants:
            gdf = (
                truth_split(probability, card.threshold)
                if kwargs is None
                else vectorize(probability, card.threshold, **kwargs)  # type: ignore[arg-type]
            )
            fp = out / f"{name}.{len(rows)}.gpkg"
            row = _row(name, scene, probability, gdf, fp, card.threshold)
            rows.append({**row, "footprints": label})
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
    flags = {"--truth-split", "--sweep"}
    args = [a for a in sys.argv[1:] if a not in flags]
    model = Path(args[0]) if args else bundled_model_path()
    if "--sweep" in sys.argv[1:]:
        print(sweep_table(sweep(model)))
        return
    print(table(measure(model, with_truth_split="--truth-split" in sys.argv[1:])))


if __name__ == "__main__":
    main()
