"""Measure geounet predict against this machine's compute floor and a torchgeo baseline.

For each benchmark scene (mirror-tiled Kampala, see make_scenes.py) it measures, in one run:

- end-to-end ``geounet predict`` wall time and peak RSS (a fresh process per scene),
  footprints as traced (``--regularize``: squared, as predict does by default);
- model-only time: the same number of tiles pushed through the model from memory, no I/O
  (the compute floor of this configuration);
- the machine's matrix-multiply rate at the precision in use, and the model's achieved
  FLOP rate as a fraction of it (FLOPs counted from the model's convolutions);
- at the largest size, the torchgeo baseline: GridGeoSampler over a RasterDataset, a
  DataLoader, predictions stitched into a full-scene array, written with rasterio (same
  model, tile and overlap);

and prints a table of ratios (markdown). GPU figures are added when CUDA is present.

Usage:
    python benchmarks/make_scenes.py --sizes 4096 8192 16384
    python benchmarks/run_benchmarks.py --sizes 4096 8192 16384 [--model M] [--baseline]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from make_scenes import make_scene  # noqa: E402

from geounet.inference.engine import TilePredictor  # noqa: E402
from geounet.inference.options import (  # noqa: E402
    PredictOptions,
    default_batch_size,
    plan_for_grid,
)
from geounet.model.checkpoint import load_checkpoint  # noqa: E402
from geounet.model.device import resolve_precision, select_device  # noqa: E402
from geounet.model.tta import with_tta  # noqa: E402

CHILD = """
import json, resource, sys, time
from geounet.inference.options import PredictOptions
from geounet.inference.scene import predict_scene
t = time.perf_counter()
r = predict_scene(sys.argv[1], sys.argv[2], sys.argv[3] if sys.argv[3] != "-" else None,
                  PredictOptions(overwrite=True, precision=sys.argv[4],
                                 regularize=sys.argv[5] == "1"))
print(json.dumps({"wall_s": time.perf_counter() - t, "tiles": r.tiles,
                  "buildings": r.buildings, "redundancy": r.redundancy,
                  "timings": r.timings, "precision": r.precision, "device": r.device,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def end_to_end(
    scene: Path, model: str | None, precision: str = "auto", regularize: bool = False
) -> dict[str, Any]:
    """Run geounet predict on a scene in a fresh process; timings and peak RSS.

    The footprints are as traced unless ``regularize`` (predict's default since
    2026-12-06, after these benchmarks' targets were set): squaring costs the same
    whatever runs the network, and ``regularize_time.py`` times it.
    """
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-c", CHILD, str(scene), out, model or "-", precision]
        cmd.append("1" if regularize else "0")
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def conv_flops_per_pixel(model: torch.nn.Module, tile: int, bands: int) -> float:
    """FLOPs (2 per multiply-accumulate) per input pixel of the convolutions of a model."""
    macs = 0

    def hook(mod: torch.nn.Module, inp: Any, out: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(mod, torch.nn.ConvTranspose2d):
            macs += inp[0].numel() * mod.out_channels * mod.kernel_size[0] * mod.kernel_size[1]
        else:
            assert isinstance(mod, torch.nn.Conv2d)
            k = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
            macs += out.numel() * k

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)
    ]
    with torch.inference_mode():
        model(torch.zeros(1, bands, tile, tile))
    for h in handles:
        h.remove()
    return 2.0 * macs / (tile * tile)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 20) -> float:
    """Measured matrix-multiply rate in FLOP/s at ``dtype`` on ``device``."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(3):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2.0 * n**3 * reps / (time.perf_counter() - t)


def model_only(predictor: TilePredictor, n_tiles: int, tile: int, batch: int) -> float:
    """Seconds to push ``n_tiles`` tiles through the model from memory (no I/O)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (batch, 3, tile, tile), dtype=np.uint8)
    predictor(x[:1])  # warm-up
    t = time.perf_counter()
    done = 0
    while done < n_tiles:
        k = min(batch, n_tiles - done)
        predictor(x[:k])
        done += k
    return time.perf_counter() - t


