"""The ``geounet`` command line: a thin layer that parses options and calls the library.

Each subcommand lives in its own module of this package and registers itself on
:data:`app`. Library errors (:class:`geounet.errors.GeounetError`) become a one-line
message on stderr and exit code 2; an interrupt exits with 130. No tracebacks for users.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from geounet import __version__
from geounet.cli._app import Terminated, app, fail, raise_on_sigterm

# Subcommands register themselves on `app` when imported.
from geounet.cli import predict as _predict  # noqa: E402,F401  isort: skip
from geounet.cli import evaluate as _evaluate  # noqa: E402,F401  isort: skip
from geounet.cli import train as _train  # noqa: E402,F401  isort: skip
from geounet.cli import plan as _plan  # noqa: E402,F401  isort: skip
from geounet.cli import vectorize as _vectorize  # noqa: E402,F401  isort: skip
from geounet.cli import merge as _merge  # noqa: E402,F401  isort: skip
from geounet.cli import project as _project  # noqa: E402,F401  isort: skip
from geounet.cli import calibrate as _calibrate  # noqa: E402,F401  isort: skip
from geounet.cli import ensemble as _ensemble  # noqa: E402,F401  isort: skip
from geounet.cli import finetune as _finetune  # noqa: E402,F401  isort: skip
from geounet.cli import export as _export  # noqa: E402,F401  isort: skip
from geounet.cli import conflate as _conflate  # noqa: E402,F401  isort: skip
from geounet.cli import quantize as _quantize  # noqa: E402,F401  isort: skip

__all__ = ["app", "fail", "main"]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"geounet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Map building footprints from aerial and satellite GeoTIFFs with a U-Net."""


def main() -> None:
    """Entry point of the ``geounet`` console script."""
    raise_on_sigterm()
    if not {"CPL_LOG", "CPL_DEBUG"} & set(os.environ):
        # GDAL's (and libtiff's) own stderr lines repeat what the one-line error says
        os.environ["CPL_LOG"] = os.devnull
        from geounet.io.raster import quiet_libtiff

        quiet_libtiff()
    try:
        app()
    except Terminated:  # pragma: no cover - exercised through a subprocess test
        typer.echo("geounet: terminated (SIGTERM); no partial outputs were kept", err=True)
        sys.exit(143)
    except KeyboardInterrupt:  # pragma: no cover - exercised through a subprocess test
        typer.echo("geounet: interrupted; no partial outputs were kept", err=True)
        sys.exit(130)
