"""The geounet checkpoint: weights plus everything needed to predict, in one safetensors file.

The file is a plain safetensors file (no pickle, so loading never executes code). Its
header metadata holds one JSON document under the key ``geounet`` that describes the
architecture, the bands and their order, the input normalisation, the training pixel size,
the tile size, the default threshold, the class names and the provenance.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from geounet.core.extents import Extent
from geounet.core.thresholds import DEFAULT_SEED_AREA_M2
from geounet.errors import CheckpointError
from geounet.io.atomic import atomic_path, usual_mode
from geounet.model.network import ModelConfig, build_model
from geounet.model.tta import TTA_MODES

FORMAT_VERSION = 1
METADATA_KEY = "geounet"
BUNDLED_MODEL = "buildings_unet.safetensors"


@dataclass(frozen=True)
class Normalization:
    """Input normalisation: ``x = (raw * scale - mean) / std`` per band.

    Attributes:
        scale: Factor that brings raw values to [0, 1] (1/255 for uint8 imagery).
        mean: Per-band mean after scaling, in the model's band order.
        std: Per-band standard deviation after scaling, in the model's band order.
    """

    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)

    def apply(self, raw: torch.Tensor) -> torch.Tensor:
        """Normalise raw pixel values.

        Args:
            raw: Raw values with bands on axis -3: (C, H, W) or (N, C, H, W).

        Returns:
            A float32 tensor of the same shape.
        """
        shape = (-1, 1, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=raw.device).view(shape)
        std = torch.tensor(self.std, dtype=torch.float32, device=raw.device).view(shape)
        return (raw.to(torch.float32) * self.scale - mean) / std


@dataclass(frozen=True)
class ModelCard:
    """What a checkpoint says about its model, beside the weights.

    Attributes:
        model: The architecture.
        bands: Names of the input bands, in the order the model expects them.
        normalization: How raw pixel values are normalised.
        pixel_size_m: Ground pixel size the model was trained at, in metres.
        tile_size: Default tile size for prediction, in pixels.
        threshold: Default probability threshold for footprints.
        body_threshold: Body probability at or above which a pixel seeds a footprint
            (models with a ``body`` channel; chosen on validation data).
        seed_area_m2: Smallest seed, in square metres, that starts a footprint of its own
            when touching roofs are split (chosen on validation data with the body
            threshold; smaller seeds join a neighbour).
        min_confidence: Smallest confidence (mean building probability of its pixels)
            of a footprint kept (chosen on validation data with the thresholds; 0 keeps
            every footprint, as cards written before it was chosen do).
        class_names: Meaning of each output channel (channel 0 is ``building``).
        tta: Test-time augmentation the thresholds were chosen with, which prediction
            uses by default: ``none``, ``flips`` or ``d4`` (see :mod:`geounet.model.tta`).
        targets: What the output channels were trained on (``w0``, ``sigma``,
            ``contact_radius``, ``body_erosion``, ``body_target``, ``wall_w0``: the
            options of ``geounet train``), so fine-tuning can keep them; empty when unknown.
        provenance: Free-form record: data, command, date, software versions.
        trained_on: The scenes the model was trained or tuned on (validation strips
            included), as longitude / latitude bounds (:mod:`geounet.core.extents`):
            outputs over them are not held-out measures. Empty when unknown.
        format_version: Version of this checkpoint format.
    """

    model: ModelConfig
    bands: tuple[str, ...] = ("red", "green", "blue")
    normalization: Normalization = field(default_factory=Normalization)
    pixel_size_m: float = 0.15
    tile_size: int = 1024
    threshold: float = 0.5
    body_threshold: float = 0.5
    seed_area_m2: float = DEFAULT_SEED_AREA_M2
    min_confidence: float = 0.0
    class_names: tuple[str, ...] = ("building",)
    tta: str = "none"
    targets: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)
    trained_on: tuple[Extent, ...] = ()
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        """Serialise the card to JSON."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        """Parse a card written by :meth:`to_json`.

        Raises:
            CheckpointError: If the JSON is malformed or from a newer format.
        """
        try:
            data = json.loads(text)
            version = int(data.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise CheckpointError(
                    f"checkpoint format {version} is newer than this geounet reads "
                    f"({FORMAT_VERSION}); upgrade geounet"
                )
            norm = data.get("normalization", {})
            known = {f.name for f in fields(cls)}
            kwargs = {k: v for k, v in data.items() if k in known}
            kwargs["model"] = ModelConfig.from_dict(data["model"])
            kwargs["normalization"] = Normalization(
                scale=float(norm.get("scale", 1 / 255)),
                mean=tuple(norm.get("mean", Normalization.mean)),
                std=tuple(norm.get("std", Normalization.std)),
            )
            kwargs["bands"] = tuple(data.get("bands", ()))
            kwargs["class_names"] = tuple(data.get("class_names", ("building",)))
            kwargs["trained_on"] = tuple(
                Extent.from_dict(item) for item in data.get("trained_on", [])
            )
            return cls(**kwargs)
        except CheckpointError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"checkpoint metadata is malformed ({exc})") from exc


@dataclass
class Checkpoint:
    """A model card and the network it describes, ready for inference or training."""

    card: ModelCard
    model: nn.Module
    source: Path | None = None
    """The file the checkpoint was loaded from (``None`` if built in memory)."""


def save_checkpoint(path: str | os.PathLike[str], card: ModelCard, model: nn.Module) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    Args:
        path: Destination file.
        card: The model card.
        model: The network; its state dict is saved in float32.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()
    }
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={METADATA_KEY: card.to_json()})
        usual_mode(tmp)  # safetensors writes 0o600
    return path


def read_card(path: str | os.PathLike[str]) -> ModelCard:
    """Read only the model card of a checkpoint (no weights are loaded).

    Raises:
        CheckpointError: If the file is not a geounet checkpoint or its card is malformed
            or contradicts itself (see :func:`check_card`).
    """
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise _not_safetensors(path) from exc
    if METADATA_KEY not in meta:
        raise CheckpointError(f"{path} is a safetensors file but not a geounet checkpoint")
    try:
        card = ModelCard.from_json(meta[METADATA_KEY])
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    check_card(card, path)
    return card


def check_card(card: ModelCard, path: str | os.PathLike[str] | None = None) -> None:
    """Check that a model card agrees with itself.

    The normalisation needs one mean and one standard deviation (positive) per input band,
    the band names (when given) one name per input band, and the class names one name
    per output channel; otherwise prediction would fail later with a tensor shape error.

    Args:
        card: The card to check.
        path: The checkpoint it came from, named in the message.

    Raises:
        CheckpointError: On the first disagreement, naming both numbers.
    """
    cfg, norm = card.model, card.normalization
    where = f"{path}: " if path is not None else ""
    fix = "re-train or re-export the model"
    _check_ranges(card, where)
    channels = f"the model takes {cfg.in_channels} bands"
    if len(norm.mean) != cfg.in_channels:
        raise CheckpointError(
            f"{where}{channels} but its normalisation has {len(norm.mean)} means; {fix}"
        )
    if len(norm.std) != cfg.in_channels:
        raise CheckpointError(
            f"{where}{channels} but its normalisation has {len(norm.std)} standard "
            f"deviations; {fix}"
        )
    if not all(isinstance(sd, int | float) and sd > 0 for sd in norm.std):
        raise CheckpointError(
            f"{where}its normalisation has a standard deviation that is not a positive number "
            f"({list(norm.std)}); {fix}"
        )
    if card.bands and len(card.bands) != cfg.in_channels:
        raise CheckpointError(
            f"{where}{channels} but its card names {len(card.bands)} bands "
            f"({', '.join(card.bands)}); {fix}"
        )
    if len(card.class_names) != cfg.classes:
        raise CheckpointError(
            f"{where}the model has {cfg.classes} output channels but its card names "
            f"{len(card.class_names)} classes ({', '.join(card.class_names)}); {fix}"
        )
    if card.tta not in TTA_MODES:
        raise CheckpointError(
            f"{where}its card asks for an unknown test-time augmentation {card.tta!r} "
            f"(known: {', '.join(TTA_MODES)}); upgrade geounet or fix the card"
        )


CARD_LIMITS: dict[str, tuple[float, float]] = {
    "model.in_channels": (1, 64),
    "model.classes": (1, 16),
    "model.depth": (1, 7),
    "model.base_width": (1, 512),
    "model.members": (1, 32),
    "model.dropout": (0.0, 0.99),
    "pixel_size_m": (0.01, 10.0),
    "tile_size": (16, 16384),
    "threshold": (0.001, 0.999),
    "body_threshold": (0.001, 0.999),
    "seed_area_m2": (0.0, 1e4),
    "min_confidence": (0.0, 0.999),
    "normalization.scale": (1e-12, 1e6),
}
"""Plausible range of each numeric card field, checked before anything is allocated.

