"""How probabilities are stored: uint8 rasters hold ``round(probability * 255)``.

The one decoding of geounet: ``value * float32(1 / 255)`` in float32, used by vectorising,
evaluation and calibration alike, so a threshold cuts the same pixels wherever it is
applied. Float rasters hold the probability itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

PROBABILITY_SCALE = 1.0 / 255.0
"""Probability of one step of a uint8 probability raster (``probability = value / 255``)."""

_UNIT = np.float32(PROBABILITY_SCALE)


def decode(values: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Probabilities of raster values: uint8 times ``1 / 255``, other types as they are."""
    if values.dtype == np.uint8:
        return values.astype(np.float32) * _UNIT
    return values.astype(np.float32)


def uint8_table() -> npt.NDArray[np.float32]:
    """The probability of each of the 256 uint8 values (for threshold look-up tables)."""
    return decode(np.arange(256, dtype=np.uint8))


def at_least(values: npt.NDArray[Any], threshold: float) -> npt.NDArray[np.bool_]:
    """Where the decoded probability of ``values`` reaches ``threshold``."""
    if values.dtype == np.uint8:
        return np.asarray((uint8_table() >= threshold)[values], dtype=bool)
    return np.asarray(decode(values) >= threshold, dtype=bool)
