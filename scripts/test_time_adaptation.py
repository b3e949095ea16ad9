"""Does adapting a model to a new town's imagery alone, without labels, help it there?

Two label-free adaptations that domain-adaptation papers on aerial imagery use, scored on
places the model was never trained on (a leave-one-place-out network on its left-out
place, or the Kampala-only model on the other three), each predicted as ``geounet
predict`` does and scored whole at the card's thresholds (as ``evaluate_places.py
--lopo`` scores):

- ``none``: the model as it is;
- ``adabn``: AdaBN (Li et al. 2016): every batch norm's statistics recomputed from
  ``--chips`` random 256 px chips of the place's scenes (no-data chips skipped);
- ``moments``: the input normalised by the place's own per-band mean and standard
  deviation instead of the training data's (moment matching).

Nothing here chooses for the bundled model: it records whether either is worth building.

Usage:
    python scripts/test_time_adaptation.py MODEL --place P [--place Q ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
import torch
from rasterio.enums import Resampling
from rasterio.windows import Window
from torch import nn

from geounet.inference.options import PredictOptions
from geounet.io.raster import ground_pixel_size_m, select_bands
from geounet.model.checkpoint import Checkpoint, load_checkpoint
from geounet.train.datasets import scene_split
from geounet.train.strip import score_at_card

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_places import VAL_FRACTION, figures, places  # noqa: E402

METHODS = ("none", "adabn", "moments")
CHIP = 256
"""Side of an AdaBN chip on the model's grid, in pixels."""


def adabn(checkpoint: Checkpoint, images: Sequence[Path], chips: int, seed: int = 0) -> int:
    """Recompute every batch norm's statistics from random chips of the scenes, in place.

    Args:
        checkpoint: The model (its network is changed).
        images: The scenes, read on the model's grid.
        chips: Chips in all, shared equally among the scenes.
        seed: Seed of the chip positions.

    Returns:
        The number of chips used.
    """
    rng = np.random.default_rng(seed)
    card = checkpoint.card
    batch: list[torch.Tensor] = []
    for image in images:
        with rasterio.open(image) as src:
            bands = select_bands(src, card.model.in_channels)
            span = CHIP * card.pixel_size_m / ground_pixel_size_m(src)  # scene pixels
            taken = 0
            for _ in range(100 * chips):
                if taken == chips // len(images):
                    break
                col, row = rng.uniform(0, src.width - span), rng.uniform(0, src.height - span)
                window = Window(col, row, span, span)
                valid = src.read_masks(1, window=window, out_shape=(CHIP, CHIP)) > 0
                if valid.mean() < 0.95:
                    continue
                raw = src.read(
                    bands, window=window, out_shape=(len(bands), CHIP, CHIP),
                    resampling=Resampling.bilinear,
                )  # fmt: skip
                batch.append(card.normalization.apply(torch.from_numpy(raw[None].astype("f4"))))
                taken += 1
    for module in checkpoint.model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over every batch
    checkpoint.model.train()
    with torch.no_grad():
        x = torch.cat(batch)
        for start in range(0, len(x), 8):
            checkpoint.model(x[start : start + 8])
    checkpoint.model.eval()
    return len(batch)


def moments(checkpoint: Checkpoint, images: Sequence[Path]) -> Checkpoint:
    """The checkpoint with its input normalised by the scenes' own band statistics.

    Args:
        checkpoint: The model.
        images: The scenes (read at an eighth of their size; no-data left out).

    Returns:
        A checkpoint whose card's normalisation has the scenes' mean and deviation.
    """
    norm = checkpoint.card.normalization
    pixels = []
    for image in images:
        with rasterio.open(image) as src:
            bands = select_bands(src, checkpoint.card.model.in_channels)
            shape = (src.height // 8, src.width // 8)
            raw = src.read(bands, out_shape=(len(bands), *shape)).reshape(len(bands), -1)
            valid = src.read_masks(1, out_shape=shape).ravel() > 0
            pixels.append(raw[:, valid].astype(np.float64) * norm.scale)
    stacked = np.concatenate(pixels, axis=1)
    new = dataclasses.replace(
        norm,
        mean=tuple(float(m) for m in stacked.mean(axis=1)),
        std=tuple(float(s) for s in stacked.std(axis=1)),
    )
    card = dataclasses.replace(checkpoint.card, normalization=new)
    return dataclasses.replace(checkpoint, card=card)


def measure(model: Path, place: str, method: str, chips: int) -> dict[str, Any]:
    """Adapt the model to one place by one method and score the place whole."""
    images, labels = places()[place]
    checkpoint = load_checkpoint(model)
    used = 0
    if method == "adabn":
        used = adabn(checkpoint, images, chips)
    elif method == "moments":
        checkpoint = moments(checkpoint, images)
    split = scene_split(list(images), VAL_FRACTION)
    roi = shapely.union_all([split.train_roi, split.val_roi])
    options = PredictOptions(tta=checkpoint.card.tta)
    score = score_at_card(checkpoint, images, labels, roi, split.crs, options)
    row = {"model": str(model), "place": place, "method": method, "chips": used}
    return row | figures(score)


def main(argv: list[str] | None = None) -> int:
    """Score each method on each place and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--place", action="append", required=True, choices=sorted(places()))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--chips", type=int, default=64, help="AdaBN chips per place")
    parser.add_argument("--json", type=Path, help="append the rows here, one JSON per line")
    args = parser.parse_args(argv)
    print("| model | place | method | pixel IoU | precision | recall | object F1 |")
    print("|---|---|---|---|---|---|---|")
    for place in args.place:
        for method in args.methods:
            row = measure(args.model, place, method, args.chips)
            print(
                f"| {args.model.name} | {place} | {method} | {row['pixel_iou']:.3f} | "
                f"{row['pixel_precision']:.3f} | {row['pixel_recall']:.3f} | "
                f"{row['object_f1']:.3f} |",
                flush=True,
            )
            if args.json:
                with args.json.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
