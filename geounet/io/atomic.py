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
import json
import math
import os
import re
import shutil
import socket
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from geounet.errors import GeounetError, OutputError, OutputExistsError


@contextmanager
def atomic_path(final: Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only on success.

    Whatever happens inside (an error, Ctrl-C, SIGTERM, a full disk), nothing is left
    under the final name and the temporary file is removed. Before the rename the file is
    checked to be complete (see :func:`register_verifier`): GDAL does not always raise
    when a write fails. Temporary names carry the writer's process id and host, so that
    a later write into the same folder removes what a killed process left (kill -9, a
    lost node). Ctrl-C and geounet's own errors pass through unchanged.

    Args:
        final: The output.
        overwrite: Replace ``final`` if it exists. If false, the file lands only if no
            other process has written ``final`` meanwhile (the check and the rename are
            one atomic step, a hard link).

    Raises:
        OutputExistsError: If ``overwrite`` is false and ``final`` exists when the file
            is ready.
        OutputError: If writing fails: the disk is full (or a file size limit is reached),
            permission is denied, the file is incomplete, or GDAL, OGR or SQLite report
            another write error.
    """
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(final.parent)
        fd, name = tempfile.mkstemp(
            prefix=f".{final.stem}.", suffix=f"{_owner_tag()}{final.suffix}", dir=final.parent
        )
    except OSError as exc:
        raise write_error(final, exc) from exc
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()
    _PENDING[tmp] = final
    try:
        yield tmp
        verify = _VERIFIERS.get(final.suffix.lower())
        if verify is not None and tmp.exists():
            problem = verify(tmp)
            if problem is not None:
                raise OutputError(
                    f"could not write {_user_path(final)}: the file is incomplete ({problem}); "
                    "check that its disk has free space"
                )
        _land(tmp, final, overwrite)
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


_UMASK_LOCK = threading.Lock()


def usual_mode(path: Path) -> None:
    """Give a written file the permissions a new file gets here (0o666 less the umask).

    Some writers (safetensors) create their files readable by their owner only, which
    leaves a model unreadable to the rest of a team or a cluster's other accounts.
    """
    with _UMASK_LOCK:  # reading the umask means setting it: no other thread in between
        mask = os.umask(0o022)
        os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def _land(tmp: Path, final: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)  # fails if final exists: the check and the rename in one step
    except FileExistsError:
        raise OutputExistsError(
            f"{_user_path(final)} exists (another run may have written it meanwhile); "
            "pass --overwrite to replace it"
        ) from None
    except OSError:  # a filesystem without hard links: check, then rename
        if final.exists():
            raise OutputExistsError(
                f"{_user_path(final)} exists; pass --overwrite to replace it"
            ) from None
        os.replace(tmp, final)
        return
    tmp.unlink()


def _user_path(final: Path) -> Path:
    while final in _PENDING:  # name the user's output, not a temporary path
        final = _PENDING[final]
    return final


_TMP_MARK = ".tmp"
_OWNER = re.compile(r"\.tmp\.(\d+)@([A-Za-z0-9_-]+)(?:\.|$)")
"""The owner tag of a temporary name: ``.tmp.<pid>@<host>``."""


def _owner_tag() -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0]) or "host"
    return f"{_TMP_MARK}.{os.getpid()}@{host}"


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files that dead geounet processes of this host left in ``folder``.

    A process killed with SIGKILL (or by the out-of-memory killer) cannot clean up; its
    temporary files keep its process id and host in their names, so the next write into
    the folder removes them if that process no longer runs. Files of other hosts (a
    shared folder of a cluster) and of live processes are left alone.

    Returns:
        The files removed.
    """
    here = _owner_tag().split("@", 1)[1]
    removed: list[Path] = []
    try:
        names = [p for p in folder.iterdir() if p.name.startswith(".") and _TMP_MARK in p.name]
    except OSError:
        return removed
    for path in names:
        match = _OWNER.search(path.name)
        if match is None or match.group(2) != here or _alive(int(match.group(1))):
            continue
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


Verifier = Callable[[Path], "str | None"]
"""Checks a written file before it lands: ``None`` if complete, else what is wrong."""

_VERIFIERS: dict[str, Verifier] = {}


def register_verifier(suffix: str, verify: Verifier) -> None:
    """Check files ending in ``suffix`` (e.g. ``.tif``) with ``verify`` before they land."""
    _VERIFIERS[suffix.lower()] = verify


def _verify_sqlite(path: Path) -> str | None:
    """``PRAGMA quick_check`` of a GeoPackage (an SQLite database)."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        db.close()
    return None if rows == [("ok",)] else str(rows[0][0] if rows else "no answer")


register_verifier(".gpkg", _verify_sqlite)


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
    final = _user_path(final)
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


def write_json(path: Path, data: object) -> None:
    """Write ``data`` as strict JSON (RFC 8259), atomically: NaN and infinities become null.

    Python's :mod:`json` writes bare ``NaN`` and ``Infinity`` by default, which no other
    JSON reader accepts.

    Raises:
        OutputError: If the file cannot be written.
    """
    text = json.dumps(_finite(data), indent=2, allow_nan=False)
    write_text(path, text + "\n")


def _finite(data: object) -> object:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data
