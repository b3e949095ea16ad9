"""int8 calibration on a model's validation strips (``geounet quantize``).

The tiles that set the int8 ranges come from the held-out eastern strip of each training
scene, cut as ``geounet train`` and ``geounet calibrate`` cut it, read onto the model's
grid: never from a test scene, and from every place the model was trained on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.enums import Resampling
from rasterio.windows import Window

from geounet.core.provenance import file_sha256
from geounet.errors import InputError
from geounet.inference.options import PredictOptions
from geounet.io.atomic import atomic_path
from geounet.io.raster import ground_pixel_size_m, select_bands
from geounet.model.checkpoint import Checkpoint, load_checkpoint
from geounet.model.int8 import (
    TOLERANCE,
    check_path,
    checks_of,
    cpu_name,
    default_precision,
    int8_path,
    quantize,
)
from geounet.train.datasets import scene_split
from geounet.train.strip import score_at_card, strip_window

TILE = 512
"""Side of a calibration tile on the model's grid, in pixels."""

SAME = ("model_sha256", "int8_sha256", "tolerance")
"""What a check record must share with a new check for its other checks to be kept."""


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
    check_path(Path(model)).unlink(missing_ok=True)  # a new int8 model is unchecked
    return quantize(checkpoint, tiles, target), len(tiles)


@dataclass(frozen=True)
class PlaceCheck:
    """int8 against the default precision on one place's validation strips.

    Attributes:
        place: The labels file, as given.
        scenes: Its scenes.
        buildings: True footprints in its strips.
        reference: Pixel IoU and object F1 at the default precision.
        int8: The same with the int8 model.
    """

    place: str
    scenes: int
    buildings: int
    reference: tuple[float, float]
    int8: tuple[float, float]

    @property
    def within(self) -> bool:
        """Whether both figures lie within :data:`~geounet.model.int8.TOLERANCE`."""
        return (
            abs(self.int8[0] - self.reference[0]) <= TOLERANCE["pixel_iou"]
            and abs(self.int8[1] - self.reference[1]) <= TOLERANCE["object_f1"]
        )


def places_of(images: Sequence[Path], labels: Sequence[Path]) -> dict[Path, list[Path]]:
    """The scenes of each place: those that share a labels file.

    Args:
        images: The scenes.
        labels: One footprint file per scene, or one for all of them.

    Raises:
        InputError: If there are neither as many labels as scenes nor one.
    """
    if len(labels) not in (1, len(images)):
        raise InputError(
            f"{len(labels)} --labels for {len(images)} --images: give one per scene (the "
            "scenes of a place share its file) or one for all"
        )
    places: dict[Path, list[Path]] = {}
    for image, label in zip(images, list(labels) * (len(images) // len(labels)), strict=True):
        places.setdefault(Path(label), []).append(Path(image))
    return places


def check_int8(
    model: Path, images: Sequence[Path], labels: Sequence[Path], val_fraction: float = 0.2
) -> tuple[str, list[PlaceCheck]]:
    """Score the int8 model against the default precision on each place's strips.

    A place is the scenes that share a labels file. The check is written beside the
    checkpoint (:func:`~geounet.model.int8.check_path`); ``--precision auto`` runs the
    int8 model only where every place lies within :data:`~geounet.model.int8.TOLERANCE`.

    Args:
        model: The checkpoint, quantised (its int8 model beside it).
        images: Its training scenes.
        labels: One footprint file per scene, or one for all of them.
        val_fraction: Eastern fraction of each scene held out, as in training.

    Returns:
        The default precision's name and one check per place.

    Raises:
        InputError: If the labels do not pair with the scenes, or there is no int8 model.
    """
    places = places_of(images, labels)
    ir = int8_path(Path(model))
    if not ir.with_suffix(".bin").is_file():
        raise InputError(f"{model} has no int8 model to check; quantise it first")
    checkpoint = load_checkpoint(model)
    reference = default_precision()
    split = scene_split(list(images), val_fraction)
    checks = []
    for label, scenes in places.items():
        ref, low = (
            score_at_card(
                checkpoint, scenes, [label], split.val_roi, split.crs,
                PredictOptions(tta=checkpoint.card.tta, precision=precision, device="cpu"),
            )
            for precision in (reference, "int8")
        )  # fmt: skip
        checks.append(
            PlaceCheck(
                str(label),
                len(scenes),
                ref.objects.tp + ref.objects.fn,
                (ref.pixels.iou, ref.objects.f1),
                (low.pixels.iou, low.objects.f1),
            )
        )
    checks_by_reference: dict[str, Any] = {}
    record: dict[str, Any] = {
        "model_sha256": file_sha256(Path(model)),
        "int8_sha256": file_sha256(ir.with_suffix(".bin")),
        "tolerance": TOLERANCE,
        "checks": checks_by_reference,
    }
    try:  # the checks of the same int8 model against other precisions are kept
        earlier = json.loads(check_path(Path(model)).read_text())
    except (OSError, ValueError):
        earlier = None
    if isinstance(earlier, dict) and all(earlier.get(k) == record[k] for k in SAME):
        checks_by_reference.update(checks_of(earlier))
    checks_by_reference[reference] = {
        "cpu": cpu_name(),
        "places": [asdict(c) | {"within": c.within} for c in checks],
        "within": all(c.within for c in checks),
    }
    with atomic_path(check_path(Path(model))) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    return reference, checks
