"""Per-roof colour augmentation: each building of a chip gets a colour of its own.

A suburban training scene teaches that roofs are red tiles and that red-brown is bare
soil; the roofs of a dense settlement are rusted iron, grey, white or blue, side by side.
Colour jitter of a whole chip (:mod:`geounet.train.augment`) keeps roofs and ground in
step. Here, with a given chance, every building of a chip is recoloured on its own: its
hue turned by any angle, its saturation and brightness scaled, the ground left as it is.
Colour then tells the network little about what is a roof, and outline and texture must.

Runs on the batch in torch, before the geometric augmentation; the training loop calls
:func:`recolour_batch`.
"""

from __future__ import annotations

import math

import kornia.color
import numpy as np
import torch

#: Saturation of a recoloured roof is scaled by a factor drawn from this range.
SATURATION = (0.3, 1.6)
#: Brightness (HSV value) of a recoloured roof is scaled by a factor drawn from this range.
BRIGHTNESS = (0.6, 1.3)


def recolour_batch(
    image: torch.Tensor,
    instances: torch.Tensor,
    probability: float,
    rng: np.random.Generator,
) -> torch.Tensor:
    """Give each building of some chips a random colour of its own.

    Each chip is chosen with chance ``probability``; every building (instance id > 0) of a
    chosen chip gets a hue turned by an angle drawn from [0, 360) degrees and its
    saturation and brightness scaled by factors drawn from :data:`SATURATION` and
    :data:`BRIGHTNESS`. Images that are not RGB (3 bands) get the brightness change only.

    Args:
        image: (N, bands, H, W) float image scaled to [0, 1].
        instances: (N, H, W) instance ids (0 = no building), on the image's device.
        probability: Chance that a chip is recoloured.
        rng: Random generator (draws which chips and which colours).

    Returns:
        ``image`` itself when no chip was chosen, else a recoloured copy (in [0, 1]).
    """
    chosen = [i for i in range(image.shape[0]) if rng.random() < probability]
    if not chosen:
        return image
    out = image.clone()
    for i in chosen:
        ids, index = torch.unique(instances[i], return_inverse=True)
        n = len(ids)
        hue = torch.from_numpy(rng.uniform(0.0, 2 * math.pi, n)).to(image)
        sat = torch.from_numpy(rng.uniform(*SATURATION, n)).to(image)
        val = torch.from_numpy(rng.uniform(*BRIGHTNESS, n)).to(image)
        roof = ids > 0  # the ground (id 0) keeps its colour
        hue, sat, val = hue * roof, torch.where(roof, sat, 1.0), torch.where(roof, val, 1.0)
        if image.shape[1] == 3:
            hsv = kornia.color.rgb_to_hsv(image[i : i + 1])[0]
            h = torch.remainder(hsv[0] + hue[index], 2 * math.pi)
            s = (hsv[1] * sat[index]).clamp(0.0, 1.0)
            v = (hsv[2] * val[index]).clamp(0.0, 1.0)
            changed = kornia.color.hsv_to_rgb(torch.stack([h, s, v])[None])[0].clamp(0.0, 1.0)
        else:
            changed = (image[i] * val[index]).clamp(0.0, 1.0)
        out[i] = torch.where(instances[i] > 0, changed, image[i])  # the ground exactly as it was
    return out
