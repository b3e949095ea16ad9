"""The resumable training state, stored with safetensors (no pickles).

Beside the best checkpoint ``model.safetensors`` lives ``model.state.safetensors`` holding the
weights of the last finished epoch, the optimizer's moments, the random-number-generator
states and a JSON record (epoch, step, elapsed time, best score, history, model card).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from geounet.errors import CheckpointError
from geounet.io.atomic import atomic_path

STATE_KEY = "geounet_train_state"


def state_path(out: Path) -> Path:
    """Where the resumable state of the checkpoint ``out`` lives."""
    return out.with_name(out.stem + ".state.safetensors")


@dataclass
class TrainState:
    """Everything needed to continue a run.

    Attributes:
        model: State dict of the network after the last finished epoch.
        optimizer: The optimizer's state dict.
        rng: Named RNG state tensors (``torch``, ``sampler``).
        record: JSON-ready progress record (epoch, step, elapsed_s, best_score, ...).
        ema: State dict of the moving average of the weights (empty when none is kept).
    """

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, torch.Tensor] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    ema: dict[str, torch.Tensor] = field(default_factory=dict)


def save_state(path: Path, state: TrainState) -> None:
    """Write the training state atomically."""
    tensors: dict[str, torch.Tensor] = {}
    for k, v in state.model.items():
        tensors[f"model.{k}"] = v.detach().to("cpu").contiguous()
    opt_scalars: dict[str, Any] = {}
    for pid, entry in state.optimizer["state"].items():
        for k, v in entry.items():
            if isinstance(v, torch.Tensor):
                tensors[f"opt.{pid}.{k}"] = v.detach().to("cpu").contiguous()
            else:
                opt_scalars[f"{pid}.{k}"] = v
    for k, v in state.ema.items():
        tensors[f"ema.{k}"] = v.detach().to("cpu").contiguous()
    for k, v in state.rng.items():
        tensors[f"rng.{k}"] = v.detach().to("cpu").contiguous()
    meta = {
        "param_groups": state.optimizer["param_groups"],
        "opt_scalars": opt_scalars,
        "record": state.record,
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={STATE_KEY: json.dumps(meta)})


def load_state(path: Path) -> TrainState:
    """Read a training state written by :func:`save_state`.

    Raises:
        CheckpointError: If the file is missing or not a geounet training state.
    """
    if not path.is_file():
        raise CheckpointError(f"no training state at {path} to resume from; drop --resume")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta_text = (f.metadata() or {}).get(STATE_KEY)
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable training state ({exc})") from exc
    if meta_text is None:
        raise CheckpointError(f"{path} is not a geounet training state")
    meta = json.loads(meta_text)
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    ema = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
    opt_state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            pid, name = k[4:].split(".", 1)
            opt_state.setdefault(int(pid), {})[name] = v
    for k, v in meta["opt_scalars"].items():
        pid, name = k.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = v
    optimizer = {"state": opt_state, "param_groups": meta["param_groups"]}
    return TrainState(model=model, optimizer=optimizer, rng=rng, record=meta["record"], ema=ema)
