"""How far a scene may be resampled onto a model's pixel size, for prediction and training."""

from __future__ import annotations

from geounet.errors import InputError

RESAMPLE_TOLERANCE = 0.15
"""Relative pixel-size difference under which a scene is predicted on its own grid."""

MAX_UPSAMPLING = 8.0
"""Largest factor by which a scene's pixels may be coarser than the model's.

Beyond it a building of 10 m spans a handful of scene pixels (no model trained at
0.15 m maps it), while the working grid, and the time, grow with the factor squared: a
512 px scene of 10 m pixels would become 34,000 px square for a 0.15 m model."""

MAX_DOWNSAMPLING = 32.0
"""Largest factor by which a scene's pixels may be finer than the model's (0.005 m for a
0.15 m model): finer pixels mean a mistaken georeference, not a real camera."""


def check_resampling(
    scene_px_m: float,
    model_px_m: float,
    reference: str = "the model's",
    bypass: str = "--no-resample",
) -> None:
    """Refuse to resample a scene by an absurd factor, saying why.

    Args:
        scene_px_m: The scene's ground pixel size, in metres.
        model_px_m: The model's, in metres.
        reference: What ``model_px_m`` is, in messages.
        bypass: The option that avoids resampling, named in messages ("" if none).

    Raises:
        InputError: If the scene's pixels are more than :data:`MAX_UPSAMPLING` times
            coarser or :data:`MAX_DOWNSAMPLING` times finer than the model's.
    """
    factor = scene_px_m / model_px_m
    if factor > MAX_UPSAMPLING:
        raise InputError(
            f"the scene's pixels are {scene_px_m:.3g} m, {factor:.0f} times {reference} "
            f"{model_px_m:.3g} m: too coarse to map buildings; use imagery of at most "
            f"{model_px_m * MAX_UPSAMPLING:.2g} m pixels"
            + (f" (or {bypass} to run on the scene's own pixels anyway)" if bypass else "")
        )
    if factor < 1 / MAX_DOWNSAMPLING:
        raise InputError(
            f"the scene's pixels are {scene_px_m:.3g} m, {1 / factor:.0f} times finer than "
            f"{reference} {model_px_m:.3g} m; check the scene's georeference (its CRS "
            "units and pixel size)" + (f", or pass {bypass}" if bypass else "")
        )


def detail_scale(raster_px_m: float, model_px_m: float | None) -> float:
    """How many of a probability raster's pixels one pixel of the model's spans.

    A scene finer than the model's pixels is predicted on the model's grid and the
    probabilities are resampled back onto the scene's: they hold no detail finer than
    the model's pixel, so tolerances set in the model's pixels are this many raster
    pixels.

    Args:
        raster_px_m: The raster's ground pixel size, in metres.
        model_px_m: The model's (``None`` or 0: unknown, taken as the raster's).

    Returns:
        ``model_px_m / raster_px_m`` where the raster was resampled from coarser model
        pixels (finer by more than :data:`RESAMPLE_TOLERANCE`), else 1.
    """
    if not model_px_m or model_px_m / raster_px_m - 1.0 <= RESAMPLE_TOLERANCE:
        return 1.0
    return model_px_m / raster_px_m
