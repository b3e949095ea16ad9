"""The allowed range of every numeric option of every command, in one table.

Click parses ``nan``, ``inf`` and ``1e308`` as floats and lets NaN through its own range
checks (every comparison with NaN is false), so each command of ``geounet`` checks its
numeric options against this table before it runs (see
:class:`geounet.cli._app.CheckedCommand`): a value outside its range is a one-line usage
error that names the option and the range. An option means the same everywhere
(``--min-area`` of ``predict`` and of ``vectorize``), so the table is keyed by the option
name alone; a test checks that every numeric option of every command is in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """A closed or half-open interval of allowed values.

    Attributes:
        low: Smallest allowed value (``None``: unbounded).
        high: Largest allowed value (``None``: unbounded).
        low_open: ``low`` itself is not allowed.
        high_open: ``high`` itself is not allowed.
        unit: Unit named in messages (``m2``, ``px``...).
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    unit: str = ""

    def contains(self, value: float) -> bool:
        """Whether ``value`` is finite and lies in the range."""
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (
            self.high is not None and (value >= self.high if self.high_open else value > self.high)
        )

    def describe(self) -> str:
        """The range in words, e.g. ``a number in [0, 10] m``."""
        unit = f" {self.unit}" if self.unit else ""
        low, high = _number(self.low), _number(self.high)
        if self.low is None and self.high is None:
            return "a finite number"
        if self.high is None:
            return f"{'more than' if self.low_open else 'at least'} {low}{unit}"
        if self.low is None:
            return f"{'less than' if self.high_open else 'at most'} {high}{unit}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{low}, {high}{right}{unit}"


def _number(value: float | None) -> str:
    if value is None:
        return ""
    value = float(value)
    return f"{int(value)}" if value.is_integer() and abs(value) < 1e15 else f"{value:g}"


PROBABILITY = Range(0.0, 1.0, low_open=True, high_open=True)
FRACTION = Range(0.0, 1.0)
COUNT = Range(1, 1_000_000)
TILE = Range(1, 16384, unit="px")

RANGES: dict[str, Range] = {
    # tiling (predict, plan)
    "--tile": TILE,
    "--overlap": Range(0, 8192, unit="px"),
    "--border": Range(0, 8192, unit="px"),
    "--batch-size": Range(1, 4096),
    "--workers": Range(0, 1024),
    "--zoom": Range(0, 24),
    # footprints (predict, vectorize)
    "--threshold": PROBABILITY,
    "--body-threshold": PROBABILITY,
    "--min-area": Range(0, 1e6, unit="m2"),
    "--seed-area": Range(0, 1e4, unit="m2"),
    "--min-confidence": Range(0, 0.999),
    "--simplify": Range(0, 10, unit="m"),
    # evaluation
    "--min-size": Range(0, 1e6, unit="m2"),
    "--iou": Range(0.0, 1.0, low_open=True),
    # training and fine-tuning
    "--depth": Range(1, 6),
    "--width": Range(1, 512),
    "--dropout": Range(0.0, 1.0, high_open=True),
    "--pixel-size": Range(0.01, 10, unit="m"),
    "--chip-size": Range(16, 8192, unit="px"),
    "--epochs": COUNT,
    "--steps-per-epoch": COUNT,
    "--minutes": Range(0.0, 1e6, low_open=True),
    "--lr": Range(0.0, 10.0, low_open=True),
    "--val-fraction": Range(0.0, 1.0, low_open=True, high_open=True),
    "--patience": Range(0, 1_000_000),
    "--seed": Range(0, 2**32 - 1),
    "--w0": Range(0, 1000),
    "--sigma": Range(0.0, 1000, low_open=True, unit="px"),
    "--wall-w0": Range(0, 1000),
    "--contact-radius": Range(0, 1000, unit="px"),
    "--body-erosion": Range(0, 1000, unit="px"),
    "--ema-decay": Range(0.0, 1.0, high_open=True),
    "--copy-paste": FRACTION,
    "--recolour": FRACTION,
}
"""Allowed values of each numeric option, by its long name."""


def check_value(option: str, value: float) -> str | None:
    """Why ``value`` is not allowed for ``option``, or ``None`` if it is.

    Args:
        option: The option's long name, e.g. ``--min-area``.
        value: The parsed value.

    Returns:
        A message such as ``--min-area -5 is not allowed: it must be at least 0 m2``.
    """
    rng = RANGES.get(option, Range())
    if rng.contains(value):
        return None
    if not math.isfinite(value):
        return f"{option} {value} is not allowed: it must be a finite number ({rng.describe()})"
    return f"{option} {_number(value)} is not allowed: it must be {rng.describe()}"
