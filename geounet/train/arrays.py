"""Training scenes held in memory, and chips drawn from them place by place.

A town's training scenes at 0.15 m fit in memory (a 2 km square is about 180 Mpx), so each
scene is read once, on the model's grid, and its targets are computed once over the whole
scene (a roof cut by a chip's edge keeps its true depth and neighbours). Chips are then
crops of these arrays: cheap enough that the loop, not the data, sets the pace on a CPU
and on a GPU.

Sampling is by *place* (a town, a survey: one or more scenes): each step draws a place
first, with equal chance unless weighted, then a scene of that place in proportion to its
training area, then a chip position uniformly within it. So a large place does not drown
a small one. A chip lies wholly inside its scene's training part (:attr:`SceneArrays.trainable`):
the validation strip, and any pixel another scene holds out, are never sampled.

Pure numpy and torch (no raster I/O): the loop runs where only those are installed, from a
pack written by :mod:`geounet.train.pack`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from geounet.core.extents import Extent
from geounet.errors import InputError
from geounet.train.targets import ChipTransform, SceneLayout, TargetOptions


@dataclass
class SceneArrays:
    """One training scene on the model's grid.

    Attributes:
        name: The scene's name (its file stem).
        place: The place it belongs to (sampling is balanced over places).
        image: (bands, H, W) raw values of the model's bands, in the model's order.
        valid: (H, W) pixels with data.
        instances: (H, W) footprint ids (0 = none), unique over all scenes.
        trainable: (H, W) pixels that training chips may cover: west of the scene's
            validation strip and outside every other scene's strip.
        val_start: First column of the scene's validation strip (columns ``val_start``
            to the east edge); equal to the width when the scene has no strip.
        held_out: (H, W) the strip's pixels where it is not whole columns (an area of
            interest); ``None``: every pixel from ``val_start`` east.
        target: (channels, H, W) float32 targets, made by :meth:`TrainingData.make_targets`.
        weight: (H, W) float32 border weights, made with ``target``.
        extent: The scene's longitude / latitude bounds, for the card's ``trained_on``
            (``None``: not known, as in packs written before geounet recorded it).
    """

    name: str
    place: str
    image: npt.NDArray[Any]
    valid: npt.NDArray[np.bool_]
    instances: npt.NDArray[np.int32]
    trainable: npt.NDArray[np.bool_]
    val_start: int
    held_out: npt.NDArray[np.bool_] | None = field(default=None, repr=False)
    target: npt.NDArray[np.float32] | None = field(default=None, repr=False)
    weight: npt.NDArray[np.float32] | None = field(default=None, repr=False)
    extent: Extent | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the scene on the model's grid."""
        return int(self.valid.shape[0]), int(self.valid.shape[1])


@dataclass
class TrainingData:
    """Everything the training loop needs, in memory.

    Attributes:
        scenes: The training scenes.
        band_names: Names of the model's input bands, in order.
        class_names: Names of the label classes (the first output channels).
        output_names: Names of every output channel: the classes, then ``body`` and
            ``contact`` when those targets are made (set by :meth:`make_targets`).
        instance_class: Class index of each footprint id (entry 0 unused).
        footprints: Number of footprints read.
        pixel_size_m: Ground size of a pixel of the model's grid, in metres.
        scale: Factor from raw values to [0, 1] (1/255 for uint8 scenes).
        split: How the validation strip was cut, in words (for the card).
        sources: The scene files, as given (for the card).
        labels: The footprint files, as given (for the card).
        chip_transform: The target maker (:meth:`make_targets` sets it).
    """

    scenes: list[SceneArrays]
    band_names: tuple[str, ...]
    class_names: tuple[str, ...]
    output_names: tuple[str, ...]
    instance_class: npt.NDArray[np.int64]
    footprints: int
    pixel_size_m: float
    scale: float
    split: str = ""
    sources: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    chip_transform: ChipTransform | None = field(default=None, repr=False)

    @property
    def places(self) -> tuple[str, ...]:
        """The places, in the order their first scene comes."""
        return tuple(dict.fromkeys(s.place for s in self.scenes))

    def make_targets(self, options: TargetOptions) -> None:
        """Compute every scene's targets and border weights, once, over the whole scene.

        The ``body`` and ``contact`` channels the options add are named in
        :attr:`output_names`.
        """
        layout = SceneLayout(self.band_names, self.band_names, None, None)
        transform = ChipTransform(
            layout,
            self.instance_class,
            len(self.class_names),
            options.w0,
            options.sigma,
            options.contact_radius,
            options.body_erosion,
            options.body_target,
            options.wall_w0,
        )
        for scene in self.scenes:
            target, weight = transform.targets(torch.from_numpy(scene.instances.astype(np.int64)))
            scene.target = target.numpy()
            scene.weight = weight.numpy()
        self.output_names = (
            self.class_names
            + (("body",) if transform.makes_body else ())
            + (("contact",) if options.contact_radius > 0 else ())
        )
        self.chip_transform = transform

    def only_places(self, places: Sequence[str]) -> TrainingData:
        """The same data restricted to some places (e.g. all but one, to leave it out).

        Raises:
            InputError: If a place is unknown or none is left.
        """
        unknown = sorted(set(places) - set(self.places))
        if unknown:
            raise InputError(
                f"unknown place(s) {', '.join(unknown)}; the data hold {', '.join(self.places)}"
            )
        scenes = [s for s in self.scenes if s.place in places]
        if not scenes:
            raise InputError("no place left to train on")
        return dataclasses.replace(self, scenes=scenes, footprints=count_footprints(scenes))


