"""Object-level matching of building footprints by the SpaceNet rule.

Pure geometry, no I/O: predicted and true footprints (shapely polygons in one CRS) are
matched one-to-one, greedily by intersection over union (IoU), highest IoU first. A pair
is a match when its IoU is at least the threshold (0.5 by default; 0.5 itself counts).
Every prediction and every truth takes part in at most one match. Unmatched predictions
are false positives, unmatched truths false negatives.

Counts are plain integers (plus the sum of matched IoUs) so they can be summed over scenes
before figures are derived (micro-averaging), like :class:`geounet.core.metrics.ConfusionCounts`.
shapely is imported where polygons are compared, so raster matching (training's
validation) runs without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

#: Slack on the IoU threshold so that a pair whose IoU is exactly the threshold in
#: exact arithmetic still counts after floating-point rounding of georeferenced coordinates.
MATCH_IOU_EPSILON = 1e-9

SPACENET_RULE = (
    "SpaceNet rule: predicted and true footprints are matched one-to-one, greedily by "
    "intersection over union (IoU), highest IoU first; a pair matches when IoU >= {iou:g} "
    "(exactly {iou:g} counts). Unmatched predictions are false positives, unmatched true "
    "footprints false negatives. Polygons smaller than {min_size:g} {unit} are ignored on "
    "both sides before matching."
)


def rule_text(iou_threshold: float = 0.5, min_size: float = 20.0, unit: str = "px") -> str:
    """State the matching rule in one paragraph, for reports.

    Args:
        iou_threshold: Minimum IoU of a match.
        min_size: Minimum polygon area; smaller polygons are ignored on both sides.
        unit: Unit of ``min_size``: ``"px"`` (pixels of the scene) or ``"m2"`` (square metres).

    Returns:
        The rule as a sentence or three.
    """
    unit_text = "pixels" if unit == "px" else "m²"
    return SPACENET_RULE.format(iou=iou_threshold, min_size=min_size, unit=unit_text)


@dataclass(frozen=True)
class ObjectCounts:
    """Object-level counts of one or more scenes.

    Attributes:
        tp: Matched pairs (true positives).
        fp: Predictions without a match (false positives).
        fn: True footprints without a match (false negatives).
        iou_sum: Sum of the IoUs of the matched pairs (for the micro-averaged mean IoU).
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    iou_sum: float = 0.0

    def __add__(self, other: ObjectCounts) -> ObjectCounts:
        return ObjectCounts(
            self.tp + other.tp,
            self.fp + other.fp,
            self.fn + other.fn,
            self.iou_sum + other.iou_sum,
        )

    @property
    def precision(self) -> float:
        """TP / (TP + FP): the share of predicted footprints that are buildings."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        """TP / (TP + FN): the share of buildings found (sensitivity)."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN)."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def mean_iou(self) -> float:
        """Mean IoU of the matched pairs (0.0 without matches)."""
        return self.iou_sum / self.tp if self.tp else 0.0

    def to_dict(self) -> dict[str, int | float]:
        """Counts and figures in one JSON-ready dict."""
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "iou_sum": self.iou_sum,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "mean_iou": self.mean_iou,
        }


@dataclass(frozen=True)
class Matching:
    """The result of matching predictions to truths.

    Attributes:
        matches: ``(pred_index, truth_index, iou)`` of each matched pair, highest IoU first.
        unmatched_pred: Indices of predictions without a match (false positives).
        unmatched_truth: Indices of truths without a match (false negatives).
        truth_best_iou: For each truth, the highest IoU with any prediction (0.0 when none
            overlaps), whether matched or not: the data of the per-object IoU histogram.
    """

    matches: list[tuple[int, int, float]]
    unmatched_pred: list[int]
    unmatched_truth: list[int]
    truth_best_iou: npt.NDArray[np.float64] = field(
        default_factory=lambda: np.zeros(0, dtype=np.float64)
    )

    @property
    def counts(self) -> ObjectCounts:
        """The TP / FP / FN counts and the IoU sum."""
        return ObjectCounts(
            tp=len(self.matches),
            fp=len(self.unmatched_pred),
            fn=len(self.unmatched_truth),
            iou_sum=float(sum(iou for _, _, iou in self.matches)),
        )


