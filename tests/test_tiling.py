import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geounet.core.tiling import (
    blend_weights_1d,
    coverage_weights_1d,
    plan_tiles,
    tile_starts,
)


@given(
    length=st.integers(1, 5000),
    tile=st.integers(2, 600),
    data=st.data(),
)
def test_tile_starts_cover_evenly_and_flush(length: int, tile: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, tile - 1))
    border = data.draw(st.integers(0, 64))
    starts = tile_starts(length, tile, overlap, border)
    assert starts[0] == -border
    span_end = length + border
    if length + 2 * border > tile:
        # the last tile ends flush with the (bordered) scene edge: nothing read past it
        assert starts[-1] + tile == span_end
        gaps = np.diff(starts)
        assert (tile - gaps >= overlap).all(), "neighbours overlap at least the requested amount"
        assert gaps.max() - gaps.min() <= 1, "origins are spaced evenly"
    else:
        assert starts == (-border,)
    # every scene pixel is covered
    covered = np.zeros(length, bool)
    for s in starts:
        covered[max(s, 0) : min(s + tile, length)] = True
    assert covered.all()


@given(
    h=st.integers(1, 700),
    w=st.integers(1, 700),
    tile_k=st.integers(1, 8),
    overlap=st.integers(0, 48),
    border=st.integers(0, 40),
)
def test_plan_covers_every_pixel_with_positive_weight(
    h: int, w: int, tile_k: int, overlap: int, border: int
) -> None:
    tile = 64 * tile_k
    plan = plan_tiles(h, w, tile, overlap, border, multiple=16)
    assert plan.tile_height % 16 == 0 and plan.tile_width % 16 == 0
    assert plan.tile_height <= tile and plan.tile_width <= tile
    axes = [(h, plan.row_starts, plan.tile_height), (w, plan.col_starts, plan.tile_width)]
    for length, starts, size in axes:
        span = length + 2 * border  # the scene plus its mirrored border on both sides
        assert starts[0] == -border
        if span >= size:
            # origins on the network's 16 px grid; no window reaches further past the
            # scene plus its mirrored border than the grid needs
            assert all((s + border) % 16 == 0 for s in starts)
            assert all(-border <= s and s + size < length + border + 16 for s in starts)
        else:
            # shorter than one tile: one tile, padded past the border by less than `multiple`
            assert starts == (-border,) and size - span < 16
    for t in plan:
        assert t.row in plan.row_starts and t.row_stop == t.row + plan.tile_height
        assert t.col in plan.col_starts and t.col_stop == t.col + plan.tile_width
    rows = coverage_weights_1d(h, plan.row_starts, plan.tile_height, overlap)
    cols = coverage_weights_1d(w, plan.col_starts, plan.tile_width, overlap)
    assert (rows > 0).all() and (cols > 0).all()
    assert plan.redundancy >= 1.0 or border == 0


def test_plan_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="multiple of 16"):
        plan_tiles(100, 100, 100, 10, 0, multiple=16)
    with pytest.raises(ValueError, match="at most the tile size 64 less 16"):
        plan_tiles(100, 100, 64, 64, 0, multiple=16)


@given(size=st.integers(1, 1024), ramp=st.integers(0, 512))
def test_blend_weights_positive_symmetric(size: int, ramp: int) -> None:
    w = blend_weights_1d(size, ramp)
    assert (w > 0).all() and (w <= 1).all()
    np.testing.assert_allclose(w, w[::-1], atol=1e-7)


def test_tile_weights_have_a_flat_core_and_vanishing_corners() -> None:
    w = np.outer(blend_weights_1d(64, 16), blend_weights_1d(96, 16))
    assert w.shape == (64, 96)
    assert w[16:48, 16:80].min() == pytest.approx(1.0)
    assert w[0, 0] < 0.01


def test_separable_coverage_equals_summed_tile_weights() -> None:
    plan = plan_tiles(150, 203, 64, 24, 8, multiple=16)
    full = np.zeros((150, 203))
    wt = np.outer(
        blend_weights_1d(plan.tile_height, plan.overlap),
        blend_weights_1d(plan.tile_width, plan.overlap),
    )
    for t in plan:
        r0, r1 = max(t.row, 0), min(t.row_stop, 150)
        c0, c1 = max(t.col, 0), min(t.col_stop, 203)
        full[r0:r1, c0:c1] += wt[r0 - t.row : r1 - t.row, c0 - t.col : c1 - t.col]
    rows = coverage_weights_1d(150, plan.row_starts, plan.tile_height, plan.overlap)
    cols = coverage_weights_1d(203, plan.col_starts, plan.tile_width, plan.overlap)
    np.testing.assert_allclose(np.outer(rows, cols), full, rtol=1e-5)


@pytest.mark.parametrize("size", [4096, 8192, 16384, 1000, 2500])
def test_tiles_shrink_to_the_smallest_side_that_covers_the_scene(size: int) -> None:
    tile, overlap, border, multiple = 1024, 128, 32, 16
    plan = plan_tiles(size, size, tile, overlap, border, multiple)
    side, n = plan.tile_height, len(plan.row_starts)
    span = size + 2 * border
    # as many tiles as the largest side needs, each no larger than it ...
    assert n == math.ceil((span - tile) / (tile - overlap)) + 1
    assert side <= tile and side % multiple == 0
    # ... and they still overlap by at least the minimum
    assert (np.diff(plan.row_starts) <= side - overlap).all()
    assert plan.row_starts[0] == -border
    assert 0 <= plan.row_starts[-1] + side - (size + border) < multiple  # on the 16 px grid
    assert all((s + border) % multiple == 0 for s in plan.row_starts)
    # one multiple smaller and n tiles could not cover the span with that overlap
    assert n * (side - multiple) < span + (n - 1) * overlap
    if size >= 4096:
        assert plan.redundancy <= 1.35


@given(
    length=st.integers(1, 5000),
    tile_k=st.integers(1, 40),
    data=st.data(),
)
def test_tile_origins_lie_on_the_networks_grid(
    length: int, tile_k: int, data: st.DataObject
) -> None:
    """Every tile pools the scene at the same phase: origins 16 px apart, overlap kept."""
    tile = 16 * tile_k
    overlap = data.draw(st.integers(0, tile - 16))
    border = data.draw(st.integers(0, 64))
    starts = tile_starts(length, tile, overlap, border, multiple=16)
    assert starts[0] == -border and all((s + border) % 16 == 0 for s in starts)
    if length + 2 * border > tile:
        gaps = np.diff(starts)
        assert (tile - gaps >= overlap).all()
        assert gaps.max() - gaps.min() <= 16
        assert 0 <= starts[-1] + tile - (length + border) < 16
