"""``geounet finetune``: adapt a model to a new town from a few hundred local footprints.

Mappers digitise buildings in a small part of their town (in QGIS or JOSM), and the model
should then map the rest. Fine-tuning starts from a trained model (the bundled one by
default) and keeps everything its card fixes: architecture, bands, normalisation, pixel
size and what its output channels learn (:func:`~geounet.train.config.options_from_card`);
only the schedule is left to choose, with defaults for a laptop CPU.

Labels rarely cover a whole scene, and an unlabelled roof taught as background harms the
model. So chips are drawn only inside the *area of interest*: the ``--aoi`` polygons, or by
default the convex hull of the footprints themselves (written beside the output as
``<out>.aoi.gpkg`` so it can be checked in QGIS). The eastern 20 % of that area is held out;
the thresholds are chosen there, as ``geounet predict`` will see it, and the figures
measured there end the run, with the number of buildings they rest on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import rasterio
import rasterio.warp
import shapely
from rich.console import Console
from shapely.geometry.base import BaseGeometry

from geounet.errors import ChipSizeError, InputError
from geounet.io.atomic import atomic_path
from geounet.io.layers import GPKG_OPTIONS
from geounet.model.checkpoint import bundled_model_path
from geounet.train.config import TrainConfig, TrainResult
from geounet.train.datasets import read_area, read_labels
from geounet.train.targets import TargetOptions

CHIP_SIZES = (256, 192, 128, 96, 64)
"""Chip sides fine-tuning tries, largest first, until the area holds one."""

FINETUNE_DEFAULTS = {
    "lr": 1e-3,
    "minutes": 12.0,
    "steps_per_epoch": 20,
    "epochs": 1000,
    "patience": 0,
}
"""The schedule of ``geounet finetune`` unless told otherwise: half the learning rate of
training from scratch and a time budget, the learning rate following it (12 minutes took a
held-out town from pixel IoU 0.37 to 0.60 with 59 footprints on a 2-core CPU, issue 22).
No early stopping: the budget is spent whole and the best epoch on the held-out part of the
area is kept. An epoch is 20 steps (seconds on a CPU), and the held-out part holds a few
dozen buildings, so 15 epochs without progress there (training's rule) ended runs at a
third of their budget with the learning rate still high (docs/finetune.md). Every weight
trains: keeping the encoder fixed cost 0.10 of object F1 in a town the model never saw.
Learning rate 1e-3 beat 5e-4 there with both seeds tried (object F1 0.393 and 0.422
against 0.342 and 0.408) and 2e-4 did worse (``benchmarks/finetune_schedule.py``)."""


@dataclass(frozen=True)
class TrainingArea:
    """Where fine-tuning may draw chips.

    Attributes:
        geometry: The area, in the CRS of the first scene.
        source: ``--aoi FILE`` or ``the footprints' convex hull``.
        buildings: Footprints inside it.
        area_m2: Its area in square metres (in the CRS's units when not projected).
    """

    geometry: BaseGeometry
    source: str
    buildings: int
    area_m2: float


def training_area(images: list[Path], labels: list[Path], aoi: Path | None = None) -> TrainingArea:
    """The area of interest: ``aoi``'s polygons, or the convex hull of the footprints.

    Raises:
        InputError: If the AOI file is unusable or holds no polygon.
    """
    with rasterio.open(images[0]) as src:
        crs = src.crs
    footprints = gpd.GeoDataFrame(
        geometry=[g for path in labels for g in read_labels(path).to_crs(crs).geometry],
        crs=crs,
    )
    if aoi is not None:
        geometry = read_area(aoi, crs)
        source = f"--aoi {aoi}"
    else:
        geometry = shapely.convex_hull(shapely.union_all(footprints.geometry.values))
        source = "the footprints' convex hull"
    scenes = []
    for path in images:
        with rasterio.open(path) as src:
            scenes.append(shapely.box(*rasterio.warp.transform_bounds(src.crs, crs, *src.bounds)))
    geometry = geometry.intersection(shapely.union_all(scenes))
    if geometry.is_empty:
        raise InputError(f"{source} does not cover the scenes; check the --aoi and --images")
    inside = int(footprints.geometry.representative_point().within(geometry).sum())
    return TrainingArea(geometry, source, inside, float(geometry.area))


def write_area(area: TrainingArea, crs: object, path: Path) -> None:
    """Write the training area as a GeoPackage layer ``aoi`` (to check it in QGIS)."""
    frame = gpd.GeoDataFrame(
        {"source": [area.source], "buildings": [area.buildings]}, geometry=[area.geometry], crs=crs
    )
    with atomic_path(path) as tmp:
        frame.to_file(
            tmp, layer="aoi", driver="GPKG", engine="pyogrio", dataset_options=GPKG_OPTIONS
        )


def finetune(
    images: list[Path],
    labels: list[Path],
    out: Path,
    model: Path | None = None,
    aoi: Path | None = None,
    console: Console | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    **schedule: object,
) -> tuple[TrainResult, TrainingArea]:
    """Fine-tune ``model`` (the bundled one by default) on local footprints.

    Args:
        images: The scenes.
        labels: Their footprints (complete inside the area of interest).
        out: The fine-tuned checkpoint (``.safetensors``).
        model: The model to start from.
        aoi: Polygons where the labels are complete (default: the footprints' hull).
        console: Where progress goes.
        on_epoch: Optional callback receiving each epoch's record.
        **schedule: Options of :class:`~geounet.train.config.TrainConfig` that are not
            fixed by the model (``lr``, ``minutes``, ``epochs``, ``steps_per_epoch``,
            ``batch_size``, ``seed``, ``device``, ``overwrite``, ``resume``...).

    Returns:
        What training produced, and the area it used.

    Raises:
        InputError: If an option is one the model fixes, or the data are unusable.
    """
    from geounet.train.training import train

    console = console or Console(stderr=True)
    base = Path(model) if model is not None else bundled_model_path()
    fixed = set(TargetOptions.__dataclass_fields__) | {"pixel_size_m", "init", "arch", "depth"}
    fixed |= {"width", "encoder", "upsampling", "class_column"}
    refused = sorted(set(schedule) & fixed)
    if refused:
        raise InputError(f"the base model fixes {', '.join(refused)}; drop them")
    options = {**FINETUNE_DEFAULTS, **schedule}
    cfg = TrainConfig(
        images=list(images),
        labels=list(labels),
        out=Path(out),
        init=base,
        **options,  # type: ignore[arg-type]
    )
    area = training_area(cfg.images, cfg.labels, aoi)
    with rasterio.open(cfg.images[0]) as src:
        crs = src.crs
    aoi_path = Path(out).with_suffix(".aoi.gpkg")
    write_area(area, crs, aoi_path)
    console.print(
        f"training area: {area.source}, {area.buildings} footprints inside it "
        f"(written to {aoi_path})",
        markup=False,
        highlight=False,
    )
    sizes = [cfg.chip_size] if "chip_size" in schedule else list(CHIP_SIZES)
    for size in sizes:
        try:
            result = train(
                dataclasses.replace(cfg, chip_size=size),
                console=console,
                on_epoch=on_epoch,
                aoi=area.geometry,
            )
            return result, area
        except ChipSizeError:
            if size == sizes[-1]:
                raise
            console.print(f"the area is too small for {size}-px chips; trying smaller ones")
    raise AssertionError("unreachable")
