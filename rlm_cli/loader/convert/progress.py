"""A progress bar on the terminal (standard error) for conversions that take more than a moment.

Shown only when standard error is a terminal, and only once a file has been converting for
:data:`DELAY` seconds; transient (it disappears when done). Rich's bar is refreshed by hand, never
by a thread of its own (the two-process load forks only a single-threaded process).
"""

from __future__ import annotations

import os
import sys
import time

DELAY = 0.5  # seconds a conversion runs before the bar appears
MIN_REFRESH = 0.1  # seconds between two redraws


class ConversionProgress:
    """The bar: :meth:`start` a file, :meth:`update` with pages done, :meth:`done`, :meth:`close`."""

    def __init__(self, stream=None, enabled: bool = True) -> None:
        """``stream`` defaults to standard error; ``enabled=False`` (``-q``) never shows the bar."""
        self.stream = stream if stream is not None else sys.stderr
        try:
            self.enabled = enabled and bool(self.stream.isatty())
        except (AttributeError, ValueError, OSError):
            self.enabled = False
        self._pid = os.getpid()  # the forked child of a two-process load draws nothing
        self._bar = None
        self._task = None
        self._path = ""
        self._started = 0.0
        self._drawn = 0.0

    def start(self, path: str) -> None:
        """A file starts converting (``path`` as displayed)."""
        self._path, self._started = path, time.monotonic()

    def update(self, done: int, total: int) -> None:
        """``done`` of ``total`` units (pages) of the current file are converted."""
        if not self.enabled or os.getpid() != self._pid:
            return
        now = time.monotonic()
        if now - self._started < DELAY or now - self._drawn < MIN_REFRESH and done < total:
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._bar = Progress(TextColumn("converting {task.description}"), BarColumn(), MofNCompleteColumn(),
                                 console=Console(file=self.stream), auto_refresh=False, transient=True)
            self._bar.start()
        from rlm_cli.view.safe import inline

        if self._task is None:
            self._task = self._bar.add_task(inline(self._path, 60), total=total)
        self._bar.update(self._task, completed=done, total=total)
        self._bar.refresh()
        self._drawn = now

    def done(self) -> None:
        """The current file is finished."""
        if self._bar is not None and self._task is not None:
            self._bar.remove_task(self._task)
            self._bar.refresh()
        self._task = None

    def close(self) -> None:
        """Remove the bar from the terminal."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
