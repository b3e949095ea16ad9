"""Choosing the compute device and the precision of inference and training."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch

from geounet.errors import InputError

DeviceName = Literal["auto", "cpu", "cuda"]
PrecisionName = Literal["auto", "float32", "bfloat16", "float16"]

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def select_device(name: str = "auto") -> torch.device:
    """Return the torch device to run on.

    Args:
        name: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Returns:
        The device.

    Raises:
        InputError: If CUDA is asked for but not available, or the name is unknown.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(
                "--device cuda was asked for but no CUDA GPU is visible; use --device cpu"
            )
        return torch.device(name)
    raise InputError(f"unknown device {name!r}; use auto, cpu or cuda")


def cpu_supports_bfloat16() -> bool:
    """Whether this CPU has native bfloat16 matrix units (AMX or AVX512-BF16)."""
    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # pragma: no cover - older torch
        return False


def resolve_precision(device: torch.device, precision: str = "auto") -> torch.dtype:
    """Pick the autocast dtype for a device.

    ``auto`` means float16 on CUDA (bfloat16 where the GPU supports it), bfloat16 on CPUs
    with native bfloat16 units, float32 elsewhere.

    Args:
        device: The device that will run the model.
        precision: ``auto``, ``float32``, ``bfloat16`` or ``float16``.

    Returns:
        The dtype that autocast should use (``torch.float32`` disables autocast).

    Raises:
        InputError: If the precision name is unknown or float16 is asked for on the CPU.
    """
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_supports_bfloat16() else torch.float32
    if precision not in _DTYPES:
        raise InputError(f"unknown precision {precision!r}; use auto, float32, bfloat16 or float16")
    if precision == "float16" and device.type == "cpu":
        raise InputError("float16 is for CUDA; on the CPU use --precision bfloat16 or float32")
    return _DTYPES[precision]


def autocast(device: torch.device, dtype: torch.dtype) -> AbstractContextManager[object]:
    """Return an autocast context for ``dtype`` on ``device`` (a no-op for float32)."""
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
