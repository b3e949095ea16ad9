"""Where a model was trained: scene extents, and how much of a scene they cover.

A model card lists the extents of every scene its model was trained or tuned on
(validation strips included: thresholds and epochs were chosen there), as longitude /
latitude bounds. ``geounet predict`` copies them into each output's provenance, so
``geounet evaluate`` and the workflow's summary can tell a held-out scene from one the
model has seen, and keep the latter out of held-out totals.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Bounds = tuple[float, float, float, float]
"""West, south, east, north, in degrees (longitude / latitude, OGC:CRS84 axis order)."""

SEEN_FRACTION = 0.01
"""Share of a scene's area inside training extents above which it is not held out: a
scene that only touches a training scene along an edge (a neighbouring tile) is still
held out."""


@dataclass(frozen=True)
class Extent:
    """The bounds of one scene a model was trained or tuned on.

    Attributes:
        name: The scene's name (its file stem).
        bounds: West, south, east, north, in degrees.
    """

    name: str
    bounds: Bounds

    @classmethod
    def around(cls, name: str, bounds: Bounds) -> Extent:
        """The extent of ``bounds``, rounded outwards to 1e-7 degrees (about a centimetre).

        Rounded, it reads back from JSON unchanged; outwards, it still holds the whole scene.
        """
        west, south, east, north = bounds
        q = 1e7
        return cls(
            name,
            (
                math.floor(west * q) / q,
                math.floor(south * q) / q,
                math.ceil(east * q) / q,
                math.ceil(north * q) / q,
            ),
        )

    def as_dict(self) -> dict[str, Any]:
        """The extent as JSON-ready values."""
        return {"name": self.name, "bounds": list(self.bounds)}

    @classmethod
    def from_dict(cls, item: Any) -> Extent:
        """Read an extent written by :meth:`as_dict`.

        Raises:
            ValueError: If ``item`` is not a name and four finite bounds in range, with
                west <= east and south <= north.
        """
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValueError(f"an extent needs a name and bounds, got {item!r}")
        raw = item.get("bounds")
        if not isinstance(raw, list | tuple) or len(raw) != 4:
            raise ValueError(f"extent {item['name']!r} needs four bounds, got {raw!r}")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw):
            raise ValueError(f"extent {item['name']!r} has a bound that is not a number")
        west, south, east, north = (float(v) for v in raw)
        if not all(math.isfinite(v) for v in (west, south, east, north)):
            raise ValueError(f"extent {item['name']!r} has a bound that is not finite")
        if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
            raise ValueError(
                f"extent {item['name']!r} bounds {raw} are not west <= east in [-180, 180] "
                "and south <= north in [-90, 90]"
            )
        return cls(item["name"], (west, south, east, north))


def merge_extents(*groups: Iterable[Extent]) -> tuple[Extent, ...]:
    """Several lists of extents as one, each extent once, in first-seen order."""
    out: dict[Extent, None] = {}
    for group in groups:
        for extent in group:
            out.setdefault(extent, None)
    return tuple(out)


def extents_to_json(extents: Sequence[Extent]) -> str:
    """Extents as compact JSON text (a provenance tag's value)."""
    return json.dumps([e.as_dict() for e in extents], separators=(",", ":"))


def extents_from_json(text: str) -> tuple[Extent, ...]:
    """Extents from :func:`extents_to_json`'s text (empty text: none).

    Raises:
        ValueError: If the text is not a JSON list of extents.
    """
    if not text.strip():
        return ()
    items = json.loads(text)
    if not isinstance(items, list):
        raise ValueError("training extents must be a JSON list")
    return tuple(Extent.from_dict(item) for item in items)


@dataclass(frozen=True)
class Overlap:
    """How much of a scene lies inside a model's training extents.

    Attributes:
        fraction: Share of the scene's bounding box inside the union of the extents.
        scenes: Names of the training scenes that overlap it, in the card's order.
    """

    fraction: float
    scenes: tuple[str, ...]

    @property
    def held_out(self) -> bool:
        """Whether the scene counts as unseen (at most :data:`SEEN_FRACTION` inside)."""
        return self.fraction <= SEEN_FRACTION


def overlap(bounds: Bounds, extents: Sequence[Extent]) -> Overlap:
    """How much of ``bounds`` the training ``extents`` cover.

    Areas are compared in degrees, which is exact enough for the share of one scene
    (a few kilometres across).

    Args:
        bounds: The scene's bounds, west, south, east, north in degrees.
        extents: The model's training extents.

    Returns:
        The covered share and the overlapping scenes (those sharing more than an edge).
    """
    import shapely  # here: packs are trained where only numpy and torch are installed

    scene = shapely.box(*bounds)
    if scene.area == 0 or not extents:
        return Overlap(0.0, ())
    boxes = [shapely.box(*e.bounds) for e in extents]
    hits = [e.name for e, b in zip(extents, boxes, strict=True) if scene.intersection(b).area > 0]
    covered = shapely.union_all(boxes).intersection(scene).area
    return Overlap(min(1.0, covered / scene.area), tuple(dict.fromkeys(hits)))