def pair_ious(
    pred: Sequence[BaseGeometry] | npt.NDArray[np.object_],
    truth: Sequence[BaseGeometry] | npt.NDArray[np.object_],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """IoU of every overlapping (prediction, truth) pair.

    Candidate pairs come from an STR-tree query, so the cost grows with the number of
    overlapping pairs, not with the product of the counts.

    Args:
        pred: Predicted footprints (polygons in the same CRS as ``truth``).
        truth: True footprints.

    Returns:
        ``(pred_index, truth_index, iou)`` arrays of the pairs with a positive intersection
        area.
    """
    import shapely

    p = np.asarray(pred, dtype=object)
    t = np.asarray(truth, dtype=object)
    if p.size == 0 or t.size == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty.copy(), np.zeros(0, dtype=np.float64)
    tree = shapely.STRtree(t)
    pi, ti = tree.query(p, predicate="intersects")
    inter = shapely.area(shapely.intersection(p[pi], t[ti]))
    union = shapely.area(p[pi]) + shapely.area(t[ti]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    keep = inter > 0
    return pi[keep].astype(np.intp), ti[keep].astype(np.intp), iou[keep].astype(np.float64)


def match_objects(
    pred: Sequence[BaseGeometry] | npt.NDArray[np.object_],
    truth: Sequence[BaseGeometry] | npt.NDArray[np.object_],
    iou_threshold: float = 0.5,
) -> Matching:
    """Match predicted footprints to true footprints one-to-one by the SpaceNet rule.

    All overlapping pairs are ranked by IoU, highest first (ties by prediction index, then
    truth index, so the result is deterministic); each pair whose prediction and truth are
    both still free and whose IoU is at least ``iou_threshold`` (within
    :data:`MATCH_IOU_EPSILON`) becomes a match (see :func:`greedy_matches`).

    Args:
        pred: Predicted footprints (polygons in the same CRS as ``truth``).
        truth: True footprints.
        iou_threshold: Minimum IoU of a match, in (0, 1].

    Returns:
        The matching.

    Raises:
        ValueError: If ``iou_threshold`` is not in (0, 1].
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    n_pred, n_truth = len(pred), len(truth)
    pi, ti, iou = pair_ious(pred, truth)
    best = np.zeros(n_truth, dtype=np.float64)
    if iou.size:
        np.maximum.at(best, ti, iou)
    matches = greedy_matches(pi, ti, iou, iou_threshold)
    pred_used = np.zeros(n_pred, dtype=bool)
    truth_used = np.zeros(n_truth, dtype=bool)
    for p, t, _ in matches:
        pred_used[p] = truth_used[t] = True
    return Matching(
        matches=matches,
        unmatched_pred=[int(i) for i in np.flatnonzero(~pred_used)],
        unmatched_truth=[int(i) for i in np.flatnonzero(~truth_used)],
        truth_best_iou=best,
    )


def greedy_matches(
    pi: npt.NDArray[np.integer],
    ti: npt.NDArray[np.integer],
    iou: npt.NDArray[np.floating],
    iou_threshold: float = 0.5,
) -> list[tuple[int, int, float]]:
    """The SpaceNet rule's one-to-one matches among candidate pairs, greedily by IoU.

    Pairs are taken highest IoU first (ties by prediction, then truth index, so the result
    is deterministic); a pair whose prediction and truth are both still free and whose IoU
    is at least ``iou_threshold`` (within :data:`MATCH_IOU_EPSILON`) becomes a match. The
    one matcher of geounet: polygons (:func:`match_objects`) and raster instances
    (:func:`geounet.train.validation.object_counts`) both give it their pairs.

    Args:
        pi: Prediction index of each candidate pair.
        ti: Truth index of each pair.
        iou: IoU of each pair.
        iou_threshold: Minimum IoU of a match.

    Returns:
        ``(prediction, truth, iou)`` of each match, in the order they were made.
    """
    order = np.lexsort((ti, pi, -iou))
    pred_used: set[int] = set()
    truth_used: set[int] = set()
    matches: list[tuple[int, int, float]] = []
    for k in order:
        if iou[k] < iou_threshold - MATCH_IOU_EPSILON:
            break  # sorted by IoU: no later pair can match
        p, t = int(pi[k]), int(ti[k])
        if p in pred_used or t in truth_used:
            continue
        pred_used.add(p)
        truth_used.add(t)
        matches.append((p, t, float(iou[k])))
    return matches


def _ratio(num: float, den: float) -> float:
    """Num / den, or 0.0 when nothing was counted."""
    return float(num) / den if den else 0.0
