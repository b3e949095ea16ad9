"""Raster input and output for scenes and probability rasters.

Opening scenes with user-facing errors, band selection, windowed reads with mirrored
borders, ground pixel size, and atomic Cloud Optimized GeoTIFF output.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.shutil
import rasterio.warp
from pyogrio.errors import DataLayerError, DataSourceError
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from rasterio._err import CPLE_BaseError
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioError, RasterioIOError
from rasterio.io import DatasetReader, DatasetWriter
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from geounet.core.extents import Bounds, Extent
from geounet.core.provenance import Provenance
from geounet.errors import InputError, OutputError, OutputExistsError
from geounet.io.atomic import atomic_path, error_detail, register_verifier, register_write_errors
from geounet.io.remote import (
    apply_http_defaults,
    default_tile_cache,
    gdal_path,
    is_local,
    source_stem,
    why_unreachable,
)

register_write_errors(RasterioError, CPLE_BaseError, DataSourceError, DataLayerError)


def verify_raster(path: Path) -> str | None:
    """Check that a written GeoTIFF is complete: ``None`` if so, else what is wrong.

    Opens it and decodes its first and last blocks of every band at full resolution and
    of its smallest overview (a COG stores the full-resolution blocks last, so a write
    cut short by a full disk fails here), with their masks. GDAL does not always raise
    when libtiff fails to write; this is what :func:`~geounet.io.atomic.atomic_path`
    runs before a ``.tif`` lands.
    """
    try:
        with rasterio.open(path) as src:
            levels = [1, *src.overviews(1)[-1:]]
            for level in levels:
                h, w = max(src.height // level, 1), max(src.width // level, 1)
                for row, col in ((0, 0), (h - 1, w - 1)):
                    window = Window(col * level, row * level, level, level)
                    src.read(window=window, out_shape=(src.count, 1, 1))
                    src.read_masks(1, window=window, out_shape=(1, 1))
    except (RasterioError, CPLE_BaseError) as exc:
        return error_detail(exc)
    return None


register_verifier(".tif", verify_raster)


def quiet_libtiff() -> bool:
    """Stop libtiff printing its own error lines when GDAL's printing is off too.

    When a disk fills up, libtiff prints ``_tiffWriteProc: No space left on device.``
    straight to stderr, past GDAL's error handlers, before geounet's one-line error says
    the same. With ``CPL_LOG`` set to the null device (what the ``geounet`` command sets,
    unless ``CPL_LOG`` or ``CPL_DEBUG`` is set already), libtiff's process-wide error
    handler is removed as well; GDAL still reports every failure, and files are checked
    before they land. A no-op where libtiff cannot be found (not Linux).

    Returns:
        Whether libtiff was quietened.
    """
    if os.environ.get("CPL_LOG") != os.devnull:
        return False
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if len(line.split()) >= 6}
    except OSError:
        return False
    quiet = False
    # every copy loaded (GDAL's, and those that pyproj or Pillow wheels bundle)
    for lib in sorted(p for p in paths if Path(p).name.startswith("libtiff")):
        try:
            set_handler = ctypes.CDLL(lib).TIFFSetErrorHandler
        except (OSError, AttributeError):
            continue
        set_handler.restype = ctypes.c_void_p
        set_handler.argtypes = [ctypes.c_void_p]
        set_handler(None)
        quiet = True
    return quiet


quiet_libtiff()

Reader: TypeAlias = DatasetReader | WarpedVRT

GDAL_LOCK = threading.Lock()
"""Serialises the GDAL I/O of worker threads with the driver's writes in one process.

