"""geounet: map building footprints from aerial and satellite GeoTIFFs with a U-Net."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("geounet")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
