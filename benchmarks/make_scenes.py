"""Build large realistic benchmark scenes by mirror-tiling a real Kampala scene.

The content (roofs, roads, trees) and so the vectorisation load stay real. Scenes are
written block by block (tiled, DEFLATE-compressed GeoTIFF, RGB + alpha), so building a
16384 x 16384 scene needs little memory.

Usage:
    python benchmarks/make_scenes.py --out benchmarks/scenes --sizes 4096 8192 16384
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "sample_data" / "kampala_a_z20.tif"


def mirror_index(idx: np.ndarray, n: int) -> np.ndarray:
    """Map any integer index onto 0..n-1 by mirroring (…, 1, 0, 0, 1, …, n-1, n-1, …)."""
    period = 2 * n
    m = np.mod(idx, period)
    return np.where(m < n, m, period - 1 - m)


def make_scene(size: int, out: Path, source: Path = SOURCE, block: int = 1024) -> Path:
    """Write a ``size`` x ``size`` scene that mirror-tiles ``source``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(source) as src:
        data = src.read()
        profile = src.profile.copy()
        transform = src.transform
    n_bands, h, w = data.shape
    profile.update(
        width=size,
        height=size,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
        BIGTIFF="IF_SAFER",
        transform=transform,
    )
    tmp = out.with_name(out.name + ".tmp")
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha][
            :n_bands
        ]
        for top in range(0, size, block):
            rows = mirror_index(np.arange(top, min(top + block, size)), h)
            strip = data[:, rows]
            for left in range(0, size, block):
                cols = mirror_index(np.arange(left, min(left + block, size)), w)
                tile = strip[:, :, cols]
                dst.write(tile, window=Window(left, top, tile.shape[2], tile.shape[1]))
    tmp.replace(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "scenes")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192, 16384])
    parser.add_argument("--source", type=Path, default=SOURCE)
    args = parser.parse_args()
    for size in args.sizes:
        path = args.out / f"kampala_mirror_{size}.tif"
        if not path.exists():
            make_scene(size, path, args.source)
        print(path)


if __name__ == "__main__":
    main()
