"""Training data through torchgeo: scenes, footprints with instance ids, and the area split.

Imagery is a torchgeo :class:`~torchgeo.datasets.RasterDataset`; footprints are a
:class:`~torchgeo.datasets.VectorDataset` that burns a unique *instance id* per polygon, so the
border weight map can be computed per chip. The two are intersected with ``&``: labels in
another CRS are reprojected onto the imagery's grid on the fly.

The validation split is by area: the eastern strip (a fraction of the width) of every scene is
held out, and training chips are sampled only from the rest, so no validation pixel is ever
seen in training.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import rasterio
import shapely
import torch
from rasterio.enums import ColorInterp
from rasterio.errors import RasterioIOError
from shapely.geometry.base import BaseGeometry
from torchgeo.datasets import IntersectionDataset, RasterDataset, VectorDataset

from geounet.errors import InputError
from geounet.train.weights import body_map, border_weight_map, contact_map, depth_map

INSTANCE_COLUMN = "geounet_instance"
"""Column holding the instance id (1, 2, ...; 0 is background) in the prepared labels."""


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


_COLOR_NAMES = {
    ColorInterp.red: "red",
    ColorInterp.green: "green",
    ColorInterp.blue: "blue",
    ColorInterp.alpha: "alpha",
}


def inspect_scenes(paths: Sequence[Path], bands: int = 3) -> SceneLayout:
    """Check the training scenes and work out their band layout.

    Args:
        paths: The scenes.
        bands: Number of image bands the model takes (3 for RGB).

    Returns:
        The shared band layout of the scenes.

    Raises:
        InputError: If a scene is missing, unreadable, has no CRS, too few bands, or the
            scenes disagree on their bands.
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
        if layout != first:
            raise InputError(
                f"{path} has bands {layout.band_names}, unlike {paths[0]} ({first.band_names}); "
                "train on scenes with the same bands"
            )
    return first


class SceneDataset(RasterDataset):
    """The training scenes as a torchgeo raster dataset (every band, alpha included)."""

    filename_glob = "*"
    is_image = True

    def __init__(
        self,
        paths: Sequence[Path],
        layout: SceneLayout,
        crs: Any = None,
        res: float | tuple[float, float] | None = None,
    ) -> None:
        """Index the scenes.

        Args:
            paths: The scene files.
            layout: Their band layout (from :func:`inspect_scenes`).
            crs: CRS to sample in (defaults to the first scene's).
            res: Resolution to sample at, in CRS units (defaults to the first scene's).
        """
        self.all_bands = layout.band_names
        super().__init__(paths=[str(p) for p in paths], crs=crs, res=res)


class FootprintDataset(VectorDataset):
    """Footprints rasterised with their instance id (prepared by :func:`prepare_labels`)."""

    filename_glob = "*.gpkg"

    def __init__(self, paths: Sequence[Path], crs: Any, res: tuple[float, float]) -> None:
        """Index the prepared label files.

        Args:
            paths: Prepared label files (each with an instance-id column).
            crs: CRS of the imagery (labels are reprojected to it).
            res: Resolution of the imagery, in CRS units.
        """
        super().__init__(
            paths=[str(p) for p in paths], crs=crs, res=res, label_name=INSTANCE_COLUMN
        )


@dataclass
class PreparedLabels:
    """Footprints rewritten with a unique instance id per polygon.

    Attributes:
        files: The rewritten label files (one per input file, each in its own CRS).
        class_names: Name of each output channel.
        instance_class: Class index (0-based channel) of each instance id; entry 0 unused.
        count: Number of footprints.
        tmpdir: The temporary folder holding ``files`` (removed by :meth:`cleanup`).
    """

    files: list[Path]
    class_names: tuple[str, ...]
    instance_class: npt.NDArray[np.int64]
    count: int
    tmpdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def cleanup(self) -> None:
        """Remove the temporary label files."""
        if self.tmpdir is not None:
            self.tmpdir.cleanup()
            self.tmpdir = None


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


def prepare_labels(
    paths: Sequence[Path], class_column: str | None = None, workdir: Path | None = None
) -> PreparedLabels:
    """Give every footprint a unique instance id and map its class to an output channel.

    Args:
        paths: Label files (any format geopandas reads), in any CRS.
        class_column: Column naming each footprint's class; ``None`` means one class,
            ``building``. Classes become channels in sorted order.
        workdir: Folder for the rewritten files (a temporary folder by default).

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
        frames.append(frame)
    if class_column is None:
        class_names: tuple[str, ...] = ("building",)
    else:
        values = sorted({str(v) for f in frames for v in f[class_column].dropna()})
        class_names = tuple(values)
    total = sum(len(f) for f in frames)
    if total == 0:
        raise InputError("the label files hold no polygons; footprints must be polygons")
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="geounet-labels-")
        workdir = Path(tmp.name)
    instance_class = np.zeros(total + 1, dtype=np.int64)
    files = []
    next_id = 1
    for i, frame in enumerate(frames):
        ids = np.arange(next_id, next_id + len(frame), dtype=np.int64)
        if class_column is not None:
            frame = frame[frame[class_column].notna()]
            ids = ids[: len(frame)]
            lookup = {name: k for k, name in enumerate(class_names)}
            instance_class[ids] = [lookup[str(v)] for v in frame[class_column]]
        out = gpd.GeoDataFrame(
            {INSTANCE_COLUMN: ids}, geometry=frame.geometry.values, crs=frame.crs
        )
        target = workdir / f"labels_{i}.gpkg"
        if len(out):
            out.to_file(target, layer="labels", driver="GPKG")
            files.append(target)
        next_id += len(ids)
    return PreparedLabels(files, class_names, instance_class, next_id - 1, tmp)


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


@dataclass
class TrainingData:
    """Imagery and footprints intersected, with the area split.

    Attributes:
        dataset: The intersection (imagery & footprints) with :class:`ChipTransform` applied.
        layout: Band layout of the scenes.
        labels: The prepared footprints.
        train_roi: Region that training chips are sampled from (dataset CRS).
        val_roi: Held-out region for validation (dataset CRS).
        res: Sampling resolution in CRS units (x, y).
        pixel_size_m: Ground size of a sampled pixel, in metres.
        output_names: Names of the model's output channels: the label classes, then
            ``body`` and ``contact`` when those targets are made.
        chip_transform: The transform that makes each chip's targets.
    """

    dataset: IntersectionDataset
    layout: SceneLayout
    labels: PreparedLabels
    train_roi: BaseGeometry
    val_roi: BaseGeometry
    res: tuple[float, float]
    pixel_size_m: float
    output_names: tuple[str, ...] = ()
    chip_transform: ChipTransform | None = None


def split_by_area(
    footprints: Sequence[BaseGeometry], val_fraction: float
) -> tuple[BaseGeometry, BaseGeometry]:
    """Hold out the eastern strip of each scene footprint for validation.

    Args:
        footprints: Bounding boxes of the scenes (dataset CRS).
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


