"""Training geounet's U-Net on scenes and footprints (``geounet train``).

Modules: :mod:`~geounet.train.datasets` (torchgeo data and the area split),
:mod:`~geounet.train.weights` (border weight map), :mod:`~geounet.train.losses`,
:mod:`~geounet.train.augment`, :mod:`~geounet.train.validation`, :mod:`~geounet.train.state`
(resumable state) and :mod:`~geounet.train.training` (the loop).
"""

from geounet.train.training import TrainConfig, TrainResult, calibrate, train

__all__ = ["TrainConfig", "TrainResult", "calibrate", "train"]
