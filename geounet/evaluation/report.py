"""Write an evaluation report: ``report.json``, a self-contained ``report.html``, PNG figures.

Every file is written under a temporary name in the output folder and renamed into place,
so a reader never sees half a file; ``report.json`` is renamed last and marks a complete
report. An existing report is kept unless ``overwrite`` is asked for.

Layout of ``report.json`` (version 1): ``format``, ``version``, ``geounet_version``,
``created``; ``scene`` (path, name, crs, width, height, pixel_size, valid_pixels);
``inputs`` (prob, footprints, truth and predictions read: counts of features read,
repaired, outside the scene); ``settings`` (threshold, iou_threshold, min_size,
min_size_unit); ``warnings``; ``pixel`` (tp, fp, fn, tn, accuracy, sensitivity,
specificity, precision, iou, f1, rule); ``objects`` (tp, fp, fn, iou_sum, precision,
recall, f1, mean_iou, counts evaluated and ignored, rule, truth_best_iou); ``sweep``
(thresholds, pixel rows and best_pixel, object rows and best_objects when computed;
a best is null when F1 is 0 at every threshold, e.g. without true footprints);
``figures`` (file names).

Beside the report, ``objects.gpkg`` holds the evaluated footprints as one layer ``objects``
(``status`` TP / FP / FN, ``iou``, ``area_m2``) in the scene's CRS, with its QGIS style.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from rich.table import Table

from geounet.errors import OutputError, OutputExistsError
from geounet.evaluation import figures
from geounet.evaluation.evaluate import Evaluation
from geounet.footprints.vectorize import area_m2
from geounet.io.atomic import atomic_path, write_bytes, write_json
from geounet.io.layers import GPKG_OPTIONS
from geounet.io.qml import OBJECTS_LAYER
from geounet.io.styles import style_objects

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
OBJECTS_GPKG = "objects.gpkg"
FIGURES = {
    "scene": "scene_outlines.png",
    "errors": "pixel_errors.png",
    "pr_curve": "pr_curve.png",
    "iou_histogram": "iou_histogram.png",
}


def check_out_dir(out_dir: str | Path, overwrite: bool = False) -> Path:
    """Make sure a report may be written into ``out_dir`` (before doing the work).

    Args:
        out_dir: The output folder (created if missing).
        overwrite: Replace an existing report.

    Returns:
        The folder as a path.

    Raises:
        OutputExistsError: If a report is there and ``overwrite`` is false.
        OutputError: If the folder cannot be created or is a file.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output folder {out} is a file; pass a folder to --out-dir")
    if not overwrite:
        for name in (REPORT_JSON, REPORT_HTML):
            if (out / name).exists():
                raise OutputExistsError(
                    f"{out / name} exists; pass --overwrite to replace it or choose another "
                    "--out-dir"
                )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out}: {exc}") from exc
    return out


def render_figures(ev: Evaluation) -> dict[str, bytes]:
    """Render the report's four figures as PNG bytes, keyed as :data:`FIGURES`."""
    rep = ev.report
    sweep = rep.get("sweep", {})
    name = rep["scene"]["name"]
    out = {
        "scene": figures.scene_outlines(
            ev.rgb, ev.extent, ev.tp, ev.fp, ev.fn, ev.ignored, title=f"{name}: TP / FP / FN"
        ),
        "pr_curve": figures.pr_curve(
            sweep.get("pixel"), sweep.get("objects"), rep["settings"]["threshold"], rep["objects"]
        ),
        "iou_histogram": figures.iou_histogram(ev.truth_best_iou, rep["settings"]["iou_threshold"]),
    }
    if ev.error_map is not None:
        out["errors"] = figures.error_map(
            ev.error_map, ev.extent, title=f"{name}: pixel errors ({rep['pixel']['source']})"
        )
    return out