A card is data from a file: ``pixel_size_m: 0`` would divide by zero, a negative one
would write an empty map, ``1e-5`` or ``depth: 9`` would grow memory without bound."""


def _check_ranges(card: ModelCard, where: str) -> None:
    cfg = card.model
    values: dict[str, object] = {
        "model.in_channels": cfg.in_channels,
        "model.classes": cfg.classes,
        "model.depth": cfg.depth,
        "model.base_width": cfg.base_width,
        "model.members": cfg.members,
        "model.dropout": cfg.dropout,
        "pixel_size_m": card.pixel_size_m,
        "tile_size": card.tile_size,
        "threshold": card.threshold,
        "body_threshold": card.body_threshold,
        "seed_area_m2": card.seed_area_m2,
        "min_confidence": card.min_confidence,
        "normalization.scale": card.normalization.scale,
    }
    integers = {"model.in_channels", "model.classes", "model.depth", "model.base_width"}
    integers |= {"model.members", "tile_size"}
    for name, value in values.items():
        low, high = CARD_LIMITS[name]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if name in integers:
            number = number and float(value).is_integer()  # type: ignore[arg-type]
        if not number or not low <= value <= high:  # type: ignore[operator]
            kind = "an integer" if name in integers else "a number"
            raise CheckpointError(
                f"{where}its card's {name} is {value!r}, not {kind} in [{low:g}, {high:g}]; "
                "the file is damaged or was not written by geounet"
            )
    if cfg.arch not in ("unet", "smp-unet") or cfg.upsampling not in ("transpose", "bilinear"):
        raise CheckpointError(
            f"{where}its card names an unknown architecture ({cfg.arch!r}, upsampling "
            f"{cfg.upsampling!r}); upgrade geounet or fix the card"
        )
    numbers = [*card.normalization.mean, *card.normalization.std]
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in numbers):
        raise CheckpointError(f"{where}its normalisation holds a value that is not a number")
    if card.tile_size % cfg.size_multiple:
        raise CheckpointError(
            f"{where}its card's tile_size {card.tile_size} is not a multiple of "
            f"{cfg.size_multiple}, which a network of depth {cfg.depth} needs"
        )


def load_checkpoint(path: str | os.PathLike[str] | None = None) -> Checkpoint:
    """Load a checkpoint without executing any code from the file.

    Args:
        path: The checkpoint; ``None`` loads the model bundled with geounet.

    Returns:
        The model card and the network in eval mode on the CPU.

    Raises:
        CheckpointError: If the file is missing, not a safetensors geounet checkpoint
            (pickled ``.pt`` files are refused), corrupted, its card contradicts itself
            (see :func:`check_card`), or its weights do not fit the architecture it declares.
    """
    path = bundled_model_path() if path is None else _existing(path)
    card = read_card(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is corrupted ({exc}); re-download or retrain it") from exc
    _check_shapes(card, state, path)
    model = build_model(card.model)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not match its architecture ({first})") from exc
    model.eval()
    return Checkpoint(card=card, model=model, source=path)


def _check_shapes(card: ModelCard, state: dict[str, torch.Tensor], path: Path) -> None:
    """Compare the stored tensors with the card's architecture before building it.

    The network is first built on PyTorch's ``meta`` device, which allocates no memory,
    so a card that declares a far larger network than its weights fails here, not after
    building it.
    """
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_model(card.model).state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in state.items()}
    if expected != stored:
        missing = sorted(set(expected) - set(stored))
        wrong = sorted(k for k in set(expected) & set(stored) if expected[k] != stored[k])
        detail = f"{len(missing)} tensors missing" if missing else f"{len(wrong)} tensors differ"
        raise CheckpointError(
            f"{path}: its weights do not match the architecture its card declares ({detail}); "
            "the file is damaged or its card was edited"
        )


def bundled_model_path() -> Path:
    """Return the path of the model shipped inside the package.

    Raises:
        CheckpointError: If this installation has no bundled model.
    """
    ref = resources.files("geounet") / "data" / BUNDLED_MODEL
    path = Path(str(ref))
    if not path.is_file():
        raise CheckpointError(
            "this geounet installation has no bundled model; pass --model PATH "
            "(train one with `geounet train`)"
        )
    return path


def _existing(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory; pass the checkpoint file itself")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; check the --model path")
    return path


def _not_safetensors(path: Path) -> CheckpointError:
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        return CheckpointError(
            f"{path} is a truncated or corrupted safetensors file; re-download or retrain it"
        )
    if head[:1] == b"\x80" or head[:2] == b"PK":
        return CheckpointError(
            f"{path} is a pickled PyTorch file; geounet refuses pickles because loading them "
            "can execute code. Use a geounet .safetensors checkpoint"
        )
    return CheckpointError(f"{path} is not a geounet checkpoint (expected a safetensors file)")
