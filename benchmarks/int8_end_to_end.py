"""End-to-end ``geounet predict`` at bfloat16 (or float32) and int8 on the benchmark scenes.

Each scene (mirror-tiled Kampala, ``make_scenes.py``) is predicted in a fresh process per
precision, twice, and the faster run of each is kept: wall time of ``predict_scene``
(reading, the model, stitching, writing, vectorising; footprints as traced unless
``--regularize``), peak RSS, buildings found. int8
runs the bundled model's OpenVINO int8 model (``geounet quantize``; ``pip install
geounet[int8]``). Then it compares the two precisions' probability rasters on the
Kampala b sample (0.149 m; never used to calibrate): mean and largest absolute difference,
and the footprint counts. ``--reference float32`` compares int8 with float32 instead, what
``--precision auto`` runs on a CPU without bfloat16 units.

Usage:
    python benchmarks/int8_end_to_end.py [--sizes 4096 8192] [--model M]
    python benchmarks/int8_end_to_end.py --sizes          # the sample comparison only
    python benchmarks/int8_end_to_end.py --reference float32 --sizes 4096
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from geounet.inference.options import PredictOptions
from geounet.inference.scene import predict_scene

ROOT = Path(__file__).resolve().parent
SAMPLE = ROOT.parent / "sample_data" / "kampala_b_z20.tif"
sys.path.insert(0, str(ROOT))
from make_scenes import make_scene  # noqa: E402
from run_benchmarks import end_to_end  # noqa: E402


def main() -> None:
    """Print one row per scene: both precisions and their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[4096, 8192])
    parser.add_argument("--model", default=None, help="checkpoint (default: bundled)")
    parser.add_argument("--scenes", type=Path, default=ROOT / "scenes")
    parser.add_argument("--reference", choices=["bfloat16", "float32"], default="bfloat16")
    parser.add_argument(
        "--regularize", action="store_true", help="square the footprints, as predict does"
    )
    args = parser.parse_args()
    ref = args.reference
    print(
        f"| scene px | {ref} s | int8 s | speed-up | {ref} peak RSS MB | int8 peak RSS MB "
        f"| buildings {ref} / int8 |"
    )
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        scene = args.scenes / f"kampala_mirror_{size}.tif"
        if not scene.exists():
            make_scene(size, scene)
        runs = {
            p: min(
                (end_to_end(scene, args.model, p, args.regularize) for _ in range(2)),
                key=lambda r: r["wall_s"],
            )
            for p in (ref, "int8")
        }
        bf, i8 = runs[ref], runs["int8"]
        assert i8["precision"] == "int8", "no int8 model: run geounet quantize first"
        print(
            f"| {size} | {bf['wall_s']:.1f} | {i8['wall_s']:.1f} | {bf['wall_s'] / i8['wall_s']:.2f} "
            f"| {bf['peak_rss_mb']:.0f} | {i8['peak_rss_mb']:.0f} "
            f"| {bf['buildings']} / {i8['buildings']} |",
            flush=True,
        )
    sample(args.model, ref)


def sample(model: str | None, ref: str = "bfloat16") -> None:
    """Print how far int8 is from ``ref`` on the Kampala b sample."""
    probs, counts = {}, {}
    with tempfile.TemporaryDirectory() as out:
        for precision in (ref, "int8"):
            result = predict_scene(
                SAMPLE, Path(out) / precision, model, PredictOptions(precision=precision)
            )
            counts[precision] = result.buildings
            with rasterio.open(result.probability) as src:
                probs[precision] = src.read(1, masked=True).astype(np.float64) / 255
    diff = np.abs(probs["int8"] - probs[ref])
    print(
        f"\n{SAMPLE.name}: int8 - {ref} probability: mean abs {diff.mean():.3f}, "
        f"largest {diff.max():.3f}; footprints {counts['int8']} / {counts[ref]}"
    )


if __name__ == "__main__":
    main()
