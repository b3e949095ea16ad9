"""Scene evaluation on a tiny synthetic scene, with hand-computed counts.

The scene is 67 x 45 pixels of 1 m (EPSG:3857); columns 60..66 are no data (alpha 0).
Boxes are given in pixel coordinates (col0, row0, col1, row1), ends excluded.

truth:        A (5, 5, 15, 15) 100 px, B (30, 10, 40, 20) 100 px, C (50, 30, 53, 33) 9 px
predictions:  A' (6, 5, 16, 15) IoU 90/110 with A; B' (35, 10, 45, 20) IoU 50/150 with B;
              D' (55, 2, 62, 8) 42 px of which 30 valid; tiny (1, 40, 3, 42) 4 px
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Polygon

from geounet.core.metrics import confusion
from geounet.errors import InputError, OutputExistsError
from geounet.evaluation.evaluate import SWEEP_THRESHOLDS, evaluate_scene
from geounet.evaluation.inputs import areas, read_grid
from geounet.evaluation.report import FIGURES, write_report
from tests.evaluate_data import X0, Y0, px_box, write_polygons, write_prob, write_scene

H, W = 45, 67
TRUTH = {"A": (5, 5, 15, 15), "B": (30, 10, 40, 20), "C": (50, 30, 53, 33)}
PRED = {"A'": (6, 5, 16, 15), "B'": (35, 10, 45, 20), "D'": (55, 2, 62, 8), "tiny": (1, 40, 3, 42)}


def mask_of(boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    for c0, r0, c1, r1 in boxes:
        m[r0:r1, c0:c1] = True
    return m


VALID = np.ones((H, W), dtype=bool)
VALID[:, 60:] = False


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    scene = write_scene(tmp_path / "scene.tif", H, W, valid=VALID)
    prob = np.zeros((H, W))
    prob[mask_of([PRED["A'"], PRED["B'"], PRED["D'"]])] = 0.8  # uint8 204
    prob[mask_of([PRED["tiny"]])] = 0.4  # uint8 102
    return {
        "scene": scene,
        "truth": write_polygons(tmp_path / "truth.gpkg", [px_box(*b) for b in TRUTH.values()]),
        "footprints": write_polygons(tmp_path / "pred.gpkg", [px_box(*b) for b in PRED.values()]),
        "prob": write_prob(tmp_path / "scene.prob.tif", prob, scene),
    }


def test_footprints_only_pixel_and_object_level(data: dict[str, Path]) -> None:
    rep = evaluate_scene(data["scene"], data["truth"], footprints=data["footprints"]).report
    px = rep["pixel"]
    # TP = 90 (A) + 50 (B); predicted valid = 100 + 100 + 30 + 4; truth = 209; valid = 2700
    assert (px["tp"], px["fp"], px["fn"], px["tn"]) == (140, 94, 69, 2397)
    assert px["source"] == "footprints rasterised"
    ob = rep["objects"]
    # C (9 px) and tiny (4 px) ignored; A'-A matches; B' (IoU 1/3) and D' are FP; B is FN
    assert (ob["tp"], ob["fp"], ob["fn"]) == (1, 2, 1)
    assert ob["mean_iou"] == pytest.approx(90 / 110)
    assert (ob["truth_ignored_small"], ob["predicted_ignored_small"]) == (1, 1)
    assert ob["truth_best_iou"] == pytest.approx([90 / 110, 1 / 3], abs=1e-4)
    assert "IoU >= 0.5" in ob["rule"] and "20 pixels" in ob["rule"]
    assert "sweep" in rep and "pixel" not in rep["sweep"]
    # outline figures of the one matched pair, A' (a box one metre east of A): four
    # corners each, right angles, PoLiS = half the corners 1 m off the other's outline
    shape = ob["shape"]
    assert (shape["pairs"], shape["predicted_vertices"], shape["truth_vertices"]) == (1, 4, 4)
    assert shape["vertex_ratio"] == 1 and shape["predicted_right_angle_offset_deg"] == 0
    assert shape["polis_m"] == pytest.approx(0.5, abs=0.02)  # EPSG:3857 at the equator
    assert shape["turn_deg"] == pytest.approx(0, abs=0.1)  # both boxes face north
    assert "PoLiS" in shape["rule"] and "turn_deg" in shape["rule"]


def test_prob_only_pixel_level_sweep_and_polygonised_objects(data: dict[str, Path]) -> None:
    ev = evaluate_scene(data["scene"], data["truth"], prob=data["prob"])
    rep = ev.report
    px = rep["pixel"]
    assert (px["tp"], px["fp"], px["fn"]) == (140, 90, 69)  # tiny (p = 0.4) is below 0.5
    ob = rep["objects"]
    assert (ob["tp"], ob["fp"], ob["fn"]) == (1, 2, 1)
    assert ob["source"].startswith("polygons of the probability raster")
    rows = {r["threshold"]: r for r in rep["sweep"]["pixel"]}
    assert sorted(rows) == list(SWEEP_THRESHOLDS)
    assert (rows[0.35]["tp"], rows[0.35]["fp"]) == (140, 94)  # 102 / 255 = 0.4 >= 0.35
    assert (rows[0.4]["tp"], rows[0.4]["fp"]) == (140, 94)  # 0.4 itself counts
    assert (rows[0.45]["fp"], rows[0.8]["fp"]) == (90, 90)
    assert (rows[0.85]["tp"], rows[0.85]["fp"], rows[0.85]["fn"]) == (0, 0, 209)
    assert rep["sweep"]["best_pixel"]["threshold"] == 0.45  # same F1 from 0.45 to 0.8: lowest
    orows = {r["threshold"]: r for r in rep["sweep"]["objects"]}
    assert (orows[0.5]["tp"], orows[0.5]["fp"], orows[0.5]["fn"]) == (1, 2, 1)
    assert orows[0.9]["fn"] == 2 and orows[0.9]["tp"] == 0
    assert ev.error_map is not None and ev.error_map.shape == (H, W)
    assert set(np.unique(ev.error_map)) == {0, 1, 2, 3, 4}


def test_nodata_of_the_prob_raster_is_excluded_too(data: dict[str, Path], tmp_path: Path) -> None:
    prob = np.where(mask_of([PRED["A'"], PRED["B'"], PRED["D'"]]), 0.8, 0.0)
    invalid = np.zeros((H, W), dtype=bool)
    invalid[:5, :] = True  # rows 0..4: only D' (rows 2..7) loses pixels, 15 are left valid
    path = write_prob(tmp_path / "masked.prob.tif", prob, data["scene"], invalid=invalid)
    px = evaluate_scene(data["scene"], data["truth"], prob=path).report["pixel"]
    # valid: 60 cols x 40 rows = 2400; predicted 100 + 100 + 15; TP 140; truth 209
    assert (px["tp"], px["fp"], px["fn"], px["tn"]) == (140, 75, 69, 2116)
    truth = mask_of(list(TRUTH.values()))
    assert confusion(prob >= 0.5, truth, VALID & ~invalid).tn == 2116


def test_float32_prob_matches_uint8(data: dict[str, Path], tmp_path: Path) -> None:
    prob = np.where(mask_of([PRED["A'"], PRED["B'"], PRED["D'"]]), 0.8, 0.0)
    prob[mask_of([PRED["tiny"]])] = 0.4
    path = write_prob(tmp_path / "f.prob.tif", prob, data["scene"], dtype="float32")
    a = evaluate_scene(data["scene"], data["truth"], prob=path, object_sweep=False).report
    b = evaluate_scene(data["scene"], data["truth"], prob=data["prob"], object_sweep=False).report
    assert a["pixel"] == b["pixel"]
    assert a["sweep"]["pixel"] == b["sweep"]["pixel"]
    assert "objects" not in a["sweep"]


def test_truth_in_another_crs_is_reprojected(data: dict[str, Path], tmp_path: Path) -> None:
    frame = gpd.read_file(data["truth"]).to_crs("EPSG:4326")
    truth4326 = tmp_path / "truth4326.gpkg"
    frame.to_file(truth4326, layer="buildings", driver="GPKG")
    a = evaluate_scene(data["scene"], truth4326, footprints=data["footprints"]).report
    b = evaluate_scene(data["scene"], data["truth"], footprints=data["footprints"]).report
    assert a["inputs"]["truth"]["reprojected_from"] == "EPSG:4326"
    assert any("reprojected from EPSG:4326" in w for w in a["warnings"])
    assert {k: a["pixel"][k] for k in ["tp", "fp", "fn", "tn"]} == {
        k: b["pixel"][k] for k in ["tp", "fp", "fn", "tn"]
    }
    assert (a["objects"]["tp"], a["objects"]["fp"], a["objects"]["fn"]) == (1, 2, 1)
    assert a["objects"]["mean_iou"] == pytest.approx(90 / 110, rel=1e-6)


def test_truth_is_repaired_and_clipped(data: dict[str, Path], tmp_path: Path) -> None:
    bowtie = Polygon([(X0 + 5, Y0 - 25), (X0 + 15, Y0 - 35), (X0 + 15, Y0 - 25), (X0 + 5, Y0 - 35)])
    geoms = [
        px_box(*TRUTH["A"]),
        bowtie,  # self-intersecting: two triangles of 25 px each after make_valid
        px_box(-5, 20, 5, 30),  # half outside the scene
        px_box(100, 0, 110, 10),  # wholly outside
        px_box(58, 30, 64, 40),  # half over no data: clipped to cols 58..59
    ]
    truth = write_polygons(tmp_path / "messy.gpkg", geoms)
    rep = evaluate_scene(data["scene"], truth, footprints=data["footprints"]).report
    t = rep["inputs"]["truth"]
    assert (t["features_read"], t["repaired"], t["outside_scene"], t["in_scene"]) == (5, 1, 1, 4)
    assert any("1 invalid polygon(s)" in w for w in rep["warnings"])
    # truth pixels: A 100 + bowtie (pixel centres strictly inside the triangles) + 50 + 20
    assert rep["objects"]["truth_evaluated"] == 4  # the clipped box keeps 20 px: not too small
    assert rep["objects"]["tp"] == 1


def test_empty_truth_and_empty_predictions_give_a_report(
    data: dict[str, Path], tmp_path: Path
) -> None:
    empty = gpd.GeoDataFrame({"id": []}, geometry=gpd.GeoSeries([], crs="EPSG:3857"))
    empty_path = tmp_path / "empty.gpkg"
    empty.to_file(empty_path, layer="buildings", driver="GPKG")
    ev = evaluate_scene(data["scene"], empty_path, footprints=empty_path)
    rep = ev.report
    assert (rep["objects"]["tp"], rep["objects"]["fp"], rep["objects"]["fn"]) == (0, 0, 0)
    assert rep["pixel"]["tn"] == 2700 and rep["pixel"]["iou"] == 0.0
    assert any("no true footprint" in w for w in rep["warnings"])
    assert any("no predicted footprint" in w for w in rep["warnings"])
    paths = write_report(ev, tmp_path / "out")  # figures of empty data render too
    assert json.loads(paths["json"].read_text())["objects"]["f1"] == 0.0


def test_empty_truth_has_no_best_threshold(data: dict[str, Path], tmp_path: Path) -> None:
    from rich.console import Console

    from geounet.evaluation.report import headline_table

    empty = write_polygons(tmp_path / "empty.gpkg", [])
    ev = evaluate_scene(data["scene"], empty, prob=data["prob"], object_sweep=True)
    sweep = ev.report["sweep"]
    assert sweep["pixel"] and sweep["objects"]  # the sweep rows are kept, all F1 0
    assert sweep["best_pixel"] is None and sweep["best_objects"] is None
    paths = write_report(ev, tmp_path / "out")
    assert json.loads(paths["json"].read_text())["sweep"]["best_pixel"] is None
    assert "no threshold is best" in paths["html"].read_text()
    console = Console(record=True, width=200)
    console.print(headline_table(ev.report))
    assert "no best pixel-F1" in console.export_text()


def test_min_size_in_square_metres(data: dict[str, Path]) -> None:
    grid = read_grid(data["scene"])
    a = np.array([px_box(*TRUTH["A"])], dtype=object)
    assert areas(a, grid, "px")[0] == pytest.approx(100.0)
    # Web Mercator metres are not ground metres even at the equator: north-south it
    # stretches by a / M = 1 / (1 - e^2) (0.67 %); UTM zone 36 adds its 0.9996 scale
    assert areas(a, grid, "m2")[0] == pytest.approx(100.0 * (1 - 0.00669438) * 0.9996**2, rel=5e-4)
    rep = evaluate_scene(
        data["scene"], data["truth"], footprints=data["footprints"], min_size=50, min_size_unit="m2"
    ).report
    ob = rep["objects"]
    assert (ob["predicted_ignored_small"], ob["truth_ignored_small"]) == (2, 1)  # tiny, D'; C
    assert (ob["tp"], ob["fp"], ob["fn"]) == (1, 1, 1)
    assert "50 m²" in ob["rule"]


def test_bad_inputs_raise_input_errors(data: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nothing to evaluate"):
        evaluate_scene(data["scene"], data["truth"])
    with pytest.raises(InputError, match="truth file not found"):
        evaluate_scene(data["scene"], tmp_path / "nope.gpkg", prob=data["prob"])
    other = write_scene(tmp_path / "other.tif", H + 1, W)
    wrong = write_prob(tmp_path / "wrong.prob.tif", np.zeros((H + 1, W)), other)
    with pytest.raises(InputError, match="not on the grid"):
        evaluate_scene(data["scene"], data["truth"], prob=wrong)
    with pytest.raises(InputError, match="unit"):
        evaluate_scene(data["scene"], data["truth"], prob=data["prob"], min_size_unit="ft")  # type: ignore[arg-type]
    not_raster = tmp_path / "x.tif"
    not_raster.write_text("hello")
    with pytest.raises(InputError, match="as a raster"):
        evaluate_scene(not_raster, data["truth"], prob=data["prob"])


def test_report_files_are_written_atomically_and_kept(
    data: dict[str, Path], tmp_path: Path
) -> None:
    ev = evaluate_scene(
        data["scene"], data["truth"], prob=data["prob"], footprints=data["footprints"]
    )
    out = tmp_path / "eval"
    paths = write_report(ev, out)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        ["report.json", "report.html", "objects.gpkg", *FIGURES.values()]
    )  # no temp files
    rep = json.loads(paths["json"].read_text())
    assert rep["format"] == "geounet-evaluation"
    assert rep["pixel"]["source"] == "probability >= 0.5"
    assert rep["objects"]["source"] == "footprints"
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 4 and "SpaceNet rule" in html
    before = paths["json"].stat().st_mtime_ns
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_report(ev, out)
    assert paths["json"].stat().st_mtime_ns == before
    write_report(ev, out, overwrite=True)


def test_outline_figures_leave_out_pairs_cut_by_the_edge(tmp_path: Path) -> None:
    # E and E' run into the no-data columns (60..66): both are matched, both cut there,
    # and their cut is not a wall; A and A' lie inside and are measured
    scene = write_scene(tmp_path / "scene.tif", H, W, valid=VALID)
    truth = [px_box(*TRUTH["A"]), px_box(50, 20, 66, 30)]
    pred = [px_box(*PRED["A'"]), px_box(51, 20, 66, 30)]
    rep = evaluate_scene(
        scene,
        write_polygons(tmp_path / "truth.gpkg", truth),
        footprints=write_polygons(tmp_path / "pred.gpkg", pred),
    ).report
    ob = rep["objects"]
    assert ob["tp"] == 2
    assert ob["shape"]["pairs"] == 1
    assert ob["shape"]["predicted_vertices"] == ob["shape"]["truth_vertices"] == 4
    assert "cut" in ob["shape"]["rule"]
