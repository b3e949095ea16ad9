"""The validation strip as ``geounet predict`` sees it, to choose thresholds on.

Training compares its epochs on the held-out strip cut into chips that are predicted one
by one, edge to edge: cheap, but every chip edge is predicted without its neighbours,
a roof across two chips is judged on two half-blind predictions, and the figures move
with where the cuts fall. A model's thresholds, though, are applied to what
``geounet predict`` writes: overlapping tiles with mirrored borders, blended, quantised
to uint8, averaged over the card's test-time augmentation. So the final choice (at the
end of ``geounet train``, and by ``geounet calibrate``) is made on exactly that: each
scene is predicted whole by :func:`geounet.inference.scene.predict_scene`, as a user would
predict it, and only its strip is scored, against the footprints burned on the same
grid, with predict's smallest footprint and seed (``--min-area``). Only the images of
the training part are read as context, never its labels.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import rasterio
import rasterio.errors
import rasterio.features
import rasterio.warp
import rasterio.windows
import shapely
from rasterio.crs import CRS
from rasterio.io import DatasetReader
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from geounet.core.codec import decode
from geounet.core.thresholds import DEFAULT_SEED_AREA_M2
from geounet.errors import InputError
from geounet.footprints.vectorize import size_limits, split_bands
from geounet.inference.options import PredictOptions
from geounet.inference.scene import min_confidence_of, predict_scene, seed_area_of
from geounet.io.raster import ground_pixel_size_m
from geounet.model.checkpoint import Checkpoint
from geounet.train.validation import ThresholdScore, merge_scores, sweep_thresholds, weighed


@dataclass
class StripPrediction:
    """One scene's part of the validation strip, as ``geounet predict`` predicted it.

    Attributes:
        window: The strip's window in its scene.
        prob: Building probability in the window, as predict's footprints read it.
        channels: The split channels (``body``, ``contact``) the model has, same grid.
        instances: Footprint ids burned on the same grid (0 = none).
        valid: Pixels with data.
        min_object_pixels: Smallest footprint predict keeps here (``--min-area``), pixels.
        pixel_m: Ground size of a pixel here, in metres (0: unknown).
    """

    window: Window
    prob: npt.NDArray[np.float32]
    channels: dict[str, npt.NDArray[np.float32]]
    instances: npt.NDArray[np.int64]
    valid: npt.NDArray[np.bool_]
    min_object_pixels: float = 0.0
    pixel_m: float = 0.0

    def seed_pixels(self, seed_area_m2: float | None = None) -> int:
        """The smallest seed of predict's split here, in pixels, for a seed area in m2.

        ``None``: the default seed area; 4 pixels where the pixel size is unknown.
        """
        if self.pixel_m <= 0:
            return 4
        area = DEFAULT_SEED_AREA_M2 if seed_area_m2 is None else seed_area_m2
        return size_limits(0.0, self.pixel_m, area)[1]


def strip_window(src: DatasetReader, roi: BaseGeometry, roi_crs: CRS) -> Window | None:
    """The window of ``src`` that ``roi`` covers (``None`` if it covers no whole pixel).

    Args:
        src: An open scene.
        roi: The strip, in ``roi_crs``.
        roi_crs: The CRS of ``roi`` (the training dataset's).
    """
    geom = shapely.geometry.shape(
        rasterio.warp.transform_geom(roi_crs, src.crs, shapely.geometry.mapping(roi))
    )
    part = geom.intersection(shapely.box(*src.bounds))
    if part.is_empty:
        return None
    window = rasterio.windows.from_bounds(*part.bounds, transform=src.transform)
    window = window.round_offsets().round_lengths()
    try:
        window = window.intersection(Window(0, 0, src.width, src.height))
    except rasterio.errors.WindowError:
        return None
    return window if window.width >= 1 and window.height >= 1 else None


def _footprints(
    labels: Sequence[Path], class_column: str | None, only_class: str | None
) -> gpd.GeoDataFrame:
    """The footprints of every label file (of ``only_class`` if given), in the first's CRS."""
    frames = [gpd.read_file(path) for path in labels]
    crs = frames[0].crs
    merged = gpd.GeoDataFrame(
        pd.concat([f.to_crs(crs) for f in frames], ignore_index=True), crs=crs
    )
    if class_column is not None and only_class is not None:
        merged = merged[merged[class_column].astype(str) == only_class]
    return merged[~(merged.geometry.is_empty | merged.geometry.isna())]


def _read_unit(src: DatasetReader, band: int, window: Window) -> npt.NDArray[np.float32]:
    """A probability band as predict's footprints compare it (:mod:`geounet.core.codec`)."""
    return decode(src.read(band, window=window))


def predict_strips(
    checkpoint: Checkpoint,
    images: Sequence[Path],
    labels: Sequence[Path],
    roi: BaseGeometry,
    roi_crs: CRS,
    options: PredictOptions,
    class_column: str | None = None,
    only_class: str | None = None,
    only_roi: bool = False,
) -> list[StripPrediction]:
    """Predict each scene that ``roi`` crosses, whole, and keep its strip.

    Args:
        checkpoint: The model (its card's tile size, normalisation and pixel size).
        images: The scenes.
        labels: Footprint files (any CRS).
        roi: The validation strip (``TrainingData.val_roi``), in ``roi_crs``.
        roi_crs: Its CRS.
        options: How to predict (device, precision, test-time augmentation, and the
            smallest footprint kept); footprints are not written, and the probability is
            uint8, as predict writes it.
        class_column: Label column naming each footprint's class, if any.
        only_class: With ``class_column``, the class whose footprints are the truth.
        only_roi: Score only the pixels inside ``roi`` (by their centre), not the whole
            window around it: for a strip cut out of an area of interest.

    Returns:
        One prediction per scene that the strip crosses.

    Raises:
        InputError: If the strip crosses no scene.
    """
    opts = dataclasses.replace(options, footprints=False, float32=False, name="scene")
    footprints = _footprints(labels, class_column, only_class)  # read once, for every scene
    strips: list[StripPrediction] = []
    with tempfile.TemporaryDirectory(prefix="geounet-strip-") as tmp:
        for k, scene in enumerate(images):
            with rasterio.open(scene) as src:
                window = strip_window(src, roi, roi_crs)
            if window is None:
                continue
            out = Path(tmp) / str(k)
            predict_scene(scene, out, checkpoint, opts)
            with rasterio.open(out / "scene.prob.tif") as prob_src:
                prob = _read_unit(prob_src, 1, window)
                valid = prob_src.read_masks(1, window=window) > 0
                transform = prob_src.window_transform(window)
                crs = prob_src.crs
                pixel_m = ground_pixel_size_m(prob_src)
                min_pixels, _ = size_limits(opts.min_area_m2, pixel_m)
            channels: dict[str, npt.NDArray[np.float32]] = {}
            split = out / "scene.split.tif"
            if split.exists():
                with rasterio.open(split) as split_src:
                    channels = {
                        name: _read_unit(split_src, band, window)
                        for name, band in split_bands(split).items()
                    }
            if only_roi:
                region = gpd.GeoSeries([roi], crs=roi_crs).to_crs(crs).iloc[0]
                valid &= rasterio.features.geometry_mask(
                    [region], out_shape=prob.shape, transform=transform, invert=True
                )
            geoms = footprints.geometry.to_crs(crs)
            instances = np.zeros(prob.shape, dtype=np.int64)
            if len(geoms):
                instances = rasterio.features.rasterize(
                    zip(geoms, range(1, len(geoms) + 1), strict=True),
                    out_shape=prob.shape,
                    transform=transform,
                    dtype="int32",
                ).astype(np.int64)
            strips.append(
                StripPrediction(window, prob, channels, instances, valid, min_pixels, pixel_m)
            )
    if not strips:
        raise InputError("the validation strip covers none of the scenes; check --images")
    return strips


def sweep_strips(
    strips: Sequence[StripPrediction],
    thresholds: tuple[float, ...],
    body_thresholds: tuple[float, ...],
    seed_areas_m2: tuple[float | None, ...] = (None,),
    min_confidences: tuple[float | None, ...] = (None,),
) -> list[ThresholdScore]:
    """Score every body and building threshold over all strips, their counts summed.

    Args:
        strips: The predictions of :func:`predict_strips`.
        thresholds: Building thresholds.
        body_thresholds: Body thresholds (used when the model has a ``body`` channel).
        seed_areas_m2: Smallest seed areas of the split, in square metres (``None``:
            the default's, not recorded in the scores).
        min_confidences: Smallest confidences of a footprint kept (``None``: every
            footprint, not recorded in the scores).

    Returns:
        One score per body threshold, seed area, building threshold and smallest
        confidence, in that order.
    """
    scores: list[ThresholdScore] = []
    for s in strips:
        body = s.channels.get("body")
        part = [
            score
            for body_threshold in (body_thresholds if body is not None else (0.5,))
            for seed_area in seed_areas_m2
            for score in sweep_thresholds(
                s.prob[None],
                (s.instances > 0).astype(np.float32)[None],
                s.instances,
                s.valid,
                thresholds,
                body=body,
                contact=s.channels.get("contact"),
                body_threshold=body_threshold,
                min_object_pixels=s.min_object_pixels,
                min_seed_pixels=s.seed_pixels(seed_area),
                seed_area_m2=seed_area,
                min_confidences=min_confidences,
            )
        ]
        scores = merge_scores(scores, part) if scores else part
    return scores


def choice_sweep(
    strips: Sequence[StripPrediction],
    thresholds: tuple[float, ...],
    body_thresholds: tuple[float, ...],
    seed_areas_m2: tuple[float, ...],
    min_confidences: tuple[float, ...],
) -> list[ThresholdScore]:
    """The sweep that :func:`~geounet.train.training.choose_thresholds` chooses from.

    Every building and body threshold is scored at the first smallest seed and
    confidence. The building thresholds whose pixel IoU is near the best (the only ones
    that can win: the seed and the confidence leave the mask as it is) are then scored
    with every other seed (models that split touching roofs) and every confidence, and
    with every other confidence at the first seed.

    Args:
        strips: The predictions of :func:`predict_strips`.
        thresholds: Building thresholds.
        body_thresholds: Body thresholds (used when the model has a ``body`` channel).
        seed_areas_m2: Smallest seed areas, in square metres (at least one).
        min_confidences: Smallest footprint confidences (at least one).

    Returns:
        The scores, in that order.
    """
    scores = sweep_strips(
        strips, thresholds, body_thresholds, seed_areas_m2[:1], min_confidences[:1]
    )
    near = tuple(sorted({s.threshold for s in weighed(scores)}))
    seeds = seed_areas_m2 if any(s.channels for s in strips) else seed_areas_m2[:1]
    if len(seeds) > 1:
        scores += sweep_strips(strips, near, body_thresholds, seeds[1:], min_confidences)
    if len(min_confidences) > 1:
        scores += sweep_strips(strips, near, body_thresholds, seeds[:1], min_confidences[1:])
    return scores


def score_at_card(
    checkpoint: Checkpoint,
    images: Sequence[Path],
    labels: Sequence[Path],
    roi: BaseGeometry,
    roi_crs: CRS,
    options: PredictOptions,
) -> ThresholdScore:
    """Predict the scenes as ``geounet predict`` does and score ``roi`` at the card's thresholds.

    Args:
        checkpoint: The model; its card's thresholds are scored, save the smallest seed
            and the smallest confidence where ``options`` sets them (as predict does).
        images: The scenes.
        labels: Footprint files (any CRS).
        roi: The region scored (a validation strip, or more), in ``roi_crs``.
        roi_crs: Its CRS.
        options: How to predict (:func:`predict_strips`).

    Returns:
        The pixel and object counts over every scene the region crosses.
    """
    strips = predict_strips(checkpoint, images, labels, roi, roi_crs, options)
    (score,) = scores_at_card(checkpoint, strips, options)
    return score


def scores_at_card(
    checkpoint: Checkpoint,
    strips: Sequence[StripPrediction],
    options: PredictOptions,
    min_confidences: Sequence[float | None] = (None,),
) -> list[ThresholdScore]:
    """Predicted strips scored at the card's thresholds, at each smallest confidence.

    Args:
        checkpoint: The model; its card's thresholds are scored, save the smallest seed
            and the smallest confidence where ``options`` sets them (as predict does).
        strips: Its predictions (:func:`predict_strips`), made once for every score.
        options: How they were predicted.
        min_confidences: The smallest confidences of a footprint kept, one score each
            (``None``: as :func:`score_at_card` keeps them; 0: every footprint).

    Returns:
        One score per smallest confidence, in their order.
    """
    card = checkpoint.card
    body = (card.body_threshold,) if "body" in card.class_names else (0.5,)
    seed = seed_area_of(checkpoint, options)
    default = min_confidence_of(checkpoint, options)
    confidences = tuple(default if c is None else c for c in min_confidences)
    return sweep_strips(strips, (card.threshold,), body, (seed,), confidences)
