"""Progress bars for people, and progress lines for programs that run geounet.

A terminal gets rich's live bars. A program that runs geounet as a subprocess (the QGIS
plugin, a notebook, a web service) sets ``GEOUNET_PROGRESS=lines`` and reads lines like
``geounet-progress: 42 predict (tiles) 126/300`` from stderr instead: the whole percent
of the task, then its description. A line is written each time the whole percent changes.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from rich.console import Console
from rich.progress import Progress, ProgressColumn, TaskID

ENV = "GEOUNET_PROGRESS"
"""Environment variable: ``lines`` for progress lines on stderr."""

PREFIX = "geounet-progress:"
"""What every progress line starts with."""


class LineProgress(Progress):
    """A :class:`rich.progress.Progress` that prints plain progress lines, no live display.

    A task whose fields hold ``overall`` (a fraction in [0, 1]) reports that instead of
    its own completion, e.g. a training run's place in its whole schedule rather than in
    the current epoch.
    """

    def __init__(self, *columns: str | ProgressColumn, stream: TextIO | None = None) -> None:
        """Track tasks as rich does; write lines to ``stream`` (stderr by default)."""
        super().__init__(*columns, disable=True)
        self._stream = stream
        self._said: dict[TaskID, int] = {}  # the last percent written, per task

    def update(self, task_id: TaskID, **kwargs: Any) -> None:  # noqa: D102
        super().update(task_id, **kwargs)
        self._say(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:  # noqa: D102
        super().advance(task_id, advance)
        self._say(task_id)

    def _say(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        overall = task.fields.get("overall")
        if overall is not None:
            percent = int(100 * min(max(float(overall), 0.0), 1.0))
        elif task.total:
            percent = int(100 * min(task.completed / task.total, 1.0))
        else:
            return
        if self._said.get(task_id) == percent:
            return
        self._said[task_id] = percent
        total = f"/{task.total:.0f}" if task.total is not None else ""
        stream = self._stream or sys.stderr
        stream.write(f"{PREFIX} {percent} {task.description} {task.completed:.0f}{total}\n")
        stream.flush()


def lines_wanted() -> bool:
    """Whether ``GEOUNET_PROGRESS=lines`` asks for progress lines."""
    return os.environ.get(ENV, "").strip().lower() == "lines"


def progress_display(
    *columns: str | ProgressColumn,
    console: Console,
    disable: bool = False,
    transient: bool = False,
) -> Progress:
    """A live progress bar, or a :class:`LineProgress` when ``GEOUNET_PROGRESS=lines``.

    Args:
        *columns: rich columns of the live bar.
        console: Where the live bar goes.
        disable: No progress at all (``--quiet``, ``--no-progress``).
        transient: Remove the live bar when done.

    Returns:
        A progress object; both kinds take the same calls.
    """
    if lines_wanted() and not disable:
        return LineProgress(*columns)
    return Progress(*columns, console=console, disable=disable, transient=transient)
