"""The server's SOURCEs, loaded once and reused by every request until they change on disk.

``rlm serve`` used to load its SOURCEs again for every request. :class:`SourceCache` loads them once
into a private directory (``rlm-run-*``, with its owner's marker: a killed server's copy is swept
like a killed run's) and, per request, builds the run's own context file from that copy: the loaded
bytes copied file to file (``copy_file_range``), the index shifted, then the request's messages
appended as their own file. Each run still gets its own context file (its REPL child opens it), so
no request ever sees another's messages.

Before each request the sources are fingerprinted (:mod:`rlm_cli.serve.fingerprint`: one stat per
file and directory); a different fingerprint, or one too recent to trust (a write within the clock's
granularity), loads them again, so a changed, added or removed file is seen by the next request.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlm_cli.serve import fingerprint as fp


@dataclass
class Snapshot:
    """One load of the sources: the ``loaded`` context (its file in the cache directory), the
    ``fingerprint`` taken just before it, and ``racy`` (that fingerprint cannot be trusted)."""

    loaded: Any
    fingerprint: tuple
    racy: bool
    taken_at: float = 0.0  # time.time() when the fingerprint was taken

    def report(self) -> tuple:
        """The whole context as a :meth:`~rlm_cli.context.ContextWriter.append_part` report."""
        ctx = self.loaded
        files = [(f.path, f.offset, f.chars, f.lines, f.size_bytes, f.encoding, f.language, f.converted, f.pages)
                 for f in ctx.files]
        skipped = [(s.path, s.reason, s.size_bytes) for s in ctx.skipped]
        return (0, ctx.total_bytes, ctx.total_chars, files, skipped)


class SourceCache:
    """The SOURCEs of one server (``sources``: local files and directories; ``options``: the
    :class:`~rlm_cli.loader.options.LoadOptions`), loaded at most once per change on disk.

    :meth:`build` is synchronous and thread-safe (requests call it from worker threads). ``loads``
    counts the loads done so far; ``on_load(loaded)``, when set, is called after each (the server
    logs a line). :meth:`close` removes the cache directory.
    """

    def __init__(self, sources: list[str], options: Any, on_load: Any = None) -> None:
        self.sources = list(sources)
        self.options = options
        self.on_load = on_load
        self.loads = 0
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._dir: Path | None = None
        self._closed = False

    def _directory(self) -> Path:
        if self._closed:  # a request still loading at shutdown leaves no directory behind
            from rlm_cli.errors import InputError

            raise InputError("the server is shutting down")
        if self._dir is None or not self._dir.is_dir():
            from rlm_cli.run.rundirs import make_run_dir

            self._dir = make_run_dir()
        return self._dir

    def _current(self) -> tuple[Snapshot, int]:
        """The snapshot to use now and an open descriptor of its context file (the caller closes it;
        it keeps the bytes readable even once a newer load replaces the file). Loads when needed;
        raises what :func:`~rlm_cli.loader.load_sources` raises (InputError for a vanished source)."""
        taken_at = fp.now()
        seen, newest = fp.fingerprint(self.sources, self.options)
        with self._lock:
            snap = self._snapshot
            fresh = snap is not None and not snap.racy and (snap.fingerprint == seen or snap.taken_at >= taken_at)
            if not fresh:  # (a load that started after this fingerprint was taken saw at least as much)
                snap = self._load(seen, fp.is_racy(newest, taken_at), taken_at)
            try:
                return snap, os.open(snap.loaded.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except FileNotFoundError:  # the copy was removed behind the server's back (a tmp cleaner)
                snap = self._load(seen, fp.is_racy(newest, taken_at), taken_at)
                return snap, os.open(snap.loaded.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)

    def _load(self, seen: tuple, racy: bool, taken_at: float) -> Snapshot:
        from rlm_cli.loader import load_sources

        old, self._snapshot = self._snapshot, None
        if old is not None:  # in-flight copies hold their own descriptor
            with contextlib.suppress(OSError):
                os.unlink(old.loaded.path)
        directory = self._directory()
        self.loads += 1
        loaded = load_sources(self.sources, self.options, directory / f"sources-{self.loads}.txt")
        self._snapshot = Snapshot(loaded, seen, racy, taken_at)
        if self.on_load is not None:
            self.on_load(loaded)
        return self._snapshot

    def build(self, dest: Path, extra: Path | None = None, used: list | None = None) -> Any:
        """Write the run's context file ``dest``: the sources (loaded again first if they changed),
        then the file ``extra`` (the request's messages; shown as its path), loaded as a named file
        is. Returns the :class:`~rlm_cli.context.LoadedContext`. Raises
        :class:`~rlm_cli.errors.InputError` for a vanished source or input over ``--max-input-size``,
        ``OSError`` from writing ``dest``. ``used``: the :class:`Snapshot` copied is appended to it
        (a warm REPL over that snapshot holds the same bytes, :mod:`rlm_cli.serve.warm`)."""
        from rlm_cli.context import ContextWriter
        from rlm_cli.errors import InputError
        from rlm_cli.loader.options import format_size
        from rlm_cli.loader.read import load_file

        snap, fd = self._current()
        try:
            writer = ContextWriter(Path(dest))
            try:
                writer.append_part(fd, snap.report())
                if extra is not None:
                    size = os.stat(extra).st_size
                    limit = self.options.max_input_size
                    if snap.loaded.total_bytes + size > limit:
                        raise InputError(f"the SOURCEs and the request's messages would load "
                                         f"{format_size(snap.loaded.total_bytes + size)}, over --max-input-size "
                                         f"({format_size(limit)})")
                    shown = str(extra)
                    taken = {f.path for f in snap.loaded.files}
                    n = 1
                    while shown in taken:
                        n += 1
                        shown = f"{extra} ({n})"
                    load_file(writer, shown, str(extra), size, strict=True)
                loaded = writer.finish()
                if used is not None:
                    used.append(snap)
                return loaded
            except BaseException:
                writer.abort()
                raise
        finally:
            os.close(fd)

    def close(self) -> None:
        """Remove the cache directory (idempotent)."""
        with self._lock:
            self._snapshot, self._closed = None, True
            if self._dir is not None:
                from rlm_cli.repl.sandbox import remove_tree

                remove_tree(self._dir)
                self._dir = None


def log_load(loaded: Any) -> None:
    """The server's stderr line for a load of its SOURCEs (counts only: paths stay out of the log)."""
    with contextlib.suppress(OSError, ValueError):
        print(f"rlm serve: loaded the SOURCEs: {len(loaded.files)} files, {loaded.total_chars:,} characters",
              file=sys.stderr, flush=True)
