"""How far NNCF's int8 settings take the whole bundled ensemble from bfloat16 (issue: int8).

The ensemble is converted to OpenVINO as ``geounet quantize`` converts it, calibrated on
the tiles ``geounet quantize`` uses (4 per validation strip of every training scene), and
each setting's building probability is compared with PyTorch's bfloat16 autocast (what
``geounet predict`` runs on this CPU) on 8 tiles per strip: mean absolute difference (the
mean over tiles, and the worst tile), and the share of pixels on the other side of the
card's building threshold. Never a test scene. Seconds per tile are printed too, but the
speed benchmark is ``int8_end_to_end.py``.

With ``--leave-one-place-out`` each place is scored with a model calibrated on the other
three places' strips only: how int8 does on a town it was not calibrated on, as a user's
town is (the Kampala test scene showed a mean difference of 0.028 where the strips showed
0.005). Rows are then the mean and the worst of the four places.

Settings (``nncf.quantize`` options):
- ``default``: what ``geounet quantize`` did until 2026-12-04;
- ``full-bias-correction``: ``fast_bias_correction=False``;
- ``float-heads``: the 1x1 output convolutions left in float;
- ``float-first-and-heads``: the first convolution of each member too;
- ``global-minmax``: activation ranges from the global minimum and maximum of the
  calibration tiles (NNCF's ``MINMAX`` estimator), with full bias correction;
- ``global-minmax-float-first``: the same, the first convolutions left in float;
- ``global-minmax-float-first-and-heads``: the same, the output convolutions in float too;
- ``global-minmax-float-first-mixed``: ``global-minmax-float-first`` with NNCF's ``MIXED``
  preset (asymmetric activation ranges, symmetric weights).

Layers left in float run at OpenVINO's default precision for this CPU (bfloat16 on this
project's AMX machine), as ``geounet predict`` runs them where the reference is bfloat16.

Usage:
    python benchmarks/int8_settings.py [--settings NAME ...] [--leave-one-place-out]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geounet.model.checkpoint import bundled_model_path, load_checkpoint
from geounet.model.int8 import _first_convolutions, _probability_net
from geounet.train.quantize import strip_tiles

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from evaluate_places import places as training_places  # noqa: E402


def main() -> None:
    """Quantise with each setting and print its distance from bfloat16."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    names = [
        "default",
        "full-bias-correction",
        "float-heads",
        "float-first-and-heads",
        "global-minmax",
        "global-minmax-float-first",
        "global-minmax-float-first-and-heads",
        "global-minmax-float-first-mixed",
    ]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=names, choices=names)
    parser.add_argument("--leave-one-place-out", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ck = load_checkpoint(bundled_model_path())
    threshold = ck.card.threshold
    places = {place: images for place, (images, _) in training_places().items()}
    bands = ck.card.model.in_channels
    net = _probability_net(ck.model).eval()
    calibration = {p: strip_tiles(ck, images, per_scene=4) for p, images in places.items()}
    scored = {p: strip_tiles(ck, images, per_scene=8) for p, images in places.items()}
    with torch.inference_mode():
        reference = {}
        for place, tiles in scored.items():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                reference[place] = [net(t).float().numpy() for t in tiles]
        example = next(iter(calibration.values()))[0]
        model = ov.convert_model(
            net, example_input=example, input=[ov.PartialShape([-1, bands, -1, -1])]
        )
    first = _first_convolutions(model, bands)
    heads = [  # the 1x1 output convolutions
        op.get_friendly_name()
        for op in model.get_ordered_ops()
        if op.get_type_name() == "Convolution"
        and list(op.input_value(1).get_partial_shape().to_shape())[2:] == [1, 1]
    ]
    minmax = AdvancedQuantizationParameters(
        activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX
    )
    full = {"fast_bias_correction": False}
    options: dict[str, dict[str, Any]] = {
        "default": {},
        "full-bias-correction": full,
        "float-heads": {"ignored_scope": nncf.IgnoredScope(names=heads)},
        "float-first-and-heads": {"ignored_scope": nncf.IgnoredScope(names=first + heads)},
        "global-minmax": {**full, "advanced_parameters": minmax},
        "global-minmax-float-first": {
            **full,
            "advanced_parameters": minmax,
            "ignored_scope": nncf.IgnoredScope(names=first),
        },
        "global-minmax-float-first-and-heads": {
            **full,
            "advanced_parameters": minmax,
            "ignored_scope": nncf.IgnoredScope(names=first + heads),
        },
        "global-minmax-float-first-mixed": {
            **full,
            "advanced_parameters": minmax,
            "ignored_scope": nncf.IgnoredScope(names=first),
            "preset": nncf.QuantizationPreset.MIXED,
        },
    }
    core = ov.Core()
    folds = (
        [(p, [q for q in places if q != p]) for p in places]
        if args.leave_one_place_out
        else [("all", list(places))]
    )
    print(
        f"bundled ensemble; 512 px tiles of the validation strips: 4 per scene calibrate, 8 "
        f"per scene are scored; threshold {threshold}; {args.threads} threads; "
        + (
            "each place scored by a model calibrated on the other three"
            if args.leave_one_place_out
            else "every place calibrates and is scored"
        )
    )
    print(
        "| setting | mean abs diff | worst place or tile | pixels across the threshold | s / tile |"
    )
    print("|---|---|---|---|---|")
    for name in args.settings:
        per_fold: list[tuple[float, float, float, float]] = []
        for held, calibrating in folds:
            tiles = [t for p in calibrating for t in calibration[p]]
            data = nncf.Dataset([t.contiguous().numpy() for t in tiles])
            quantised = nncf.quantize(model, data, subset_size=len(tiles), **options[name])
            config = {"INFERENCE_NUM_THREADS": args.threads}
            compiled = core.compile_model(quantised, "CPU", config)
            targets = list(places) if held == "all" else [held]
            diffs, across = [], []
            start = time.perf_counter()
            for place in targets:
                for tile, ref in zip(scored[place], reference[place], strict=True):
                    prob = np.asarray(compiled(tile.numpy())[0])
                    diffs.append(float(np.abs(prob - ref).mean()))
                    across.append(float(((prob >= threshold) != (ref >= threshold)).mean()))
            seconds = (time.perf_counter() - start) / len(diffs)
            worst = float(np.max(diffs)) if held == "all" else float(np.mean(diffs))
            per_fold.append((float(np.mean(diffs)), worst, float(np.mean(across)), seconds))
        mean = float(np.mean([f[0] for f in per_fold]))
        worst = max(f[1] for f in per_fold)
        across_mean = float(np.mean([f[2] for f in per_fold]))
        seconds = float(np.mean([f[3] for f in per_fold]))
        print(
            f"| {name} | {mean:.4f} | {worst:.4f} | {100 * across_mean:.2f} % | {seconds:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
