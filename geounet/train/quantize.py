"""int8 calibration on a model's validation strips (``geounet quantize``).

The tiles that set the int8 ranges come from the held-out eastern strip of each training
scene, cut as ``geounet train`` and ``geounet calibrate`` cut it, read onto the model's
grid: never from a test scene, and from every place the model was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.enums import Resampling
from rasterio.windows import Window

from geounet.io.raster import ground_pixel_size_m, select_bands
from geounet.model.checkpoint import Checkpoint, load_checkpoint
from geounet.model.int8 import int8_path, quantize
from geounet.train.datasets import scene_split
from geounet.train.strip import strip_window

TILE = 512
"""Side of a calibration tile on the model's grid, in pixels."""


def strip_tiles(
    checkpoint: Checkpoint,
    images: Sequence[Path],
    val_fraction: float = 0.2,
    per_scene: int = 4,
) -> list[torch.Tensor]:
    """Normalised tiles of the validation strip of each scene, on the model's grid.

    Args:
        checkpoint: The model (its pixel size, bands and normalisation).
        images: The model's training scenes.
        val_fraction: Eastern fraction of each scene held out, as in training.
        per_scene: Tiles taken from each strip, spread along it.

    Returns:
        Tiles of shape (1, bands, TILE, TILE); a strip narrower than a tile gives one as
        wide as the strip (rounded down to the network's multiple).

    Raises:
        InputError: If ``val_fraction`` is not in (0, 1).
    """
    split = scene_split(images, val_fraction)  # the strips training and calibrate cut
    card = checkpoint.card
    multiple = card.model.size_multiple
    out: list[torch.Tensor] = []
    for image in images:
        with rasterio.open(image) as src:
            bands = select_bands(src, card.model.in_channels)
            factor = ground_pixel_size_m(src) / card.pixel_size_m  # model px per scene px
            strip = strip_window(src, split.val_roi, split.crs)
            if strip is None:
                continue
            width = min(TILE, int(strip.width * factor) // multiple * multiple)
            height = min(TILE, int(strip.height * factor) // multiple * multiple)
            if width < multiple or height < multiple:
                continue
            span = (width / factor, height / factor)  # the tile in scene pixels
            top, bottom = strip.row_off, strip.row_off + strip.height - span[1]
            for row in np.linspace(top, max(bottom, top), per_scene):
                window = Window(strip.col_off, float(row), span[0], span[1])
                raw = src.read(
                    bands, window=window, out_shape=(len(bands), height, width),
                    resampling=Resampling.bilinear,
                )  # fmt: skip
                x = torch.from_numpy(raw[None].astype(np.float32))
                out.append(card.normalization.apply(x))
    return out


def quantize_model(
    model: Path, images: Sequence[Path], out: Path | None = None, val_fraction: float = 0.2
) -> tuple[Path, int]:
    """Quantise a checkpoint to int8, calibrated on its training scenes' validation strips.

    Args:
        model: The checkpoint.
        images: Its training scenes.
        out: The ``.int8.xml`` to write; default: beside the checkpoint, where prediction
            looks for it.
        val_fraction: Eastern fraction of each scene held out, as in training.

    Returns:
        The IR written and the number of calibration tiles.
    """
    checkpoint = load_checkpoint(model)
    tiles = strip_tiles(checkpoint, images, val_fraction)
    target = out or int8_path(Path(model))
    return quantize(checkpoint, tiles, target), len(tiles)
