"""Pixel-level confusion counts and the figures derived from them.

Shared by training (validation each epoch) and evaluation (reports). Counts are plain
integers so they can be summed over tiles, scenes or batches before figures are derived
(micro-averaging).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ConfusionCounts:
    """Binary confusion counts of "building" pixels.

    Attributes:
        tp: Pixels predicted building that are building.
        fp: Pixels predicted building that are background.
        fn: Building pixels predicted background.
        tn: Background pixels predicted background.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: ConfusionCounts) -> ConfusionCounts:
        return ConfusionCounts(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

    @property
    def total(self) -> int:
        """Number of pixels counted."""
        return self.tp + self.fp + self.fn + self.tn

    @property
    def accuracy(self) -> float:
        """(TP + TN) / all pixels."""
        return _ratio(self.tp + self.tn, self.total)

    @property
    def sensitivity(self) -> float:
        """Recall of buildings: TP / (TP + FN)."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> float:
        """Recall of background: TN / (TN + FP)."""
        return _ratio(self.tn, self.tn + self.fp)

    @property
    def precision(self) -> float:
        """TP / (TP + FP)."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def iou(self) -> float:
        """Intersection over union of the building class: TP / (TP + FP + FN)."""
        return _ratio(self.tp, self.tp + self.fp + self.fn)

    @property
    def f1(self) -> float:
        """Dice / F1 of the building class: 2 TP / (2 TP + FP + FN)."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    def figures(self) -> dict[str, float]:
        """Return every derived figure by name."""
        return {
            "accuracy": self.accuracy,
            "sensitivity": self.sensitivity,
            "specificity": self.specificity,
            "precision": self.precision,
            "iou": self.iou,
            "f1": self.f1,
        }

    def to_dict(self) -> dict[str, int | float]:
        """Counts and figures in one JSON-ready dict."""
        return {**asdict(self), **self.figures()}


def confusion(
    pred: npt.ArrayLike, truth: npt.ArrayLike, valid: npt.ArrayLike | None = None
) -> ConfusionCounts:
    """Count the confusion of a binary prediction against a binary truth.

    Args:
        pred: Predicted building mask (any shape, truthy = building).
        truth: True building mask of the same shape.
        valid: Optional mask of pixels to count (truthy = count); others are ignored.

    Returns:
        The confusion counts.

    Raises:
        ValueError: If the shapes differ.
    """
    p = np.asarray(pred).astype(bool)
    t = np.asarray(truth).astype(bool)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} differs from truth shape {t.shape}")
    if valid is not None:
        v = np.asarray(valid).astype(bool)
        if v.shape != p.shape:
            raise ValueError(f"valid-mask shape {v.shape} differs from prediction shape {p.shape}")
        p, t = p[v], t[v]
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    tn = int(p.size - tp - fp - fn)
    return ConfusionCounts(tp=tp, fp=fp, fn=fn, tn=tn)


def _ratio(num: int, den: int) -> float:
    """Num / den, or 0.0 when nothing was counted (no division-by-zero NaNs in reports)."""
    return float(num) / den if den else 0.0
