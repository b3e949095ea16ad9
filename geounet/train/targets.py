"""Training targets of a footprint instance map: class masks, body, contact, border weights.

Pure numpy, scipy and torch (no I/O), so the training loop can run where only those are
installed (see :mod:`geounet.train.pack`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from geounet.train.weights import body_map, border_weight_map, contact_map, depth_map


@dataclass(frozen=True)
class SceneLayout:
    """How the bands of the training scenes are laid out.

    Attributes:
        band_names: Names of every band of the files, in file order (``red``, ..., ``alpha``).
        image_bands: Names of the bands that feed the model, in the model's order.
        alpha_band: Name of the alpha band (0 = no data), or ``None`` when there is none.
        nodata: The scenes' nodata value, used when there is no alpha band.
    """

    band_names: tuple[str, ...]
    image_bands: tuple[str, ...]
    alpha_band: str | None
    nodata: float | None


@dataclass(frozen=True)
class TargetOptions:
    """What the training targets hold (see :class:`ChipTransform` for each option).

    Attributes:
        w0: Border weight amplitude (0 disables the border weights).
        sigma: Border weight width, in pixels.
        contact_radius: When positive, a ``contact`` channel: pixels within this many
            pixels of two different buildings.
        body_erosion: When positive, a ``body`` channel: roofs eroded by this many pixels.
        body_target: ``eroded`` or ``depth`` (the ``body`` channel is each roof's depth).
        wall_w0: Border weight amplitude along walls shared by touching roofs.
    """

    w0: float = 10.0
    sigma: float = 5.0
    contact_radius: float = 0.0
    body_erosion: float = 0.0
    body_target: str = "eroded"
    wall_w0: float = 0.0

    @classmethod
    def of(cls, options: Any) -> TargetOptions:
        """The target options of any object with these attributes (a ``TrainConfig``)."""
        return cls(**{f.name: getattr(options, f.name) for f in dataclasses.fields(cls)})


class ChipTransform:
    """Turn a raw torchgeo sample into model inputs and training targets.

    The result holds ``image`` (bands, H, W) float32 raw values, ``valid`` (H, W) bool
    (alpha > 0 or not nodata), ``target`` (classes, H, W) float32, ``instances`` (H, W)
    int64 and ``weight`` (H, W) float32, the border weight map.
    """

    def __init__(
        self,
        layout: SceneLayout,
        instance_class: npt.NDArray[np.int64],
        classes: int,
        w0: float,
        sigma: float,
        contact_radius: float = 0.0,
        body_erosion: float = 0.0,
        body_target: str = "eroded",
        wall_w0: float = 0.0,
    ) -> None:
        """Prepare the transform.

        Args:
            layout: Band layout of the scenes.
            instance_class: Class index of each instance id.
            classes: Number of output channels.
            w0: Border weight amplitude (0 disables the border weights).
            sigma: Border weight width, in pixels.
            contact_radius: When positive, a last target channel marks the pixels within
                this many pixels of two different buildings (see ``contact_map``).
            body_erosion: When positive, a target channel after the classes marks the
                building interiors, this many pixels away from outlines and neighbours
                (see ``body_map``).
            body_target: ``eroded`` (the body is each roof eroded by ``body_erosion``)
                or ``depth`` (each roof's depth, 0 to 1, see ``depth_map``; the body
                channel is then made whatever ``body_erosion`` is).
            wall_w0: Border weight amplitude on building pixels near another building,
                along shared walls (0 disables it; see ``border_weight_map``).
        """
        self.wall_w0 = wall_w0
        self.contact_radius = contact_radius
        self.body_erosion = body_erosion
        self.body_target = body_target
        self.image_index = [layout.band_names.index(b) for b in layout.image_bands]
        self.alpha_index = (
            layout.band_names.index(layout.alpha_band) if layout.alpha_band is not None else None
        )
        self.nodata = layout.nodata
        self.instance_class = torch.from_numpy(instance_class)
        self.classes = classes
        self.w0 = w0
        self.sigma = sigma

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Transform one sample (called by the dataset, inside data-loader workers)."""
        raw: torch.Tensor = sample["image"]
        image = raw[self.image_index]
        if self.alpha_index is not None:
            valid = raw[self.alpha_index] >= 128
        elif self.nodata is not None:
            valid = ~(image == self.nodata).all(dim=0)
        else:
            valid = torch.ones(image.shape[-2:], dtype=torch.bool)
        instances = sample["mask"].to(torch.int64)
        if instances.ndim == 3:
            instances = instances[0]
        target, weight = self.targets(instances)
        return {
            "image": image.float(),
            "valid": valid,
            "target": target,
            "instances": instances,
            "weight": weight,
            "bounds": sample.get("bounds"),
        }

    @property
    def makes_body(self) -> bool:
        """Whether the targets have a ``body`` channel (after the classes)."""
        return self.body_erosion > 0 or self.body_target == "depth"

    def targets(self, instances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training targets and border weights of an instance map.

        Args:
            instances: (H, W) int64 instance ids (0 = background).

        Returns:
            ``target`` (channels, H, W) float32: one channel per class, then ``body`` and
            ``contact`` when made; ``weight`` (H, W) float32, the border weight map.
        """
        target = torch.zeros((self.classes, *instances.shape), dtype=torch.float32)
        inside = instances > 0
        cls = self.instance_class[instances.clamp(max=len(self.instance_class) - 1)]
        for k in range(self.classes):
            target[k] = (inside & (cls == k)).float()
        extra = []
        if self.body_target == "depth":
            extra.append(torch.from_numpy(depth_map(instances.numpy())))
        elif self.makes_body:
            extra.append(torch.from_numpy(body_map(instances.numpy(), self.body_erosion)))
        if self.contact_radius > 0:
            extra.append(torch.from_numpy(contact_map(instances.numpy(), self.contact_radius)))
        if extra:
            target = torch.cat([target, torch.stack(extra)])
        if self.w0 > 0 or self.wall_w0 > 0:
            weight = torch.from_numpy(
                border_weight_map(instances.numpy(), self.w0, self.sigma, self.wall_w0)
            )
        else:
            weight = torch.zeros(instances.shape, dtype=torch.float32)
        return target, weight
