"""Validation figures during training: pixel confusion, raster object F1, threshold choice.

The object F1 here works on rasters (the instances that prediction would make of the
thresholded probability: connected components, or the watershed split on the ``body`` and
``contact`` channels, against the burned footprint instances) so that it is cheap enough
to run each epoch; the
``geounet evaluate`` command reports the vector figures. The matching rule is SpaceNet's:
greedy one-to-one by decreasing IoU, a match needs IoU >= 0.5 (0.5 itself counts), and
components smaller than ``min_pixels`` are ignored on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from geounet.core.instances import label_instances
from geounet.core.metrics import ConfusionCounts, confusion
from geounet.core.objects import ObjectCounts, greedy_matches
from geounet.core.thresholds import CHOICE_THRESHOLDS

#: Largest (predictions x truths) table whose pair overlaps are counted with one
#: ``bincount`` (8 bytes a cell); larger tables are counted by sorting the pairs.
PAIR_TABLE_CELLS = 1 << 22


@dataclass(frozen=True)
class TruthObjects:
    """The true instances of a canvas, numbered and measured once for many matchings.

    Attributes:
        ids: (H, W) instance ids renumbered 1..n in their order (0 = background and the
            pixels outside the valid mask).
        sizes: Pixels of each renumbered id (index 0, the background, included).
        valid: (H, W) pixels that count, or ``None`` (all).
        min_pixels: Objects smaller than this are ignored on both sides.
    """

    ids: npt.NDArray[np.int64]
    sizes: npt.NDArray[np.int64]
    valid: npt.NDArray[np.bool_] | None
    min_pixels: int

    @classmethod
    def of(
        cls, truth_ids: npt.ArrayLike, valid: npt.ArrayLike | None = None, min_pixels: int = 20
    ) -> TruthObjects:
        """Number and measure the true instances.

        Args:
            truth_ids: (H, W) non-negative instance ids (0 = background).
            valid: Optional (H, W) mask; pixels outside it are dropped from both sides.
            min_pixels: Objects smaller than this (in pixels) are ignored on both sides.
        """
        t = np.asarray(truth_ids).astype(np.int64)
        v = None if valid is None else np.asarray(valid).astype(bool)
        if v is not None:
            t = np.where(v, t, 0)
        present = np.bincount(t.ravel()) > 0
        present[0] = True  # the background keeps id 0, even where no pixel is background
        t = (np.cumsum(present) - 1)[t]
        return cls(t, np.bincount(t.ravel()), v, min_pixels)

    @property
    def counted(self) -> int:
        """The number of true objects that take part in matching (at least ``min_pixels``)."""
        return int(np.count_nonzero(self.sizes[1:] >= self.min_pixels))


@dataclass(frozen=True)
class ObjectOverlaps:
    """Every overlapping pair of predicted and true objects on one canvas.

    A prediction dropped whole (a footprint under the smallest confidence) changes no
    other object's pixels, so the counts of any such selection of the predictions are
    the matching of the same pairs without the dropped ones (:meth:`counts`).

    Attributes:
        pred: Ids of the predicted objects that take part (at least ``min_pixels``).
        n_truth: Number of true objects that take part.
        pi: Predicted id of each overlapping pair of objects that take part.
        ti: True id of each pair.
        iou: IoU of each pair.
    """

    pred: npt.NDArray[np.int64]
    n_truth: int
    pi: npt.NDArray[np.int64]
    ti: npt.NDArray[np.int64]
    iou: npt.NDArray[np.float64]

    def counts(
        self, keep: npt.NDArray[np.bool_] | None = None, iou_threshold: float = 0.5
    ) -> ObjectCounts:
        """Match the predictions to the truths one-to-one (SpaceNet rule).

        Args:
            keep: Optional boolean per predicted id (index 0 unused): ``False`` drops that
                prediction, as if its pixels were background.
            iou_threshold: Minimum IoU of a match (inclusive).

        Returns:
            The object counts.
        """
        pred, pi, ti, iou = self.pred, self.pi, self.ti, self.iou
        if keep is not None:
            pred = pred[keep[pred]]
            ok = keep[pi]
            pi, ti, iou = pi[ok], ti[ok], iou[ok]
        if len(pred) == 0 or self.n_truth == 0:
            return ObjectCounts(0, len(pred), self.n_truth)
        tp = len(greedy_matches(pi, ti, iou, iou_threshold))
        return ObjectCounts(tp, len(pred) - tp, self.n_truth - tp)


def object_overlaps(pred: npt.ArrayLike, truth: TruthObjects) -> ObjectOverlaps:
    """Find the overlapping pairs of predicted and true objects.

    Args:
        pred: (H, W) prediction: a binary mask (objects are its 4-connected components)
            or, as an integer array, instance labels (0 = background).
        truth: The true instances, their valid mask and smallest object.

    Returns:
        The pairs, with the objects that take part.
    """
    raw = np.asarray(pred)
    plab = ndimage.label(raw)[0] if raw.dtype == bool else raw.astype(np.int64)
    if truth.valid is not None:
        plab = np.where(truth.valid, plab, 0)
    t, tsize, least = truth.ids, truth.sizes, truth.min_pixels
    n_pred, n_true = int(plab.max()) + 1, len(tsize)
    psize = np.bincount(plab.ravel(), minlength=n_pred)
    keep_p = np.flatnonzero(psize >= least)
    keep_p = keep_p[keep_p > 0].astype(np.int64)
    empty = np.zeros(0, dtype=np.int64)
    if len(keep_p) == 0 or truth.counted == 0:
        return ObjectOverlaps(keep_p, truth.counted, empty, empty, np.zeros(0))
    both = (plab > 0) & (t > 0)
    pairs = plab[both].astype(np.int64) * n_true + t[both]
    if n_pred * n_true <= PAIR_TABLE_CELLS:
        table = np.bincount(pairs, minlength=n_pred * n_true)
        ids = np.flatnonzero(table)
        inter = table[ids]
    else:
        ids, inter = np.unique(pairs, return_counts=True)
    pi, ti = ids // n_true, ids % n_true
    iou = inter / (psize[pi] + tsize[ti] - inter)
    ok = (psize[pi] >= least) & (tsize[ti] >= least)
    return ObjectOverlaps(keep_p, truth.counted, pi[ok], ti[ok], iou[ok].astype(np.float64))


def object_counts(
    pred: npt.ArrayLike,
    truth_ids: npt.ArrayLike,
    valid: npt.ArrayLike | None = None,
    iou_threshold: float = 0.5,
    min_pixels: int = 20,
) -> ObjectCounts:
    """Match predicted objects to true instances.

    Args:
        pred: (H, W) prediction: a binary mask (objects are its 4-connected components)
            or, as an integer array, instance labels (0 = background).
        truth_ids: (H, W) instance ids (0 = background).
        valid: Optional (H, W) mask; pixels outside it are dropped from both sides.
        iou_threshold: Minimum IoU of a match (inclusive).
        min_pixels: Objects smaller than this (in pixels) are ignored on both sides.

    Returns:
        The object counts.
    """
    truth = TruthObjects.of(truth_ids, valid, min_pixels)
    return object_overlaps(pred, truth).counts(iou_threshold=iou_threshold)


@dataclass(frozen=True)
class ThresholdScore:
    """Validation figures at one threshold.

    Attributes:
        threshold: Probability threshold.
        body_threshold: Body probability threshold of the split (``None``: no body).
        pixels: Pixel confusion counts (summed over channels).
        objects: Object matches of channel 0.
        seed_area_m2: Smallest seed of the split, in square metres (``None``: not swept).
        min_confidence: Smallest mean building probability of a footprint kept
            (``None``: not swept; every footprint kept).
    """

    threshold: float
    pixels: ConfusionCounts
    objects: ObjectCounts
    body_threshold: float | None = None
    seed_area_m2: float | None = None
    min_confidence: float | None = None

    @property
    def score(self) -> float:
        """The selection score: mean of pixel IoU and object F1."""
        return 0.5 * (self.pixels.iou + self.objects.f1)

    def figures(self) -> dict[str, float]:
        """Every figure by name."""
        return {
            "threshold": self.threshold,
            "iou": self.pixels.iou,
            "accuracy": self.pixels.accuracy,
            "sensitivity": self.pixels.sensitivity,
            "precision": self.pixels.precision,
            "f1": self.pixels.f1,
            "object_f1": self.objects.f1,
            "score": self.score,
            **({} if self.body_threshold is None else {"body_threshold": self.body_threshold}),
            **({} if self.seed_area_m2 is None else {"seed_area_m2": self.seed_area_m2}),
            **({} if self.min_confidence is None else {"min_confidence": self.min_confidence}),
        }


def merge_scores(a: Sequence[ThresholdScore], b: Sequence[ThresholdScore]) -> list[ThresholdScore]:
    """Two sweeps over the same thresholds (of two canvases) as one: counts summed.

    Args:
        a: A sweep.
        b: A sweep of another canvas, with the same thresholds in the same order.

    Returns:
        One score per threshold, its pixel and object counts the sums of both.
    """
    return [
        ThresholdScore(
            x.threshold,
            x.pixels + y.pixels,
            ObjectCounts(
                x.objects.tp + y.objects.tp,
                x.objects.fp + y.objects.fp,
                x.objects.fn + y.objects.fn,
            ),
            x.body_threshold,
            x.seed_area_m2,
            x.min_confidence,
        )
        for x, y in zip(a, b, strict=True)
    ]


CHOICE_IOU_TOLERANCE = 0.01
"""How far below the best pixel IoU of a sweep a chosen threshold's pixel IoU may fall."""


