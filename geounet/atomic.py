"""Files that appear whole or not at all: write to a temporary name, then rename.

:func:`replacing` needs nothing beyond the standard library, so the parts of geounet that
run without GDAL (training from a pack) use it; :func:`geounet.raster.atomic_path` adds
GDAL's and SQLite's write errors on top for rasters and GeoPackages.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(final: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only on success.

    The folder is created if needed. Whatever happens inside (an error, Ctrl-C), nothing
    is left under the final name and the temporary file is removed.

    Args:
        final: The file to write.
        suffix: Ending of the temporary name (a writer may insist on one, e.g. ``.npz``).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
