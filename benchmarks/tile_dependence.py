"""How much the tile size changes a prediction: probability and footprints against one tile.

Predicts a scene with the bundled model (float32, so that only the tiling differs) at
several largest tile sides and compares each probability raster with the one of the
largest tile, which covers the sample scenes in one tile::

    python benchmarks/tile_dependence.py sample_data/kampala_b_z21.tif --tiles 128 256 512 1024

Prints, per tile size: the tiles, the largest and mean absolute probability difference,
its 99.9th percentile, and the buildings found (in probability units, 1/255 a step).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from geounet.inference.options import PredictOptions
from geounet.inference.scene import predict_scene


def main() -> None:
    """Run the comparison and print one row per tile size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenes", nargs="+", type=Path)
    parser.add_argument("--tiles", nargs="+", type=int, default=[128, 256, 512, 1024])
    parser.add_argument("--overlap", type=int, default=None, help="default: predict's")
    args = parser.parse_args()
    print("scene | tile | tiles | max diff | mean diff | p99.9 diff | buildings")
    for scene in args.scenes:
        with tempfile.TemporaryDirectory() as tmp:
            probs: dict[int, np.ndarray] = {}
            rows = []
            for tile in sorted(args.tiles, reverse=True):
                opts = PredictOptions(tile=tile, overlap=args.overlap, precision="float32")
                result = predict_scene(scene, Path(tmp) / str(tile), None, opts)
                with rasterio.open(result.probability) as src:
                    probs[tile] = src.read(1).astype(np.int16)
                rows.append((tile, result.tiles, result.buildings))
            ref = probs[max(args.tiles)]
            for tile, tiles, buildings in sorted(rows):
                diff = np.abs(probs[tile] - ref) / 255.0
                print(
                    f"{scene.name} | {tile} | {tiles} | {diff.max():.3f} | {diff.mean():.4f} | "
                    f"{np.percentile(diff, 99.9):.3f} | {buildings}"
                )


if __name__ == "__main__":
    main()
