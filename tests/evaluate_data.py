"""Small deterministic inputs for the evaluation tests (rasters and footprints)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import rasterize
from rasterio.transform import from_origin
from scipy.ndimage import gaussian_filter
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
CRS = "EPSG:3857"
# 1 m pixels with the origin at (x0, y0): pixel (col, row) covers x0 + col .. x0 + col + 1.
X0, Y0 = 3627800.0, 38900.0


def write_scene(
    path: Path,
    height: int = 45,
    width: int = 67,
    valid: np.ndarray | None = None,
    crs: str = CRS,
    res: float = 1.0,
) -> Path:
    """An RGB + alpha uint8 scene; ``valid`` False pixels get alpha 0 (no data)."""
    rng = np.random.default_rng(0)
    data = rng.integers(40, 200, size=(3, height, width), dtype=np.uint8)
    alpha = np.full((height, width), 255, np.uint8) if valid is None else valid * np.uint8(255)
    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": 4,
        "dtype": "uint8",
        "crs": crs,
        "transform": from_origin(X0, Y0, res, res),
        "photometric": "RGB",
        "alpha": "YES",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, [1, 2, 3])
        dst.write(alpha, 4)
    return path


def write_prob(
    path: Path,
    prob: np.ndarray,
    like: Path,
    invalid: np.ndarray | None = None,
    dtype: str = "uint8",
) -> Path:
    """A probability raster on the grid of ``like`` (uint8 = p * 255, or float32)."""
    with rasterio.open(like) as src:
        profile = {
            "driver": "GTiff",
            "height": src.height,
            "width": src.width,
            "count": 1,
            "crs": src.crs,
            "transform": src.transform,
            "dtype": dtype,
        }
    values = np.round(prob * 255).astype(np.uint8) if dtype == "uint8" else prob.astype(dtype)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(values, 1)
        if invalid is not None:
            dst.write_mask(np.where(invalid, 0, 255).astype(np.uint8))
    return path


def write_polygons(
    path: Path, geoms: Sequence[BaseGeometry], crs: str = CRS, extra: bool = True
) -> Path:
    """A GeoPackage layer ``buildings`` (with predict's columns when ``extra``)."""
    data: dict[str, object] = {}
    if extra:
        data = {
            "id": list(range(1, len(geoms) + 1)),
            "area_m2": [g.area for g in geoms],
            "confidence": [0.9] * len(geoms),
        }
    frame = gpd.GeoDataFrame(data, geometry=list(geoms), crs=crs)
    frame.to_file(path, layer="buildings", driver="GPKG")
    return path


def px_box(col0: float, row0: float, col1: float, row1: float) -> BaseGeometry:
    """A box given in pixel coordinates of the 1 m test grid (cols/rows, top-left origin)."""
    return box(X0 + col0, Y0 - row1, X0 + col1, Y0 - row0)


def fake_kampala_prob(out: Path, scene: Path, truth: Path, sigma: float = 4.0) -> Path:
    """A plausible probability raster for a sample scene: truth rasterised, blurred, noised."""
    with rasterio.open(scene) as src:
        frame = gpd.read_file(truth).to_crs(src.crs)
        burned = rasterize(
            ((g, 1) for g in frame.geometry), out_shape=src.shape, transform=src.transform
        ).astype(np.float64)
        invalid = src.dataset_mask() == 0
    rng = np.random.default_rng(1)
    # shift by a few pixels, blur and add blotchy noise so errors of every kind appear
    prob = gaussian_filter(np.roll(burned, (6, -4), axis=(0, 1)), sigma)
    prob += gaussian_filter(rng.normal(0, 1.0, burned.shape), 12) * 2.0
    return write_prob(out, np.clip(prob, 0, 1), scene, invalid=invalid)