def build_training_data(
    images: Sequence[Path],
    labels: Sequence[Path],
    *,
    pixel_size_m: float | None = None,
    class_column: str | None = None,
    val_fraction: float = 0.2,
    w0: float = 10.0,
    sigma: float = 5.0,
    chip_size: int = 256,
    contact_radius: float = 0.0,
    body_erosion: float = 0.0,
    body_target: str = "eroded",
    wall_w0: float = 0.0,
) -> TrainingData:
    """Open the scenes and footprints for training.

    Args:
        images: Scene files (GeoTIFF, RGB first, optional alpha band).
        labels: Footprint files, in any CRS.
        pixel_size_m: Ground pixel size to train at, in metres (defaults to the first
            scene's own pixel size); scenes are resampled to it on the fly.
        class_column: Optional column of the labels naming each footprint's class.
        val_fraction: Fraction of each scene's width held out for validation.
        w0: Border weight amplitude.
        sigma: Border weight width, in pixels.
        chip_size: Training chip size in pixels (each part of the split must hold one).
        contact_radius: When positive, add a ``contact`` target channel: pixels within
            this many pixels of two different buildings.
        body_erosion: When positive, add a ``body`` target channel: building pixels at
            least this many pixels away from outlines and neighbours.
        body_target: ``eroded``, or ``depth``: the ``body`` channel learns each roof's
            depth (0 on its outline, 1 along its middle) and is made whatever
            ``body_erosion`` is.
        wall_w0: Border weight amplitude on building pixels along walls shared with a
            neighbour (0 disables it).

    Returns:
        The training data.

    Raises:
        InputError: If the inputs are unusable or do not overlap.
    """
    from geounet.raster import ground_pixel_size_m

    if not 0.0 < val_fraction < 1.0:
        raise InputError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    images = [Path(p) for p in images]
    layout = inspect_scenes(images)
    with rasterio.open(images[0]) as src:
        native_m = ground_pixel_size_m(src)
        crs = src.crs
        native_res = src.res
    if pixel_size_m is None:
        pixel_size_m = native_m
    if pixel_size_m <= 0:
        raise InputError(f"--pixel-size must be positive, got {pixel_size_m}")
    factor = pixel_size_m / native_m
    res = (native_res[0] * factor, native_res[1] * factor)
    prepared = prepare_labels([Path(p) for p in labels], class_column)
    if not prepared.files:
        prepared.cleanup()
        raise InputError("the label files hold no polygons; footprints must be polygons")
    scenes = SceneDataset(images, layout, crs=crs, res=res)
    footprints = FootprintDataset(prepared.files, crs=scenes.crs, res=scenes.res)
    transform = ChipTransform(
        layout,
        prepared.instance_class,
        len(prepared.class_names),
        w0,
        sigma,
        contact_radius,
        body_erosion,
        body_target,
        wall_w0,
    )
    dataset = IntersectionDataset(scenes, footprints, transforms=transform)
    if len(dataset.index) == 0:
        prepared.cleanup()
        raise InputError(
            "the labels do not overlap the images; check that they cover the same area"
        )
    train_roi, val_roi = split_by_area(list(scenes.index.geometry), val_fraction)
    need = chip_size * max(res)
    for name, roi in (("training", train_roi), ("validation", val_roi)):
        xmin, ymin, xmax, ymax = roi.bounds
        if min(xmax - xmin, ymax - ymin) < need * 0.999 and name == "training":
            prepared.cleanup()
            raise InputError(
                f"the {name} part of the scenes is smaller than one {chip_size}-px chip; "
                "use a smaller --chip-size or larger scenes"
            )
    return TrainingData(
        dataset=dataset,
        layout=layout,
        labels=prepared,
        train_roi=train_roi,
        val_roi=val_roi,
        res=(float(scenes.res[0]), float(scenes.res[1])),
        pixel_size_m=float(pixel_size_m),
        output_names=prepared.class_names
        + (("body",) if transform.makes_body else ())
        + (("contact",) if contact_radius > 0 else ()),
        chip_transform=transform,
    )