def write_report(
    ev: Evaluation, out_dir: str | Path, *, overwrite: bool = False
) -> dict[str, Path]:
    """Write ``report.json``, ``report.html`` and the PNG figures of an evaluation.

    Args:
        ev: The evaluation of :func:`geounet.evaluation.evaluate.evaluate_scene`.
        out_dir: Output folder (created if missing).
        overwrite: Replace an existing report.

    Returns:
        The paths written, keyed ``json``, ``html``, ``objects`` (the TP / FP / FN
        GeoPackage) and the :data:`FIGURES` keys.

    Raises:
        OutputExistsError: If a report exists and ``overwrite`` is false.
        OutputError: If a file cannot be written.
    """
    out = check_out_dir(out_dir, overwrite)
    pngs = render_figures(ev)
    report = dict(ev.report)
    report["figures"] = {key: FIGURES[key] for key in pngs}
    paths: dict[str, Path] = {}
    for key, data in pngs.items():
        paths[key] = out / FIGURES[key]
        write_bytes(paths[key], data)
    if ev.crs is not None:
        paths["objects"] = write_objects(ev, out / OBJECTS_GPKG)
    paths["html"] = out / REPORT_HTML
    write_bytes(paths["html"], to_html(report, pngs).encode("utf-8"))
    paths["json"] = out / REPORT_JSON
    write_json(paths["json"], report)
    return paths


def objects_frame(ev: Evaluation) -> gpd.GeoDataFrame:
    """The evaluated footprints as one table: ``status`` (TP / FP / FN), ``iou``, ``area_m2``.

    TP rows are the matched predictions with the IoU of their match; FP and FN rows carry
    their best IoU with the other side (0.0 when nothing overlaps).
    """
    parts = [("TP", ev.tp, ev.tp_iou), ("FP", ev.fp, ev.fp_iou), ("FN", ev.fn, ev.fn_iou)]
    geoms = [g for _, gs, _ in parts for g in gs]
    frame = pd.DataFrame(
        {
            "status": [s for s, gs, _ in parts for _ in gs],
            "iou": np.concatenate([np.asarray(i, dtype=np.float64) for _, _, i in parts]),
        }
    )
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=ev.crs), crs=ev.crs)
    gdf.insert(0, "id", np.arange(1, len(gdf) + 1, dtype=np.int64))
    gdf["area_m2"] = area_m2(gdf)
    return gdf


def write_objects(ev: Evaluation, path: Path) -> Path:
    """Write the TP / FP / FN footprints as the styled GeoPackage layer ``objects``, atomically.

    Returns:
        ``path``.

    Raises:
        OutputError: If the file cannot be written.
    """
    gdf = objects_frame(ev)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {path.parent}: {exc}") from exc
    with atomic_path(path) as tmp:
        gdf.to_file(
            tmp, layer=OBJECTS_LAYER, driver="GPKG", engine="pyogrio", dataset_options=GPKG_OPTIONS
        )
        style_objects(tmp)
    return path


