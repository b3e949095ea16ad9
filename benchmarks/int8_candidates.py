"""Measure int8 inference candidates for the bundled model on this CPU (issue: int8 on a CPU).

Each row runs one member network of the bundled ensemble (batch norm folded, as predict
runs it) over real tiles of Banepa and Zanzibar and prints seconds per tile, the
speed-up over bfloat16 autocast (what predict uses on this CPU), and how far its building
probability is from float32's (largest and mean absolute difference, and the share of
pixels that change side of the card's threshold). int8 candidates are calibrated on tiles
of the scenes' validation strips (never on a test scene) and timed on other tiles.

Rows (a candidate whose library is not installed is listed as such):
- ``float32`` and ``bfloat16``: PyTorch eager, channels-last.
- ``fx-int8``: PyTorch's FX post-training static quantisation (x86 engine, oneDNN),
  transposed convolutions left in float (``torch.ao.quantization``, deprecated by PyTorch
  in favour of torchao).
- ``fx-int8 (all)``: the same with the transposed convolutions quantised too.
- ``onnxruntime-int8``: the network exported to ONNX and quantised by ONNX Runtime
  (static, QDQ, per-channel weights).
- ``openvino-bf16`` and ``openvino-int8 (nncf)``: the network converted by OpenVINO, run
  in its bfloat16, or quantised by NNCF (post-training, default preset).

Usage:
    python benchmarks/int8_candidates.py [--tile 512] [--tiles 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from geounet.model.checkpoint import load_checkpoint
from geounet.model.ensemble import members_of
from geounet.model.network import fuse_for_inference

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
SCENES = ("banepa/banepa_west_z19.tif", "zanzibar/zanzibar_1_z20.tif")
"""Two places at the model's pixel size, wide enough for 512 px tiles in their strips."""


def tiles(tile: int, count: int, strip: bool) -> torch.Tensor:
    """Normalised tiles of two training scenes: from their validation strips, or not."""
    ck = load_checkpoint(None)
    out = []
    for name in SCENES:
        with rasterio.open(SAMPLE / name) as src:
            cut = int(src.width * 0.8)  # the strip is the eastern 20 %
            cols = (
                range(cut, src.width - tile + 1, tile // 2) if strip else range(0, cut - tile, tile)
            )
            rows = range(0, src.height - tile + 1, tile)
            out += [
                src.read((1, 2, 3), window=Window(c, r, tile, tile)) for r in rows for c in cols
            ][: count // len(SCENES)]
    x = torch.from_numpy(np.stack(out)).float()
    return ck.card.normalization.apply(x).contiguous(memory_format=torch.channels_last)


def per_tile(
    forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, repeats: int = 3
) -> float:
    """Seconds per tile, one tile a call, the fastest of ``repeats`` passes (after a warm-up):
    on a shared machine the fastest pass is the one least disturbed."""
    best = float("inf")
    with torch.inference_mode():
        forward(x[:1])
        for _ in range(repeats):
            t = time.perf_counter()
            for k in range(len(x)):
                forward(x[k : k + 1])
            best = min(best, (time.perf_counter() - t) / len(x))
    return best


def probabilities(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.cat(
            [torch.sigmoid(forward(x[k : k + 1]).float()[:, :1]) for k in range(len(x))]
        ).numpy()


def fx_int8(net: torch.nn.Module, calib: torch.Tensor, transposed: bool) -> torch.nn.Module:
    """The network quantised by FX post-training static quantisation (x86 engine)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    mapping = get_default_qconfig_mapping("x86")
    if not transposed:
        mapping = mapping.set_object_type(torch.nn.ConvTranspose2d, None)
    prepared = prepare_fx(copy.deepcopy(net).eval(), mapping, example_inputs=(calib[:1],))
    with torch.inference_mode():
        for k in range(len(calib)):
            prepared(calib[k : k + 1])
    return convert_fx(prepared)


def ort_int8(
    net: torch.nn.Module, calib: torch.Tensor, folder: Path
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The network exported to ONNX and quantised by ONNX Runtime, or None if not installed."""
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError:
        return None
    fp32 = folder / "net.onnx"
    torch.onnx.export(
        net, (calib[:1].contiguous(),), str(fp32), input_names=["x"], output_names=["y"],
        dynamo=False, opset_version=17,
    )  # fmt: skip

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(
                [{"x": calib[k : k + 1].contiguous().numpy()} for k in range(len(calib))]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    int8 = folder / "net.int8.onnx"
    quantize_static(
        str(fp32), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"x": x.contiguous().numpy()})[0])


def openvino_int8(
    net: torch.nn.Module, calib: torch.Tensor, bf16: bool = False
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The network converted by OpenVINO and quantised by NNCF (or, with ``bf16``, only
    converted and run in OpenVINO's bfloat16), or None if not installed."""
    try:
        import nncf
        import openvino as ov
    except ImportError:
        return None
    model = ov.convert_model(net, example_input=calib[:1].contiguous())
    if not bf16:
        data = nncf.Dataset([calib[k : k + 1].contiguous().numpy() for k in range(len(calib))])
        model = nncf.quantize(model, data, subset_size=len(calib))
    core = ov.Core()
    config = {
        "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
    }
    compiled = core.compile_model(model, "CPU", config)
    return lambda x: torch.from_numpy(compiled(x.contiguous().numpy())[0])


def main() -> None:
    """Print one row per candidate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=512, help="tile side (px)")
    parser.add_argument("--tiles", type=int, default=8, help="tiles timed and compared")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ck = load_checkpoint(None)
    net = fuse_for_inference(members_of(ck.model)[0]).eval().to(memory_format=torch.channels_last)
    calib = tiles(args.tile, 8, strip=True)
    x = tiles(args.tile, args.tiles, strip=False)
    threshold = ck.card.threshold

    def bf16(t: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return net(t)

    rows: list[tuple[str, Callable[[torch.Tensor], torch.Tensor] | None]] = [
        ("float32", net),
        ("bfloat16", bf16),
        ("fx-int8", fx_int8(net, calib, transposed=False)),
        ("fx-int8 (all)", fx_int8(net, calib, transposed=True)),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("onnxruntime-int8", ort_int8(net, calib, Path(tmp))))
        rows.append(("openvino-bf16", openvino_int8(net, calib, bf16=True)))
        rows.append(("openvino-int8 (nncf)", openvino_int8(net, calib)))
        reference = probabilities(net, x)
        measured = {name: per_tile(f, x) for name, f in rows if f is not None}
        base = measured["bfloat16"]
        print(f"one member of the bundled model, {args.tile} px tiles, {args.threads} threads")
        print(
            "| candidate | s / tile | speed-up over bfloat16 | max abs diff | mean abs diff | pixels across the threshold |"
        )
        print("|---|---|---|---|---|---|")
        for name, forward in rows:
            if forward is None:
                print(f"| {name} | not installed | | | | |")
                continue
            seconds = measured[name]
            prob = probabilities(forward, x)
            diff = np.abs(prob - reference)
            flips = np.mean((prob >= threshold) != (reference >= threshold))
            print(
                f"| {name} | {seconds:.3f} | {base / seconds:.2f} | {diff.max():.3f} | "
                f"{diff.mean():.4f} | {flips:.4%} |"
            )


if __name__ == "__main__":
    main()
