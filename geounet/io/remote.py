"""Scenes that are not local files: COG URLs, GDAL virtual paths and XYZ/TMS tile services.

GDAL reads all of them already; this module turns what a mapper has into a path GDAL
opens, and names the outputs after it:

* ``https://host/scene.tif`` (an OpenAerialMap image, a STAC asset) becomes
  ``/vsicurl/https://host/scene.tif``: GDAL reads only the windows it needs, by HTTP
  range requests. ``s3://``, ``gs://`` and ``az://`` URLs map onto ``/vsis3/``,
  ``/vsigs/`` and ``/vsiaz/``; ``/vsi...`` paths pass as they are.
* ``https://host/{z}/{x}/{y}.png`` with a bounding box and a zoom level becomes a GDAL
  WMS description (its TMS mini-driver) of the service's EPSG:3857 tile grid, written in
  the tile cache, and a ``vrt://`` window of it over the bounding box, aligned on the
  tiles. GDAL fetches the tiles the windows need and keeps them in the cache, so a rerun
  fetches nothing.

HTTP reads time out and retry on transient errors (:data:`HTTP_DEFAULTS`, GDAL's own
options, which a user's environment overrides).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from geounet.errors import InputError, OutputError
from geounet.io.atomic import write_text

HTTP_DEFAULTS = {
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_TIMEOUT": "60",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
}
"""GDAL's HTTP options that geounet sets unless the environment does: give up connecting
after 10 s and on a request after 60 s (a server that stalls is an error, not a hang),
retry 429/5xx answers three times, and do not list the server's folder to find sidecar
files (one request per open instead of several)."""

VSI_PREFIXES = {"http": "/vsicurl/", "https": "/vsicurl/", "s3": "/vsis3/", "gs": "/vsigs/"}
VSI_PREFIXES["az"] = "/vsiaz/"

WEB_MERCATOR_HALF = 20037508.342789244
"""Half the side of the EPSG:3857 square of the XYZ tile grid, in metres."""

TILE_PX = 256
MAX_ZOOM = 24
MAX_TILES = 40_000
"""Most tiles one prediction may ask a service for (about 2.6 gigapixels)."""

_TEMPLATE = re.compile(r"\{(z|x|y|-y)\}")


def apply_http_defaults() -> None:
    """Set :data:`HTTP_DEFAULTS` in the environment where it does not set them itself.

    GDAL reads its configuration from the environment, in every thread and in dask worker
    processes started afterwards.
    """
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def is_tile_template(source: str) -> bool:
    """Whether ``source`` is an XYZ/TMS URL template with ``{z}``, ``{x}`` and ``{y}``."""
    found = set(_TEMPLATE.findall(source))
    return "z" in found and "x" in found and bool({"y", "-y"} & found)


def is_remote(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` is a URL or a GDAL virtual path rather than a local file."""
    text = os.fspath(source)
    return text.startswith("/vsi") or urlparse(text).scheme.lower() in VSI_PREFIXES