def count_footprints(scenes: Sequence[SceneArrays]) -> int:
    """Number of footprints with at least one pixel in the scenes (each counted once)."""
    ids = [np.unique(s.instances) for s in scenes]
    return int(np.count_nonzero(np.unique(np.concatenate(ids)))) if ids else 0


def chip_origins(trainable: npt.NDArray[np.bool_], chip: int) -> npt.NDArray[np.int64]:
    """Flat indices (row * cols + col) of the chip positions that lie wholly in ``trainable``.

    Args:
        trainable: (H, W) pixels a chip may cover.
        chip: Chip side, in pixels.

    Returns:
        Sorted flat indices into the (H - chip + 1, W - chip + 1) grid of top-left corners
        (empty when the scene is smaller than a chip).
    """
    rows, cols = trainable.shape
    if rows < chip or cols < chip:
        return np.zeros(0, dtype=np.int64)
    bad = np.zeros((rows + 1, cols + 1), dtype=np.int64)
    bad[1:, 1:] = np.cumsum(np.cumsum(~trainable, axis=0, dtype=np.int64), axis=1)
    inside = bad[chip:, chip:] - bad[:-chip, chip:] - bad[chip:, :-chip] + bad[:-chip, :-chip]
    return np.flatnonzero(inside == 0).astype(np.int64)


@dataclass(frozen=True)
class ChipSpec:
    """One chip: a scene and the top-left corner of the window, in pixels."""

    scene: int
    row: int
    col: int


class PlaceSampler:
    """Chip windows drawn place by place (see the module's description).

    Each draw picks a place (with equal chance, or by ``place_weights``), then one of its
    scenes in proportion to the number of chip positions in its training part, then a
    position uniformly. Iterating yields ``length`` specs; the draws come from
    ``generator``, so a run resumes exactly from the generator's saved state.
    """

    def __init__(
        self,
        scenes: Sequence[SceneArrays],
        chip: int,
        length: int,
        generator: torch.Generator,
        place_weights: dict[str, float] | None = None,
    ) -> None:
        """Index the chip positions of every scene.

        Args:
            scenes: The training scenes.
            chip: Chip side, in pixels.
            length: Specs per iteration (steps per epoch times batch size).
            generator: Source of every random draw.
            place_weights: Relative chance of each place (default: all equal).

        Raises:
            InputError: If a place has no position for a whole chip in its training part.
        """
        self.length = length
        self.generator = generator
        self.origins = [chip_origins(s.trainable, chip) for s in scenes]
        self.cols = [s.shape[1] - chip + 1 for s in scenes]
        places = list(dict.fromkeys(s.place for s in scenes))
        self.members: list[list[int]] = []
        self.member_weights: list[torch.Tensor] = []
        for place in places:
            members = [i for i, s in enumerate(scenes) if s.place == place]
            counts = torch.tensor([len(self.origins[i]) for i in members], dtype=torch.float64)
            if float(counts.sum()) == 0:
                raise InputError(
                    f"place {place!r} has no room for one {chip}-px chip outside its "
                    "validation strip; use a smaller --chip-size or larger scenes"
                )
            self.members.append(members)
            self.member_weights.append(counts / counts.sum())
        weights = place_weights or {}
        w = torch.tensor([float(weights.get(p, 1.0)) for p in places], dtype=torch.float64)
        if bool((w < 0).any()) or float(w.sum()) <= 0:
            raise InputError("place weights must be non-negative and not all zero")
        self.place_weights = w / w.sum()

    def draw(self) -> ChipSpec:
        """Draw one chip."""
        g = self.generator
        p = int(torch.multinomial(self.place_weights, 1, generator=g))
        k = int(torch.multinomial(self.member_weights[p], 1, generator=g))
        scene = self.members[p][k]
        origins = self.origins[scene]
        j = int(torch.randint(len(origins), (1,), generator=g))
        row, col = divmod(int(origins[j]), self.cols[scene])
        return ChipSpec(scene, row, col)

    def __iter__(self) -> Iterator[ChipSpec]:
        """Yield ``length`` chips."""
        for _ in range(self.length):
            yield self.draw()

    def __len__(self) -> int:
        """Specs per iteration."""
        return self.length


