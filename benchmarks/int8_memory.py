"""Where int8 prediction's extra memory goes: peak RSS after each step, in fresh processes.

For each precision a fresh process imports geounet, loads the bundled model, prepares the
precision's predictor (PyTorch bfloat16, or the OpenVINO int8 model) and predicts one
tile of the predict tile size, three more of it (timed: the fastest), then one of another
shape (as at a scene's edge), printing its peak RSS after each step. ``int8`` compiles
the model for each tile shape (what geounet does); ``int8 dynamic`` compiles it once for
any shape (what geounet did until 2026-12-05). Needs the bundled model's int8 IR
(``bash scripts/quantize_bundled_model.sh``).

Usage:
    python benchmarks/int8_memory.py [--tile 1024]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time


def peak_mb() -> int:
    """This process's peak resident set size, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def measure(precision: str, tile: int) -> None:
    """Print the peak RSS after each step of one precision (run in its own process)."""
    import torch

    from geounet.inference.engine import make_predictor
    from geounet.model.checkpoint import load_checkpoint

    steps: list[tuple[str, float]] = [("imports", peak_mb())]
    checkpoint = load_checkpoint(None)
    steps.append(("model loaded", peak_mb()))
    runs = precision.split()[0]
    predictor, ran, note = make_predictor(checkpoint, torch.device("cpu"), runs)
    assert ran == runs, note
    if precision == "int8 dynamic":
        from geounet.model.int8 import OpenVinoNet

        net = next(m for m in predictor.model.modules() if isinstance(m, OpenVinoNet))
        dynamic = net.core.compile_model(net.model, "CPU", net.config)
        net.compiled_for = lambda shape: dynamic  # type: ignore[method-assign]
    steps.append(("predictor ready", peak_mb()))
    bands = checkpoint.card.model.in_channels
    predictor(torch.zeros(1, bands, tile, tile, dtype=torch.uint8).numpy())
    steps.append((f"one {tile} px tile", peak_mb()))
    times = []
    for _ in range(3):
        t = time.perf_counter()
        predictor(torch.zeros(1, bands, tile, tile, dtype=torch.uint8).numpy())
        times.append(time.perf_counter() - t)
    predictor(torch.zeros(1, bands, tile, tile * 3 // 4, dtype=torch.uint8).numpy())
    steps.append(("a tile of another shape", peak_mb()))
    cells = [str(mb) for _, mb in steps] + [f"{min(times):.3f}"]
    print(f"| {precision} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    """One fresh process per precision; a table row each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--precision", help=argparse.SUPPRESS)  # the child's
    args = parser.parse_args()
    if args.precision:
        measure(args.precision, args.tile)
        return
    print(
        f"| precision | imports MB | model loaded MB | predictor ready MB | "
        f"one {args.tile} px tile MB | a {args.tile} x {args.tile * 3 // 4} tile after it MB "
        f"| s per {args.tile} px tile |"
    )
    print("|---|---|---|---|---|---|---|")
    for precision in ("bfloat16", "int8", "int8 dynamic"):
        command = [sys.executable, __file__, "--tile", str(args.tile), "--precision", precision]
        subprocess.run(command, check=True, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
