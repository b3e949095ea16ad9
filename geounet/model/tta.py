"""Test-time augmentation: a model's probabilities averaged over flips and rotations.

Roofs have no up or left: a network trained with flips and 90-degree rotations (as
``geounet train`` augments) should answer the same for a tile and its mirror image, but
never exactly does. Averaging its probabilities over the transformed tiles, each mapped
back, removes that part of its error at the cost of one forward pass per transform
(nnU-Net does the same with mirroring). The modes:

- ``none``: the tile as it is (one pass);
- ``flips``: also mirrored left-right, top-bottom and both (four passes);
- ``d4``: the eight symmetries of the square, the flips each with and without a
  transpose, i.e. also the 90-degree rotations (eight passes).

The averaged model is exactly equivariant under its transforms: predicting a mirrored tile
gives the mirrored prediction. The thresholds of a model card are chosen with its mode
(``geounet calibrate --tta``), so ``geounet predict`` uses the card's mode by default.
"""

from __future__ import annotations

import torch
from torch import nn

from geounet.errors import InputError

Transform = tuple[tuple[int, ...], bool]
"""Dimensions flipped, then whether height and width are swapped."""

_FLIPS: tuple[tuple[int, ...], ...] = ((), (3,), (2,), (2, 3))

TTA_MODES: dict[str, tuple[Transform, ...]] = {
    "none": (((), False),),
    "flips": tuple((dims, False) for dims in _FLIPS),
    "d4": tuple((dims, t) for dims in _FLIPS for t in (False, True)),
}
"""Every mode and its transforms (the identity first)."""

EPS = 1e-6
"""Probabilities are clamped to ``[EPS, 1 - EPS]`` before the logit (finite logits)."""


def check_mode(mode: str) -> str:
    """Return ``mode`` if it names a test-time augmentation.

    Raises:
        InputError: If it does not.
    """
    if mode not in TTA_MODES:
        raise InputError(
            f"unknown test-time augmentation {mode!r}; use one of {', '.join(TTA_MODES)}"
        )
    return mode


def passes(mode: str) -> int:
    """Forward passes per tile that ``mode`` costs."""
    return len(TTA_MODES[check_mode(mode)])


def _apply(x: torch.Tensor, transform: Transform) -> torch.Tensor:
    dims, swap = transform
    if dims:
        x = torch.flip(x, dims)
    return x.transpose(2, 3) if swap else x


def _invert(y: torch.Tensor, transform: Transform) -> torch.Tensor:
    dims, swap = transform
    if swap:
        y = y.transpose(2, 3)
    return torch.flip(y, dims) if dims else y


class SymmetryAverage(nn.Module):
    """A network whose per-channel probabilities are averaged over input transforms.

    The output stays logits (float32), as for :class:`geounet.model.network.Ensemble`:
    ``sigmoid(tta(x))`` is the mean over the transforms of the network's probabilities,
    each transformed back. Inputs must be square for the modes that transpose, or have a
    height and width that the network takes either way round.

    Args:
        model: The network (logits out, shape (N, C, H, W)).
        mode: ``flips`` or ``d4`` (see the module's docstring).
    """

    def __init__(self, model: nn.Module, mode: str):
        super().__init__()
        self.model = model
        self.mode = check_mode(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of the mean probability over the mode's transforms."""
        total: torch.Tensor | None = None
        for transform in TTA_MODES[self.mode]:
            xt = _apply(x, transform).contiguous(memory_format=torch.channels_last)
            prob = _invert(torch.sigmoid(self.model(xt).float()), transform)
            total = prob if total is None else total + prob
        assert total is not None
        return torch.logit(total / len(TTA_MODES[self.mode]), eps=EPS)


def with_tta(model: nn.Module, mode: str) -> nn.Module:
    """``model`` averaged over the transforms of ``mode`` (``model`` itself for ``none``).

    Raises:
        InputError: If ``mode`` is unknown.
    """
    return model if check_mode(mode) == "none" else SymmetryAverage(model, mode)