GDAL's block cache is process-wide: a thread that needs room for a block flushes the
least recently used ones, dirty blocks of datasets that other threads write included.
A thread reading the scene (a dask worker thread, or predict's read-ahead thread) could
so write a block of the output GeoTIFF or of its internal mask (another TIFF directory
of the same file) while the driver wrote the other, and the two corrupted libtiff's
shared state: "An error occurred while writing
a dirty block from GDALRasterBand::IRasterIO", "Can not write tiles to a striped
image", or a segmentation fault. Readers take it to read and the writer holds it while
it writes; workers in other processes have their own cache and never wait for it.
"""

GDAL_CACHE_BYTES = 48 * 1024 * 1024
"""GDAL's block cache while streaming a scene (its default, 5 % of RAM, grows with it).

48 MB holds what streaming needs at 16384 px of width (the scene's blocks under one tile
row, the output's partly written block rows, the vectoriser's windows) without letting
the cache, which fills up on large scenes only, make their peak memory grow; a larger
cache was no faster in the benchmarks.

In bytes: rasterio hands ``GDAL_CACHEMAX`` to ``GDALSetCacheMax64``, which takes bytes (a
value of 256 would leave a 256-byte cache, and every partly written block would be
flushed, re-read and re-compressed)."""


def open_scene(path: str | os.PathLike[str]) -> DatasetReader:
    """Open a georeferenced raster for reading, with user-facing errors.

    Args:
        path: The scene (any GDAL raster: GeoTIFF, COG, VRT, JPEG2000 ...).

    Returns:
        An open rasterio dataset (the caller closes it).

    Raises:
        InputError: If the path is missing, a directory, not a raster, or has no CRS or
            geotransform.
    """
    text = os.fspath(path)
    if not is_local(text):
        return _check_georeference(_open_remote(text), text)
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p} is a directory; pass a raster file such as scene.tif")
    if not p.exists():
        raise InputError(f"{p} does not exist; check the path")
    if p.stat().st_size == 0:
        raise InputError(f"{p} is an empty file; pass a GeoTIFF or another GDAL raster")
    try:
        with warnings.catch_warnings():
            # a missing geotransform gets the one-line error below, not a warning as well
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(p)
    except RasterioIOError as exc:
        raise InputError(
            f"{p} is not a readable raster; pass a GeoTIFF or another GDAL raster"
        ) from exc
    return _check_georeference(src, p)


def _open_remote(source: str) -> DatasetReader:
    """Open a URL, GDAL virtual path or tile-service window (see :mod:`geounet.io.remote`)."""
    apply_http_defaults()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(gdal_path(source))
    except RasterioIOError as exc:
        reason = why_unreachable(source) or error_detail(exc)
        raise InputError(
            f"cannot read {source.removeprefix('/vsicurl/')}: {reason}; check the URL and "
            "that the server answers with a raster (a COG, or tiles)"
        ) from exc


def _check_georeference(src: DatasetReader, source: Path | str) -> DatasetReader:
    """Refuse a scene without a CRS or a geotransform (closing it), saying how to fix it."""
    p = str(source)
    name = Path(p).name if isinstance(source, Path) else p
    stem = source_stem(p)
    gcps, gcp_crs = src.gcps
    if src.transform.is_identity and (gcps or src.rpcs):
        src.close()
        kind = "ground control points" if gcps else "RPC coefficients"
        epsg = f"EPSG:{gcp_crs.to_epsg()}" if gcp_crs and gcp_crs.to_epsg() else "EPSG:32636"
        raise InputError(
            f"{p} is georeferenced by {kind}, not by a geotransform; warp it onto a map grid "
            f"first, e.g. gdalwarp -t_srs {epsg} {name} {stem}_warped.tif"
        )
    if src.crs is None:
        src.close()
        raise InputError(
            f"{p} has no coordinate reference system; assign one, e.g. "
            f"gdal_edit.py -a_srs EPSG:32636 {name}"
        )
    if src.transform.is_identity:
        src.close()
        raise InputError(f"{p} has no geotransform (not georeferenced); georeference it first")
    return src


def data_bands(src: Reader) -> list[int]:
    """1-based indexes of the bands that are image data (alpha bands excluded)."""
    return [i + 1 for i, ci in enumerate(src.colorinterp) if ci != ColorInterp.alpha]


def select_bands(src: Reader, expected: int, bands: list[int] | None = None) -> list[int]:
    """Choose the scene bands that feed the model, in the model's order.

    Args:
        src: The scene.
        expected: Number of bands the model takes.
        bands: 1-based band indexes chosen by the user (``--bands``), or ``None`` for the
            scene's data bands (all bands but alpha).

    Returns:
        1-based band indexes.

    Raises:
        InputError: If an index is out of range or the count differs from the model's.
    """
    if bands:
        bad = [b for b in bands if not 1 <= b <= src.count]
        if bad:
            raise InputError(f"--bands {bad} out of range: the scene has bands 1..{src.count}")
    chosen = list(bands) if bands else data_bands(src)
    if not bands and len(chosen) == 1 and expected > 1 and _has_palette(src):
        name = Path(src.name).name
        raise InputError(
            f"{name} is a palette (colour-mapped) image; expand it to {expected} bands "
            f"first, e.g. gdal_translate -expand rgb {name} {Path(name).stem}_rgb.tif"
        )
    if not bands and len(chosen) < expected:
        raise InputError(
            f"the model takes {expected} bands but the scene has only {len(chosen)} image "
            f"band{'s' if len(chosen) != 1 else ''}; it needs {expected}-band"
            + (" (RGB)" if expected == 3 else "")
            + " imagery"
        )
    if len(chosen) != expected:
        raise InputError(
            f"the model takes {expected} bands but the scene offers {len(chosen)} "
            f"(bands {chosen}); choose them with --bands, e.g. --bands "
            + ",".join(str(i) for i in range(1, expected + 1))
        )
    return chosen


def _has_palette(src: Reader) -> bool:
    try:
        return src.colorinterp[0] == ColorInterp.palette and bool(src.colormap(1))
    except ValueError:  # no colour table
        return False


def read_window(
    src: Reader, bands: list[int], row: int, col: int, height: int, width: int
) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """Read a window that may extend past the scene, mirroring the scene at its edges.

    Args:
        src: The scene.
        bands: 1-based band indexes to read.
        row: Top row (may be negative).
        col: Left column (may be negative).
        height: Rows to return.
        width: Columns to return.

    Returns:
        ``(image, valid)``: image of shape (bands, height, width) in the scene's dtype, and
        a boolean validity mask of shape (height, width) (False where the scene is nodata
        and in the mirrored border, NaN pixels included).

    Raises:
        InputError: If the pixels cannot be read (a truncated or corrupt file).
    """
    r0, c0 = max(row, 0), max(col, 0)
    r1, c1 = min(row + height, src.height), min(col + width, src.width)
    win = Window.from_slices((r0, r1), (c0, c1))
    try:
        image = src.read(bands, window=win)
        valid = src.read_masks(1, window=win) > 0
    except RasterioError as exc:
        detail = error_detail(exc)
        if not is_local(src.name):
            raise InputError(
                f"cannot read pixels of {src.name} from its server ({detail}); check the "
                "connection and run again (what was read is cached by GDAL for tiles)"
            ) from exc
        raise InputError(
            f"cannot read pixels of {src.name} ({detail}); the file may be truncated or "
            "corrupt: re-download or re-export it"
        ) from exc
    if image.dtype.kind == "f":
        finite = np.isfinite(image).all(axis=0)
        valid &= finite
        image = np.where(np.isfinite(image), image, 0)
    pads = ((r0 - row, row + height - r1), (c0 - col, col + width - c1))
    if any(p for pair in pads for p in pair):
        # mirror the scene at its edges (symmetric: the edge pixel repeats once)
        image = np.pad(image, ((0, 0), *pads), mode="symmetric")
        valid = np.pad(valid, pads, mode="constant", constant_values=False)
    return image, valid


def centre_utm(src: Reader) -> ProjCRS:
    """The UTM zone of the scene centre."""
    crs = ProjCRS.from_user_input(src.crs.to_wkt())
    cx, cy = src.xy(src.height // 2, src.width // 2)
    lon, lat = Transformer.from_crs(crs, 4326, always_xy=True).transform(cx, cy)
    zone = int((lon + 180) // 6) % 60 + 1
    return ProjCRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def ground_pixel_xy_m(src: Reader) -> tuple[float, float]:
    """Ground width and height of a pixel at the scene centre, in metres.

    Works for any CRS (degrees included) by measuring the centre pixel in the UTM zone
    of the scene centre: in degrees, a pixel as many degrees wide as tall is narrower on
    the ground than tall, by the cosine of the latitude.
    """
    crs = ProjCRS.from_user_input(src.crs.to_wkt())
    cx, cy = src.xy(src.height // 2, src.width // 2)
    to_utm = Transformer.from_crs(crs, centre_utm(src), always_xy=True)
    t = src.transform
    x0, y0 = to_utm.transform(cx, cy)
    x1, y1 = to_utm.transform(cx + t.a, cy + t.d)
    x2, y2 = to_utm.transform(cx + t.b, cy + t.e)
    return float(np.hypot(x1 - x0, y1 - y0)), float(np.hypot(x2 - x0, y2 - y0))


def ground_pixel_size_m(src: Reader) -> float:
    """Mean ground size of a pixel at the scene centre, in metres (any CRS).

    See :func:`ground_pixel_xy_m`.
    """
    dx, dy = ground_pixel_xy_m(src)
    return (dx + dy) / 2 if dx and dy else max(dx, dy)


ANISOTROPY_TOLERANCE = 0.15
"""How much wider than tall (or taller than wide) a scene's pixels may be on the ground
before geounet says so (:func:`squashed_pixels`)."""


def squashed_pixels(src: Reader, name: str, model_px_m: float) -> str | None:
    """What to do about a scene whose pixels are not square on the ground, or ``None``.

    A scene in degrees whose pixels are as many degrees wide as tall (EPSG:4326 exports)
    has pixels narrower than tall on the ground, by the cosine of the latitude (half at
    60 degrees). Resampling onto a model's pixel (``geounet predict``, and training's
    grid) scales both sides alike, so the model would see every roof squashed.

    Args:
        src: The open scene.
        name: Its file name, for the message.
        model_px_m: The model's pixel, in metres (the ``gdalwarp`` command's).

    Returns:
        One line: what is wrong and the ``gdalwarp`` command that reprojects the scene to
        square pixels in its UTM zone; ``None`` if its pixels are square enough.
    """
    dx, dy = ground_pixel_xy_m(src)
    if min(dx, dy) <= 0 or max(dx, dy) / min(dx, dy) <= 1 + ANISOTROPY_TOLERANCE:
        return None
    utm = centre_utm(src).to_epsg()
    stem = Path(name).stem
    return (
        f"{name}: its pixels are {dx:.3g} m wide and {dy:.3g} m tall on the ground, so the "
        "model sees its roofs squashed; reproject it to square pixels first, e.g. gdalwarp "
        f"-t_srs EPSG:{utm} -tr {model_px_m:.3g} {model_px_m:.3g} -r bilinear {name} "
        f"{stem}_utm.tif"
    )


def lonlat_bounds(crs: Any, bounds: Sequence[float]) -> Bounds | None:
    """Bounds in ``crs`` as west, south, east, north in degrees (``None`` without a CRS).

    The edges are densified before reprojecting, so the box holds the whole area.
    """
    if crs is None:
        return None
    west, south, east, north = rasterio.warp.transform_bounds(
        crs, "EPSG:4326", *bounds, densify_pts=21
    )
    return (float(west), float(south), float(east), float(north))


def scene_extent(path: str | os.PathLike[str]) -> Extent | None:
    """The extent of a scene file for a model card (``None`` without a CRS)."""
    with rasterio.open(path) as src:
        bounds = lonlat_bounds(src.crs, src.bounds)
    return None if bounds is None else Extent.around(Path(path).stem, bounds)


def check_outputs(paths: list[Path], overwrite: bool) -> None:
    """Fail early if an output exists and may not be overwritten, or its folder is unusable.

    Raises:
        OutputExistsError: If an output exists and ``overwrite`` is false.
        OutputError: If the output folder cannot be created or written.
    """
    for p in paths:
        if p.exists() and not overwrite:
            raise OutputExistsError(f"{p} exists; pass --overwrite to replace it")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output folder {p.parent} ({exc.strerror})") from exc
        if not os.access(p.parent, os.W_OK):
            raise OutputError(f"output folder {p.parent} is not writable; choose --out-dir")


def probability_profile(src: Reader, dtype: str, count: int = 1) -> dict[str, Any]:
    """Creation profile of the working probability GeoTIFF on ``src``'s grid.

    Args:
        src: The grid to match (CRS, transform, size).
        dtype: ``uint8`` (probability * 255) or ``float32``.
        count: Bands (one per output channel of the model).
    """
    return {
        "driver": "GTiff",
        "width": src.width,
        "height": src.height,
        "count": count,
        "dtype": dtype,
        "crs": src.crs,
        "transform": src.transform,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        # an intermediate file (the outputs are DEFLATE COG copies): fast ZSTD, one band
        # per block so that reading one channel decodes only that channel
        "compress": "zstd",
        "zstd_level": 1,
        "predictor": 2 if dtype == "uint8" else 3,
        "interleave": "band",
        "BIGTIFF": "IF_SAFER",
    }


def describe_probability(
    dst: DatasetWriter, scale: float, class_names: tuple[str, ...] = ("building",)
) -> None:
    """Tag probability bands so GIS users can read them: description, scale, units.

    Args:
        dst: The open output.
        scale: Probability per stored unit (1/255 for uint8, 1 for float32).
        class_names: One name per band; band 1 is the building probability.
    """
    # grey, not the red a GeoTIFF's first band defaults to: a probability is no colour
    dst.colorinterp = [ColorInterp.gray] * dst.count
    for band, name in enumerate(class_names, start=1):
        label = name.removesuffix(" probability")
        dst.set_band_description(band, f"{label} probability")
        dst.update_tags(
            band,
            PROBABILITY_SCALE=f"{scale:.10g}",
            DESCRIPTION=(
                f"probability of {label} = value * PROBABILITY_SCALE; masked pixels are no data"
            ),
        )


def write_cog(src_path: Path, dst_path: Path, band: int | list[int] | None = None) -> None:
    """Copy a tiled GeoTIFF to a Cloud Optimized GeoTIFF with overviews (streaming).

    Args:
        src_path: A tiled GeoTIFF, with an internal mask for no data.
        dst_path: Destination (written as is: callers use :func:`atomic_path`).
        band: Copy only this band, or these bands in this order (1-based); ``None``
            copies all.
    """
    with rasterio.open(src_path) as src:
        predictor = "2" if src.dtypes[0] == "uint8" else "3"
    bands = [band] if isinstance(band, int) else band
    source = (
        f"vrt://{Path(src_path).resolve()}?bands={','.join(map(str, bands))}" if bands else src_path
    )
    rasterio.shutil.copy(
        source,
        dst_path,
        driver="COG",
        COMPRESS="DEFLATE",
        PREDICTOR=predictor,
        BLOCKSIZE="512",
        OVERVIEWS="AUTO",
        RESAMPLING="AVERAGE",
        BIGTIFF="IF_SAFER",
        NUM_THREADS="ALL_CPUS",
    )


def local_copy(source: str, cache: Path | None = None) -> Path:
    """A local copy of a remote scene, fetched once into the cache (for training).

    Training reads every scene whole, so a URL is copied once, as a COG, to
    ``<cache>/scenes/<hash>/<stem>.tif`` (``cache`` defaults to the parent of
    :func:`~geounet.io.remote.default_tile_cache`); a local path is returned as it is.

    Raises:
        InputError: If the source cannot be read.
        OutputError: If the copy cannot be written.
    """
    if is_local(source):
        return Path(source)
    base = cache if cache is not None else default_tile_cache().parent
    folder = base / "scenes" / hashlib.sha256(source.encode()).hexdigest()[:16]
    path = folder / f"{source_stem(source)}.tif"
    if path.is_file():
        return path
    with open_scene(source) as src, atomic_path(path) as tmp:
        rasterio.shutil.copy(src, tmp, driver="COG", COMPRESS="DEFLATE", BIGTIFF="IF_SAFER")
    return path


def read_provenance(prob: str | os.PathLike[str]) -> Provenance | None:
    """How a probability raster was made, from its metadata (``None`` if it does not say).

    See :mod:`geounet.core.provenance`; an unreadable raster gives ``None`` too (the
    caller's own read names the problem).
    """
    try:
        with rasterio.open(prob) as src:
            return Provenance.from_tags(dict(src.tags()))
    except RasterioError:
        return None


def add_tags(path: Path, tags: dict[str, str]) -> None:
    """Add dataset metadata items to a GeoTIFF being written.

    Raises:
        RasterioIOError: If the file is not a readable GeoTIFF (a write cut short by a
            full disk), which :func:`~geounet.io.atomic.atomic_path` reports as a write error.
    """
    try:
        with rasterio.open(path, "r+") as dst:
            dst.update_tags(**tags)
    except TypeError as exc:  # rasterio's answer to an unrecognised file opened for update
        raise RasterioIOError(f"{path} is incomplete: {exc}") from exc
