"""Training data packed into one file, to train where GDAL is not installed (a GPU node).

``geounet train ... --pack data.npz`` reads the scenes and footprints as a training run
would (the model's grid, instance ids, the validation strips, the places) and writes them
into one compressed NumPy archive, instead of training. On any machine with torch,

    python -m geounet.train.pack data.npz --out model.safetensors [train options]

trains from it with the same loop (:mod:`geounet.train.loop`); ``--places`` keeps some
places only (to leave one out). The checkpoint's thresholds are then chosen where the
scenes are, with ``geounet calibrate`` (as predicted, on the same strips).

The archive holds plain arrays, 8-bit RGB images as JPEG bytes (:data:`JPEG_QUALITY`),
and a JSON header, and is read with ``allow_pickle=False``: loading a pack runs no code
from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from geounet.core.extents import Extent
from geounet.errors import GeounetError, InputError
from geounet.io.atomic import atomic_path
from geounet.train.arrays import SceneArrays, TrainingData

FORMAT = "geounet-pack-1"
"""The pack format written and read by this version."""


def save_pack(path: Path, data: TrainingData) -> None:
    """Write training data (without its targets) as a pack, atomically.

    Args:
        path: The archive to write (``.npz``).
        data: The training data.
    """
    header = {
        "format": FORMAT,
        "band_names": list(data.band_names),
        "class_names": list(data.class_names),
        "instance_class": [int(v) for v in data.instance_class],
        "footprints": data.footprints,
        "pixel_size_m": data.pixel_size_m,
        "scale": data.scale,
        "split": data.split,
        "sources": list(data.sources),
        "labels": list(data.labels),
        "scenes": [
            {
                "name": s.name,
                "place": s.place,
                "val_start": s.val_start,
                **({} if s.extent is None else {"extent": s.extent.as_dict()}),
            }
            for s in data.scenes
        ],
    }
    arrays: dict[str, Any] = {"header": np.frombuffer(json.dumps(header).encode(), np.uint8)}
    for i, s in enumerate(data.scenes):
        if s.image.dtype == np.uint8 and s.image.shape[0] == 3:
            arrays[f"jpeg_{i}"] = _jpeg(s.image)
        else:
            arrays[f"image_{i}"] = s.image
        arrays[f"valid_{i}"] = s.valid
        arrays[f"instances_{i}"] = s.instances
        arrays[f"trainable_{i}"] = s.trainable
        if s.held_out is not None:
            arrays[f"held_out_{i}"] = s.held_out
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)


def load_pack(path: Path) -> TrainingData:
    """Read a pack written by :func:`save_pack` (targets not made yet).

    Raises:
        InputError: If the file is missing or not a pack of this format.
    """
    if not path.is_file():
        raise InputError(f"pack {path} does not exist; write one with geounet train --pack")
    try:
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(bytes(archive["header"]).decode())
            if header.get("format") != FORMAT:
                raise InputError(f"{path} is not a {FORMAT} pack; write it again")
            scenes = [
                SceneArrays(
                    name=s["name"],
                    place=s["place"],
                    image=(
                        _unjpeg(archive[f"jpeg_{i}"])
                        if f"jpeg_{i}" in archive.files
                        else archive[f"image_{i}"]
                    ),
                    valid=archive[f"valid_{i}"],
                    instances=archive[f"instances_{i}"],
                    trainable=archive[f"trainable_{i}"],
                    val_start=int(s["val_start"]),
                    held_out=(
                        archive[f"held_out_{i}"] if f"held_out_{i}" in archive.files else None
                    ),
                    extent=Extent.from_dict(s["extent"]) if "extent" in s else None,
                )
                for i, s in enumerate(header["scenes"])
            ]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path} is not a readable pack ({exc}); write it again") from exc
    classes = tuple(header["class_names"])
    return TrainingData(
        scenes=scenes,
        band_names=tuple(header["band_names"]),
        class_names=classes,
        output_names=classes,
        instance_class=np.asarray(header["instance_class"], dtype=np.int64),
        footprints=int(header["footprints"]),
        pixel_size_m=float(header["pixel_size_m"]),
        scale=float(header["scale"]),
        split=header["split"],
        sources=tuple(header["sources"]),
        labels=tuple(header["labels"]),
    )


JPEG_QUALITY = 95
"""Quality of the JPEG that holds a pack's 8-bit RGB images (no chroma subsampling): a
fifth of the size of deflate, at a mean error of about one grey level in 255."""


def _jpeg(image: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """An 8-bit (3, H, W) image as JPEG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.moveaxis(image, 0, -1)).save(
        buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0
    )
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


def _unjpeg(data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The (3, H, W) image of :func:`_jpeg`'s bytes."""
    from PIL import Image

    with Image.open(io.BytesIO(data.tobytes())) as img:
        return np.ascontiguousarray(np.moveaxis(np.asarray(img.convert("RGB")), -1, 0))


_NOT_OPTIONS = {"images", "labels", "out", "places", "command", "progress"}
_FLAGS = {"pixel_size_m": "pixel_size"}
_OPTIONAL_TYPES = {"pixel_size_m": float, "minutes": float, "threshold": float}


def _parser() -> argparse.ArgumentParser:
    """The command line of ``python -m geounet.train.pack`` (``geounet train``'s options)."""
    from geounet.train.config import TrainConfig

    parser = argparse.ArgumentParser(
        prog="python -m geounet.train.pack",
        description="Train from a pack written by geounet train --pack (no GDAL needed).",
    )
    parser.add_argument("pack", type=Path, help="the pack (.npz)")
    parser.add_argument("--out", "-o", type=Path, required=True, help="checkpoint to write")
    parser.add_argument("--places", default="", help="comma-separated places to train on")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    for f in dataclasses.fields(TrainConfig):
        if f.name in _NOT_OPTIONS or f.name in ("init",):
            continue
        flag = "--" + _FLAGS.get(f.name, f.name).replace("_", "-")
        default = f.default
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction)
        elif default is None:
            parser.add_argument(flag, dest=f.name, type=_OPTIONAL_TYPES.get(f.name, str))
        else:
            parser.add_argument(flag, dest=f.name, type=type(default))
    parser.add_argument("--init", type=Path, help="checkpoint to fine-tune")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Train from a pack; see the module's description. Returns the exit code."""
    from geounet.train.config import TrainConfig
    from geounet.train.loop import check_options, save_best, start
    from geounet.train.targets import TargetOptions

    args = _parser().parse_args(argv)
    console = Console(stderr=True, soft_wrap=True)
    options = {
        k: v
        for k, v in vars(args).items()
        if v is not None and k not in ("pack", "out", "places", "no_progress")
    }
    cfg = TrainConfig(
        images=[],
        labels=[],
        out=args.out,
        command=shlex.join(["python", "-m", "geounet.train.pack", *(argv or sys.argv[1:])]),
        progress=not args.no_progress,
        **options,
    )
    try:
        check_options(cfg)
        data = load_pack(args.pack)
        if args.places:
            data = data.only_places([p.strip() for p in args.places.split(",") if p.strip()])
        data.make_targets(TargetOptions.of(cfg))
        outcome, device, dtype = start(cfg, data, console)
        save_best(cfg, data, args.out, outcome.card, outcome.model, outcome.record, device, dtype)
    except GeounetError as exc:
        console.print(f"error: {exc}", markup=False, highlight=False)
        return 2
    record = outcome.record
    console.print(
        f"wrote {args.out} (best epoch {record['best_epoch']} of {record['epoch']}, "
        f"stopped by {outcome.stopped}); choose its thresholds with geounet calibrate",
        markup=False,
        highlight=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
