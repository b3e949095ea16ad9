"""Training augmentation with kornia, applied to whole batches.

Geometric transforms (flips, 90-degree rotations, scale jitter, elastic deformation) move the
image and every per-pixel map (targets, border weights, validity) together; the maps are
resampled with nearest neighbour. Photometric transforms (brightness, contrast, saturation,
hue) touch only the image. Pixels brought in from outside the chip (scale jitter, elastic
borders) get validity 0, so the loss ignores them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import kornia.augmentation as K
import torch


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each augmentation (probabilities and ranges).

    Attributes:
        flips: Apply random horizontal and vertical flips and 90-degree rotations.
        scale: Scale jitter range (``(0.8, 1.25)`` zooms out and in by up to 25 %); ``None``
            disables it.
        scale_p: Probability of the scale jitter.
        elastic_p: Probability of the elastic deformation.
        elastic_alpha: Elastic displacement strength (kornia units; 0 disables it).
        elastic_sigma: Smoothness of the elastic field, in pixels.
        color_p: Probability of the colour jitter.
        brightness: Brightness jitter.
        contrast: Contrast jitter.
        saturation: Saturation jitter.
        hue: Hue jitter.
        grayscale_p: Probability of turning an RGB chip grey (roof colour is then no cue).
    """

    flips: bool = True
    scale: tuple[float, float] | None = (0.75, 1.33)
    scale_p: float = 0.5
    elastic_p: float = 0.25
    elastic_alpha: float = 1.0
    elastic_sigma: float = 12.0
    color_p: float = 0.8
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02
    grayscale_p: float = 0.0


COLOUR_JITTER: dict[str, AugmentConfig] = {
    "mild": AugmentConfig(),
    "strong": AugmentConfig(brightness=0.3, contrast=0.3, saturation=0.5, hue=0.1, grayscale_p=0.2),
}
"""Augmentation by named colour jitter. ``mild`` is the default (light
brightness, contrast, saturation and hue jitter); ``strong`` shifts hues by up to 36 degrees
and saturation by 50 % and turns one chip in five grey, for scenes whose roofs differ in
colour from the training scenes'."""


class Augmenter(torch.nn.Module):
    """Apply the same random geometric transform to an image batch and its pixel maps."""

    def __init__(self, config: AugmentConfig, bands: int = 3) -> None:
        """Build the pipeline.

        Args:
            config: Augmentation strengths.
            bands: Number of image bands; colour jitter needs exactly 3 (RGB) and is
                replaced by brightness/contrast only otherwise.
        """
        super().__init__()
        geometric: list[K.AugmentationBase2D] = []
        if config.flips:
            geometric += [
                K.RandomHorizontalFlip(p=0.5),
                K.RandomVerticalFlip(p=0.5),
                K.RandomRotation90(times=(0, 3), p=1.0, align_corners=True),
            ]
        if config.scale is not None:
            geometric.append(
                K.RandomAffine(
                    degrees=0.0, scale=config.scale, p=config.scale_p, padding_mode="zeros"
                )
            )
        if config.elastic_p > 0 and config.elastic_alpha > 0:
            k = int(4 * config.elastic_sigma) | 1
            geometric.append(
                K.RandomElasticTransform(
                    kernel_size=(k, k),
                    sigma=(config.elastic_sigma, config.elastic_sigma),
                    alpha=(config.elastic_alpha, config.elastic_alpha),
                    p=config.elastic_p,
                )
            )
        self.geometric = (
            K.AugmentationSequential(*geometric, data_keys=["input", "mask"]) if geometric else None
        )
        photometric: list[K.IntensityAugmentationBase2D] = []
        if config.color_p > 0:
            if bands == 3:
                photometric.append(
                    K.ColorJitter(
                        config.brightness,
                        config.contrast,
                        config.saturation,
                        config.hue,
                        p=config.color_p,
                    )
                )
            else:
                photometric.append(
                    K.ColorJitter(config.brightness, config.contrast, p=config.color_p)
                )
        if config.grayscale_p > 0 and bands == 3:
            photometric.append(K.RandomGrayscale(p=config.grayscale_p))
        self.photometric = K.AugmentationSequential(*photometric) if photometric else None

    @torch.no_grad()
    def forward(self, image: torch.Tensor, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch.

        Args:
            image: (N, bands, H, W) float image scaled to [0, 1].
            maps: (N, M, H, W) float per-pixel maps that move with the image; by convention
                the last map is validity (1 = counts), which becomes 0 where the geometric
                transform brought in pixels from outside the chip.

        Returns:
            The augmented ``(image, maps)``.
        """
        if self.geometric is not None:
            with warnings.catch_warnings():
                # kornia resamples masks with align_corners=None; torch warns about the default.
                warnings.filterwarnings(
                    "ignore", message="Default grid_sample", category=UserWarning
                )
                out = self.geometric(image, maps)
            image, maps = out[0], out[1]
        if self.photometric is not None:
            image = self.photometric(image).clamp(0.0, 1.0)
        return image, maps
