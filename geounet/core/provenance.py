"""How an output was made, written into the output itself.

``geounet predict`` writes this record into the probability raster's metadata (GDAL
tags, shown in QGIS under Layer Properties > Information), into the footprint
GeoPackage's layer metadata (the GeoPackage metadata extension) and, through
``geounet evaluate``, into ``report.json``; ``evaluate`` and ``vectorize`` read the
threshold from it, so a raster is scored and vectorised as it was made.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import os
import time
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

from geounet import __version__
from geounet.core.extents import Extent, extents_from_json
from geounet.core.thresholds import DEFAULT_SEED_AREA_M2

TAG_PREFIX = "GEOUNET_"


@dataclass(frozen=True)
class Provenance:
    """The settings an output was made with.

    Attributes:
        version: The geounet that wrote it.
        model: The checkpoint's file name (``bundled`` for the model shipped with geounet).
        model_sha256: SHA-256 of the checkpoint file.
        threshold: Building probability threshold of the footprints.
        body_threshold: Body probability that seeds a footprint (split models).
        tta: Test-time augmentation.
        tile: Largest tile side, in pixels of the model's grid.
        overlap: Minimum overlap of tiles, in pixels.
        border: Mirrored border, in pixels.
        scene: The scene (its file name, or its URL).
        created: When, in UTC (ISO 8601).
        trained_on: The model card's training extents, as JSON text
            (:func:`geounet.core.extents.extents_to_json`; empty when the card has none).
        model_pixel_size_m: The model's ground pixel, in metres (0: not recorded). A
            raster resampled back to a finer scene holds no detail finer than this, so
            ``geounet vectorize`` squares footprints at this scale.
        precision: What the model ran at: ``bfloat16``, ``float32``, ``float16`` or
            ``int8`` (empty: not recorded).
        seed_area_m2: Smallest seed that starts a footprint of its own, in square
            metres (split models; files written before it was recorded read as the
            rule of then, :data:`~geounet.core.thresholds.DEFAULT_SEED_AREA_M2`).
        min_confidence: Smallest confidence of a footprint kept (files written before
            it was recorded read as 0: every footprint kept).
    """

    version: str
    model: str
    model_sha256: str
    threshold: float
    body_threshold: float
    tta: str
    tile: int
    overlap: int
    border: int
    scene: str
    created: str
    trained_on: str = ""
    model_pixel_size_m: float = 0.0
    precision: str = ""
    seed_area_m2: float = DEFAULT_SEED_AREA_M2
    min_confidence: float = 0.0

    def tags(self) -> dict[str, str]:
        """GDAL metadata items: ``GEOUNET_THRESHOLD=0.35`` and so on."""
        return {f"{TAG_PREFIX}{k.upper()}": str(v) for k, v in asdict(self).items()}

    def as_dict(self) -> dict[str, object]:
        """The record as JSON-ready values (the training extents as a list)."""
        return {**asdict(self), "trained_on": [e.as_dict() for e in self.extents()]}

    def extents(self) -> tuple[Extent, ...]:
        """The model's training extents (none if the record does not hold them)."""
        try:
            return extents_from_json(self.trained_on)
        except ValueError:
            return ()

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Provenance | None:
        """Read the record back from metadata items (``None`` if it is not all there)."""
        values: dict[str, object] = {}
        for f in fields(cls):
            text = tags.get(f"{TAG_PREFIX}{f.name.upper()}")
            if text is None and f.default is not MISSING:  # added later: older files lack it
                continue
            if text is None:
                return None
            try:
                values[f.name] = {"float": float, "int": int}.get(str(f.type), str)(text)
            except ValueError:
                return None
        return cls(**values)  # type: ignore[arg-type]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks.

    Remembered per file, inode, size and modification time (a file replaced by a rename,
    as geounet writes them, is a new inode): a prediction asks for its
    checkpoint's digest up to three times (provenance, the int8 model's binding and its
    check), and a workflow once per scene.
    """
    stat = path.stat()
    if time.time_ns() - stat.st_mtime_ns < RACY_NS:  # may change again within the tick
        return _digest(path)
    return _remembered(path.resolve(), stat.st_ino, stat.st_size, stat.st_mtime_ns)


RACY_NS = 2_000_000_000
"""Files modified this recently are hashed afresh: file times are coarser than writes, so
a file rewritten in place with the same size could keep its time (git's "racy" rule)."""


@functools.lru_cache(maxsize=32)
def _remembered(path: Path, inode: int, size: int, mtime_ns: int) -> str:
    return _digest(path)


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def now_utc() -> str:
    """The time now in UTC, to the second, ISO 8601.

    ``SOURCE_DATE_EPOCH`` (seconds), the reproducible-builds convention, stands for
    "now" when it is set: two runs then write byte-identical outputs.
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    when = (
        _dt.datetime.fromtimestamp(int(epoch), _dt.UTC)
        if epoch.isdigit()
        else _dt.datetime.now(_dt.UTC)
    )
    return when.isoformat(timespec="seconds")


def this_version() -> str:
    """The running geounet's version."""
    return __version__
