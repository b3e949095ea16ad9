"""What ``--regularize`` costs: squaring a scene's footprints with and without wall fitting.

Predicts Banepa's west scene (about a thousand touching roofs) with the bundled model
once, vectorises it as ``geounet predict`` does, then times ``regularize_footprints``
followed by the overlap cut (and, by default, the tidying of the cut's teeth and notches),
as ``predict`` runs them, with the default settings (turned up to 10 degrees, walls fitted
within a pixel) and with those until 2026-12-05 (turned up to 5 degrees, walls not moved,
the cut not tidied). Each time is the fastest of ``--repeats`` runs, on one core (the
squaring is pure Python and shapely). The prediction before it (the network, the
probability COG and the traced footprints, what ``geounet predict`` does without
squaring, run once) is timed too, to give squaring's share.

Usage:
    python benchmarks/regularize_time.py [--scene sample_data/banepa/banepa_west_z19.tif]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from geounet.footprints.vectorize import split_bands, square_footprints, vectorize
from geounet.inference.options import PredictOptions
from geounet.inference.scene import predict_scene
from geounet.model.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from evaluate_places import add_precision_option  # noqa: E402

SETTINGS: dict[str, tuple[dict[str, Any], bool]] = {
    "default (10 degrees, walls fitted, cut tidied)": ({}, True),
    "until 2026-12-05 (5 degrees, walls not moved)": (
        {"neighbour_rotation_deg": 5.0, "wall_reach_px": 0.0},
        False,
    ),
}
"""Each setting: regularize_footprints' options, and whether the cut is tidied."""


def main() -> int:
    """Print the seconds each setting takes and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scene", type=Path, default=ROOT / "sample_data/banepa/banepa_west_z19.tif"
    )
    parser.add_argument("--repeats", type=int, default=2)
    add_precision_option(parser)  # its output of 2026-12-05: bfloat16
    args = parser.parse_args()
    ck = load_checkpoint()
    card = ck.card
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        predict_scene(
            args.scene,
            Path(tmp),
            ck,
            PredictOptions(footprints=False, name="s", precision=args.precision),
        )
        split = Path(tmp) / "s.split.tif"
        traced = vectorize(
            Path(tmp) / "s.prob.tif",
            card.threshold,
            split=(split, split_bands(split)),
            body_threshold=card.body_threshold,
            seed_area_m2=card.seed_area_m2,
        )
        unsquared = time.perf_counter() - start  # what predict does without squaring
    pixel = card.pixel_size_m  # the scenes of sample_data are at the model's pixel
    print(f"{args.scene.name}: {len(traced)} footprints")
    times = {}
    for name, (options, tidied) in SETTINGS.items():
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            square_footprints(traced, pixel, tidy=tidied, **options)
            best = min(best, time.perf_counter() - start)
        times[name] = best
        print(f"{name}: {best:.1f} s ({1000 * best / max(len(traced), 1):.1f} ms a footprint)")
    first, second = times.values()
    print(f"ratio: {first / second:.1f} x")
    print(
        f"predict without squaring (the network, the COG, tracing): {unsquared:.1f} s; "
        f"squaring (default) adds {100 * first / unsquared:.0f} %"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