def torchgeo_baseline(
    scene: Path, card: Any, tile: int, overlap: int, batch: int
) -> dict[str, float]:
    """torchgeo's documented way to predict a scene; wall time and peak RSS (fresh process).

    The checkpoint's model as loaded (no fusion; its card's test-time augmentation),
    geounet's tile, overlap and batch size.
    """
    code = f"""
import json, resource, sys, time
import numpy as np, rasterio, torch
from torch.utils.data import DataLoader
from torchgeo.datasets import RasterDataset, stack_samples
from torchgeo.samplers import GridGeoSampler
from geounet.model.checkpoint import load_checkpoint
from geounet.model.device import autocast, resolve_precision
from geounet.model.tta import with_tta
t0 = time.perf_counter()
class Scene(RasterDataset):
    filename_glob = {scene.name!r}
    is_image = True
    all_bands = ("R", "G", "B", "A")
    rgb_bands = ("R", "G", "B")
ck = load_checkpoint({str(card) if card else None!r})
model = with_tta(ck.model.eval().to(memory_format=torch.channels_last), ck.card.tta)
dtype = resolve_precision(torch.device("cpu"), "auto")
ds = Scene(paths={str(scene.parent)!r}, bands=("R", "G", "B"))
sampler = GridGeoSampler(ds, size={tile}, stride={tile - overlap})
loader = DataLoader(ds, sampler=sampler, batch_size={batch}, collate_fn=stack_samples)
with rasterio.open({str(scene)!r}) as src:
    profile, H, W, tr = src.profile, src.height, src.width, src.transform
out = np.zeros((H, W), dtype=np.float32)
with torch.inference_mode():
    for batch in loader:
        x = ck.card.normalization.apply(batch["image"]).contiguous(memory_format=torch.channels_last)
        with autocast(torch.device("cpu"), dtype):
            p = torch.sigmoid(model(x)[:, 0].float()).numpy()
        for prob, bounds in zip(p, batch["bounds"]):
            xmin = bounds[0].start if hasattr(bounds[0], "start") else bounds.minx
            ymax = bounds[1].stop if hasattr(bounds[1], "stop") else bounds.maxy
            c, r = ~tr * (xmin, ymax)
            r, c = int(round(r)), int(round(c))
            # the last chips of GridGeoSampler reach past the scene: keep the part inside
            pr, pc = max(0, -r), max(0, -c)
            r0, c0 = max(r, 0), max(c, 0)
            h, w = min(prob.shape[0] - pr, H - r0), min(prob.shape[1] - pc, W - c0)
            if h > 0 and w > 0:
                out[r0:r0 + h, c0:c0 + w] = prob[pr:pr + h, pc:pc + w]
profile.update(count=1, dtype="float32", compress="deflate")
with rasterio.open(sys.argv[1], "w", **profile) as dst:
    dst.write(out, 1)
print(json.dumps({{"wall_s": time.perf_counter() - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            [sys.executable, "-c", code, str(Path(out) / "tg.tif")],
            capture_output=True,
            text=True,
        )
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1]}  # type: ignore[dict-item]
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192, 16384])
    parser.add_argument("--model", default=None, help="checkpoint (default: bundled)")
    parser.add_argument("--scenes", type=Path, default=ROOT / "scenes")
    parser.add_argument("--baseline", action="store_true", help="run the torchgeo baseline")
    parser.add_argument(
        "--regularize", action="store_true", help="square the footprints, as predict does"
    )
    args = parser.parse_args()

    ckpt = load_checkpoint(args.model)
    device = select_device("auto")
    dtype = resolve_precision(device, "auto")
    predictor = TilePredictor(ckpt, device, dtype)
    opts = PredictOptions()
    tile = ckpt.card.tile_size
    overlap = min(128, tile // 4)
    net = with_tta(ckpt.model.float().eval(), ckpt.card.tta)  # as predict runs it
    flops_px = conv_flops_per_pixel(net, 256, ckpt.card.model.in_channels)
    peak = matmul_peak(device, dtype)
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, device {device}, precision {str(dtype).removeprefix('torch.')}"
    )
    print(f"matmul peak: {peak / 1e9:.0f} GFLOP/s; model: {flops_px / 1e3:.0f} kFLOP per pixel\n")
    rows = []
    for size in args.sizes:
        scene = args.scenes / f"kampala_mirror_{size}.tif"
        if not scene.exists():
            make_scene(size, scene)
        e2e = end_to_end(scene, args.model, regularize=args.regularize)
        plan = plan_for_grid(size, size, ckpt.card, opts)
        batch = opts.batch_size or default_batch_size(device)
        floor = model_only(predictor, e2e["tiles"], plan.tile_height, batch)
        computed = e2e["tiles"] * plan.tile_height * plan.tile_width
        achieved = computed * flops_px / floor
        row = {
            "size": size,
            "tiles": e2e["tiles"],
            "e2e_s": e2e["wall_s"],
            "model_only_s": floor,
            "e2e_over_model": e2e["wall_s"] / floor,
            "peak_fraction": achieved / peak,
            "rss_mb": e2e["peak_rss_mb"],
            "redundancy": e2e["redundancy"],
            "vectorise_fraction": e2e["timings"].get("vectorise", 0.0) / e2e["timings"]["predict"],
            "buildings": e2e["buildings"],
        }
        if args.baseline and size == max(args.sizes):
            row["torchgeo"] = torchgeo_baseline(scene, args.model, tile, overlap, batch)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print(
        "| scene px | tiles | end-to-end s | model-only s | e2e / model | model FLOP rate / matmul peak "
        "| peak RSS MB | computed / scene px | vectorise / predict | buildings |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']} | {r['tiles']} | {r['e2e_s']:.1f} | {r['model_only_s']:.1f} | "
            f"{r['e2e_over_model']:.2f} | {r['peak_fraction']:.2f} | {r['rss_mb']:.0f} | "
            f"{r['redundancy']:.2f} | {r['vectorise_fraction']:.3f} | {r['buildings']} |"
        )
    small, large = rows[0], rows[-1]
    print(f"\nRSS {large['size']} / RSS {small['size']}: {large['rss_mb'] / small['rss_mb']:.2f}")
    tg = large.get("torchgeo")
    if tg and "wall_s" in tg:
        print(
            f"torchgeo baseline at {large['size']}: {tg['wall_s']:.1f} s, {tg['peak_rss_mb']:.0f} MB; "
            f"geounet throughput x{tg['wall_s'] / large['e2e_s']:.2f}, "
            f"memory x{large['rss_mb'] / tg['peak_rss_mb']:.2f}"
        )
    elif tg:
        print(f"torchgeo baseline failed: {tg['error']}")


if __name__ == "__main__":
    main()
