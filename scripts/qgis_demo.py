"""Make the QGIS demo of ``docs/QGIS.md``: styled outputs of one Kampala scene and a project.

With the bundled model (``geounet/data/buildings_unet.safetensors``) the outputs are a real
``geounet predict`` run. Without it, a *stand-in* probability raster is made from the true
footprints of ``sample_data/buildings.gpkg`` rasterised on the scene grid (per-building
confidence, blurred edges, a tenth of the buildings left out and a few false blobs added,
seeded) and written through the same functions as ``geounet predict`` (GeoTIFF profile,
COG, vectorisation, styled GeoPackage). Then ``geounet evaluate``'s report (with the
TP / FP / FN layer), a tile plan and the QGIS project are written.

Usage: ``python scripts/qgis_demo.py [OUT_DIR]`` (default ``out/qgis_demo``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import rasterize
from scipy import ndimage

from geounet.core.tiling import plan_tiles
from geounet.evaluation.evaluate import evaluate_scene
from geounet.evaluation.report import write_report
from geounet.footprints.vectorize import vectorize, write_footprints
from geounet.inference.tileplan import write_plan
from geounet.io.raster import describe_probability, probability_profile, write_cog
from geounet.io.styles import write_probability_style
from geounet.qgis.project import SceneLayers, project_path, write_project

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "sample_data" / "kampala_b_z21.tif"
TRUTH = ROOT / "sample_data" / "buildings.gpkg"
MODEL = ROOT / "geounet" / "data" / "buildings_unet.safetensors"


def stand_in_probability(scene: Path, truth: Path, out: Path, seed: int = 0) -> None:
    """Write a stand-in uint8 probability COG on ``scene``'s grid (see the module doc)."""
    rng = np.random.default_rng(seed)
    with rasterio.open(scene) as src:
        shape, transform = (src.height, src.width), src.transform
        valid = src.read_masks(1) > 0
        gdf = gpd.read_file(truth).to_crs(src.crs)
        keep = rng.random(len(gdf)) > 0.1
        conf = rng.uniform(0.55, 0.98, len(gdf))
        # shrink each roof by 0.3 m so that touching roofs stay apart once blurred
        roofs = gdf.geometry.buffer(-0.3)
        shapes = list(zip(roofs[keep], conf[keep], strict=True))
        prob = rasterize(shapes, out_shape=shape, transform=transform, dtype="float32")
        for _ in range(6):  # false positives: roof-sized blobs
            r, c = rng.integers(60, shape[0] - 60), rng.integers(60, shape[1] - 60)
            prob[r - 25 : r + 25, c - 35 : c + 35] = np.maximum(
                prob[r - 25 : r + 25, c - 35 : c + 35], rng.uniform(0.55, 0.8)
            )
        noise = ndimage.gaussian_filter(rng.random(shape).astype(np.float32), 12) * 0.5
        prob = np.clip(ndimage.gaussian_filter(prob, 2.5) + noise * (prob < 0.1), 0, 1)
        work = out.with_name(out.name + ".work.tif")
        with (
            rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
            rasterio.open(work, "w", **probability_profile(src, "uint8")) as dst,
        ):
            describe_probability(dst, 1.0 / 255.0)
            dst.write(np.round(prob * 255).astype(np.uint8), 1)
            dst.write_mask(valid)
    write_cog(work, out)
    work.unlink()


def main(out_dir: Path) -> Path:
    """Write the demo outputs and project into ``out_dir``; return the project path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    prob = out_dir / f"{SCENE.stem}.prob.tif"
    footprints = out_dir / f"{SCENE.stem}.buildings.gpkg"
    if MODEL.exists():
        from geounet.inference.options import PredictOptions
        from geounet.inference.scene import predict_scene

        predict_scene(SCENE, out_dir, None, PredictOptions(overwrite=True))
    else:
        print(f"{MODEL.name} is absent: writing a stand-in probability raster", file=sys.stderr)
        stand_in_probability(SCENE, TRUTH, prob)
        write_footprints(vectorize(prob, 0.5), footprints)
    write_probability_style(prob)
    ev = evaluate_scene(SCENE, TRUTH, prob=prob, footprints=footprints, pictures=False)
    objects = write_report(ev, out_dir / "eval", overwrite=True)["objects"]
    with rasterio.open(SCENE) as src:
        plan = plan_tiles(src.height, src.width, 512, 128, 32, 32)
        tiles = write_plan(plan, src.crs, src.transform, out_dir / "plan.gpkg", overwrite=True)
    # what `geounet predict --qgis-project` writes, then everything
    write_project(project_path(out_dir, SCENE), SceneLayers(SCENE, prob, footprints))
    layers = SceneLayers(SCENE, prob, footprints, objects, tiles)
    return write_project(out_dir / f"{SCENE.stem}.all.qgz", layers)


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "out" / "qgis_demo"))
