"""Peak resident memory of ``geounet predict`` in each of its stages, per precision.

For each precision a fresh process predicts the scene (footprints included) with the
bundled model while a thread samples its resident set every 20 ms, and prints the
largest sample of each stage: ``load`` (until the first tile), ``predict`` (the tiles,
then writing the probability raster) and ``vectorise``. ``int8`` needs the bundled
model's int8 IR (``bash scripts/quantize_bundled_model.sh``).

Usage:
    python benchmarks/stage_memory.py [SCENE] [--precisions bfloat16 int8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
STAGES = ("load", "predict", "vectorise")


def rss_mb() -> float:
    """This process's resident set size now, in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(scene: Path, precision: str) -> None:
    """Print one table row: the peak of each stage (run in its own process)."""
    from geounet.inference.options import PredictOptions
    from geounet.inference.scene import predict_scene
    from geounet.model.checkpoint import bundled_model_path, load_checkpoint

    stage = ["load"]
    peaks = dict.fromkeys(STAGES, 0.0)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peaks[stage[0]] = max(peaks[stage[0]], rss_mb())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    checkpoint = load_checkpoint(bundled_model_path())
    with tempfile.TemporaryDirectory() as out:
        result = predict_scene(
            scene,
            Path(out),
            checkpoint,
            PredictOptions(precision=precision),
            progress=lambda name, _done, _total: stage.__setitem__(0, name),
        )
    done.set()
    sampler.join()
    assert result.precision == precision, result.warnings
    cells = [f"{peaks[s]:.0f}" for s in STAGES]
    print(f"| {precision} | " + " | ".join(cells) + f" | {result.buildings} |", flush=True)


def main() -> None:
    """One fresh process per precision; a table row each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "scene", nargs="?", type=Path, default=ROOT / "scenes" / "kampala_mirror_4096.tif"
    )
    parser.add_argument("--precisions", nargs="+", default=["bfloat16", "int8"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args.scene, args.child)
        return
    if not args.scene.exists():
        sys.path.insert(0, str(ROOT))
        from make_scenes import make_scene

        make_scene(4096, args.scene)
    print(f"{args.scene.name}: peak RSS MB per stage of geounet predict")
    print("| precision | " + " | ".join(STAGES) + " | buildings |")
    print("|---|" + "---|" * (len(STAGES) + 1))
    for precision in args.precisions:
        command = [sys.executable, __file__, str(args.scene), "--child", precision]
        subprocess.run(command, check=True, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
