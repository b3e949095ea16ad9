from pathlib import Path

import numpy as np
import pytest
import rasterio

from geounet.errors import InputError, OutputError, OutputExistsError
from geounet.io.atomic import atomic_path
from geounet.io.raster import (
    check_outputs,
    data_bands,
    ground_pixel_size_m,
    open_scene,
    read_window,
    select_bands,
)
from tests.conftest import SAMPLE, MakeScene


def test_open_scene_errors(tmp_path: Path, make_scene: MakeScene) -> None:
    with pytest.raises(InputError, match="does not exist"):
        open_scene(tmp_path / "missing.tif")
    with pytest.raises(InputError, match="is a directory"):
        open_scene(tmp_path)
    empty = tmp_path / "empty.tif"
    empty.touch()
    with pytest.raises(InputError, match="empty file"):
        open_scene(empty)
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    with pytest.raises(InputError, match="not a readable raster"):
        open_scene(text)
    with pytest.raises(InputError, match="no coordinate reference system"):
        open_scene(make_scene(crs=None))


def test_alpha_band_is_not_data_and_bands_are_checked(make_scene: MakeScene) -> None:
    alpha = np.full((45, 67), 255)
    with rasterio.open(make_scene(alpha=alpha)) as src:
        assert data_bands(src) == [1, 2, 3]
        assert select_bands(src, 3) == [1, 2, 3]
        assert select_bands(src, 3, [3, 2, 1]) == [3, 2, 1]
        with pytest.raises(InputError, match="takes 4 bands but the scene has only 3 image bands"):
            select_bands(src, 4)
        with pytest.raises(InputError, match="out of range"):
            select_bands(src, 3, [1, 2, 9])


def test_read_window_mirrors_and_masks(make_scene: MakeScene) -> None:
    alpha = np.full((45, 67), 255)
    alpha[:, :5] = 0
    with rasterio.open(make_scene(alpha=alpha)) as src:
        full = src.read([1, 2, 3])
        img, valid = read_window(src, [1, 2, 3], -4, -3, 20, 30)
    assert img.shape == (3, 20, 30) and valid.shape == (20, 30)
    np.testing.assert_array_equal(img[:, 4:, 3:], full[:, :16, :27])
    # symmetric mirror: row -1 equals row 0, row -4 equals row 3
    np.testing.assert_array_equal(img[:, 3, 3:], full[:, 0, :27])
    np.testing.assert_array_equal(img[:, 0, 3:], full[:, 3, :27])
    assert not valid[:4].any() and not valid[:, :3].any(), "the border is never valid"
    assert not valid[4:, 3:8].any() and valid[4:, 8:].all(), "alpha 0 is no data"


def test_read_window_one_pixel_wide(make_scene: MakeScene) -> None:
    with rasterio.open(make_scene(height=1, width=1)) as src:
        img, valid = read_window(src, [1, 2, 3], -8, -8, 16, 16)
    assert img.shape == (3, 16, 16) and valid.sum() == 1


def test_ground_pixel_size() -> None:
    with rasterio.open(SAMPLE / "kampala_b_z21.tif") as src:
        # Spherical Web Mercator overstates ground distances near the equator by ~0.33 %
        assert ground_pixel_size_m(src) == pytest.approx(0.07464 * 0.9967, rel=1e-3)


def test_check_outputs_and_atomic_path(tmp_path: Path) -> None:
    out = tmp_path / "x.txt"
    out.write_text("old")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        check_outputs([out], overwrite=False)
    check_outputs([out], overwrite=True)
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"], "temporary file removed"
    with atomic_path(out) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new"


def test_atomic_path_reports_full_disk(tmp_path: Path) -> None:
    import errno

    with pytest.raises(OutputError, match="disk full"), atomic_path(tmp_path / "y.tif") as tmp:
        tmp.write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_gdal_cache_is_set_in_bytes() -> None:
    """rasterio passes GDAL_CACHEMAX to GDALSetCacheMax64 (bytes): check the real cache."""
    import ctypes
    import glob

    import rasterio

    from geounet.io.raster import GDAL_CACHE_BYTES

    libs = glob.glob(str(Path(rasterio.__file__).parent.parent / "rasterio.libs" / "libgdal*"))
    if not libs:
        pytest.skip("rasterio's bundled libgdal not found (not a wheel install)")
    gdal = ctypes.CDLL(libs[0])
    gdal.GDALGetCacheMax64.restype = ctypes.c_int64
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        assert gdal.GDALGetCacheMax64() == GDAL_CACHE_BYTES >= 32 * 1024 * 1024
