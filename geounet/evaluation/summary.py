"""Combine the evaluation reports of several scenes into one catalogue-level table.

Per-scene rows carry each scene's counts and figures; the totals are micro-averaged: the
pixel and object counts of all scenes are summed first and the figures derived from the
sums (so large scenes weigh more, as in SpaceNet's city-level scores). A scene that lies
where the model was trained or tuned (``report.json``'s ``training_overlap``) keeps its
row, marked, but stays out of the total: the total is a held-out figure.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from geounet.core.metrics import ConfusionCounts
from geounet.core.objects import ObjectCounts
from geounet.errors import InputError, OutputError, OutputExistsError
from geounet.evaluation.evaluate import REPORT_FORMAT
from geounet.io.atomic import write_text

SUMMARY_FORMAT = "geounet-evaluation-summary"

#: Columns of the per-scene table (and of the CSV), in order.
COLUMNS = (
    "scene",
    "pixel_tp",
    "pixel_fp",
    "pixel_fn",
    "pixel_tn",
    "pixel_precision",
    "pixel_recall",
    "pixel_iou",
    "pixel_f1",
    "object_tp",
    "object_fp",
    "object_fn",
    "object_precision",
    "object_recall",
    "object_f1",
    "object_mean_iou",
    "held_out",
)

#: Settings that must agree for object counts to be summable.
_RULE_KEYS = ("iou_threshold", "min_size", "min_size_unit")


def _held_out(report: Mapping[str, Any]) -> bool | None:
    """Whether a report's scene is held out from its model (``None``: not known)."""
    seen = report.get("training_overlap") or {}
    value = seen.get("held_out")
    return value if isinstance(value, bool) else None


def _row(
    name: str, px: ConfusionCounts, ob: ObjectCounts, held_out: bool | None = None
) -> dict[str, Any]:
    return {
        "scene": name,
        "pixel_tp": px.tp,
        "pixel_fp": px.fp,
        "pixel_fn": px.fn,
        "pixel_tn": px.tn,
        "pixel_precision": px.precision,
        "pixel_recall": px.sensitivity,
        "pixel_iou": px.iou,
        "pixel_f1": px.f1,
        "object_tp": ob.tp,
        "object_fp": ob.fp,
        "object_fn": ob.fn,
        "object_precision": ob.precision,
        "object_recall": ob.recall,
        "object_f1": ob.f1,
        "object_mean_iou": ob.mean_iou,
        "held_out": held_out,
    }


def load_report(path: str | Path) -> dict[str, Any]:
    """Read one scene's ``report.json``.

    Raises:
        InputError: If the file is missing, not JSON, or not a geounet evaluation report.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"report not found: {p}")
    try:
        report = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read report {p} as JSON: {exc}") from exc
    if not isinstance(report, dict) or report.get("format") != REPORT_FORMAT:
        raise InputError(f"{p} is not a report.json written by geounet evaluate")
    return report


def summarise(reports: Sequence[str | Path | Mapping[str, Any]]) -> dict[str, Any]:
    """Combine scene reports into per-scene rows and micro-averaged totals.

    Args:
        reports: ``report.json`` paths or already-loaded report dicts.

    Returns:
        A JSON-ready dict: ``format``, ``settings`` (shared object rule), ``scenes`` (one
        row per report, keyed as :data:`COLUMNS`), ``total`` (micro-averaged row of the
        held-out scenes) and ``left_out_of_total`` (the scenes the model has seen).

    Raises:
        InputError: If there is no report, a report is unreadable, or the reports used
            different object-matching rules (IoU threshold, minimum size), whose counts
            cannot be summed.
    """
    if not reports:
        raise InputError("no report to summarise; pass one or more report.json files")
    loaded = [r if isinstance(r, Mapping) else load_report(r) for r in reports]
    rules = {tuple(r["settings"][k] for k in _RULE_KEYS) for r in loaded}
    if len(rules) > 1:
        raise InputError(
            f"the reports used different object rules (iou_threshold, min_size, unit): "
            f"{sorted(rules, key=str)}; re-evaluate the scenes with the same settings"
        )
    rows = []
    px_total, ob_total = ConfusionCounts(), ObjectCounts()
    for r in loaded:
        px = ConfusionCounts(*(int(r["pixel"][k]) for k in ("tp", "fp", "fn", "tn")))
        ob = ObjectCounts(
            int(r["objects"]["tp"]),
            int(r["objects"]["fp"]),
            int(r["objects"]["fn"]),
            float(r["objects"]["iou_sum"]),
        )
        held_out = _held_out(r)
        if held_out is not False:
            px_total, ob_total = px_total + px, ob_total + ob
        rows.append(_row(str(r["scene"]["name"]), px, ob, held_out))
    first = loaded[0]["settings"]
    seen = [row["scene"] for row in rows if row["held_out"] is False]
    label = f"total ({len(rows) - len(seen)} scenes)"
    if seen:
        label = f"total ({len(rows) - len(seen)} held-out scenes; without {', '.join(seen)})"
    return {
        "format": SUMMARY_FORMAT,
        "averaging": "micro: counts summed over scenes, figures derived from the sums",
        "settings": {k: first[k] for k in _RULE_KEYS},
        "scenes": rows,
        "total": _row(label, px_total, ob_total),
        "left_out_of_total": {
            "scenes": seen,
            "why": "they lie where the model was trained or tuned (held_out false)",
        },
    }


def to_csv(summary: Mapping[str, Any]) -> str:
    """The per-scene rows and the total row as CSV text."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in [*summary["scenes"], summary["total"]]:
        held = row.get("held_out")
        writer.writerow({**row, "held_out": "" if held is None else str(held).lower()})
    return buf.getvalue()


def write_summary(summary: Mapping[str, Any], out: str | Path, *, overwrite: bool = False) -> Path:
    """Write a summary atomically: ``.csv`` as a table, anything else as JSON.

    Args:
        summary: The result of :func:`summarise`.
        out: The output file.
        overwrite: Replace an existing file.

    Returns:
        The path written.

    Raises:
        OutputExistsError: If ``out`` exists and ``overwrite`` is false.
        OutputError: If it cannot be written.
    """
    p = Path(out)
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p} exists; pass --overwrite to replace it")
    text = to_csv(summary) if p.suffix.lower() == ".csv" else json.dumps(summary, indent=2) + "\n"
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {p.parent}: {exc}") from exc
    write_text(p, text)
    return p
