"""Training geounet's U-Net on scenes and footprints (``geounet train``).

Modules, from the data to the loop: :mod:`~geounet.train.datasets` (reading scenes and
footprints onto the model's grid, the area split), :mod:`~geounet.train.arrays` (scenes in
memory, chips drawn place by place), :mod:`~geounet.train.targets` and
:mod:`~geounet.train.weights` (targets and border weights), :mod:`~geounet.train.losses`,
:mod:`~geounet.train.augment`, :mod:`~geounet.train.validation`,
:mod:`~geounet.train.state` (resumable state), :mod:`~geounet.train.loop` (the loop),
:mod:`~geounet.train.pack` (training data in one file, for machines without GDAL) and
:mod:`~geounet.train.training` (``train`` and ``calibrate``).

The names below are imported on first use, so ``python -m geounet.train.pack`` needs
neither GDAL nor geopandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from geounet.train.config import TrainConfig, TrainResult
    from geounet.train.training import calibrate, train

__all__ = ["TrainConfig", "TrainResult", "calibrate", "train"]


def __getattr__(name: str) -> Any:
    """Import the public names lazily (see the module's description)."""
    if name in ("TrainConfig", "TrainResult"):
        from geounet.train import config

        return getattr(config, name)
    if name in ("calibrate", "train"):
        from geounet.train import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
