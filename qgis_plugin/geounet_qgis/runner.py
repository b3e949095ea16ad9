"""Run the ``geounet`` command as a subprocess for a Processing algorithm.

QGIS's own Python usually lacks torch, so the plugin never imports geounet: it runs the
``geounet`` command of the environment it was installed in. This module has no QGIS
import, so that it can be tested without QGIS; ``feedback`` is anything with the methods of
``QgsProcessingFeedback`` used here (``setProgress``, ``setProgressText``, ``pushInfo``,
``isCanceled``).

geounet writes its progress as lines (``GEOUNET_PROGRESS=lines``)::

    geounet-progress: 42 predict (tiles) 126/300

which become the Processing progress bar; every other line goes to the log. A refusal is
geounet's one-line ``Error: ...`` on stderr and a non-zero exit code.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

PROGRESS_PREFIX = "geounet-progress:"
SETTING = "GEOUNET_EXECUTABLE"
"""Processing setting (and environment variable) naming the ``geounet`` command."""

STOP_GRACE_S = 30.0
"""How long a cancelled run gets to clean up after SIGTERM before it is killed."""


class Feedback(Protocol):
    """The part of ``QgsProcessingFeedback`` the runner uses."""

    def setProgress(self, progress: float) -> None: ...  # noqa: D102, N802

    def setProgressText(self, text: str) -> None: ...  # noqa: D102, N802

    def pushInfo(self, info: str) -> None: ...  # noqa: D102, N802

    def isCanceled(self) -> bool: ...  # noqa: D102, N802


class GeounetError(Exception):
    """geounet refused or failed; the message is its one-line error."""


class GeounetCancelled(Exception):
    """The user cancelled the run; it stopped and its outputs were removed."""


@dataclass(frozen=True)
class Stage:
    """A stage of a command's progress and its share of the whole bar.

    Attributes:
        prefix: How the stage's progress descriptions start (``predict``, ``training``).
        start: Where the stage starts on the 0-100 bar.
        end: Where it ends.
    """

    prefix: str
    start: float
    end: float


@dataclass
class Run:
    """What a finished geounet run said.

    Attributes:
        stdout: Its standard output, line by line (the summary line is the last).
        log: Every stderr line that was not a progress line.
    """

    stdout: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)


def find_geounet(configured: str | None = None) -> str:
    """The ``geounet`` command to run.

    Args:
        configured: The plugin's setting (a path to the command); empty for the default.

    Returns:
        The command's path.

    Raises:
        GeounetError: If the setting names no file, or no ``geounet`` is on PATH.
    """
    text = (configured or os.environ.get(SETTING) or "").strip()
    if text:
        path = Path(text).expanduser()
        if path.is_dir():  # a virtual environment or its bin folder
            for candidate in (
                path / "geounet",
                path / "bin" / "geounet",
                path / "Scripts" / "geounet.exe",
                path / "geounet.exe",
            ):
                if candidate.is_file():
                    return str(candidate)
        if path.is_file():
            return str(path)
        raise GeounetError(
            f"the geounet command {text} does not exist; set its path (e.g. "
            "/home/me/geounet/.venv/bin/geounet) in Processing > Options > Providers > geounet"
        )
    found = shutil.which("geounet")
    if found is None:
        raise GeounetError(
            "geounet is not on PATH; install it (see its README) and set the path of its "
            "command in Processing > Options > Providers > geounet"
        )
    return found


def parse_progress(line: str) -> tuple[float, str] | None:
    """``(percent, description)`` of a progress line, or None for any other line."""
    if not line.startswith(PROGRESS_PREFIX):
        return None
    rest = line[len(PROGRESS_PREFIX) :].strip()
    number, _, description = rest.partition(" ")
    try:
        return float(number), description
    except ValueError:
        return None


def overall_percent(percent: float, description: str, stages: Sequence[Stage]) -> float:
    """Place a stage's own percent on the whole bar (the stage's percent when not listed)."""
    for stage in stages:
        if description.startswith(stage.prefix):
            return stage.start + (stage.end - stage.start) * percent / 100
    return percent


def error_line(stderr: Sequence[str], code: int) -> str:
    """The one-line error geounet printed, or its last stderr lines if it crashed without one."""
    for line in reversed(stderr):
        if line.startswith("Error: "):
            return line[len("Error: ") :]
    tail = " | ".join(line for line in stderr[-3:] if line.strip())
    return f"geounet stopped with exit code {code}" + (f": {tail}" if tail else "")


def _pump(stream: Any, name: str, lines: queue.Queue[tuple[str, str | None]]) -> None:
    for line in iter(stream.readline, ""):
        lines.put((name, line.rstrip("\r\n")))
    lines.put((name, None))


def _remove_new(outputs: Sequence[Path], before: dict[Path, float | None]) -> None:
    """Remove the outputs this run made or changed (a file or a folder)."""
    for path in outputs:
        if not path.exists():
            continue
        if before.get(path) is not None and path.stat().st_mtime == before[path]:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def run_geounet(
    args: Sequence[str],
    feedback: Feedback,
    executable: str,
    outputs: Sequence[Path] = (),
    stages: Sequence[Stage] = (),
    poll_s: float = 0.2,
) -> Run:
    """Run ``geounet ARGS``, streaming its progress and log into ``feedback``.

    Args:
        args: The command's arguments, without ``geounet``.
        feedback: The Processing feedback (progress bar, log, cancel button).
        executable: The ``geounet`` command (see :func:`find_geounet`).
        outputs: The files or folders the run writes: removed when it is cancelled, unless
            they were there before and the run left them untouched.
        stages: Shares of the progress bar; without them each stage fills the whole bar.
        poll_s: How often the cancel button is checked, in seconds.

    Returns:
        What the run printed.

    Raises:
        GeounetError: With geounet's one-line error if it exits with a non-zero code.
        GeounetCancelled: If the user cancelled; the run was stopped (SIGTERM, then killed
            after :data:`STOP_GRACE_S`) and its outputs removed.
    """
    before = {p: (p.stat().st_mtime if p.exists() else None) for p in outputs}
    env = {**os.environ, "GEOUNET_PROGRESS": "lines", "NO_COLOR": "1", "TERM": "dumb"}
    env["PYTHONUNBUFFERED"] = "1"
    command = [executable, *args]
    feedback.pushInfo("running: " + subprocess.list2cmdline(command))
    try:
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
        )
    except OSError as exc:
        raise GeounetError(f"cannot run {executable}: {exc.strerror or exc}") from exc
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, "stdout", lines), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, "stderr", lines), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    run = Run()
    open_streams = 2
    cancelled = False
    while open_streams:
        if not cancelled and feedback.isCanceled():
            cancelled = True
            feedback.pushInfo("cancelling: asking geounet to stop")
            _stop(proc)
        try:
            name, line = lines.get(timeout=poll_s)
        except queue.Empty:
            continue
        if line is None:
            open_streams -= 1
            continue
        progress = parse_progress(line)
        if progress is not None:
            percent, description = progress
            feedback.setProgressText(description)
            feedback.setProgress(overall_percent(percent, description, stages))
        elif name == "stdout":
            run.stdout.append(line)
            feedback.pushInfo(line)
        else:
            run.log.append(line)
            feedback.pushInfo(line)
    code = proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    if cancelled or feedback.isCanceled():
        _remove_new(outputs, before)
        raise GeounetCancelled("cancelled; geounet stopped and no outputs were kept")
    if code != 0:
        raise GeounetError(error_line(run.log, code))
    return run


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM (geounet removes its temporary files), then kill after a grace period.

    On Windows ``terminate`` ends the process at once; geounet writes every output under a
    temporary name first, so nothing half-written is left under a final name there either.
    """
    if proc.poll() is not None:
        return
    proc.terminate()
    deadline = time.monotonic() + STOP_GRACE_S

    def kill_later() -> None:
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()

    threading.Thread(target=kill_later, daemon=True).start()
