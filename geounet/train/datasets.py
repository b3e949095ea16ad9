"""Training data read from scenes and footprints: the model's grid, instance ids, the split.

Each scene is read whole onto the model's grid (its own extent, the first scene's CRS,
pixels of ``pixel_size_m`` ground metres: scenes at another pixel size or latitude are
resampled, bilinear, by a rasterio ``WarpedVRT``), and its footprints, reprojected from any
CRS, are burned with a unique *instance id* each, so the targets and border weights can
be made per building (see :mod:`geounet.train.arrays`).

The validation split is by area: the eastern strip (a fraction of the width) of every scene
is held out, and training chips lie wholly outside every strip, so no validation pixel is
ever seen in training. Scenes are grouped into *places* (``--place``) for balanced sampling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import rasterio
import rasterio.features
import rasterio.transform
import rasterio.warp
import shapely
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import RasterioIOError
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT
from shapely.geometry.base import BaseGeometry

from geounet.core.extents import Extent
from geounet.core.resampling import check_resampling
from geounet.errors import ChipSizeError, InputError
from geounet.io.raster import ground_pixel_size_m, lonlat_bounds, squashed_pixels
from geounet.train.arrays import SceneArrays, TrainingData, chip_origins, count_footprints
from geounet.train.targets import SceneLayout, TargetOptions

NATIVE_TOLERANCE = 0.02
"""A scene whose ground pixel is within this fraction of the model's is read as it is, not
resampled (resampling by a few per cent only blurs it)."""

RAW_SCALE = {"uint8": 1 / 255, "uint16": 1 / 65535, "int16": 1 / 32767}
"""Factor from raw values of each data type to [0, 1] (other types are taken as they are)."""

INSTANCE_COLUMN = "geounet_instance"
"""Column holding the instance id (1, 2, ...; 0 is background) in the prepared labels."""


_COLOR_NAMES = {
    ColorInterp.red: "red",
    ColorInterp.green: "green",
    ColorInterp.blue: "blue",
    ColorInterp.alpha: "alpha",
}


def read_labels(path: Path) -> gpd.GeoDataFrame:
    """Read one label file (GeoPackage, GeoJSON, Shapefile, ...) with user-facing errors.

    Raises:
        InputError: If the file is missing, unreadable or has no CRS.
    """
    if not path.exists():
        raise InputError(f"labels file {path} does not exist; check the --labels path")
    if path.is_dir():
        raise InputError(f"{path} is a directory; pass a label file such as buildings.gpkg")
    try:
        frame = gpd.read_file(path)
    except Exception as exc:  # pyogrio raises several unrelated types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(
            f"cannot read labels {path} ({first}); pass a GeoPackage, GeoJSON or Shapefile"
        ) from exc
    if frame.crs is None:
        raise InputError(f"labels {path} have no CRS; assign one (e.g. EPSG:4326) and retry")
    return frame


def read_area(aoi: Path, crs: CRS) -> BaseGeometry:
    """The polygons of an area-of-interest file (``--aoi``) as one geometry in ``crs``.

    Raises:
        InputError: If the file is unusable or holds no polygon.
    """
    frame = read_labels(aoi).to_crs(crs)
    polygons = [g for g in frame.geometry if g is not None and g.area > 0]
    if not polygons:
        raise InputError(f"{aoi} holds no polygon; draw the area of interest as polygons")
    return shapely.union_all(polygons)


def inspect_scenes(paths: Sequence[Path], bands: int = 3) -> list[SceneLayout]:
    """Check the training scenes and work out each one's band layout.

    Scenes may differ in their extra bands (an alpha band in one, none in another), not in
    the image bands the model takes.

    Args:
        paths: The scenes.
        bands: Number of image bands the model takes (3 for RGB).

    Returns:
        The band layout of each scene.

    Raises:
        InputError: If a scene is missing, unreadable, has no CRS, too few bands, or the
            scenes disagree on their image bands.
    """
    if not paths:
        raise InputError("no training images given; pass --images scene.tif")
    layouts: list[SceneLayout] = []
    for path in paths:
        if path.is_dir():
            raise InputError(f"{path} is a directory; pass raster files such as scene.tif")
        if not path.is_file():
            raise InputError(f"training image {path} does not exist; check the --images path")
        try:
            with rasterio.open(path) as src:
                if src.crs is None:
                    raise InputError(f"{path} has no coordinate reference system; assign one")
                names = []
                for i, ci in enumerate(src.colorinterp):
                    name = _COLOR_NAMES.get(ci, f"band{i + 1}")
                    names.append(name if name not in names else f"band{i + 1}")
                nodata = src.nodata
        except RasterioIOError as exc:
            raise InputError(f"{path} is not a readable raster; pass a GeoTIFF") from exc
        alpha = "alpha" if "alpha" in names else None
        data = [n for n in names if n != "alpha"]
        if len(data) < bands:
            raise InputError(f"{path} has {len(data)} image bands; the model needs {bands} (RGB)")
        rgb = [n for n in ("red", "green", "blue") if n in data]
        image = tuple(rgb) if bands == 3 and len(rgb) == 3 else tuple(data[:bands])
        layouts.append(SceneLayout(tuple(names), image, alpha, nodata))
    first = layouts[0]
    for path, layout in zip(paths, layouts, strict=True):
        if layout.image_bands != first.image_bands:
            raise InputError(
                f"{path} has image bands {layout.image_bands}, unlike {paths[0]} "
                f"({first.image_bands}); train on scenes with the same bands"
            )
    return layouts


@dataclass
class PreparedLabels:
    """Footprints with a unique instance id per polygon.

    Attributes:
        frames: One frame per input file, in its own CRS, with :data:`INSTANCE_COLUMN`.
        class_names: Name of each output channel.
        instance_class: Class index (0-based channel) of each instance id; entry 0 unused.
        count: Number of footprints.
    """

    frames: list[gpd.GeoDataFrame]
    class_names: tuple[str, ...]
    instance_class: npt.NDArray[np.int64]
    count: int

    def on(self, crs: CRS) -> gpd.GeoDataFrame:
        """Every footprint, reprojected to ``crs``."""
        return gpd.GeoDataFrame(
            pd.concat([f.to_crs(crs) for f in self.frames], ignore_index=True), crs=crs
        )


def prepare_labels(paths: Sequence[Path], class_column: str | None = None) -> PreparedLabels:
    """Give every footprint a unique instance id and map its class to an output channel.

    Args:
        paths: Label files (any format geopandas reads), in any CRS.
        class_column: Column naming each footprint's class; ``None`` means one class,
            ``building``. Classes become channels in sorted order.

    Returns:
        The prepared labels.

    Raises:
        InputError: If a file is unusable, the class column is missing, or there are no
            polygons at all.
    """
    if not paths:
        raise InputError("no label files given; pass --labels buildings.gpkg")
    frames = []
    for path in paths:
        frame = read_labels(path)
        if class_column is not None and class_column not in frame.columns:
            cols = ", ".join(c for c in frame.columns if c != frame.geometry.name)
            raise InputError(f"labels {path} have no column {class_column!r} (columns: {cols})")
        geom = shapely.make_valid(frame.geometry.values)
        frame = frame.set_geometry(gpd.GeoSeries(geom, crs=frame.crs, index=frame.index))
        frame = frame[~frame.geometry.is_empty & frame.geometry.notna()]
        frame = frame[
            frame.geometry.geom_type.isin(["Polygon", "MultiPolygon", "GeometryCollection"])
        ]
        if class_column is not None:
            frame = frame[frame[class_column].notna()]
        frames.append(frame)
    if class_column is None:
        class_names: tuple[str, ...] = ("building",)
    else:
        class_names = tuple(sorted({str(v) for f in frames for v in f[class_column]}))
    total = sum(len(f) for f in frames)
    if total == 0:
        raise InputError("the label files hold no polygons; footprints must be polygons")
    instance_class = np.zeros(total + 1, dtype=np.int64)
    lookup = {name: k for k, name in enumerate(class_names)}
    out = []
    next_id = 1
    for frame in frames:
        ids = np.arange(next_id, next_id + len(frame), dtype=np.int64)
        if class_column is not None:
            instance_class[ids] = [lookup[str(v)] for v in frame[class_column]]
        out.append(
            gpd.GeoDataFrame({INSTANCE_COLUMN: ids}, geometry=frame.geometry.values, crs=frame.crs)
        )
        next_id += len(ids)
    return PreparedLabels(out, class_names, instance_class, total)


@dataclass(frozen=True)
class Split:
    """The area split of the training scenes.

    Attributes:
        crs: The CRS of the regions (the first scene's).
        train_roi: Where training chips may lie.
        val_roi: The validation strips (the eastern fraction of each scene).
        description: The split in words, for the model card.
        aoi: Whether an area of interest cut the regions (the strip is then not whole
            scene columns, and only its own pixels are scored).
    """

    crs: CRS
    train_roi: BaseGeometry
    val_roi: BaseGeometry
    description: str
    aoi: bool = False


def split_by_area(
    footprints: Sequence[BaseGeometry], val_fraction: float
) -> tuple[BaseGeometry, BaseGeometry]:
    """Hold out the eastern strip of each scene footprint for validation.

    Args:
        footprints: Bounding boxes of the scenes (one CRS).
        val_fraction: Fraction of each scene's width held out (0 < f < 1).

    Returns:
        ``(train_roi, val_roi)``: disjoint regions.
    """
    train, val = [], []
    for geom in footprints:
        xmin, ymin, xmax, ymax = geom.bounds
        cut = xmax - val_fraction * (xmax - xmin)
        train.append(shapely.box(xmin, ymin, cut, ymax))
        val.append(shapely.box(cut, ymin, xmax, ymax))
    val_roi = shapely.union_all(val)
    train_roi = shapely.union_all(train).difference(val_roi)
    return train_roi, val_roi


def scene_split(
    images: Sequence[Path], val_fraction: float, aoi: BaseGeometry | None = None
) -> Split:
    """The validation strips of the scenes, as training and calibration cut them.

    Without ``aoi`` each scene's eastern ``val_fraction`` is its strip. With it, only the
    part of each scene inside ``aoi`` (in the first scene's CRS) is used, and the eastern
    ``val_fraction`` of that part is its strip: labels are complete there alone.

    Raises:
        InputError: If ``val_fraction`` is not between 0 and 1, or ``aoi`` misses every
            scene.
    """
    if not 0.0 < val_fraction < 1.0:
        raise InputError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    boxes = []
    crs: CRS | None = None
    for path in images:
        with rasterio.open(path) as src:
            crs = src.crs if crs is None else crs
            boxes.append(shapely.box(*rasterio.warp.transform_bounds(src.crs, crs, *src.bounds)))
    assert crs is not None
    if aoi is None:
        train_roi, val_roi = split_by_area(boxes, val_fraction)
        return Split(
            crs,
            train_roi,
            val_roi,
            f"validation = eastern {val_fraction:.0%} of each scene's width",
        )
    parts = [b.intersection(aoi) for b in boxes]
    parts = [p for p in parts if not p.is_empty and p.area > 0]
    if not parts:
        raise InputError("the area of interest covers none of the scenes; check --aoi")
    train_roi, val_roi = split_by_area(parts, val_fraction)
    area = shapely.union_all(parts)
    return Split(
        crs,
        train_roi.intersection(area),
        val_roi.intersection(area),
        f"area of interest only; validation = eastern {val_fraction:.0%} of its part of each scene",
        aoi=True,
    )


def _read_scene(
    path: Path,
    layout: SceneLayout,
    crs: CRS,
    pixel_size_m: float,
    resampling: Resampling = Resampling.bilinear,
) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.bool_], rasterio.Affine, float]:
    """A scene's image bands and validity on the model's grid, with its transform and scale."""
    with rasterio.open(path) as src:
        scene_px_m = ground_pixel_size_m(src)
        try:
            check_resampling(scene_px_m, pixel_size_m, reference="--pixel-size", bypass="")
        except InputError as exc:
            raise InputError(f"{path.name}: {exc}") from exc
        if squashed := squashed_pixels(src, path.name, pixel_size_m):
            raise InputError(squashed)  # a grid of squashed roofs would teach their shapes
        factor = pixel_size_m / scene_px_m
        bands = [layout.band_names.index(b) + 1 for b in layout.image_bands]
        scale = RAW_SCALE.get(src.dtypes[0], 1.0)
        if src.crs == crs and abs(factor - 1) <= NATIVE_TOLERANCE:
            image = src.read(bands)
            valid = src.dataset_mask() > 0
            transform = src.transform
        else:
            left, bottom, right, top = rasterio.warp.transform_bounds(src.crs, crs, *src.bounds)
            if src.crs == crs:
                res_x, res_y = src.res[0] * factor, src.res[1] * factor
            else:
                res_x = res_y = (right - left) / src.width * factor
            width = max(1, round((right - left) / res_x))
            height = max(1, round((top - bottom) / res_y))
            transform = from_origin(left, top, res_x, res_y)
            with WarpedVRT(
                src, crs=crs, transform=transform, width=width, height=height, resampling=resampling
            ) as vrt:
                image = vrt.read(bands)
                valid = vrt.dataset_mask() > 0
    if layout.alpha_band is None and layout.nodata is not None:
        valid &= ~(image == layout.nodata).all(axis=0)
    return image, valid, transform, scale


def _extent(
    path: Path, crs: CRS, transform: rasterio.Affine, shape: tuple[int, int]
) -> Extent | None:
    """A scene's extent for the card's ``trained_on``, from the grid it was read onto."""
    bounds = rasterio.transform.array_bounds(shape[0], shape[1], transform)
    lonlat = lonlat_bounds(crs, bounds)
    return None if lonlat is None else Extent.around(path.stem, lonlat)


def build_training_data(
    images: Sequence[Path],
    labels: Sequence[Path],
    *,
    places: Sequence[str] | None = None,
    pixel_size_m: float | None = None,
    class_column: str | None = None,
    val_fraction: float = 0.2,
    chip_size: int = 256,
    targets: TargetOptions | None = TargetOptions(),  # noqa: B008 (frozen)
    aoi: BaseGeometry | None = None,
) -> TrainingData:
    """Read the scenes and footprints for training, whole, onto the model's grid.

    Args:
        images: Scene files (GeoTIFF, RGB first, optional alpha band).
        labels: Footprint files, in any CRS.
        places: The place of each scene (sampling is balanced over places); default: one
            place for all, so chips are drawn in proportion to area.
        pixel_size_m: Ground pixel size to train at, in metres (defaults to the first
            scene's own pixel size); scenes are resampled to it.
        class_column: Optional column of the labels naming each footprint's class.
        val_fraction: Fraction of each scene's width held out for validation.
        chip_size: Training chip size in pixels (each place must hold one outside its strip).
        targets: The targets to make now (``None`` leaves them to the loop, as in a pack).
        aoi: Area of interest, in the first scene's CRS: where the labels are complete.
            Chips, the strip and its truth stay inside it (see :func:`scene_split`).

    Returns:
        The training data.

    Raises:
        InputError: If the inputs are unusable or do not overlap.
    """
    images = [Path(p) for p in images]
    split = scene_split(images, val_fraction, aoi)  # checks val_fraction first
    layouts = inspect_scenes(images)
    if places is not None and len(places) not in (0, len(images)):
        raise InputError(
            f"{len(places)} --place values for {len(images)} --images; give one per image (or none)"
        )
    place_of = list(places) if places else ["all"] * len(images)
    if pixel_size_m is None:
        with rasterio.open(images[0]) as src:
            pixel_size_m = ground_pixel_size_m(src)
    if not pixel_size_m > 0 or not math.isfinite(pixel_size_m):
        raise InputError(f"--pixel-size must be positive, got {pixel_size_m}")
    prepared = prepare_labels([Path(p) for p in labels], class_column)
    footprints = prepared.on(split.crs)
    scenes: list[SceneArrays] = []
    scales = set()
    for path, layout, place in zip(images, layouts, place_of, strict=True):
        image, valid, transform, scale = _read_scene(path, layout, split.crs, pixel_size_m)
        scales.add(scale)
        height, width = valid.shape
        shapes = [
            (g, int(i))
            for g, i in zip(footprints.geometry, footprints[INSTANCE_COLUMN], strict=True)
            if g is not None and not g.is_empty
        ]
        instances = (
            rasterio.features.rasterize(
                shapes, out_shape=(height, width), transform=transform, dtype="int32"
            )
            if shapes
            else np.zeros((height, width), dtype=np.int32)
        )
        held = rasterio.features.geometry_mask(
            [split.val_roi], out_shape=(height, width), transform=transform, invert=True
        )
        held_out = None
        if aoi is None:
            cut_x = transform.c + transform.a * width * (1 - val_fraction)
            cut = (cut_x - transform.c) / transform.a
            trainable = ~held
            trainable[:, max(0, math.floor(cut + 1e-6)) :] = False
            val_start = min(width, math.ceil(cut - 1e-6))
        else:  # inside the area of interest, away from every pixel a strip touches
            trainable = _inside(split.train_roi, (height, width), transform) & ~_inside(
                split.val_roi, (height, width), transform, all_touched=True
            )
            held_out = held
            columns = np.flatnonzero(held.any(axis=0))
            val_start = int(columns[0]) if len(columns) else width
        scenes.append(
            SceneArrays(
                name=path.stem,
                place=place,
                image=image,
                valid=valid,
                instances=instances.astype(np.int32),
                trainable=trainable,
                val_start=val_start,
                held_out=held_out,
                extent=_extent(path, split.crs, transform, (height, width)),
            )
        )
    if not any(int(s.instances.max(initial=0)) > 0 for s in scenes):
        raise InputError(
            "the labels do not overlap the images; check that they cover the same area"
        )
    if len(scales) > 1:
        raise InputError("the scenes differ in data type; train on scenes of one data type")
    data = TrainingData(
        scenes=scenes,
        band_names=layouts[0].image_bands,
        class_names=prepared.class_names,
        output_names=prepared.class_names,
        instance_class=prepared.instance_class,
        footprints=count_footprints(scenes),
        pixel_size_m=float(pixel_size_m),
        scale=scales.pop(),
        split=split.description,
        sources=tuple(str(p) for p in images),
        labels=tuple(str(p) for p in labels),
    )
    for place in data.places:
        if not any(len(chip_origins(s.trainable, chip_size)) for s in scenes if s.place == place):
            raise ChipSizeError(
                f"the training part of {place if places else 'the scenes'} has no room for one "
                f"{chip_size}-px chip; use a smaller --chip-size or a larger area"
            )
    if targets is not None:
        data.make_targets(targets)
    return data


def _inside(
    geom: BaseGeometry,
    shape: tuple[int, int],
    transform: rasterio.Affine,
    all_touched: bool = False,
) -> npt.NDArray[np.bool_]:
    """Pixels of a grid inside ``geom`` (by their centre, or any touch with ``all_touched``)."""
    if geom.is_empty:
        return np.zeros(shape, dtype=bool)
    return rasterio.features.geometry_mask(
        [geom], out_shape=shape, transform=transform, invert=True, all_touched=all_touched
    )
