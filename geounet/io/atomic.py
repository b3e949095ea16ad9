"""Files that appear whole or not at all: write to a temporary name, then rename.

:func:`atomic_path` is geounet's one atomic writer: rasters, GeoPackages, reports, styles,
QGIS projects, checkpoints, training states and packs all go through it. Whatever happens
while a file is written (an error, Ctrl-C, a full disk), nothing is left under its final
name and the temporary file is removed; a failed write becomes one
:class:`~geounet.errors.OutputError` line that says why (disk full, permission denied).
The module needs only the standard library, so training from a pack runs without GDAL;
:mod:`geounet.io.raster` registers GDAL's and OGR's errors when it is imported.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from geounet.errors import GeounetError, OutputError


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only on success.

    Whatever happens inside (an error, Ctrl-C, a full disk), nothing is left under the
    final name and the temporary file is removed. Ctrl-C and geounet's own errors pass
    through unchanged.

    Raises:
        OutputError: If writing fails: the disk is full (or a file size limit is reached),
            permission is denied, or GDAL, OGR or SQLite report another write error.
    """
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}", dir=final.parent
        )
    except OSError as exc:
        raise write_error(final, exc) from exc
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()
    _PENDING[tmp] = final
    try:
        yield tmp
        os.replace(tmp, final)
    except GeounetError:
        _remove(tmp)
        raise
    except _WRITE_ERRORS as exc:  # noqa: B030 (a tuple of types, extended at import)
        error = write_error(final, exc)  # before removing tmp, while a full disk is full
        _remove(tmp)
        raise error from exc
    except BaseException:
        _remove(tmp)
        raise
    finally:
        del _PENDING[tmp]


_PENDING: dict[Path, Path] = {}
"""Temporary path -> final path of each :func:`atomic_path` in progress.

A writer may itself write atomically into a temporary path it was given (nested
:func:`atomic_path`); its errors then name the final output, not the temporary one.
"""

_WRITE_ERRORS: tuple[type[BaseException], ...] = (OSError, sqlite3.Error)
"""Exceptions that writing a file can raise: the OS's and SQLite's, and those that
:func:`register_write_errors` adds (GDAL's, OGR's through pyogrio, when
:mod:`geounet.io.raster` is imported, so that this module itself needs no GDAL)."""


def register_write_errors(*types: type[BaseException]) -> None:
    """Count these exception types as write failures of :func:`atomic_path`."""
    global _WRITE_ERRORS
    _WRITE_ERRORS = tuple(dict.fromkeys((*_WRITE_ERRORS, *types)))


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_DISK_FULL_TEXTS = (
    "no space left",
    "disk quota",
    "file too large",
    "database or disk is full",
)
"""Lower-case fragments of GDAL, libtiff and SQLite messages that mean the disk filled up."""

_WRITE_FAILURE_TEXTS = ("write failed", "write error", "tiffappendtostrip", "tiffappendtotile")
"""Fragments of generic GDAL/libtiff write failures: often a full disk, not always."""

_DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})

NEARLY_FULL_BYTES = 4 * 2**20
"""Free space under which a failed write is blamed on a full disk, whatever GDAL says."""


def write_error(final: Path, exc: BaseException) -> OutputError:
    """A one-line :class:`OutputError` for a failed write of ``final``.

    Looks through the exception's chain (``__cause__`` / ``__context__``) because GDAL
    wraps the real failure ("No space left on device", a libtiff write error) in a
    generic "Write failed" error without an errno; and since GDAL and SQLite often report
    a full disk only as a later, unrelated-looking failure ("not recognized as being in a
    supported file format", "Failed to commit transaction"), a write failure on a
    filesystem with less than :data:`NEARLY_FULL_BYTES` free counts as a full disk too.

    Args:
        final: The output that could not be written.
        exc: What writing it raised.

    Returns:
        The error to raise instead (chain it with ``from exc``).
    """
    while final in _PENDING:  # name the user's output, not a temporary path
        final = _PENDING[final]
    chain = _exception_chain(exc)
    errnos = {e.errno for e in chain if isinstance(e, OSError)}
    texts = " ".join(str(e) for e in chain).lower()
    denied = next((e for e in chain if isinstance(e, OSError) and e.errno in _DENIED_ERRNOS), None)
    full = errnos & _DISK_FULL_ERRNOS or any(t in texts for t in _DISK_FULL_TEXTS)
    if full or (denied is None and _free_bytes(final.parent) < NEARLY_FULL_BYTES):
        return OutputError(
            f"disk full while writing {final}: free some space or choose another --out-dir"
        )
    if denied is not None:
        return OutputError(f"cannot write {final} ({denied.strerror}); choose another --out-dir")
    if any(t in texts for t in _WRITE_FAILURE_TEXTS):
        return OutputError(
            f"could not write {final}: {error_detail(exc)}; check that its disk has free space"
        )
    return OutputError(f"could not write {final}: {error_detail(exc)}")


def error_detail(exc: BaseException) -> str:
    """The first informative line of an error, skipping rasterio's "See previous exception".

    rasterio raises e.g. ``RasterioIOError("Read failed. See previous exception for
    details.")`` from the GDAL error that says what went wrong; this returns GDAL's text.
    """
    for e in _exception_chain(exc):
        text = str(e).strip()
        if text and "see previous exception" not in text.lower():
            return text.splitlines()[0]
    return type(exc).__name__


def _free_bytes(folder: Path) -> float:
    try:
        return float(shutil.disk_usage(folder).free)
    except OSError:
        return float("inf")


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _remove(path: Path) -> None:
    # GDAL sidecars of a raster, SQLite journals of a GeoPackage
    for suffix in (".aux.xml", ".msk", "-journal", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    path.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`).

    Raises:
        OutputError: If the file cannot be written.
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`).

    Raises:
        OutputError: If the file cannot be written.
    """
    write_bytes(path, text.encode("utf-8"))
