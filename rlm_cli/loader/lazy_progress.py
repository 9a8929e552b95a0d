"""A progress bar for the loader's slow steps (downloads, git), shown only when it helps."""

from __future__ import annotations

import contextlib
import os
import sys
import time


class LazyProgress:
    """A Rich progress bar on stderr that appears only after ``delay`` seconds, on a terminal, and
    not with ``NO_COLOR`` (the contract: no live redraw then). Use as a context manager; call
    :meth:`update` with bytes done (and the total when known, else a spinner)."""

    def __init__(self, label: str, delay: float = 0.5, enabled: bool = True) -> None:
        self._label, self._delay, self._start = label, delay, time.monotonic()
        self._progress = None
        self._task = None
        self._enabled = enabled and sys.stderr.isatty() and not os.environ.get("NO_COLOR")

    def update(self, done: int = 0, total: int | None = None) -> None:
        """Show ``done`` (bytes) of ``total`` (bytes, None when unknown)."""
        if not self._enabled:
            return
        if self._progress is None:
            if time.monotonic() - self._start < self._delay:
                return
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      DownloadColumn(), TimeElapsedColumn(),
                                      console=Console(stderr=True), transient=True)
            self._progress.start()
            from rlm_cli.view.safe import inline

            self._task = self._progress.add_task(inline(self._label), total=total)
        self._progress.update(self._task, completed=done, total=total)

    def __enter__(self) -> LazyProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            with contextlib.suppress(Exception):
                self._progress.stop()
