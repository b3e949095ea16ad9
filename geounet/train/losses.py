"""Segmentation losses, written per output channel.

Every channel (``building`` now; a contact/border channel later) gets its own weighted
binary cross-entropy and soft Dice term; the loss is their mean over channels. Pixels
outside ``valid`` (no data) count nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import torch
import torch.nn.functional as F

LossName = Literal["bce-dice", "bce", "dice"]


@dataclass(frozen=True)
class LossConfig:
    """What the loss is made of.

    Attributes:
        name: ``bce-dice`` (default), ``bce`` or ``dice``.
        bce_weight: Factor of the BCE term.
        dice_weight: Factor of the Dice term.
        pos_weight: Class-balance weight of positive (building) pixels per channel; negative
            pixels get ``neg_weight``. 1.0 disables class balancing.
        neg_weight: Class-balance weight of negative pixels per channel.
    """

    name: LossName = "bce-dice"
    bce_weight: float = 1.0
    dice_weight: float = 1.0
    pos_weight: tuple[float, ...] = (1.0,)
    neg_weight: tuple[float, ...] = (1.0,)


def class_balance(positive_fraction: float, cap: float = 5.0) -> tuple[float, float]:
    """Class-balance weights that give both classes the same total weight.

    Args:
        positive_fraction: Fraction of valid pixels that are positive.
        cap: Upper bound of either weight (rare classes would otherwise explode).

    Returns:
        ``(pos_weight, neg_weight)``, normalised so the mean pixel weight is 1.
    """
    f = min(max(positive_fraction, 1e-6), 1 - 1e-6)
    return min(0.5 / f, cap), min(0.5 / (1 - f), cap)


class SegmentationLoss(torch.nn.Module):
    """Weighted BCE + soft Dice per channel, with a border weight map and a validity mask."""

    def __init__(self, config: LossConfig) -> None:
        """Build the loss.

        Args:
            config: The loss configuration.
        """
        super().__init__()
        self.config = config
        self.register_buffer("pos", torch.tensor(config.pos_weight, dtype=torch.float32))
        self.register_buffer("neg", torch.tensor(config.neg_weight, dtype=torch.float32))

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        border: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Compute the loss.

        Args:
            logits: (N, C, H, W) raw network outputs.
            target: (N, C, H, W) targets in [0, 1].
            border: (N, H, W) border weights added to the class-balance weights of every
                channel, or ``None``.
            valid: (N, H, W) bool, pixels that count; ``None`` counts all.

        Returns:
            The scalar loss (float32).
        """
        logits = logits.float()
        target = target.float()
        c = logits.shape[1]
        valid_f = torch.ones_like(target[:, 0]) if valid is None else valid.float()
        valid_c = valid_f.unsqueeze(1)
        total = logits.new_zeros(())
        cfg = self.config
        if cfg.name in ("bce-dice", "bce"):
            pos = cast(torch.Tensor, self.pos)  # a buffer (typed Tensor | Module by older torch)
            neg = cast(torch.Tensor, self.neg)
            if pos.numel() != c:
                pos, neg = pos[:1].expand(c), neg[:1].expand(c)
            weight = target * pos.view(1, c, 1, 1) + (1 - target) * neg.view(1, c, 1, 1)
            if border is not None:
                weight = weight + border.float().unsqueeze(1)
            weight = weight * valid_c
            bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            per_channel = (bce * weight).sum(dim=(0, 2, 3)) / valid_c.sum().clamp(min=1.0)
            total = total + cfg.bce_weight * per_channel.mean()
        if cfg.name in ("bce-dice", "dice"):
            prob = torch.sigmoid(logits) * valid_c
            t = target * valid_c
            inter = (prob * t).sum(dim=(0, 2, 3))
            denom = prob.sum(dim=(0, 2, 3)) + t.sum(dim=(0, 2, 3))
            dice = 1 - (2 * inter + 1.0) / (denom + 1.0)
            total = total + cfg.dice_weight * dice.mean()
        return total
