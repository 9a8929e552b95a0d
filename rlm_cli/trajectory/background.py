"""Writing a run's trajectory off the event loop (``rlm serve``, several runs in one loop).

:class:`TrajectoryWriter` takes the snapshots a :class:`~rlm_cli.trajectory.recorder.TrajectoryRecorder`
makes (the document as compact JSON text, made on the loop with the C encoder: well under a
millisecond for a small run) and, in a worker thread shared by the process, redacts, indents and
writes them atomically (temporary file + ``os.replace``), so the file is valid JSON at every moment,
as for ``rlm ask``. Only the newest pending snapshot of a run is written (an older one it replaces
is skipped), and the snapshots of one run are written in order by one thread at a time.

Durability: a snapshot of a run still going (``status`` ``running``) is renamed into place without
``fsync``: a crash of the process leaves the file whole (the kernel has the data); only an operating
system crash could lose it, and the run would then be lost anyway. The last snapshot (the run ended,
also interrupted) is ``fsync``-ed before its rename, as every ``rlm ask`` write is. The worker
threads are joined when the interpreter exits, so a server stopped by a signal still writes the
interrupted runs' final documents.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from pathlib import Path
from typing import Any

from rlm_cli.atomic import atomic_write_text

_EXECUTOR: list[concurrent.futures.ThreadPoolExecutor] = []
_EXECUTOR_LOCK = threading.Lock()
WORKERS = 2
"""Threads writing trajectories for the whole process (the write is mostly waiting for the disk)."""


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    with _EXECUTOR_LOCK:
        if not _EXECUTOR:
            _EXECUTOR.append(concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="rlm-trajectory"))
        return _EXECUTOR[0]


class TrajectoryWriter:
    """The writer of one run's trajectory file. :meth:`submit` is called on the event loop (never
    blocks on the disk); :meth:`drained` waits, without blocking the loop, until every snapshot
    submitted so far is on disk. Write failures (``OSError`` messages) are appended to the
    recorder's ``write_errors`` list given as ``errors``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: tuple[Path, str, Any, bool] | None = None
        self._running = False
        self._idle = threading.Event()
        self._idle.set()
        self.errors: list[str] = []
        self.writes = 0  # files written (for tests and the benchmark)

    def submit(self, path: Path, snapshot: str, redactor: Any, final: bool, errors: list[str]) -> None:
        """Queue ``snapshot`` (the document as JSON text, not yet redacted) for ``path``; ``final``:
        the run ended (the file is fsync-ed). Replaces a snapshot still waiting."""
        self.errors = errors
        with self._lock:
            if self._pending is not None and self._pending[3]:
                final = True  # a skipped final snapshot's durability carries over
            self._pending = (path, snapshot, redactor, final)
            if self._running:
                return
            self._running = True
            self._idle.clear()
        try:
            _executor().submit(self._drain)
        except RuntimeError:  # the interpreter is shutting down: write here
            self._drain()

    def _drain(self) -> None:
        while True:
            with self._lock:
                job, self._pending = self._pending, None
                if job is None:
                    self._running = False
                    self._idle.set()
                    return
            path, snapshot, redactor, final = job
            try:
                text = json.dumps(redactor.obj(json.loads(snapshot)), ensure_ascii=False, indent=1)
                atomic_write_text(path, text, durable=final)
                self.writes += 1
            except (OSError, ValueError) as exc:
                self.errors.append(str(exc))

    def flush(self, timeout_s: float | None = None) -> bool:
        """Block until every submitted snapshot is written (True) or ``timeout_s`` passed (False)."""
        return self._idle.wait(timeout_s)

    async def drained(self) -> None:
        """Wait, off the loop, until every submitted snapshot is written."""
        if not self._idle.is_set():
            await asyncio.to_thread(self._idle.wait)
