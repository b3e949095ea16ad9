"""A network compiled by ``torch.compile`` for prediction, falling back to itself if that fails.

On this project's 2-core AMX CPU, the bundled model compiled by TorchInductor with its
weights frozen as constants ran a 1024 px tile 1.6-1.7 times as fast as it is, with the
same probabilities to float rounding: Inductor fuses each convolution with its ReLU and
the skip concatenations, which are memory-bound passes over every feature map
(``benchmarks/compile_speed.py``). The first compile of a tile shape takes about 30 s (6 s
once Inductor's cache on disk holds it), so ``--compile auto`` compiles only on the CPU
and only for scenes whose tiles hold at least :data:`COMPILE_MIN_PIXELS` pixels.
Inductor writes C++ and builds it with the machine's compiler; where that fails (no
compiler, an unsupported platform) prediction goes on with the network as it is, and
says so.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import torch
from torch import nn

from geounet.errors import InputError

COMPILE_MODES = ("auto", "on", "off")
"""Values of ``--compile``."""

COMPILE_MIN_PIXELS = 128 * 1024 * 1024
"""Pixels the network computes (tiles x tile area) from which ``--compile auto`` compiles on
a CPU: 128 tiles of 1024 px, a scene of about 10000 px square. The compiled bundled model
saved 0.19 s per tile of about 1000 px end to end, its compile included, so that many
repay a first compile (about 30 s); small tiles would not."""


def check_compile(mode: str) -> str:
    """``mode`` if it is a value of ``--compile``.

    Raises:
        InputError: If it is none of :data:`COMPILE_MODES`.
    """
    if mode not in COMPILE_MODES:
        raise InputError(f"--compile must be one of {', '.join(COMPILE_MODES)}, got {mode}")
    return mode


def wants_compile(mode: str, device: torch.device, pixels: int) -> bool:
    """Whether prediction should compile its network (an int8 model never is).

    Args:
        mode: ``auto``, ``on`` or ``off`` (see :func:`check_compile`).
        device: Where the network runs.
        pixels: Pixels the network computes for the scene (tiles x tile area).
    """
    auto = mode == "auto" and device.type == "cpu" and pixels >= COMPILE_MIN_PIXELS
    return mode == "on" or auto


class CompiledNet(nn.Module):
    """A network run through ``torch.compile`` (frozen weights, static shapes).

    The first call compiles it; if compiling or running the compiled network raises, the
    network runs as it is from then on and :attr:`failure` says why.

    Args:
        net: The network, in eval mode; its weights must not change while it is used.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        # Inductor's C++ build says it found no CUDA runtime: true, and not the user's concern
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        self.net = net
        self.compiled: Any = torch.compile(net, dynamic=False, options={"freezing": True})
        self.failure = ""
        self.lock = threading.Lock()  # one compile at a time when threads share it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output for ``x``, compiled where it can be."""
        if not self.failure:
            try:
                with self.lock:
                    return self.compiled(x)
            except Exception as exc:  # noqa: BLE001 - any compiler failure: run uncompiled
                first = str(exc).strip().splitlines()
                self.failure = f"{type(exc).__name__}: {first[0] if first else ''}"[:200]
        return self.net(x)

    @property
    def note(self) -> str:
        """One line for the user if compiling failed, else ``""``."""
        if not self.failure:
            return ""
        return f"--compile: torch.compile failed ({self.failure}); predicted uncompiled"
