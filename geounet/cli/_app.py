"""The Typer application object and the helpers that every subcommand shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn, TypeVar

import typer

from geounet.errors import GeounetError

app = typer.Typer(
    name="geounet",
    help="Map building footprints from aerial and satellite GeoTIFFs with a U-Net.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

F = TypeVar("F", bound=Callable[..., object])


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error to stderr and exit with ``code``."""
    typer.secho(f"Error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn geounet's own errors into one-line messages and a non-zero exit code.

    Ctrl-C exits with code 130 and says so; outputs are written atomically, so an
    interrupted command leaves nothing half-written behind.
    """
    try:
        yield
    except GeounetError as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except KeyboardInterrupt:
        fail("interrupted; no partial outputs were kept", code=130)
