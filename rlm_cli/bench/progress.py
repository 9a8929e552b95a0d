"""Progress of a bench on stderr: a Rich progress bar across tasks on a terminal, one plain line per
finished task and system otherwise (CI logs), nothing when quiet. Only the bench's own text (task
ids, systems, statuses, numbers) is shown."""

from __future__ import annotations

import sys
from typing import Any, TextIO


class BenchProgress:
    """Shows ``total`` runs (tasks x systems) finishing. ``kind``: ``"bar"``, ``"plain"`` or
    ``"quiet"`` (None: ``bar`` when ``stream`` is a terminal and ``NO_COLOR`` is unset, else
    ``plain``). Call :meth:`update` per result and :meth:`close` at the end (idempotent)."""

    def __init__(self, total: int, stream: TextIO | None = None, kind: str | None = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.total = total
        self.done = 0
        if kind is None:
            from rlm_cli.view.select import wants_live

            kind = "bar" if wants_live(self.stream) else "plain"
        self.kind = kind
        self._bar = None
        if kind == "bar":
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("rlm bench"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("{task.description}"),
                                 console=Console(file=self.stream, stderr=self.stream is sys.stderr), transient=True)
            self._id = self._bar.add_task("", total=total)
            self._bar.start()

    def update(self, result: Any) -> None:
        """One run finished (a :class:`~rlm_cli.bench.runner.TaskResult`)."""
        self.done += 1
        line = (f"{result.task_id} {result.system}: score {result.score:.2f}, {result.status}, "
                f"{result.duration_s:.1f}s")
        if self._bar is not None:
            self._bar.update(self._id, completed=self.done, description=line)
        elif self.kind == "plain":
            print(f"rlm bench: [{self.done}/{self.total}] {line}", file=self.stream, flush=True)

    def close(self) -> None:
        """Stop the bar (if any)."""
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.stop()
