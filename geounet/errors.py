"""The error tree of geounet.

Every error that a user can cause derives from :class:`GeounetError`; the CLI turns these
into a one-line message and a non-zero exit code. Each specific error also inherits the
built-in exception it resembles, as rasterio's errors do.
"""


class GeounetError(Exception):
    """Root of every error geounet raises on purpose."""


class InputError(GeounetError, ValueError):
    """An input file or argument is unusable (not a raster, no CRS, wrong bands, ...)."""


class ChipSizeError(InputError):
    """The training part of a place cannot hold one chip of the size asked for."""


class CheckpointError(GeounetError, ValueError):
    """A model checkpoint is missing, corrupted, unsafe or incompatible with the scene."""


class OutputExistsError(GeounetError, FileExistsError):
    """An output exists already and ``overwrite`` was not asked for."""


class OutputError(GeounetError, OSError):
    """An output could not be written (folder not writable, disk full, ...)."""
