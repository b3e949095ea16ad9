import numpy as np
import pytest

from geounet.core.tiling import plan_tiles
from geounet.inference.stitch import Blender


@pytest.mark.parametrize(
    ("height", "width", "tile", "overlap", "border"),
    [(150, 203, 64, 24, 8), (64, 64, 64, 8, 0), (97, 31, 32, 8, 4), (300, 170, 48, 16, 0)],
)
def test_blender_writes_every_pixel_once_with_the_blended_value(
    height: int, width: int, tile: int, overlap: int, border: int
) -> None:
    plan = plan_tiles(height, width, tile, overlap, border, multiple=16)
    rng = np.random.default_rng(0)
    field = rng.random((2, height, width)).astype(np.float32)
    out = np.full((2, height, width), np.nan, dtype=np.float32)
    hits = np.zeros((height, width), dtype=np.int64)

    def emit(prob: np.ndarray, valid: np.ndarray, row: int, col: int) -> None:
        h, w = valid.shape
        assert prob.shape == (2, h, w)
        out[:, row : row + h, col : col + w] = prob
        hits[row : row + h, col : col + w] += 1
        assert valid.all()

    blender = Blender(plan, 2, emit)
    for t in plan:
        # the tile sees the field inside the scene and noise in the mirrored border
        prob = rng.random((2, t.height, t.width)).astype(np.float32)
        r0, r1 = max(t.row, 0), min(t.row_stop, height)
        c0, c1 = max(t.col, 0), min(t.col_stop, width)
        prob[:, r0 - t.row : r1 - t.row, c0 - t.col : c1 - t.col] = field[:, r0:r1, c0:c1]
        blender.add(t, prob, np.ones((t.height, t.width), dtype=bool))
    blender.check_done()
    assert (hits == 1).all(), "every scene pixel is handed over exactly once"
    np.testing.assert_allclose(out, field, rtol=1e-5, atol=1e-6)


def test_blender_refuses_tiles_out_of_order_or_missing() -> None:
    plan = plan_tiles(100, 100, 64, 16)
    tiles = list(plan)
    blender = Blender(plan, 1, lambda *a: None)
    valid = np.ones((plan.tile_height, plan.tile_width), dtype=bool)
    with pytest.raises(ValueError, match="out of order"):
        blender.add(tiles[1], None, valid)
    blender.add(tiles[0], None, valid)
    with pytest.raises(ValueError, match="only 1 of 4 tiles"):
        blender.check_done()


def test_blender_keeps_validity_and_skips_empty_tiles() -> None:
    plan = plan_tiles(80, 80, 48, 16)
    valid_scene = np.zeros((80, 80), dtype=bool)
    valid_scene[10:50, 20:70] = True
    got = np.zeros((80, 80), dtype=bool)
    values = np.zeros((80, 80), dtype=np.float32)

    def emit(prob: np.ndarray, valid: np.ndarray, row: int, col: int) -> None:
        h, w = valid.shape
        got[row : row + h, col : col + w] = valid
        values[row : row + h, col : col + w] = prob[0]

    blender = Blender(plan, 1, emit)
    for t in plan:
        v = valid_scene[t.row : t.row_stop, t.col : t.col_stop]
        prob = None if not v.any() else np.full((1, t.height, t.width), 0.7, np.float32)
        blender.add(t, prob, v)
    assert np.array_equal(got, valid_scene)
    np.testing.assert_allclose(values[valid_scene], 0.7, rtol=1e-5)