def is_local(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` is a plain local path: not a URL, ``/vsi`` path or ``vrt://`` string."""
    text = os.fspath(source)
    return not (is_remote(text) or text.startswith("vrt://"))


def gdal_path(source: str | os.PathLike[str]) -> str:
    """The path GDAL opens for a scene: URLs become ``/vsicurl/`` (etc.) paths.

    Raises:
        InputError: If ``source`` is a URL of a scheme GDAL cannot read.
    """
    text = os.fspath(source)
    if text.startswith("/vsi") or not is_remote(text):
        return text
    url = urlparse(text)
    scheme = url.scheme.lower()
    if scheme in ("http", "https"):
        return VSI_PREFIXES[scheme] + text
    return f"{VSI_PREFIXES[scheme]}{url.netloc}{url.path}"


def why_unreachable(source: str) -> str | None:
    """Why an http(s) URL cannot be read, asked of its server directly (or ``None``).

    GDAL says only that the path "does not exist in the file system"; one HEAD request
    tells a 404 from a refused connection or a server that does not answer in time.
    """
    import socket
    import urllib.error
    import urllib.request

    text = source.removeprefix("/vsicurl/")
    if urlparse(text).scheme.lower() not in ("http", "https"):
        return None
    timeout = float(os.environ.get("GDAL_HTTP_CONNECTTIMEOUT", "10"))
    request = urllib.request.Request(text, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310 (http(s) only)
            return None
    except urllib.error.HTTPError as exc:
        return f"the server answers HTTP {exc.code} ({exc.reason})"
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            return "the connection was refused (is the server running?)"
        if isinstance(reason, socket.timeout | TimeoutError):
            return f"the server did not answer within {timeout:g} s"
        return f"the server cannot be reached ({reason})"
    except TimeoutError:
        return f"the server did not answer within {timeout:g} s"
    except OSError as exc:
        return f"the server cannot be reached ({exc})"


def source_stem(source: str | os.PathLike[str]) -> str:
    """A file-name stem for the outputs of a scene: the file's stem, or a URL's last part.

    ``https://host/a/scene.tif?sig=x`` gives ``scene``; a tile template gives its last
    fixed path part (``https://host/layer/{z}/{x}/{y}.png`` gives ``layer``), or its host.
    """
    text = os.fspath(source)
    if not is_remote(text):
        return Path(text).stem
    url = urlparse(text.removeprefix("/vsicurl/"))
    path = url.path if "://" in text else text
    parts = [unquote(p) for p in path.split("/") if p and not _TEMPLATE.search(p)]
    stem = Path(parts[-1]).stem if parts else (url.hostname or "scene")
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem).strip("._") or "scene"


@dataclass(frozen=True)
class TileWindow:
    """Where a bounding box lies on a service's tile grid at one zoom level.

    Attributes:
        zoom: The zoom level.
        col: First pixel column of the window on the zoom's whole-world grid.
        row: First pixel row.
        width: Pixels across (whole tiles).
        height: Pixels down (whole tiles).
    """

    zoom: int
    col: int
    row: int
    width: int
    height: int

    @property
    def tiles(self) -> int:
        """Number of tiles the window covers."""
        return (self.width // TILE_PX) * (self.height // TILE_PX)


def tile_window(bbox: tuple[float, float, float, float], zoom: int) -> TileWindow:
    """The whole tiles of zoom level ``zoom`` that cover ``bbox`` (W, S, E, N degrees).

    Raises:
        InputError: If the box is not a valid W,S,E,N box in degrees, the zoom is out of
            range, or the box needs more than :data:`MAX_TILES` tiles.
    """
    west, south, east, north = bbox
    if not all(math.isfinite(v) for v in bbox):
        raise InputError(f"--bbox {bbox} holds a value that is not a number")
    if not (-180 <= west < east <= 180 and -85.05 <= south < north <= 85.05):
        raise InputError(
            f"--bbox {','.join(f'{v:g}' for v in bbox)} must be W,S,E,N in degrees "
            "(west < east, south < north, latitudes within +-85), e.g. 32.58,0.31,32.59,0.32"
        )
    if not 0 <= zoom <= MAX_ZOOM:
        raise InputError(f"--zoom {zoom} must be between 0 and {MAX_ZOOM}")
    n = 2**zoom

    def tile_x(lon: float) -> float:
        return (lon + 180) / 360 * n

    def tile_y(lat: float) -> float:
        phi = math.radians(lat)
        return (1 - math.log(math.tan(phi) + 1 / math.cos(phi)) / math.pi) / 2 * n

    x0, x1 = math.floor(tile_x(west)), math.ceil(tile_x(east))
    y0, y1 = math.floor(tile_y(north)), math.ceil(tile_y(south))
    window = TileWindow(zoom, x0 * TILE_PX, y0 * TILE_PX, (x1 - x0) * TILE_PX, (y1 - y0) * TILE_PX)
    if window.tiles > MAX_TILES:
        raise InputError(
            f"--bbox at --zoom {zoom} covers {window.tiles} tiles (at most {MAX_TILES}); "
            "choose a smaller box or a lower zoom"
        )
    return window


def tile_service_xml(template: str, zoom: int, cache: Path, bands: int = 4) -> str:
    """A GDAL WMS description (TMS mini-driver) of an XYZ/TMS service at one zoom level.

    Args:
        template: URL with ``{z}``, ``{x}`` and ``{y}`` (or ``{-y}``, TMS rows counted
            from the south).
        zoom: The zoom level whose tiles are read.
        cache: Folder of GDAL's tile cache.
        bands: Bands to read (4: RGB and alpha; missing tiles are transparent).
    """
    url = template.replace("{-y}", "${y}").replace("{z}", "${z}")
    url = url.replace("{x}", "${x}").replace("{y}", "${y}")
    origin = "bottom" if "{-y}" in template else "top"
    half = f"{WEB_MERCATOR_HALF:.9f}"
    timeout = os.environ.get("GDAL_HTTP_TIMEOUT", HTTP_DEFAULTS["GDAL_HTTP_TIMEOUT"])
    return (
        "<GDAL_WMS>\n"
        f'  <Service name="TMS"><ServerUrl>{_xml(url)}</ServerUrl></Service>\n'
        "  <DataWindow>\n"
        f"    <UpperLeftX>-{half}</UpperLeftX><UpperLeftY>{half}</UpperLeftY>\n"
        f"    <LowerRightX>{half}</LowerRightX><LowerRightY>-{half}</LowerRightY>\n"
        f"    <TileLevel>{zoom}</TileLevel><TileCountX>1</TileCountX>"
        f"<TileCountY>1</TileCountY><YOrigin>{origin}</YOrigin>\n"
        "  </DataWindow>\n"
        "  <Projection>EPSG:3857</Projection>\n"
        f"  <BlockSizeX>{TILE_PX}</BlockSizeX><BlockSizeY>{TILE_PX}</BlockSizeY>"
        f"<BandsCount>{bands}</BandsCount>\n"
        f"  <Cache><Path>{_xml(str(cache))}</Path></Cache>\n"
        f"  <Timeout>{timeout}</Timeout><MaxConnections>4</MaxConnections>\n"
        "  <ZeroBlockHttpCodes>204,404</ZeroBlockHttpCodes>\n"
        "</GDAL_WMS>\n"
    )


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def aoi_bbox(aoi: Path) -> tuple[float, float, float, float]:
    """The W, S, E, N bounds in degrees of an area-of-interest vector file.

    Raises:
        InputError: If the file cannot be read, has no CRS or holds no geometry.
    """
    import geopandas as gpd

    try:
        frame = gpd.read_file(aoi)
    except Exception as exc:  # pyogrio raises several unrelated types
        raise InputError(f"cannot read --aoi {aoi} as a vector file: {exc}") from exc
    if frame.empty or frame.geometry.is_empty.all():
        raise InputError(f"--aoi {aoi} holds no geometry")
    if frame.crs is None:
        raise InputError(f"--aoi {aoi} has no CRS; assign one (ogr2ogr -a_srs EPSG:...)")
    west, south, east, north = (float(v) for v in frame.to_crs(4326).total_bounds)
    return west, south, east, north


def default_tile_cache() -> Path:
    """Where tiles are cached by default: ``$XDG_CACHE_HOME/geounet/tiles``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "geounet" / "tiles"


@dataclass(frozen=True)
class SceneSource:
    """A scene as GDAL opens it, and the stem of its outputs.

    Attributes:
        path: A local path, a ``/vsi...`` path or a ``vrt://`` window of a tile service.
        stem: File-name stem of its outputs.
        label: How to name the scene to the user (the file, the URL or the template).
    """

    path: str
    stem: str
    label: str


def resolve_scene(
    source: str | os.PathLike[str],
    bbox: tuple[float, float, float, float] | None = None,
    zoom: int | None = None,
    cache: Path | None = None,
) -> SceneSource:
    """Turn what a user passed as a scene into a path GDAL opens.

    Args:
        source: A local file, a URL, a GDAL virtual path or an XYZ/TMS URL template.
        bbox: W, S, E, N in degrees (tile templates only; required for them).
        zoom: Zoom level (tile templates only; required for them).
        cache: Tile cache folder (default :func:`default_tile_cache`).

    Raises:
        InputError: If a template lacks ``--bbox`` or ``--zoom``, or those are given for
            a scene that is not a template.
    """
    text = os.fspath(source)
    if not is_tile_template(text):
        if bbox is not None or zoom is not None:
            raise InputError(
                "--bbox and --zoom are for XYZ/TMS tile services "
                "(a URL with {z}/{x}/{y}); crop a file with gdal_translate -projwin instead"
            )
        label = text if is_remote(text) else Path(text).name
        return SceneSource(gdal_path(text), source_stem(text), label)
    if bbox is None or zoom is None:
        raise InputError(
            f"{text} is a tile service: pass --bbox W,S,E,N (degrees) and --zoom Z, "
            "e.g. --bbox 32.58,0.31,32.59,0.32 --zoom 19"
        )
    if urlparse(text).scheme.lower() not in ("http", "https", "file"):
        raise InputError(f"tile service {text} must be an http(s) URL")
    window = tile_window(bbox, zoom)
    folder = (cache or default_tile_cache()) / hashlib.sha256(text.encode()).hexdigest()[:16]
    xml = folder / f"z{zoom}.xml"
    description = tile_service_xml(text, zoom, folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not xml.is_file() or xml.read_text(encoding="utf-8") != description:
            write_text(xml, description)
    except (OSError, OutputError) as exc:
        raise InputError(
            f"cannot use the tile cache {folder} ({exc}); choose --tile-cache"
        ) from exc
    srcwin = f"{window.col},{window.row},{window.width},{window.height}"
    return SceneSource(f"vrt://{xml}?srcwin={srcwin}", f"{source_stem(text)}_z{zoom}", text)
