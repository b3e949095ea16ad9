"""Shared fixtures: tiny seeded rasters and a tiny random-weight checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin
from rasterio.windows import Window

from geounet.model.checkpoint import ModelCard, save_checkpoint
from geounet.model.network import ModelConfig, build_model

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"

MakeScene = Callable[..., Path]


@pytest.fixture
def make_scene(tmp_path: Path) -> MakeScene:
    """Factory of small RGB(+alpha) uint8 GeoTIFFs in EPSG:32636 with 0.15 m pixels."""
    counter = iter(range(1000))

    def make(
        height: int = 45,
        width: int = 67,
        alpha: np.ndarray | None = None,
        count: int = 3,
        crs: str | None = "EPSG:32636",
        seed: int = 0,
        res: float = 0.15,
        name: str | None = None,
        dtype: str = "uint8",
    ) -> Path:
        rng = np.random.default_rng(seed)
        path = tmp_path / (name or f"scene{next(counter)}.tif")
        data = rng.integers(0, 256, size=(count, height, width)).astype(dtype)
        # smooth structure so predictions are not pure noise
        yy, xx = np.mgrid[0:height, 0:width]
        data[0] = ((np.sin(yy / 5.0) + np.cos(xx / 7.0) + 2) * 60).astype(dtype)
        bands = count + (alpha is not None)
        profile = {
            "driver": "GTiff",
            "height": height,
            "width": width,
            "count": bands,
            "dtype": dtype,
            "transform": from_origin(500000.0, 40000.0, res, res),
        }
        if crs:
            profile["crs"] = crs
        if alpha is None and count == 4:
            profile["photometric"] = "MINISBLACK"  # four data bands, none of them alpha
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data, list(range(1, count + 1)))
            if alpha is not None:
                dst.write(alpha.astype(dtype), bands)
                dst.colorinterp = [
                    *[ColorInterp.red, ColorInterp.green, ColorInterp.blue][:count],
                    ColorInterp.alpha,
                ]
        return path

    return make


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight depth-2, width-4 U-Net checkpoint at 0.15 m (fast on the CPU)."""
    torch.manual_seed(0)
    cfg = ModelConfig(depth=2, base_width=4)
    model = build_model(cfg)
    # non-trivial batch-norm statistics so outputs vary across the scene
    model.eval()
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    card = ModelCard(model=cfg, pixel_size_m=0.15, tile_size=64, threshold=0.5)
    save_checkpoint(path, card, model)
    return path


@pytest.fixture(scope="session")
def split_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random depth-2 U-Net with three output channels: building, body and contact."""
    torch.manual_seed(1)
    cfg = ModelConfig(depth=2, base_width=4, classes=3)
    path = tmp_path_factory.mktemp("split") / "three.safetensors"
    card = ModelCard(
        model=cfg,
        pixel_size_m=0.15,
        tile_size=64,
        class_names=("building", "body", "contact"),
    )
    save_checkpoint(path, card, build_model(cfg))
    return path


@pytest.fixture(scope="module")
def crop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A 240 x 160 px crop of area a at 0.149 m, and its footprints as gpkg and EPSG:4326 json."""
    folder = tmp_path_factory.mktemp("crop")
    scene = folder / "crop.tif"
    with rasterio.open(SAMPLE / "kampala_a_z20.tif") as src:
        window = Window(0, 600, 240, 160)
        profile = src.profile | {
            "width": 240,
            "height": 160,
            "transform": src.window_transform(window),
            "tiled": False,
        }
        profile.pop("blockxsize", None)
        profile.pop("blockysize", None)
        data = src.read(window=window)
        bounds = src.window_bounds(window)
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(data)
    labels = gpd.read_file(SAMPLE / "buildings.gpkg").cx[
        bounds[0] : bounds[2], bounds[1] : bounds[3]
    ]
    gpkg = folder / "labels.gpkg"
    labels.to_file(gpkg, layer="buildings")
    geojson = folder / "labels_4326.geojson"
    labels.to_crs(4326).to_file(geojson, driver="GeoJSON")
    return scene, gpkg, geojson


def write_big_scene(folder: Path) -> Path:
    """A 2048 px square random RGB scene: long enough to interrupt a prediction of it."""
    scene = folder / "big.tif"
    profile = {
        "driver": "GTiff", "height": 2048, "width": 2048, "count": 3, "dtype": "uint8",
        "crs": "EPSG:32636", "transform": from_origin(500000, 40000, 0.15, 0.15),
        "tiled": True,
    }  # fmt: skip
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(np.random.default_rng(0).integers(0, 255, (3, 2048, 2048), dtype=np.uint8))
    return scene
