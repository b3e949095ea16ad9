"""The seed rules of scripts/seed_rules.py drop the seeds they should, and only those."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
from rasterio.windows import Window

from geounet.train.strip import StripPrediction

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _rules() -> ModuleType:
    """scripts/seed_rules.py as a module."""
    sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location("seed_rules", SCRIPTS / "seed_rules.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _strip() -> StripPrediction:
    """One roof (30 x 20 px) whose depth map holds a deep patch and a shallow speck."""
    prob = np.zeros((40, 40), np.float32)
    prob[5:35, 10:30] = 0.9
    body = np.zeros_like(prob)
    body[8:20, 13:27] = 1.0  # deep: 168 px
    body[26:30, 18:22] = 0.45  # shallow: 16 px
    valid = np.ones(prob.shape, bool)
    return StripPrediction(
        Window(0, 0, 40, 40), prob, {"body": body}, np.zeros(prob.shape, np.int64), valid
    )


def test_peak_rule_drops_shallow_seeds_only() -> None:
    rules = _rules()
    strip = _strip()
    kept = rules.with_rule(strip, rules.peak_rule(0.5), 0.4, 0.3).channels["body"]
    assert kept[10, 15] == 1.0  # the deep patch keeps its seed
    assert kept[27, 19] == 0.0  # the speck never reaches 0.5
    low = rules.with_rule(strip, rules.peak_rule(0.4), 0.4, 0.3).channels["body"]
    assert np.array_equal(low, strip.channels["body"])  # both reach 0.4


def test_share_rule_compares_seeds_within_one_region() -> None:
    rules = _rules()
    strip = _strip()
    kept = rules.with_rule(strip, rules.share_rule(0.2), 0.4, 0.3).channels["body"]
    assert kept[27, 19] == 0.0  # 16 px is under a fifth of the region's 168 px seed
    assert kept[10, 15] == 1.0
    small = rules.with_rule(strip, rules.share_rule(0.05), 0.4, 0.3).channels["body"]
    assert small[27, 19] == 0.45
