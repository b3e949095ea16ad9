"""The U-Net of Ronneberger et al. (2015) and a U-Net with a swappable encoder.

The classic network is composed from small parts (an encoder of double convolutions and
max-pools, a decoder of up-sampling blocks that concatenate the matching encoder features,
and a 1x1 head), with 'same' padding so that the output has the size of the input.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import torch
from torch import nn

from geounet.errors import CheckpointError

Architecture = Literal["unet", "smp-unet"]
Upsampling = Literal["transpose", "bilinear"]

SMP_DECODER_CHANNELS = (256, 128, 64, 32, 16)
"""Decoder widths of ``smp-unet``, coarsest first (smp's defaults); depth ``d`` uses the
first ``d``."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network.

    Attributes:
        arch: ``unet`` (the classic U-Net) or ``smp-unet`` (segmentation_models_pytorch U-Net).
        in_channels: Number of input bands.
        classes: Number of output channels (logits).
        depth: Number of down-sampling levels: max-pools of the classic U-Net, or the
            encoder depth of ``smp-unet`` (1 to 5; its decoder has one stage per level).
        base_width: Channels of the first level; doubles at each level (classic U-Net only;
            ``smp-unet`` uses smp's decoder widths 256, 128, 64, 32, 16, cut to ``depth``).
        upsampling: ``transpose`` (2x2 transposed convolution, as in the paper) or ``bilinear``.
        dropout: Dropout probability before the bottleneck's convolutions (0 disables it).
        batch_norm: Whether each 3x3 convolution is followed by batch normalisation.
        encoder_name: Encoder of the ``smp-unet`` architecture (``resnet18``, ``mobilenet_v2``...).
        members: Number of networks of this architecture whose probabilities are averaged
            (an ensemble made by ``geounet ensemble``); 1 is a single network.
    """

    arch: Architecture = "unet"
    in_channels: int = 3
    classes: int = 1
    depth: int = 4
    base_width: int = 16
    upsampling: Upsampling = "transpose"
    dropout: float = 0.0
    batch_norm: bool = True
    encoder_name: str = "resnet18"
    members: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build a config from a dict, ignoring unknown keys from newer versions."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (2**depth)."""
        return 2**self.depth


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions ('same' padding), each with optional batch norm and a ReLU."""

    def __init__(self, in_ch: int, out_ch: int, batch_norm: bool = True, dropout: float = 0.0):
        layers: list[nn.Module] = []
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        for c_in in (in_ch, out_ch):
            layers.append(nn.Conv2d(c_in, out_ch, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Encoder(nn.Module):
    """Contracting path: a double conv per level, 2x2 max-pool between levels."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        widths = [cfg.base_width * 2**i for i in range(cfg.depth + 1)]
        self.widths = widths
        self.blocks = nn.ModuleList()
        c_in = cfg.in_channels
        for level, width in enumerate(widths):
            drop = cfg.dropout if level == cfg.depth else 0.0
            self.blocks.append(DoubleConv(c_in, width, cfg.batch_norm, drop))
            c_in = width
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the features of every level, finest first."""
        features = []
        for level, block in enumerate(self.blocks):
            if level > 0:
                x = self.pool(x)
            x = block(x)
            features.append(x)
        return features


class UpBlock(nn.Module):
    """Expanding step: up-sample, halve channels, concatenate the skip, double conv."""

    def __init__(self, in_ch: int, out_ch: int, mode: Upsampling, batch_norm: bool):
        super().__init__()
        self.up: nn.Module
        if mode == "transpose":
            self.up = nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_ch, out_ch, kernel_size=1),
            )
        self.conv = DoubleConv(2 * out_ch, out_ch, batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Up-sample ``x`` and fuse it with ``skip``."""
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class Decoder(nn.Module):
    """Expanding path: one :class:`UpBlock` per level, coarsest first."""

    def __init__(self, cfg: ModelConfig, widths: list[int]):
        super().__init__()
        self.blocks = nn.ModuleList(
            UpBlock(widths[i + 1], widths[i], cfg.upsampling, cfg.batch_norm)
            for i in reversed(range(cfg.depth))
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Fuse the encoder features from coarse to fine."""
        x = features[-1]
        for block, skip in zip(self.blocks, reversed(features[:-1]), strict=True):
            x = block(x, skip)
        return x


class Ensemble(nn.Module):
    """Networks of one architecture whose per-channel probabilities are averaged.

    The output stays logits, so that everything downstream applies its sigmoid as for a
    single network: ``sigmoid(ensemble(x))`` is the mean of the members' probabilities.
    Members trained with other normalisation statistics see their own: member ``i`` gets
    ``x * input_scale[i] + input_shift[i]`` per band (ones and zeros when all agree).
    """

    EPS = 1e-6
    """Probabilities are clamped to ``[EPS, 1 - EPS]`` before the logit (finite logits)."""

    input_scale: torch.Tensor
    input_shift: torch.Tensor

    def __init__(self, members: list[nn.Module], in_channels: int = 3):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.register_buffer("input_scale", torch.ones(len(members), in_channels))
        self.register_buffer("input_shift", torch.zeros(len(members), in_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of the members' mean probability, in float32."""
        return torch.logit(self.probabilities(x), eps=self.EPS)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Return the members' mean probability, in float32."""
        probs = []
        for member, scale, shift in zip(
            self.members, self.input_scale, self.input_shift, strict=True
        ):
            xi = x * scale.to(x.dtype)[:, None, None] + shift.to(x.dtype)[:, None, None]
            probs.append(torch.sigmoid(member(xi).float()))
        return torch.stack(probs).mean(dim=0)


class UNet(nn.Module):
    """The classic U-Net: encoder, decoder and a 1x1 convolution head.

    Input height and width must be multiples of ``2**depth``; the output has the same size.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg, self.encoder.widths)
        self.head = nn.Conv2d(cfg.base_width, cfg.classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape (N, classes, H, W) for input of shape (N, bands, H, W)."""
        return self.head(self.decoder(self.encoder(x)))


def build_model(cfg: ModelConfig) -> nn.Module:
    """Build the network that ``cfg`` describes, with random weights.

    Args:
        cfg: The architecture.

    Returns:
        The network (never with downloaded weights: smp encoders use ``encoder_weights=None``).

    Raises:
        CheckpointError: If the architecture or encoder is unknown, the encoder does
            not support the depth, or the number of ensemble members is below 1.
    """
    if cfg.members < 1:
        raise CheckpointError(f"an ensemble needs at least 1 member, got {cfg.members}")
    if cfg.members > 1:
        single = replace(cfg, members=1)
        return Ensemble([build_model(single) for _ in range(cfg.members)], cfg.in_channels)
    if cfg.arch == "unet":
        return UNet(cfg)
    if cfg.arch == "smp-unet":
        import segmentation_models_pytorch as smp

        if not 1 <= cfg.depth <= len(SMP_DECODER_CHANNELS):
            raise CheckpointError(f"smp-unet has depth 1 to 5, got {cfg.depth}; try depth 5")
        try:
            model: nn.Module = smp.Unet(
                encoder_name=cfg.encoder_name,
                encoder_depth=cfg.depth,
                encoder_weights=None,
                decoder_channels=SMP_DECODER_CHANNELS[: cfg.depth],
                in_channels=cfg.in_channels,
                classes=cfg.classes,
            )
        except KeyError as exc:
            raise CheckpointError(
                f"unknown encoder {cfg.encoder_name!r}; try resnet18, resnet34, mobilenet_v2"
            ) from exc
        except ValueError as exc:  # e.g. an encoder that does not support this depth
            raise CheckpointError(
                f"cannot build smp-unet with encoder {cfg.encoder_name!r} at depth "
                f"{cfg.depth} ({exc}); try depth 5"
            ) from exc
        return model
    raise CheckpointError(f"unknown architecture {cfg.arch!r}; use unet or smp-unet")


class _TraceGuard:
    """Keeps torch.fx tracing and forward passes of one process apart.

    While torch.fx traces a network it patches ``torch.nn.Module.__call__`` for the whole
    process, so a forward pass in another thread meanwhile is traced too and fails
    ("module is not installed as a submodule"). A dask worker with several threads
    loads its model in one thread while another may be predicting. Any number of
    forward passes may run at once; a trace waits until none runs, and they wait for it.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._tracing = False

    @contextmanager
    def predicting(self) -> Iterator[None]:
        """Hold while running a network (shared with other forward passes)."""
        with self._cond:
            self._cond.wait_for(lambda: not self._tracing)
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    @contextmanager
    def tracing(self) -> Iterator[None]:
        """Hold while tracing a network (alone in the process)."""
        with self._cond:
            self._cond.wait_for(lambda: not self._tracing and not self._running)
            self._tracing = True
        try:
            yield
        finally:
            with self._cond:
                self._tracing = False
                self._cond.notify_all()


TRACE_GUARD = _TraceGuard()
"""The process's guard: :func:`fuse_for_inference` traces under it, predictors run under it."""


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with each batch norm folded into its convolution.

    Uses torch.fx's conv/batch-norm fusion: every batch norm that follows a convolution
    has its running statistics and affine parameters folded into the convolution's
    weights and bias. In eval mode the outputs are the same up to rounding, and prediction
    skips a full pass over every feature map (0.293 against 0.313 s per 992 px tile of the
    bundled model in ``benchmarks/levers_cpu.txt``); the traced network also frees each
    intermediate as soon as it is used. A network that torch.fx cannot trace is returned
    unfused. The trace runs under :data:`TRACE_GUARD`, so forward passes that run under it
    too (as :class:`geounet.inference.engine.TilePredictor`'s do) are safe in other threads.

    Args:
        model: A network; it is not modified.

    Returns:
        The fused copy, in eval mode.
    """
    from torch.fx.experimental.optimization import fuse

    model = copy.deepcopy(model).eval()
    try:
        with TRACE_GUARD.tracing():
            return fuse(model, inplace=True).eval()
    except Exception:  # noqa: BLE001 - an untraceable network still predicts, unfused
        return model