def sweep_table(scores: Sequence[ThresholdScore]) -> str:
    """A validation sweep as a markdown table, the rows :func:`choose_score` weighs marked.

    Args:
        scores: The sweep (at least one score).

    Returns:
        One row per score: its thresholds, pixel IoU, the object matches, object F1 and
        score; ``chosen`` for the winner, ``near`` for the others whose pixel IoU is
        within :data:`CHOICE_IOU_TOLERANCE` of the best (the ones the score decides between).
    """
    best = choose_score(scores)
    near = {id(s) for s in weighed(scores)}
    body = any(s.body_threshold is not None for s in scores)
    seed = any(s.seed_area_m2 is not None for s in scores)
    conf = any(s.min_confidence is not None for s in scores)
    head = (["body threshold"] if body else []) + (["smallest seed (m2)"] if seed else [])
    head += ["smallest confidence"] if conf else []
    columns = [*head, "building threshold", "pixel IoU", "objects (TP / FP / FN)"]
    columns += ["object F1", "score", ""]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for s in scores:
        mark = "chosen" if s is best else "near" if id(s) in near else ""
        cells = [f"{s.body_threshold:.2f}" if s.body_threshold is not None else ""] if body else []
        cells += [f"{s.seed_area_m2:g}" if s.seed_area_m2 is not None else ""] if seed else []
        cells += [f"{s.min_confidence:g}" if s.min_confidence is not None else ""] if conf else []
        cells += [
            f"{s.threshold:.2f}",
            f"{s.pixels.iou:.3f}",
            f"{s.objects.tp} / {s.objects.fp} / {s.objects.fn}",
            f"{s.objects.f1:.3f}",
            f"{s.score:.4f}",
            mark,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def choose_score(scores: Sequence[ThresholdScore]) -> ThresholdScore:
    """Choose thresholds from a validation sweep: the mask first, then the objects.

    Among the scores whose pixel IoU is within :data:`CHOICE_IOU_TOLERANCE` of the best pixel
    IoU, the one with the best :attr:`ThresholdScore.score` wins. Pixel IoU counts
    thousands of pixels and moves smoothly with the threshold; object F1 on a strip of a
    few dozen detached houses moves by several hundredths from one threshold to the next
    and rises as masks shrink (shrinking pulls houses apart). Left to the plain score,
    that noise and that trend pick building thresholds up to 0.85, whose masks miss much
    of every roof in a dense settlement.

    Args:
        scores: The sweep (at least one score).

    Returns:
        The chosen score.
    """
    return max(weighed(scores), key=lambda s: s.score)


def weighed(scores: Sequence[ThresholdScore]) -> list[ThresholdScore]:
    """The scores :func:`choose_score` decides between: pixel IoU near the sweep's best.

    Args:
        scores: The sweep (at least one score).

    Returns:
        Those whose pixel IoU is within :data:`CHOICE_IOU_TOLERANCE` of the best, in sweep order.
    """
    best_iou = max(s.pixels.iou for s in scores)
    return [s for s in scores if s.pixels.iou >= best_iou - CHOICE_IOU_TOLERANCE - 1e-12]


DEFAULT_THRESHOLDS = CHOICE_THRESHOLDS


def sweep_thresholds(
    prob: npt.NDArray[np.float32],
    target: npt.NDArray[np.float32],
    instances: npt.NDArray[np.int64],
    valid: npt.NDArray[np.bool_],
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS,
    body: npt.NDArray[np.float32] | None = None,
    contact: npt.NDArray[np.float32] | None = None,
    body_threshold: float = 0.5,
    min_object_pixels: float = 0,
    min_seed_pixels: int = 4,
    seed_area_m2: float | None = None,
    min_confidences: tuple[float | None, ...] = (None,),
) -> list[ThresholdScore]:
    """Score the validation canvas at several thresholds (and smallest confidences).

    Args:
        prob: (C, H, W) probabilities.
        target: (C, H, W) binary targets.
        instances: (H, W) footprint instance ids.
        valid: (H, W) pixels that count.
        thresholds: Thresholds to try.
        body: (H, W) body probabilities of a model with a body channel, or ``None``.
        contact: (H, W) contact probabilities of a model with a contact channel, or
            ``None``; with either, objects are split as prediction splits them
            (:func:`geounet.core.instances.label_instances`).
        body_threshold: Body probability at or above which a pixel seeds an object.
        min_object_pixels: Predicted objects smaller than this are dropped, as
            vectorising drops footprints under ``--min-area``
            (:func:`geounet.footprints.vectorize.size_limits`); the matching rule's own minimum
            still applies to both sides.
        min_seed_pixels: Smallest seed of the split, as vectorising uses it.
        seed_area_m2: What ``min_seed_pixels`` is in square metres, recorded in the
            scores (``None``: not recorded).
        min_confidences: Smallest mean building probability of an object kept, as
            vectorising drops footprints under ``--min-confidence``; each is scored on
            the same objects (``None``: every object kept, not recorded).

    Returns:
        One score per threshold and smallest confidence, in that order.
    """
    scores = []
    truth = target > 0.5
    true_objects = TruthObjects.of(np.where(truth[0], instances, 0), valid)
    for thr in thresholds:
        pred = prob >= thr
        counts = ConfusionCounts()
        for c in range(prob.shape[0]):
            counts = counts + confusion(pred[c], truth[c], valid)
        if body is None and contact is None:
            objects_pred: npt.NDArray[np.generic] = ndimage.label(pred[0])[0]
        else:
            objects_pred = label_instances(
                prob[0], valid, thr, contact=contact, min_seed_pixels=min_seed_pixels,
                body=body, body_threshold=body_threshold,
            )[0]  # fmt: skip
        if min_object_pixels > 0:
            sizes = np.bincount(objects_pred.ravel())
            objects_pred = np.where(sizes[objects_pred] >= min_object_pixels, objects_pred, 0)
        # each object's mean probability, only where some confidence drops objects
        confidence = object_confidence(objects_pred, prob[0]) if any(min_confidences) else None
        body_thr = None if body is None else body_threshold
        overlaps = object_overlaps(objects_pred, true_objects)
        for least in min_confidences:
            keep = confidence >= least if least and confidence is not None else None
            objects = overlaps.counts(keep)
            scores.append(
                ThresholdScore(float(thr), counts, objects, body_thr, seed_area_m2, least)
            )
    return scores


def object_confidence(
    objects: npt.NDArray[np.generic], prob: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """Each object's mean probability, by id (index 0, the background, included).

    The same figure as a footprint's ``confidence`` (its pixels' mean building
    probability; :func:`geounet.footprints.vectorize.vectorize`).
    """
    ids = np.asarray(objects, dtype=np.int64).ravel()
    sums = np.bincount(ids, weights=np.asarray(prob, dtype=np.float64).ravel())
    return sums / np.maximum(np.bincount(ids, minlength=len(sums)), 1)
