"""What ``geounet predict --compile`` buys: the bundled model compiled by torch.compile.

1. Compiling: the first call of the compiled bundled model on one tile, in a fresh
   process with an empty Inductor cache (``TORCHINDUCTOR_CACHE_DIR``), then in another
   with that cache filled (as a second run on the same machine).
2. Per tile: the bundled model (batch norms folded, channels-last, the default precision)
   as it is and compiled (``geounet.model.compiled.CompiledNet``), on one random tile,
   the faster of the timed passes after two warm-up passes, and the largest difference
   of their logits.
3. End to end: ``predict_scene`` on each benchmark scene (``make_scenes.py``) with
   ``--compile off`` and ``on``, each in a fresh process (compiling included; Inductor's
   cache on disk is warm after the first compile of a tile shape), and how many pixels of
   the probability rasters differ.

Usage:
    python benchmarks/compile_speed.py [--tile 1024] [--sizes 8192 16384]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch

from geounet.model.device import autocast, resolve_precision

ROOT = Path(__file__).resolve().parent
DEVICE = torch.device("cpu")

RUN = """
import json, sys, time
from pathlib import Path
from geounet.inference.options import PredictOptions
from geounet.inference.scene import predict_scene
from geounet.model.checkpoint import bundled_model_path
t = time.perf_counter()
r = predict_scene(Path(sys.argv[1]), Path(sys.argv[2]), bundled_model_path(),
                  PredictOptions(compile=sys.argv[3]))
print(json.dumps({"wall_s": time.perf_counter() - t, "tiles": r.tiles,
                  "buildings": r.buildings, "notes": r.warnings}))
"""


def compile_times(tile: int) -> dict[str, float]:
    """Seconds of the compiled model's first call with an empty and with a filled cache."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="geounet-inductor-") as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        for name in ("cold_cache_s", "warm_cache_s"):
            done = subprocess.run(
                [sys.executable, __file__, "--first-call", str(tile)],
                check=True, capture_output=True, text=True, env=env,
            )  # fmt: skip
            out[name] = json.loads(done.stdout.strip().splitlines()[-1])["first_call_s"]
    return out


def _network(tile: int) -> tuple[torch.nn.Module, torch.Tensor]:
    """The bundled model as ``geounet predict`` runs it (folded, channels-last), and a tile."""
    from geounet.model.checkpoint import bundled_model_path, load_checkpoint
    from geounet.model.network import fuse_for_inference

    net = fuse_for_inference(load_checkpoint(bundled_model_path()).model)
    x = torch.randn(1, 3, tile, tile).contiguous(memory_format=torch.channels_last)
    return net.to(memory_format=torch.channels_last), x


def first_call(tile: int) -> dict[str, object]:
    """Seconds of the compiled model's first call (its compile), in this process."""
    from geounet.model.compiled import CompiledNet

    net, x = _network(tile)
    compiled = CompiledNet(net)
    with torch.inference_mode(), autocast(DEVICE, resolve_precision(DEVICE, "auto")):
        t = time.perf_counter()
        compiled(x)
    return {"first_call_s": time.perf_counter() - t, "failure": compiled.failure}


def per_tile(tile: int, passes: int = 4) -> dict[str, float]:
    """Seconds per tile, as it is and compiled, and the largest logit difference."""
    from geounet.model.compiled import CompiledNet

    dtype = resolve_precision(DEVICE, "auto")
    net, x = _network(tile)
    out: dict[str, float] = {}
    logits = {}
    for name, model in (("eager_s", net), ("compiled_s", CompiledNet(net))):
        with torch.inference_mode(), autocast(DEVICE, dtype):
            t = time.perf_counter()
            model(x)
            first = time.perf_counter() - t
            model(x)
            best = float("inf")
            for _ in range(passes):
                t = time.perf_counter()
                logits[name] = model(x).float()
                best = min(best, time.perf_counter() - t)
        out[name] = best
        out[name.replace("_s", "_first_call_s")] = first
    out["speed_up"] = out["eager_s"] / out["compiled_s"]
    out["max_logit_diff"] = float((logits["eager_s"] - logits["compiled_s"]).abs().max())
    return out


def end_to_end(scene: Path, work: Path) -> dict[str, object]:
    """One scene predicted with --compile off and on, each in a fresh process."""
    row: dict[str, object] = {"scene": scene.name}
    for mode in ("off", "on"):
        out = work / mode
        done = subprocess.run(
            [sys.executable, "-c", RUN, str(scene), str(out), mode],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        row[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    probs = []
    for mode in ("off", "on"):
        with rasterio.open(work / mode / f"{scene.stem}.prob.tif") as src:
            probs.append(src.read(1))
    row["pixels_differing"] = int(np.count_nonzero(probs[0] != probs[1]))
    row["speed_up"] = row["off"]["wall_s"] / row["on"]["wall_s"]  # type: ignore[index]
    return row


def main() -> int:
    """Time both and print the figures as JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--sizes", type=int, nargs="*", default=[8192, 16384])
    parser.add_argument("--scenes", type=Path, default=ROOT / "scenes")
    parser.add_argument("--first-call", type=int, help=argparse.SUPPRESS)  # compile_times' runs
    args = parser.parse_args()
    if args.first_call is not None:
        print(json.dumps(first_call(args.first_call)))
        return 0
    print(json.dumps({"tile": args.tile, **compile_times(args.tile)}), flush=True)
    print(json.dumps({"tile": args.tile, **per_tile(args.tile)}), flush=True)
    for size in args.sizes:
        scene = args.scenes / f"kampala_mirror_{size}.tif"
        if not scene.exists():
            print(f"{scene} is missing: run benchmarks/make_scenes.py first", file=sys.stderr)
            return 1
        with tempfile.TemporaryDirectory(prefix="geounet-compile-") as work:
            print(json.dumps(end_to_end(scene, Path(work))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
