"""Copy the training places of the bundled model from the project's shared data set.

The bundled model trains on four places (Kampala area a, Banepa, Catanduanes, Zanzibar) at
its own pixel size, 0.149 m. Kampala's scenes are already here; this script copies the
other three places' 0.149 m scenes and footprints into ``sample_data/<place>/``, the
imagery re-encoded as tiled JPEG-in-GeoTIFF (YCbCr, quality 90) to keep the repository
small (the source tiles are JPEG already), and the footprints as a GeoPackage (EPSG:3857,
layer ``buildings``). Kampala area b stays the test scene: it is never a training place.

Run from the repository root:  python sample_data/make_places.py [SHARED_DATA_DIR]
(default ``../shared/data``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import geopandas as gpd
import rasterio
import shapely

PLACES = {
    "banepa": ["banepa_west_z19", "banepa_southeast_z19"],
    "catanduanes": ["catanduanes_1_z20", "catanduanes_2_z20"],
    "zanzibar": ["zanzibar_1_z20", "zanzibar_2_z20"],
}


def copy_scene(src_path: Path, dst_path: Path) -> None:
    """Re-encode one RGB scene as a tiled JPEG GeoTIFF with the same grid."""
    with rasterio.open(src_path) as src:
        profile = src.profile.copy()
        profile.update(
            driver="GTiff",
            compress="jpeg",
            photometric="ycbcr",
            jpeg_quality=90,
            tiled=True,
            blockxsize=256,
            blockysize=256,
            interleave="pixel",
        )
        data = src.read()
        tmp = dst_path.with_suffix(".tmp.tif")
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
    tmp.replace(dst_path)


def main(shared: Path) -> None:
    """Copy every place of :data:`PLACES` from ``shared``."""
    here = Path(__file__).resolve().parent
    for place, scenes in PLACES.items():
        out = here / place
        out.mkdir(exist_ok=True)
        for scene in scenes:
            copy_scene(shared / place / f"{scene}.tif", out / f"{scene}.tif")
        labels = gpd.read_file(shared / place / "buildings.gpkg")
        labels = labels.set_geometry(shapely.make_valid(labels.geometry.values))
        labels.to_file(out / "buildings.gpkg", layer="buildings", driver="GPKG")
        shutil.copyfile(shared / place / "README.md", out / "README.md")
        print(place, len(labels), "footprints,", len(scenes), "scenes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data"))
