"""The progress bars of the commands that predict and vectorise: one bar per stage."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn

from geounet.io.progress import progress_display

UNITS = {"predict": "tiles", "square": "footprints"}
"""What each stage counts (``rows`` where not named)."""


@contextmanager
def stage_bars(quiet: bool = False) -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback ``(stage, done, total)`` that draws a bar for each stage.

    The display starts with the first stage, so an error raised before any prints one
    line only, and stops on leaving the block, so an error raised in it is printed
    below the bars.

    Args:
        quiet: Draw nothing.
    """
    bar = progress_display(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=quiet,
    )
    tasks: dict[str, TaskID] = {}

    def progress(stage: str, n: int, total: int) -> None:
        if not tasks:
            bar.start()
        if stage not in tasks:
            tasks[stage] = bar.add_task(f"{stage} ({UNITS.get(stage, 'rows')})", total=total)
        bar.advance(tasks[stage], n)

    try:
        yield progress
    finally:
        if tasks:
            bar.stop()
