"""Catalogue-level combination of scene reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from geounet.errors import InputError, OutputExistsError
from geounet.evaluation.summary import COLUMNS, summarise, write_summary


def report(
    name: str, px: tuple[int, int, int, int], ob: tuple[int, int, int, float], iou: float = 0.5
) -> dict[str, Any]:
    return {
        "format": "geounet-evaluation",
        "scene": {"name": name},
        "settings": {"threshold": 0.5, "iou_threshold": iou, "min_size": 20, "min_size_unit": "px"},
        "pixel": dict(zip(("tp", "fp", "fn", "tn"), px, strict=True)),
        "objects": dict(zip(("tp", "fp", "fn", "iou_sum"), ob, strict=True)),
    }


def test_totals_are_micro_averaged() -> None:
    s = summarise(
        [
            report("a.tif", (10, 0, 10, 80), (1, 1, 0, 0.8)),  # pixel IoU 0.5
            report("b.tif", (90, 10, 0, 0), (3, 0, 3, 2.1)),  # pixel IoU 0.9
        ]
    )
    assert [r["scene"] for r in s["scenes"]] == ["a.tif", "b.tif"]
    assert s["scenes"][0]["pixel_iou"] == 0.5
    t = s["total"]
    assert t["pixel_iou"] == pytest.approx(100 / 120)  # micro; the macro mean would be 0.7
    assert (t["object_tp"], t["object_fp"], t["object_fn"]) == (4, 1, 3)
    assert t["object_precision"] == pytest.approx(4 / 5)
    assert t["object_recall"] == pytest.approx(4 / 7)
    assert t["object_mean_iou"] == pytest.approx(2.9 / 4)
    assert s["settings"] == {"iou_threshold": 0.5, "min_size": 20, "min_size_unit": "px"}


def test_reports_with_different_rules_are_refused() -> None:
    with pytest.raises(InputError, match="different object rules"):
        summarise(
            [
                report("a", (1, 0, 0, 0), (1, 0, 0, 1.0)),
                report("b", (1, 0, 0, 0), (1, 0, 0, 1.0), iou=0.7),
            ]
        )
    with pytest.raises(InputError, match="no report"):
        summarise([])


def test_files_json_and_csv(tmp_path: Path) -> None:
    paths = []
    for name in ("a", "b"):
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps(report(name, (1, 1, 1, 1), (1, 1, 1, 0.7))))
        paths.append(p)
    s = summarise(paths)
    out = write_summary(s, tmp_path / "sum" / "summary.json")
    assert json.loads(out.read_text())["total"]["pixel_tp"] == 2
    rows = list(csv.DictReader(write_summary(s, tmp_path / "summary.csv").open()))
    assert list(rows[0]) == list(COLUMNS) and [r["scene"] for r in rows][-1].startswith("total")
    with pytest.raises(OutputExistsError):
        write_summary(s, out)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(InputError, match="not a report.json"):
        summarise([bad])
