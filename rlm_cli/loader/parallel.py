"""Loading the planned files on two cores: the parent process and one forked child (Linux only).

A load spends its time in per-file work that holds the GIL (sniffing, UTF-8 checks, line counts,
chardet's first use), so threads would not help; a forked child shares the plan without copying it.
The item list is cut into contiguous chunks. The parent takes chunks from the front and writes them
straight into the context file; the child takes them from the back into a part file next to it.
Each claim is made under a ``lockf`` lock (released by the kernel if the child dies), so the two
meet wherever their speeds put them: a chunk that needs chardet slows only the process loading it.
At the end the child's chunks are copied after the parent's and their index entries shifted, so
the context file and its metadata are exactly those of a sequential load. Whatever the child did
not report (it failed, was killed, or its report is unreadable) the parent loads itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import marshal
import mmap
import os
import signal
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from rlm_cli.context import ContextWriter

MIN_ITEMS = 256  # below this many files, forking costs more than it saves
MIN_BYTES = 4 * 1024 * 1024  # ... or below this many bytes
CHUNKS = 64  # chunks the item list is cut into (more: finer balance, more claims)
_COUNTERS = struct.Struct("=qq")  # next chunk from the front, end of the unclaimed range


def available(n_items: int, n_bytes: int) -> bool:
    """Whether a two-process load is possible and worth it for ``n_items`` files of ``n_bytes`` bytes.

    Needs Linux (``fork`` without ``exec`` is unsafe on macOS), no other thread in this process (a
    lock held by another thread at ``fork`` would stay locked in the child) and two usable CPUs.
    """
    if n_items < MIN_ITEMS or n_bytes < MIN_BYTES or not sys.platform.startswith("linux"):
        return False
    if threading.active_count() != 1:
        return False
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except (AttributeError, OSError):
        return False


def chunk_bounds(sizes: Sequence[int], chunks: int = CHUNKS) -> list[int]:
    """Start indexes of contiguous chunks of about equal bytes (a per-file cost included), then ``len``."""
    per_file = 4096  # bytes a file's fixed costs (open, sniff, index) weigh, roughly
    target = (sum(sizes) + per_file * len(sizes)) / chunks
    bounds, acc = [0], 0.0
    for i, size in enumerate(sizes):
        acc += size + per_file
        if acc >= target and i + 1 < len(sizes):
            bounds.append(i + 1)
            acc = 0.0
    bounds.append(len(sizes))
    return bounds


def _claim(counters: mmap.mmap, lock_fd: int, front: bool) -> int | None:
    """The next chunk index from the front (parent) or the back (child), or ``None`` when none is left."""
    fcntl.lockf(lock_fd, fcntl.LOCK_EX)
    try:
        nxt, end = _COUNTERS.unpack(counters[:_COUNTERS.size])
        if nxt >= end:
            return None
        if front:
            chunk, nxt = nxt, nxt + 1
        else:
            chunk = end = end - 1
        counters[:_COUNTERS.size] = _COUNTERS.pack(nxt, end)
        return chunk
    finally:
        fcntl.lockf(lock_fd, fcntl.LOCK_UN)


def _child(items: Sequence, bounds: list[int], load_one: Callable, part: Path, counters: mmap.mmap,
           lock_fd: int, report_fd: int, parent_end: int) -> None:
    """The child's whole life: load chunks from the back, report them, and ``_exit`` (never returns)."""
    code = 1
    try:
        os.close(parent_end)
        parent = os.getppid()
        writer = ContextWriter(part)
        reports = {}
        while (chunk := _claim(counters, lock_fd, front=False)) is not None:
            if os.getppid() != parent:  # the parent was killed: nobody will read the result
                return
            mark = writer.mark()
            for item in items[bounds[chunk]:bounds[chunk + 1]]:
                load_one(writer, item)
            reports[chunk] = writer.report_since(mark)
        writer.finish()
        data = memoryview(marshal.dumps(reports))
        while data:
            data = data[os.write(report_fd, data):]
        code = 0
    except BaseException:  # noqa: S110 - the parent loads whatever was not reported
        pass
    finally:
        os._exit(code)


def _collect(report_fd: int, pid: int) -> dict:
    """The child's reports (chunk index -> report), ``{}`` if it failed; reaps the child."""
    chunks = []
    while True:
        data = os.read(report_fd, 1 << 20)
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        return {}
    try:
        reports = marshal.loads(b"".join(chunks))
    except (EOFError, ValueError, TypeError):
        return {}
    return reports if isinstance(reports, dict) else {}


def load_in_two(writer: ContextWriter, items: Sequence, load_one: Callable[[ContextWriter, object], None],
                part: Path) -> None:
    """Load ``items`` into ``writer`` in order with ``load_one(writer, item)``, on two processes.

    ``part`` is a scratch file next to the context file (deleted before returning). The result is
    the same as calling ``load_one`` on each item in turn. ``OSError`` from writing propagates.
    """
    bounds = chunk_bounds([getattr(item, "size", 0) for item in items])
    n_chunks = len(bounds) - 1
    counters = mmap.mmap(-1, _COUNTERS.size)
    counters[:] = _COUNTERS.pack(0, n_chunks)
    lock_fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    report_r, report_w = os.pipe()
    pid = None
    try:
        writer.mark()  # between files, or raise before forking
        # Objects that exist now stay out of the collector's passes in both processes: a collection
        # would write to every object's header and copy every page of the shared heap.
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            _child(items, bounds, load_one, part, counters, lock_fd, report_w, report_r)
        os.close(report_w)
        report_w = -1
        while (chunk := _claim(counters, lock_fd, front=True)) is not None:
            for item in items[bounds[chunk]:bounds[chunk + 1]]:
                load_one(writer, item)
        first_of_child = _COUNTERS.unpack(counters[:_COUNTERS.size])[0]
        reports = _collect(report_r, pid)
        pid = None
        for chunk in range(first_of_child, n_chunks):
            report = reports.get(chunk)
            if report is not None:
                writer.append_part(lock_fd, report)
            else:
                for item in items[bounds[chunk]:bounds[chunk + 1]]:
                    load_one(writer, item)
    finally:
        gc.unfreeze()
        if pid:  # interrupted or failed before the child was reaped
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        for fd in (lock_fd, report_r, report_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        counters.close()
        with contextlib.suppress(OSError):
            os.unlink(part)
