"""SpaceNet matching: hand-computed cases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from geounet.core.objects import ObjectCounts, match_objects, pair_ious, rule_text


def shifted_pair(side: float, shift: float, x0: float = 0.0) -> tuple:
    """A square and the same square shifted along x: IoU = (side - shift) / (side + shift)."""
    return box(x0, 0, x0 + side, side), box(x0 + shift, 0, x0 + shift + side, side)


# (side, shift) giving IoU exactly 0.49, 0.5 and 0.51
EDGE = {0.49: (149.0, 51.0), 0.5: (3.0, 1.0), 0.51: (151.0, 49.0)}


@pytest.mark.parametrize(("iou", "matched"), [(0.49, False), (0.5, True), (0.51, True)])
def test_two_squares_against_two_shifted_squares_at_the_edge(iou: float, matched: bool) -> None:
    side, shift = EDGE[iou]
    t1, p1 = shifted_pair(side, shift, x0=0.0)
    t2, p2 = shifted_pair(side, shift, x0=1000.0)
    m = match_objects([p1, p2], [t1, t2], iou_threshold=0.5)
    assert m.truth_best_iou == pytest.approx([iou, iou])
    c = m.counts
    if matched:
        assert (c.tp, c.fp, c.fn) == (2, 0, 0)
        assert sorted((p, t) for p, t, _ in m.matches) == [(0, 0), (1, 1)]
        assert c.mean_iou == pytest.approx(iou)
        assert c.f1 == 1.0
    else:
        assert (c.tp, c.fp, c.fn) == (0, 2, 2)
        assert c.precision == c.recall == c.f1 == 0.0


def test_exact_half_counts_in_georeferenced_coordinates() -> None:
    # large eastings make the IoU arithmetic inexact; 0.5 must still count
    t, p = shifted_pair(3.0 * 0.0746, 0.0746, x0=3627854.2364710346)
    assert match_objects([p], [t]).counts.tp == 1


def test_many_predictions_on_one_truth_match_once() -> None:
    truth = [box(0, 0, 10, 10)]
    pred = [box(0, 0, 10, 9), box(0, 0, 10, 8), box(0, 0, 10, 2)]  # IoU 0.9, 0.8, 0.2
    m = match_objects(pred, truth)
    assert m.matches == [(0, 0, pytest.approx(0.9))]
    assert m.unmatched_pred == [1, 2]
    assert (m.counts.tp, m.counts.fp, m.counts.fn) == (1, 2, 0)


def test_one_prediction_over_many_truths_matches_at_most_one() -> None:
    # a merged roof over two touching buildings: IoU 0.5 with each
    truth = [box(0, 0, 10, 10), box(10, 0, 20, 10)]
    pred = [box(0, 0, 20, 10)]
    m = match_objects(pred, truth)
    assert (m.counts.tp, m.counts.fp, m.counts.fn) == (1, 0, 1)
    assert m.matches[0][:2] == (0, 0)  # ties break by index: deterministic
    # a merged roof over three buildings matches none (IoU 1/3 each)
    truth3 = [*truth, box(20, 0, 30, 10)]
    m3 = match_objects([box(0, 0, 30, 10)], truth3)
    assert (m3.counts.tp, m3.counts.fp, m3.counts.fn) == (0, 1, 3)


def test_greedy_takes_the_highest_iou_first() -> None:
    truth = [box(0, 0, 10, 10), box(3, 0, 13, 10)]
    # p0 overlaps t0 (IoU 0.538) and t1 (IoU 1.0): highest first, so p0-t1; p1 then gets t0
    pred = [box(3, 0, 13, 10), box(0, 0, 10, 10)]
    m = match_objects(pred, truth)
    assert sorted((p, t) for p, t, _ in m.matches) == [(0, 1), (1, 0)]


def test_empty_sides() -> None:
    sq = [box(0, 0, 10, 10)]
    assert (match_objects([], sq).counts.fn, match_objects([], sq).counts.tp) == (1, 0)
    assert match_objects(sq, []).counts.fp == 1
    c = match_objects([], []).counts
    assert (c.tp, c.fp, c.fn, c.f1, c.mean_iou) == (0, 0, 0, 0.0, 0.0)


def test_counts_add_for_micro_averaging() -> None:
    total = ObjectCounts(3, 1, 2, 2.4) + ObjectCounts(1, 3, 0, 0.6)
    assert total == ObjectCounts(4, 4, 2, pytest.approx(3.0))  # type: ignore[arg-type]
    assert total.precision == 0.5
    assert total.recall == pytest.approx(4 / 6)
    assert total.mean_iou == pytest.approx(0.75)


def test_bad_threshold_and_rule_text() -> None:
    with pytest.raises(ValueError, match="iou_threshold"):
        match_objects([], [], iou_threshold=0.0)
    text = rule_text(0.5, 20, "px")
    assert "IoU >= 0.5" in text and "20 pixels" in text and "one-to-one" in text


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(1, 8), st.integers(1, 8)),
        max_size=8,
    ),
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(1, 8), st.integers(1, 8)),
        max_size=8,
    ),
)
def test_matching_is_one_to_one_and_counts_add_up(pred_boxes: list, truth_boxes: list) -> None:
    pred = [box(x, y, x + w, y + h) for x, y, w, h in pred_boxes]
    truth = [box(x, y, x + w, y + h) for x, y, w, h in truth_boxes]
    m = match_objects(pred, truth)
    ps = [p for p, _, _ in m.matches]
    ts = [t for _, t, _ in m.matches]
    assert len(set(ps)) == len(ps) and len(set(ts)) == len(ts)
    assert all(iou >= 0.5 - 1e-9 for _, _, iou in m.matches)
    assert m.counts.tp + m.counts.fp == len(pred)
    assert m.counts.tp + m.counts.fn == len(truth)
    pi, ti, ious = pair_ious(pred, truth)
    assert all(0 < v <= 1 + 1e-12 for v in ious)
