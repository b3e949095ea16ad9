"""The Typer application object and the helpers that every subcommand shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar, get_args

import typer
from typer.core import TyperCommand, TyperGroup

from geounet.cli._ranges import check_value
from geounet.errors import GeounetError

try:  # recent Typer vendors its own copy of Click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older Typer runs on Click itself
    from click.exceptions import UsageError  # type: ignore[assignment]

F = TypeVar("F", bound=Callable[..., object])


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error to stderr and exit with ``code``."""
    typer.secho(f"Error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


@contextmanager
def one_line_usage_errors() -> Iterator[None]:
    """Turn Click usage errors (bad option values, unknown options...) into one line.

    The line names the problem and where to get help, e.g. ``Error: Invalid value for
    '--batch-size': ... (see geounet predict --help)``; the exit code stays Click's (2).
    """
    try:
        yield
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            raise  # `geounet` alone prints its help
        message = " ".join(exc.format_message().split())
        if exc.ctx is not None:
            message += f" (see {exc.ctx.command_path} --help)"
        fail(message, exc.exit_code)


class OneLineErrorGroup(TyperGroup):
    """The ``geounet`` command group: help stays Rich, usage errors are one line."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        """Parse the group's own options (``--version``, the subcommand name)."""
        with one_line_usage_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        """Parse and run a subcommand; its usage errors are raised in here."""
        with one_line_usage_errors():
            return super().invoke(ctx)

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        """Find the subcommand (an unknown name is a usage error)."""
        with one_line_usage_errors():
            return super().resolve_command(ctx, args)


METAVARS: dict[object, str] = {int: "INTEGER", float: "FLOAT", str: "TEXT", Path: "PATH"}
"""Placeholders of option values in help, by type, as Click writes them."""


class CheckedCommand(TyperCommand):
    """A subcommand that checks its numeric options against :data:`~geounet.cli._ranges.RANGES`.

    Runs after Click has parsed the values and before the command's function: ``nan``,
    ``inf`` or a value out of its range is a one-line usage error (exit code 2).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:  # conventional Unix help: FLOAT, PATH; flags bare
            if param.metavar is not None:
                continue
            if getattr(param, "is_flag", False):
                param.metavar = ""
                continue
            descriptor = getattr(param, "type_descriptor", None)
            if descriptor is None or getattr(descriptor, "is_choice", False):
                continue
            annotation = getattr(descriptor, "annotation", None)
            if getattr(descriptor, "is_list", False):  # list[Path]: a repeatable PATH
                annotation = next(iter(get_args(annotation)), annotation)
            name = METAVARS.get(annotation)
            if name is not None:
                many = getattr(descriptor, "is_list", False) or getattr(param, "multiple", False)
                param.metavar = (
                    f"{name}..." if many and param.param_type_name == "argument" else name
                )

        for param in self.params:  # arguments as Unix usage writes them: SCENE, [NAME], PATH...
            if param.param_type_name == "argument":
                _plain_argument(param)

    def invoke(self, ctx: Any) -> Any:
        """Check the parsed numeric options, then run the command."""
        for param in self.params:
            values = ctx.params.get(param.name or "")
            for value in values if isinstance(values, list | tuple) else [values]:
                if isinstance(value, int | float) and not isinstance(value, bool):
                    option = max(param.opts, key=len)
                    problem = check_value(option, float(value))
                    if problem is not None:
                        raise UsageError(problem, ctx)
        return super().invoke(ctx)


def _plain_argument(param: Any) -> None:
    """Show an argument as ``SCENE`` in usage and help (Typer writes ``{SCENE}`` and ``<str>``)."""
    name = param.metavar or (param.name or "").upper()
    if param.nargs != 1 and not name.endswith("..."):
        name += "..."
    usage = name if param.required else f"[{name}]"
    param._usage_display_name = lambda: usage
    param._rich_display_name = lambda: name
    param.display_type_rich = lambda ctx: ""


class GeounetTyper(typer.Typer):
    """The Typer application whose commands are :class:`CheckedCommand` by default."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        """Register a subcommand (see :meth:`typer.Typer.command`)."""
        kwargs.setdefault("cls", CheckedCommand)
        decorator: Callable[[F], F] = super().command(*args, **kwargs)
        return decorator


app = GeounetTyper(
    name="geounet",
    cls=OneLineErrorGroup,
    help="Map building footprints from aerial and satellite GeoTIFFs with a U-Net.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    # plain help, as Unix tools write it: an 80-column terminal keeps its width for words
    rich_markup_mode=None,
)


class Terminated(KeyboardInterrupt):
    """SIGTERM (what Snakemake, SLURM and ``kill`` send to cancel a job) as an exception.

    A subclass of :class:`KeyboardInterrupt`, so that everything that cleans up after
    Ctrl-C (the temporary files of :func:`~geounet.io.atomic.atomic_path`, dask clusters,
    read-ahead threads) also cleans up after SIGTERM.
    """


def raise_on_sigterm() -> None:
    """Turn SIGTERM into :class:`Terminated` in the main thread (Python's default: die)."""
    import signal

    def terminate(signum: int, frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)


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
    except Terminated:
        fail("terminated (SIGTERM); no partial outputs were kept", code=143)
    except KeyboardInterrupt:
        fail("interrupted; no partial outputs were kept", code=130)
