"""Measure how building-like the footprints are, with and without regularisation.

Each labelled scene is predicted whole with the bundled model, as ``geounet predict`` does,
and vectorised once per variant (the same probability raster each time). Footprints are
matched to the true ones by the SpaceNet rule (IoU >= 0.5, one to one) and scored:
object F1 and the mean IoU of the matches, and on the matched pairs the outline figures
of ``geounet evaluate`` (:mod:`geounet.core.shape`): predicted corners per true corner,
mean offset of the corners from a right angle, PoLiS distance. Overlaps between the
footprints of a variant are counted too (touching roofs must not overlap).

The places of ``sample_data/places.csv`` are scored on their validation strips (the
eastern 20 % of each scene; a footprint belongs to the strip when its representative
point lies in it): variants are chosen there. Kampala b is the test scene: reported,
never used to choose.

Usage:
  python scripts/footprint_shapes.py --json build/shapes/shapes.json [--variants A B ...]
  python scripts/footprint_shapes.py --table build/shapes/shapes.json
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import rasterio
import shapely
from shapely.geometry import LineString, Polygon

from geounet.core.objects import match_objects
from geounet.core.resampling import detail_scale
from geounet.core.shape import ShapeFigures, shape_figures
from geounet.footprints import SIMPLIFY_M
from geounet.footprints.geometry import largest_polygon
from geounet.footprints.slivers import SLIVER_FIT, SLIVER_RADII_PX, tidy_cut
from geounet.footprints.vectorize import (
    regularize_footprints,
    remove_overlaps,
    split_bands,
    square_footprints,
    vectorize,
)
from geounet.inference.options import PredictOptions
from geounet.inference.scene import predict_scene
from geounet.io.raster import ground_pixel_size_m
from geounet.model.checkpoint import bundled_model_path, load_checkpoint
from geounet.train.datasets import scene_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_places import add_precision_option  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
TEST = ("kampala_b_z21",)

SHAPE_FIELDS = tuple(f.name for f in fields(ShapeFigures))
"""The summed outline figures a result row carries (:class:`ShapeFigures`' fields)."""

Variant = Callable[[gpd.GeoDataFrame, float], gpd.GeoDataFrame]
"""Footprints in, footprints out, given the pixel size in CRS units."""


def _none(gdf: gpd.GeoDataFrame, pixel: float) -> gpd.GeoDataFrame:
    return gdf


def _squared(
    simplify_px: float | tuple[float, ...],
    parallel_px: float = 4.0,
    allow_45: bool = True,
    allow_circles: bool = True,
    match_area: bool = False,
    fit: float = 0.0,
    walls_px: float = 0.0,
    overlap_weight: float = 10.0,
    rotation_deg: float = 0.0,
    neighbour_px: float = 2.0,
    parted: bool = False,
    by_roof: float = 0.0,
) -> Variant:
    """Regularised by buildingregulariser with these settings, then overlaps cut."""
    tolerances = simplify_px if isinstance(simplify_px, tuple) else (simplify_px,)

    def variant(gdf: gpd.GeoDataFrame, pixel: float) -> gpd.GeoDataFrame:
        squared = regularize_footprints(
            gdf, pixel, tolerances, fit=fit, parallel_px=parallel_px, allow_45=allow_45,
            allow_circles=allow_circles, match_area=match_area, wall_reach_px=walls_px,
            overlap_weight=overlap_weight, neighbour_rotation_deg=rotation_deg,
            neighbour_reach_px=neighbour_px, square_corners=False,
        )  # fmt: skip
        if by_roof:
            squared = squared.set_geometry(
                list(
                    cut_by_roof(
                        np.asarray(squared.geometry.to_list(), dtype=object),
                        np.asarray(gdf.geometry.to_list(), dtype=object),
                        squared["confidence"].to_numpy(),
                        snap=pixel / 2,
                        decisive=by_roof,
                    )
                )
            )
        if parted:
            squared = squared.set_geometry(
                list(part_overlaps(np.asarray(squared.geometry.to_list(), dtype=object)))
            )
        return remove_overlaps(squared, snap=pixel / 2 if match_area else 0.0)

    return variant


# Two other ways of parting touching squared outlines, measured on 2026-12-05 and not
# kept in geounet (docs/footprints.md): ``part_overlaps`` splits each overlap down its
# middle, ``cut_by_roof`` gives it to the outline whose traced roof holds more of it.


def _halves(overlap: Polygon) -> tuple[Polygon, Polygon] | None:
    """The overlap cut in two along the long axis of its minimum rotated rectangle."""
    rect = shapely.minimum_rotated_rectangle(overlap)
    if rect.geom_type != "Polygon":
        return None
    corners = np.asarray(rect.exterior.coords)[:4]
    sides = np.roll(corners, -1, axis=0) - corners
    lengths = np.hypot(sides[:, 0], sides[:, 1])
    k = int(np.argmax(lengths))
    axis = sides[k] / lengths[k]
    centre = corners.mean(axis=0)
    reach = 2.0 * lengths.max()
    line = LineString([centre - axis * reach, centre + axis * reach])
    left = shapely.buffer(line, reach, single_sided=True)  # the half-plane on one side
    a, b = shapely.intersection(overlap, left), shapely.difference(overlap, left)
    if a.is_empty or b.is_empty:
        return None
    return a, b


def _overlapping_pairs(
    out: npt.NDArray[np.object_], min_area: float
) -> Iterator[tuple[int, int, Any]]:
    """Each pair of outlines that overlap by more than ``min_area``, as they are when reached."""
    if len(out) < 2:
        return
    first, second = shapely.STRtree(out).query(out, predicate="intersects")
    for i, j in zip(first, second, strict=True):
        if i < j:
            overlap = shapely.intersection(out[i], out[j])
            if not overlap.is_empty and overlap.area > min_area:
                yield int(i), int(j), overlap


def part_overlaps(geoms: npt.NDArray[np.object_], min_area: float = 0.0) -> npt.NDArray[np.object_]:
    """Part each pair of overlapping outlines down the middle of their overlap.

    Pairs are taken in order; each later pair sees the outlines the earlier ones left.
    Where three outlines overlap, or an overlap is not split in two, some overlap can be
    left: cut it afterwards (:func:`~geounet.footprints.vectorize.remove_overlaps`).

    Args:
        geoms: Outlines (polygons) in a projected CRS.
        min_area: Overlaps smaller than this (CRS units squared) are left alone.

    Returns:
        The outlines, each pair's overlap split between them; an outline cut in pieces
        keeps its largest.
    """
    out = np.asarray(geoms, dtype=object).copy()
    for i, j, overlap in _overlapping_pairs(out, min_area):
        halves = _halves(largest_polygon(overlap))
        if halves is None:
            continue
        a, b = halves
        mine = shapely.distance(shapely.centroid(a), shapely.difference(out[i], overlap))
        theirs = shapely.distance(shapely.centroid(b), shapely.difference(out[i], overlap))
        if theirs < mine:
            a, b = b, a
        out[i] = largest_polygon(shapely.make_valid(shapely.difference(out[i], b)))
        out[j] = largest_polygon(shapely.make_valid(shapely.difference(out[j], a)))
    return out


def cut_by_roof(
    geoms: npt.NDArray[np.object_],
    traced: npt.NDArray[np.object_],
    confidence: npt.NDArray[np.float64],
    snap: float = 0.0,
    min_area: float = 0.0,
    decisive: float = 1.0,
) -> npt.NDArray[np.object_]:
    """Give each pair's overlap to the outline whose traced roof holds more of it.

    Only when it holds ``decisive`` times as much as the other's; otherwise to the more
    confident one, as :func:`remove_overlaps` does.
    """
    out = np.asarray(geoms, dtype=object).copy()
    traced = np.asarray(traced, dtype=object)
    for i, j, overlap in _overlapping_pairs(out, min_area):
        share_i = shapely.intersection(overlap, traced[i]).area
        share_j = shapely.intersection(overlap, traced[j]).area
        if share_i >= decisive * share_j:
            keep, lose = i, j
        elif share_j >= decisive * share_i:
            keep, lose = j, i
        else:
            keep, lose = (i, j) if confidence[i] >= confidence[j] else (j, i)
        mine = out[lose]
        if snap > 0:
            mine = shapely.make_valid(shapely.snap(mine, out[keep], snap))
        out[lose] = largest_polygon(shapely.make_valid(shapely.difference(mine, out[keep])))
    return out


ADAPTIVE = (8.0, 5.5, 4.0, 3.0)
"""The tolerances ``--regularize`` tries, in pixels."""


def _adaptive(**options: Any) -> Variant:
    """Squared as ``--regularize`` squares (unturned), with these further options."""
    return _squared(ADAPTIVE, match_area=True, fit=0.85, **options)


def _today(tidied: bool = True, **options: Any) -> Variant:
    """Squared as ``predict`` squares, with these options changed, overlaps cut.

    ``tidied``: the cut's slivers opened and notches closed too, as since 2026-12-06.
    """

    def variant(gdf: gpd.GeoDataFrame, pixel: float) -> gpd.GeoDataFrame:
        return square_footprints(gdf, pixel, tidy=tidied, **options)

    return variant


def _tidied(radii_px: tuple[float, ...], fit: float = SLIVER_FIT, close: bool = True) -> Variant:
    """``regularize``, the cut tidied at these radii (pixels) and fit, or only opened."""

    def variant(gdf: gpd.GeoDataFrame, pixel: float) -> gpd.GeoDataFrame:
        cut = _today(tidied=False)(gdf, pixel)
        tidied = tidy_cut(cut.geometry.to_numpy(), pixel, radii_px, fit, close)
        return cut.set_geometry(list(tidied))

    return variant


VARIANTS: dict[str, Variant] = {
    "none": _none,
    "regularize": _today(),
    "regularize_uncut": lambda gdf, pixel: regularize_footprints(gdf, pixel),
    "regularize_untidied (until 2026-12-06)": _today(tidied=False),
    "regularize_opened": _tidied(SLIVER_RADII_PX, close=False),
    **{
        f"regularize_tidied{'_'.join(f'{r:g}' for r in radii)}": _tidied(radii)
        for radii in ((1.0,), (1.0, 2.0), (1.0, 2.0, 3.0, 4.0))
    },
    "regularize_tidied_fit0.95": _tidied(SLIVER_RADII_PX, fit=0.95),
    "regularize_snap_adds (until 2026-12-06)": lambda gdf, pixel: remove_overlaps(
        regularize_footprints(gdf, pixel, square_corners=False), snap=pixel / 2, add_vertices=True
    ),
    "regularize_cut_corners (until 2026-12-06)": _today(square_corners=False),
    "regularize_less_confident_cut (until 2026-12-06)": lambda gdf, pixel: remove_overlaps(
        regularize_footprints(gdf, pixel), snap=pixel / 2, fewest_corners=False
    ),
    "regularize_unaligned (until 2026-12-05)": _today(
        neighbour_rotation_deg=0.0, wall_reach_px=0.0, square_corners=False
    ),
    "regularize_5deg (until 2026-12-05)": _today(
        neighbour_rotation_deg=5.0, wall_reach_px=0.0, square_corners=False
    ),
    "reg_s1.5_p2 (before)": _squared(1.5, 2),
    "reg_s3_p3": _squared(3, 3),
    "reg_s4_p4": _squared(4, 4),
    "reg_s5_p4": _squared(5, 4),
    "reg_s6_p4": _squared(6, 4),
    "reg_s4_p4_no45": _squared(4, 4, allow_45=False),
    "reg_s6_p4_nocircle": _squared(6, 4, allow_circles=False),
    "reg_s6_p4_area": _squared(6, 4, match_area=True),
    "reg_s4_p4_area": _squared(4, 4, match_area=True),
    "reg_s5_p4_area": _squared(5, 4, match_area=True),
    "reg_s5.5_p4_area (until 2026-12-05)": _squared(5.5, 4, match_area=True),
    "reg_s8_p4_area": _squared(8, 4, match_area=True),
    "adaptive_8-3_fit0.85": _squared((8, 5.5, 4, 3), match_area=True, fit=0.85),
    "adaptive_8-3_fit0.875": _squared((8, 5.5, 4, 3), match_area=True, fit=0.875),
    "adaptive_8-3_fit0.9": _squared((8, 5.5, 4, 3), match_area=True, fit=0.9),
    "adaptive_8-4_fit0.875": _squared((8, 5.5, 4), match_area=True, fit=0.875),
    "adaptive_8-4_fit0.9": _squared((8, 5.5, 4), match_area=True, fit=0.9),
    "adaptive_10-4_fit0.9": _squared((10, 8, 5.5, 4), match_area=True, fit=0.9),
    "adaptive_5.5-3_fit0.9": _squared((5.5, 4, 3), match_area=True, fit=0.9),
    "adaptive_5.5-2_fit0.92": _squared((5.5, 4, 3, 2), match_area=True, fit=0.92),
    "walls1_w10": _squared(ADAPTIVE, match_area=True, fit=0.85, walls_px=1, overlap_weight=10),
    "walls2_w10": _squared(ADAPTIVE, match_area=True, fit=0.85, walls_px=2, overlap_weight=10),
    "walls2_w5": _squared(ADAPTIVE, match_area=True, fit=0.85, walls_px=2, overlap_weight=5),
    "walls2_w2": _squared(ADAPTIVE, match_area=True, fit=0.85, walls_px=2, overlap_weight=2),
    "walls2_w1": _squared(ADAPTIVE, match_area=True, fit=0.85, walls_px=2, overlap_weight=1),
    "walls3_w2": _squared(ADAPTIVE, match_area=True, fit=0.85, walls_px=3, overlap_weight=2),
    "walls2_w5_fit0.9": _squared(ADAPTIVE, match_area=True, fit=0.9, walls_px=2, overlap_weight=5),
    "align10": _adaptive(rotation_deg=10),
    "align15": _adaptive(rotation_deg=15),
    "align10_near4": _adaptive(rotation_deg=10, neighbour_px=4),
    "align10_walls2_w5": _adaptive(walls_px=2, overlap_weight=5, rotation_deg=10),
    "align5_walls2_w2": _adaptive(walls_px=2, overlap_weight=2, rotation_deg=5),
    "align10_walls1_w10": _adaptive(walls_px=1, overlap_weight=10, rotation_deg=10),
    "parted": _adaptive(parted=True),
    "align10_parted": _adaptive(rotation_deg=10, parted=True),
    "align5_parted": _adaptive(rotation_deg=5, parted=True),
    "align10_walls2_w5_parted": _adaptive(
        walls_px=2, overlap_weight=5, rotation_deg=10, parted=True
    ),
    "byroof": _adaptive(by_roof=1.0),
    "align5_byroof": _adaptive(rotation_deg=5, by_roof=1.0),
    "align5_byroof2": _adaptive(rotation_deg=5, by_roof=2.0),
    "align5_byroof4": _adaptive(rotation_deg=5, by_roof=4.0),
    "align5_byroof_inf": _adaptive(rotation_deg=5, by_roof=1e9),
    "align5_walls2_w5_byroof": _adaptive(walls_px=2, overlap_weight=5, rotation_deg=5, by_roof=1.0),
    "adaptive_8-3_fit0.85_no45": _squared(
        (8, 5.5, 4, 3), allow_45=False, match_area=True, fit=0.85
    ),
    "adaptive_8-3_fit0.9_no45": _squared((8, 5.5, 4, 3), allow_45=False, match_area=True, fit=0.9),
    "adaptive_8-2_fit0.9_no45": _squared(
        (8, 5.5, 4, 3, 2), allow_45=False, match_area=True, fit=0.9
    ),
    **{
        f"today_walls{reach:g}_w{weight:g}": _today(wall_reach_px=reach, overlap_weight=weight)
        for reach, weight in ((1.5, 10), (2, 10), (2, 5), (2, 2), (3, 5), (3, 2))
    },
    "today_fit0.875": _today(fit=0.875),
    "today_fit0.9": _today(fit=0.9),
    "today_walls2_w5_fit0.9": _today(fit=0.9, wall_reach_px=2, overlap_weight=5),
}
"""The variants measured, by name: ``regularize`` is ``geounet predict --regularize``
(:func:`~geounet.footprints.vectorize.regularize_footprints`' defaults, overlaps cut);
``regularize_uncut`` the same before the overlaps are cut; ``regularize_snap_adds`` the
same, the cut snapping with :func:`shapely.snap` (which also adds the neighbours' corners
near a wall to it) and corners cut at 45 degrees left so, as until 2026-12-06;
``regularize_cut_corners`` the cut of today with those corners left so;
``reg_sS_pP`` squaring at one simplification of S pixels, parallel edges merged within P,
walls not moved; ``before`` the settings of geounet until 2026-12-04; ``nocircle``
without buildingregulariser's circles; ``no45`` without 45-degree walls; ``area`` moves
the squared walls until the outline has its traced area; ``adaptive_A-B_fitF`` squares
each footprint at the coarsest of the tolerances A..B pixels (8, 5.5, 4, 3, 2 within
that range) whose outline overlaps the traced one with an IoU of at least F, walls moved;
``wallsR_wW`` is ``adaptive_8-3_fit0.85`` with each wall then moved, parallel to itself, up
to R pixels to where the outline best fits its traced one, overlaps with the neighbours
weighed W times (:func:`~geounet.footprints.walls.fit_walls`); ``alignR`` turns each
squared outline by up to R degrees to its neighbours' direction (``regularize`` does so
by 5 since 2026-12-05; ``regularize_unaligned`` is the one before), ``nearN`` counting
neighbours within N pixels instead of 2; ``parted`` splits each overlap between two
outlines down its middle and ``byroofD`` gives it to the outline whose traced roof holds
D times as much of it as the other's (``byroof``: more of it; else to the more confident;
``inf``: always to the more confident), pair by pair, before the remaining overlaps are
cut. ``regularize`` tidies the cut (:func:`~geounet.footprints.slivers.tidy_cut`, since
2026-12-06; ``regularize_untidied`` does not): ``regularize_opened`` only opens,
``regularize_tidiedR_..`` opens and closes at the radii R.. pixels, ``_fit0.95`` keeps a
tidied outline that fits the cut one by an IoU of 0.95 (0.97 by default).
The ``today_*`` variants (2026-12-06) are ``regularize`` with one or two of its
settings changed: ``wallsR_wW`` walls moved up to R pixels, overlaps weighed W times,
``fitF`` squared at the coarsest tolerance that fits by F.
The ``fit`` variants of 2026-12-04 (the traced outline kept where squaring changed it
most) were measured by an option since removed; their figures are in
``docs/footprints/shapes.json``."""


def scenes() -> list[tuple[str, Path, Path, bool]]:
    """(place, image, labels, is_test) of every scored scene."""
    out = []
    with open(SAMPLE / "places.csv", newline="") as f:
        for row in csv.DictReader(f):
            out.append((row["place"], SAMPLE / row["image"], SAMPLE / row["labels"], False))
    for name in TEST:
        out.append(("kampala_b (test)", SAMPLE / f"{name}.tif", SAMPLE / "buildings.gpkg", True))
    return out


def _inside(gdf: gpd.GeoDataFrame, region: Any) -> gpd.GeoDataFrame:
    points = gdf.geometry.representative_point()
    return gdf[points.within(region)]


def measure(
    variants: list[str], work: Path, simplify_m: float | None = None, precision: str = "auto"
) -> dict[str, Any]:
    """Score every variant on every scene; figures summed per place.

    The scenes' predictions are kept under ``work/<precision>/`` and reused.
    """
    ck = load_checkpoint(bundled_model_path())
    card = ck.card
    results: dict[str, dict[str, Any]] = {v: {} for v in variants}
    for place, image, labels, test in scenes():
        out = work / precision / image.stem
        if not (out / f"{image.stem}.prob.tif").exists():
            predict_scene(image, out, ck, PredictOptions(footprints=False, precision=precision))
        prob = out / f"{image.stem}.prob.tif"
        split_path = out / f"{image.stem}.split.tif"
        split = (split_path, split_bands(split_path)) if split_path.exists() else None
        base = vectorize(
            prob,
            card.threshold,
            split=split,
            body_threshold=card.body_threshold,
            seed_area_m2=card.seed_area_m2,
            min_confidence=card.min_confidence,
            simplify_m=SIMPLIFY_M if simplify_m is None else simplify_m,
        )
        truth = gpd.read_file(labels).to_crs(base.crs)
        if test:
            region = shapely.box(*base.total_bounds).union(shapely.box(*truth.total_bounds))
        else:
            s = scene_split([image], 0.2)
            region = gpd.GeoSeries([s.val_roi], crs=s.crs).to_crs(base.crs).iloc[0]
        with rasterio.open(prob) as src:
            # squared at the model's pixel, as geounet predict --regularize does
            pixel = abs(src.transform.a) * detail_scale(ground_pixel_size_m(src), card.pixel_size_m)
            region = region.intersection(shapely.box(*src.bounds))
        true = _inside(truth, region)
        for name in variants:
            pred = _inside(VARIANTS[name](base, pixel), region)
            pred_geoms = np.asarray(pred.geometry.to_list(), dtype=object)
            true_geoms = np.asarray(true.geometry.to_list(), dtype=object)
            matching = match_objects(pred_geoms, true_geoms, 0.5)
            pairs = matching.matches
            utm = pred.estimate_utm_crs() if len(pred) else truth.estimate_utm_crs()
            p_m = gpd.GeoSeries(pred_geoms[[p for p, _, _ in pairs]], crs=base.crs).to_crs(utm)
            t_m = gpd.GeoSeries(true_geoms[[t for _, t, _ in pairs]], crs=base.crs).to_crs(utm)
            shapes = shape_figures(list(p_m), list(t_m))
            overlaps = _overlaps(pred)
            row = results[name].setdefault(
                place,
                {
                    "tp": 0,
                    "fp": 0,
                    "fn": 0,
                    "iou_sum": 0.0,
                    "overlaps": 0,
                    **asdict(ShapeFigures()),
                },
            )
            c = matching.counts
            row["tp"] += c.tp
            row["fp"] += c.fp
            row["fn"] += c.fn
            row["iou_sum"] += c.iou_sum
            row["overlaps"] += overlaps
            for key, value in asdict(shapes).items():
                row[key] += value
            print(f"{name} {place} {image.stem}: {c.tp}/{c.fp}/{c.fn} {shapes.to_dict()}",
                  file=sys.stderr)  # fmt: skip
    return results


def _overlaps(gdf: gpd.GeoDataFrame) -> int:
    """Pairs of footprints that overlap by more than 0.01 m2 (touching is fine)."""
    geoms = np.asarray(gdf.geometry.to_list(), dtype=object)
    if len(geoms) < 2:
        return 0
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    keep = a < b
    inter = shapely.area(shapely.intersection(geoms[a[keep]], geoms[b[keep]]))
    return int((inter > 0.01).sum())


def table(results: dict[str, Any]) -> str:
    """One row per variant and place: F1, matched IoU, vertex ratio, corners, PoLiS."""
    lines = [
        "| variant | place | object F1 | matched IoU | vertex ratio | corner offset (deg) "
        "| truth corner offset | PoLiS (m) | turn (deg) | overlapping pairs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, places in results.items():
        strips = [r for place, r in places.items() if not place.endswith("(test)")]
        pooled = {key: sum(r[key] for r in strips) for key in strips[0]} if strips else {}
        rows = {**places, "four strips, pooled": pooled} if pooled else places
        for place, r in rows.items():
            # results measured before a figure existed lack its sums
            f = ShapeFigures(**{key: r[key] for key in SHAPE_FIELDS if key in r})
            tp, fp, fn = r["tp"], r["fp"], r["fn"]
            f1 = 2 * tp / max(2 * tp + fp + fn, 1)
            iou = r["iou_sum"] / max(tp, 1)
            lines.append(
                f"| {name} | {place} | {f1:.3f} | {iou:.3f} | {f.vertex_ratio:.2f} | "
                f"{f.predicted_offset:.1f} | {f.truth_offset:.1f} | {f.polis:.2f} | "
                f"{f'{f.turn:.1f}' if f.turned_pairs else '-'} | {r['overlaps']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure the variants, or print the table of measured results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--table", type=Path, help="print the table of these results")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "shapes")
    parser.add_argument("--simplify", type=float, help="vectorize's simplify_m (default its own)")
    add_precision_option(parser)
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return 0
    if args.json is None:
        parser.error("give --json OUT or --table RESULTS")
    results = measure(args.variants, args.work, args.simplify, args.precision)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
