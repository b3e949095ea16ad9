"""Measure the model-side levers of prediction speed, one at a time, on this machine.

Every row pushes the same tiles (random 8-bit RGB, the side the default plan uses for a
16384 px scene) through the bundled model from memory and prints seconds per tile, with
the fraction of the fastest row. Rows: float32 against bfloat16/float16 autocast, batch
norm folded into the convolutions or not, channels-last or contiguous memory, batch
sizes 1, 2 and 4, and ``torch.compile`` (its compile time printed apart). The settings
geounet predict uses are marked.

Usage:
    python benchmarks/levers.py [--tile 992] [--tiles 8] [--compile]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from geounet.inference.options import default_batch_size
from geounet.model.checkpoint import load_checkpoint
from geounet.model.device import autocast, resolve_precision, select_device
from geounet.model.network import fuse_for_inference


def per_tile(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tiles: int) -> float:
    """Seconds per tile over ``tiles`` tiles in batches of ``len(x)`` (after a warm-up)."""
    with torch.inference_mode():
        forward(x)
        t = time.perf_counter()
        done = 0
        while done < tiles:
            forward(x)
            done += len(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - t) / done


def main() -> None:
    """Print one row per lever setting."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=992, help="tile side (px)")
    parser.add_argument("--tiles", type=int, default=8, help="tiles per measurement")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args()

    device = select_device("auto")
    fast = resolve_precision(device, "auto")
    model = load_checkpoint(None).model.to(device).eval()
    fused = fuse_for_inference(model)
    default_batch = default_batch_size(device)
    rows: list[tuple[str, float, bool]] = []

    def run(name: str, net: torch.nn.Module, dtype: torch.dtype, batch: int, last: bool) -> None:
        net = net.to(memory_format=torch.channels_last if last else torch.contiguous_format)
        x = torch.rand(batch, 3, args.tile, args.tile, device=device)
        x = x.contiguous(memory_format=torch.channels_last if last else torch.contiguous_format)

        def forward(t: torch.Tensor) -> torch.Tensor:
            with autocast(device, dtype):
                return net(t)

        used = net is fused and dtype == fast and batch == default_batch and last
        rows.append((name, per_tile(forward, x, args.tiles), used))
        print(f"  {name}: {rows[-1][1]:.3f} s/tile", flush=True)

    prec = str(fast).removeprefix("torch.")
    print(f"device {device}, tile {args.tile} px, {args.tiles} tiles per row")
    run("float32, batch norm, channels-last, batch 1", model, torch.float32, 1, True)
    run(f"{prec}, batch norm, channels-last, batch 1", model, fast, 1, True)
    run(f"{prec}, folded, contiguous, batch 1", fused, fast, 1, False)
    for batch in (1, 2, 4):
        run(f"{prec}, folded, channels-last, batch {batch}", fused, fast, batch, True)
    if args.compile:
        compiled = torch.compile(fused)
        x = torch.rand(default_batch, 3, args.tile, args.tile, device=device)
        x = x.contiguous(memory_format=torch.channels_last)
        t = time.perf_counter()
        with torch.inference_mode(), autocast(device, fast):
            compiled(x)
        start = time.perf_counter() - t

        def forward(t: torch.Tensor) -> torch.Tensor:
            with autocast(device, fast):
                return compiled(t)

        name = f"{prec}, folded, channels-last, batch {default_batch}, torch.compile"
        rows.append((f"{name} (compile: {start:.1f} s)", per_tile(forward, x, args.tiles), False))
        print(f"  {rows[-1][0]}: {rows[-1][1]:.3f} s/tile", flush=True)

    best = min(s for _, s, _ in rows)
    print("\n| setting | s / tile | fastest / this |\n|---|---|---|")
    for name, seconds, used in rows:
        mark = " (geounet predict)" if used else ""
        print(f"| {name}{mark} | {seconds:.3f} | {best / seconds:.2f} |")


if __name__ == "__main__":
    main()