# ------------------------------------------------------------------------ HTML

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:1150px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
.sub{color:#666;margin-top:0}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:1em 0}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 16px;min-width:130px;background:#fafafa}
.card .v{font-size:1.7em;font-weight:600}.card .k{color:#666;font-size:.85em}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
table.info td{text-align:left}
tr.best td{background:#e6f4ea;font-weight:600}
.warn{background:#fff4e5;border-left:4px solid #D55E00;padding:6px 12px;margin:4px 0}
.rule{background:#eef4fb;border-left:4px solid #0072B2;padding:6px 12px}
.figs{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.figs figure{margin:0}.figs img{width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def _table(rows: list[tuple[str, Any]], cls: str = "") -> str:
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in rows)
    return f'<table class="{cls}">{body}</table>' if cls else f"<table>{body}</table>"


def _sweep_table(rows: list[Mapping[str, Any]], cols: list[str], best: float | None) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cls = ' class="best"' if best is not None and r["threshold"] == best else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{_fmt(r[c])}</td>" for c in cols) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def to_html(report: Mapping[str, Any], pngs: Mapping[str, bytes]) -> str:
    """A self-contained HTML page of a report, with its figures embedded as data URIs.

    Args:
        report: The report dict.
        pngs: Figure PNG bytes keyed as :data:`FIGURES`.

    Returns:
        The HTML document.
    """
    scene, px, ob, st = report["scene"], report["pixel"], report["objects"], report["settings"]
    sweep = report.get("sweep", {})
    inputs = report["inputs"]
    esc = html.escape
    cards = [
        ("pixel IoU", px["iou"]),
        ("pixel F1 (Dice)", px["f1"]),
        ("object F1", ob["f1"]),
        ("object precision", ob["precision"]),
        ("object recall", ob["recall"]),
    ]
    if sweep.get("best_pixel"):
        cards.append(("best pixel-F1 threshold", sweep["best_pixel"]["threshold"]))
    card_html = "".join(
        f'<div class="card"><div class="v">{v:.3g}</div><div class="k">{esc(k)}</div></div>'
        for k, v in cards
    )
    warn_html = "".join(f'<div class="warn">{esc(w)}</div>' for w in report["warnings"])
    t = inputs["truth"]
    input_rows: list[tuple[str, Any]] = [
        ("scene", scene["path"]),
        ("CRS, size", f"{scene['crs']}, {scene['width']} x {scene['height']} px"),
        ("pixel size", f"{scene['pixel_size'][0]:.4g} x {scene['pixel_size'][1]:.4g}"),
        ("truth", f"{t['path']} (layer {t['layer']})"),
        (
            "truth features",
            f"{t['features_read']} read, {t['in_scene']} in the scene, {t['repaired']} repaired",
        ),
        ("probability raster", inputs["prob"] or "-"),
        ("footprints", inputs["footprints"] or "-"),
        ("threshold", st["threshold"]),
        ("IoU threshold", st["iou_threshold"]),
        ("minimum size", f"{st['min_size']:g} {st['min_size_unit']}"),
    ]
    pixel_rows: list[tuple[str, Any]] = [
        ("accuracy", px["accuracy"]),
        ("sensitivity (recall)", px["sensitivity"]),
        ("specificity", px["specificity"]),
        ("precision", px["precision"]),
        ("IoU", px["iou"]),
        ("F1 (Dice)", px["f1"]),
        ("TP pixels", px["tp"]),
        ("FP pixels", px["fp"]),
        ("FN pixels", px["fn"]),
        ("TN pixels", px["tn"]),
    ]
    object_rows: list[tuple[str, Any]] = [
        ("precision", ob["precision"]),
        ("recall (sensitivity)", ob["recall"]),
        ("F1", ob["f1"]),
        ("mean IoU of matches", ob["mean_iou"]),
        ("TP (matched pairs)", ob["tp"]),
        ("FP (unmatched predictions)", ob["fp"]),
        ("FN (missed truths)", ob["fn"]),
        ("true footprints evaluated", ob["truth_evaluated"]),
        ("predicted footprints evaluated", ob["predicted_evaluated"]),
        (
            "ignored as too small (truth / predicted)",
            f"{ob['truth_ignored_small']} / {ob['predicted_ignored_small']}",
        ),
    ]
    shape = ob.get("shape")
    if shape and shape["pairs"]:
        object_rows += [
            ("outline: corners per true corner (matched pairs)", shape["vertex_ratio"]),
            (
                "outline: mean corner offset from a right angle, deg (predicted / true)",
                f"{shape['predicted_right_angle_offset_deg']:.1f} / "
                f"{shape['truth_right_angle_offset_deg']:.1f}",
            ),
            ("outline: PoLiS distance to the true outline, m", shape["polis_m"]),
            ("outline: turned from the true outline's direction, deg", shape["turn_deg"]),
        ]
    sweep_html = ""
    if sweep.get("pixel"):
        best = (sweep.get("best_pixel") or {}).get("threshold")
        sweep_html += "<h3>Pixel level</h3>" + _sweep_table(
            sweep["pixel"], ["threshold", "precision", "recall", "iou", "f1"], best
        )
    if sweep.get("objects"):
        best = (sweep.get("best_objects") or {}).get("threshold")
        sweep_html += "<h3>Object level (raster polygonised at each threshold)</h3>" + (
            _sweep_table(
                sweep["objects"],
                ["threshold", "tp", "fp", "fn", "precision", "recall", "f1", "mean_iou"],
                best,
            )
        )
    if (sweep.get("pixel") and not sweep.get("best_pixel")) or (
        sweep.get("objects") and not sweep.get("best_objects")
    ):
        sweep_html += "<p class='sub'>F1 is 0 at every threshold: no threshold is best.</p>"
    if sweep.get("note"):
        sweep_html += f"<p class='sub'>{esc(sweep['note'])}</p>"
    if not sweep_html:
        sweep_html = "<p>No probability raster was given, so there is no threshold sweep.</p>"
    captions = {
        "scene": "The scene with matched predictions (TP, green), false predictions "
        "(FP, vermillion) and missed true footprints (FN, blue).",
        "errors": "Pixel errors at the working threshold.",
        "pr_curve": "Precision against recall at thresholds 0.05..0.95; rings: best F1.",
        "iou_histogram": "Each true footprint's best IoU with any prediction.",
    }
    figs = "".join(
        f'<figure><img alt="{esc(key)}" src="data:image/png;base64,'
        f'{base64.b64encode(pngs[key]).decode("ascii")}">'
        f"<figcaption>{esc(captions[key])}</figcaption></figure>"
        for key in FIGURES
        if key in pngs
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>geounet evaluation: {esc(scene["name"])}</title><style>{_CSS}</style></head>
<body>
<h1>Building footprint evaluation: {esc(scene["name"])}</h1>
<p class="sub">geounet {esc(report["geounet_version"])}, {esc(report["created"])}</p>
<div class="cards">{card_html}</div>
{warn_html}
<h2>Inputs and settings</h2>{_table(input_rows, "info")}
<h2>Pixel level</h2><p class="rule">{esc(px["rule"])} Prediction: {esc(px["source"])}.</p>
{_table(pixel_rows)}
<h2>Object level</h2><p class="rule">{esc(ob["rule"])} Predictions: {esc(ob["source"])}.</p>
{_table(object_rows)}
<h2>Figures</h2><div class="figs">{figs}</div>
<h2>Threshold sweep</h2>{sweep_html}
</body></html>
"""


# ------------------------------------------------------------------------ terminal


def headline_table(report: Mapping[str, Any]) -> Table:
    """A short rich table of a report's headline figures, for the terminal."""
    px, ob = report["pixel"], report["objects"]
    table = Table(title=f"Evaluation of {report['scene']['name']}", show_header=True)
    table.add_column("level")
    table.add_column("precision", justify="right")
    table.add_column("recall", justify="right")
    table.add_column("F1", justify="right")
    table.add_column("IoU", justify="right")
    table.add_column("TP / FP / FN", justify="right")
    table.add_row(
        "pixel",
        f"{px['precision']:.3f}",
        f"{px['sensitivity']:.3f}",
        f"{px['f1']:.3f}",
        f"{px['iou']:.3f}",
        f"{px['tp']:,} / {px['fp']:,} / {px['fn']:,}",
    )
    table.add_row(
        "object",
        f"{ob['precision']:.3f}",
        f"{ob['recall']:.3f}",
        f"{ob['f1']:.3f}",
        f"{ob['mean_iou']:.3f}",
        f"{ob['tp']} / {ob['fp']} / {ob['fn']}",
    )
    caption = "object IoU: mean IoU of the matched pairs"
    sweep = report.get("sweep", {})
    best = sweep.get("best_pixel")
    if best:
        caption += (
            f"; best pixel-F1 threshold on this scene: {best['threshold']:g} (F1 {best['f1']:.3f})"
        )
    elif sweep.get("pixel"):
        caption += "; no best pixel-F1 threshold (F1 0 at every threshold)"
    table.caption = caption
    return table