class ChipDataset(torch.utils.data.Dataset[dict[str, Any]]):
    """Crops of the in-memory scenes, as the loop consumes them.

    ``dataset[spec]`` holds ``image`` (bands, chip, chip) float32 raw values, ``valid``
    (chip, chip) bool, ``target`` (channels, chip, chip) float32, ``weight`` (chip, chip)
    float32 and ``instances`` (chip, chip) int64.
    """

    def __init__(self, scenes: Sequence[SceneArrays], chip: int) -> None:
        """Wrap scenes whose targets are made (:meth:`TrainingData.make_targets`)."""
        if any(s.target is None or s.weight is None for s in scenes):
            raise ValueError("make the scenes' targets first (TrainingData.make_targets)")
        self.scenes = list(scenes)
        self.chip = chip

    def __getitem__(self, spec: ChipSpec) -> dict[str, Any]:
        """Crop one chip."""
        s = self.scenes[spec.scene]
        rows = slice(spec.row, spec.row + self.chip)
        cols = slice(spec.col, spec.col + self.chip)
        return crop(s, rows, cols)

    def __len__(self) -> int:
        """Not meaningful (chips are drawn by :class:`PlaceSampler`); the scene count."""
        return len(self.scenes)


def crop(scene: SceneArrays, rows: slice, cols: slice) -> dict[str, Any]:
    """One window of a scene whose targets are made, as tensors (see :class:`ChipDataset`)."""
    assert scene.target is not None and scene.weight is not None
    return {
        "image": torch.from_numpy(np.ascontiguousarray(scene.image[:, rows, cols])).float(),
        "valid": torch.from_numpy(np.ascontiguousarray(scene.valid[rows, cols])),
        "target": torch.from_numpy(np.ascontiguousarray(scene.target[:, rows, cols])),
        "weight": torch.from_numpy(np.ascontiguousarray(scene.weight[rows, cols])),
        "instances": torch.from_numpy(scene.instances[rows, cols].astype(np.int64)),
    }


def place_statistics(
    data: TrainingData, step: int = 4
) -> tuple[tuple[float, ...], tuple[float, ...], list[float]]:
    """Per-band mean and std (after ``data.scale``) and per-channel positive fraction.

    Each place counts equally, whatever its area: the statistics of the mixture of the
    places' training pixels (every ``step``-th row and column, valid and trainable).

    Returns:
        ``(mean, std, positive_fraction)``.

    Raises:
        InputError: If a place has no valid training pixel.
    """
    means, squares, positives = [], [], []
    for place in data.places:
        values, targets = [], []
        for s in data.scenes:
            if s.place != place:
                continue
            keep = (s.valid & s.trainable)[::step, ::step]
            values.append(s.image[:, ::step, ::step][:, keep].astype(np.float64) * data.scale)
            if s.target is not None:
                targets.append(s.target[:, ::step, ::step][:, keep].astype(np.float64))
        x = np.concatenate(values, axis=1)
        if x.shape[1] == 0:
            raise InputError(f"the training part of place {place!r} holds no valid pixels")
        means.append(x.mean(axis=1))
        squares.append((x**2).mean(axis=1))
        if targets:
            positives.append(np.concatenate(targets, axis=1).mean(axis=1))
    mean = np.mean(means, axis=0)
    std = np.sqrt(np.clip(np.mean(squares, axis=0) - mean**2, 1e-8, None))
    pos = np.mean(positives, axis=0) if positives else np.zeros(0)
    return (
        tuple(round(float(m), 5) for m in mean),
        tuple(round(float(v), 5) for v in std),
        [float(p) for p in pos],
    )
