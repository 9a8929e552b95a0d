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

chardet costs about 0.1 s to load its models, and a few odd files in a large tree would otherwise
often make both processes pay it: the parent sends its samples to the child instead
(:func:`decode.set_detector`), which answers between chunks, and until the parent is done.
"""

from __future__ import annotations

import contextlib
import gc
import marshal
import mmap
import os
import select
import signal
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from rlm_cli.context import ContextWriter
from rlm_cli.loader import decode

try:
    import fcntl
except ImportError:  # Windows: no fork either, the load stays in one process
    fcntl = None

PER_FILE_BYTES = 4096  # what a file's fixed costs (open, sniff, index) weigh, in bytes read
MIN_WORK_BYTES = 8 * 1024 * 1024  # below this much work (about 30 ms), a fork costs more than it saves
MIN_ITEMS = 64  # ... and below this many files
CHUNKS = 64  # chunks the item list is cut into (more: finer balance, more claims)
ANSWER_TIMEOUT = 1.0  # seconds the parent waits for the child to detect an encoding, then does it itself
_COUNTERS = struct.Struct("=qq")  # next chunk from the front, end of the unclaimed range
_U32 = struct.Struct("=I")


def available(n_items: int, n_bytes: int) -> bool:
    """Whether a two-process load is possible and worth it for ``n_items`` files of ``n_bytes`` bytes.

    Needs enough work (``n_items * PER_FILE_BYTES + n_bytes >= MIN_WORK_BYTES``), Linux (``fork``
    without ``exec`` is unsafe on macOS), no other thread in this process (a lock held by another
    thread at ``fork`` would stay locked in the child) and two usable CPUs.
    """
    if n_items < MIN_ITEMS or n_items * PER_FILE_BYTES + n_bytes < MIN_WORK_BYTES:
        return False
    if not sys.platform.startswith("linux") or fcntl is None:
        return False
    if threading.active_count() != 1:
        return False
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except (AttributeError, OSError):
        return False


def chunk_bounds(sizes: Sequence[int], chunks: int = CHUNKS) -> list[int]:
    """Start indexes of contiguous chunks of about equal bytes (a per-file cost included), then ``len``."""
    target = (sum(sizes) + PER_FILE_BYTES * len(sizes)) / chunks
    bounds, acc = [0], 0.0
    for i, size in enumerate(sizes):
        acc += size + PER_FILE_BYTES
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


def _read_exact(fd: int, n: int) -> bytes:
    """Exactly ``n`` bytes from the pipe ``fd``; raises ``EOFError`` when it closes first."""
    data = b""
    while len(data) < n:
        more = os.read(fd, n - len(data))
        if not more:
            raise EOFError
        data += more
    return data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _serve_one(request_fd: int, answer_fd: int) -> bool:
    """Answer one of the parent's detection requests; ``False`` when the parent closed the pipe."""
    try:
        (size,) = _U32.unpack(_read_exact(request_fd, _U32.size))
        sample = _read_exact(request_fd, size)
    except EOFError:
        return False
    name = decode.detect_here(sample).encode("ascii", "replace")[:255]
    _write_all(answer_fd, bytes([len(name)]) + name)
    return True


class _RemoteDetector:
    """The parent's :func:`decode.set_detector` delegate: samples go to the child, which has (or
    loads, once) chardet; on any trouble (no answer within :data:`ANSWER_TIMEOUT`, a closed pipe)
    it gives up for good and the parent detects itself."""

    def __init__(self, request_fd: int, answer_fd: int) -> None:
        self.request_fd, self.answer_fd, self.broken = request_fd, answer_fd, False
        self.poller = select.poll()
        self.poller.register(answer_fd, select.POLLIN)

    def __call__(self, sample: bytes) -> str | None:
        if self.broken:
            return None
        self.broken = True  # until an answer arrives
        try:
            _write_all(self.request_fd, _U32.pack(len(sample)) + sample)
            if not self.poller.poll(ANSWER_TIMEOUT * 1000):
                return None
            (size,) = _read_exact(self.answer_fd, 1)
            name = _read_exact(self.answer_fd, size).decode("ascii")
        except (OSError, EOFError, UnicodeDecodeError):
            return None
        self.broken = False
        return name or None


def _child(items: Sequence, bounds: list[int], load_one: Callable, part: Path, counters: mmap.mmap,
           lock_fd: int, fds: dict[str, int], digests: bool = False) -> None:
    """The child's whole life (its writer computing fingerprints when ``digests``, as the
    parent's does): load chunks from the back, answer the parent's detection requests
    between chunks and then until the parent is done, report, and ``_exit`` (never returns)."""
    code = 1
    try:
        for name in ("report_r", "request_w", "answer_r"):
            os.close(fds[name])
        parent = os.getppid()
        requests = select.poll()
        requests.register(fds["request_r"], select.POLLIN)
        writer = ContextWriter(part, digests=digests)
        reports = {}
        while (chunk := _claim(counters, lock_fd, front=False)) is not None:
            if os.getppid() != parent:  # the parent was killed: nobody will read the result
                return
            mark = writer.mark()
            for item in items[bounds[chunk]:bounds[chunk + 1]]:
                load_one(writer, item)
            reports[chunk] = writer.report_since(mark)
            while requests.poll(0) and _serve_one(fds["request_r"], fds["answer_w"]):
                pass
        writer.finish()
        while _serve_one(fds["request_r"], fds["answer_w"]):  # until the parent closes the pipe
            pass
        _write_all(fds["report_w"], marshal.dumps(reports))
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


def _pipe(fds: dict[str, int], name: str) -> None:
    fds[name + "_r"], fds[name + "_w"] = os.pipe()
    with contextlib.suppress(AttributeError, OSError):  # room for a whole sample: writes never wait
        fcntl.fcntl(fds[name + "_w"], fcntl.F_SETPIPE_SZ, 1 << 18)


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
    fds: dict[str, int] = {}
    pid = None
    delegating = freezing = False
    try:
        fds["lock"] = os.open(part, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        for name in ("report", "request", "answer"):
            _pipe(fds, name)
        writer.mark()  # between files, or raise before forking
        # Objects that exist now stay out of the collector's passes in both processes: a collection
        # would write to every object's header and copy every page of the shared heap.
        freezing = gc.get_freeze_count() == 0  # else someone else's freeze: theirs to undo
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            _child(items, bounds, load_one, part, counters, fds["lock"], fds, writer.digesting)
        for name in ("report_w", "request_r", "answer_w"):
            os.close(fds.pop(name))
        previous = decode.set_detector(_RemoteDetector(fds["request_w"], fds["answer_r"]))
        delegating = True
        lock_fd = fds["lock"]
        while (chunk := _claim(counters, lock_fd, front=True)) is not None:
            for item in items[bounds[chunk]:bounds[chunk + 1]]:
                load_one(writer, item)
        os.close(fds.pop("request_w"))  # the child stops answering and reports
        first_of_child = _COUNTERS.unpack(counters[:_COUNTERS.size])[0]
        reports = _collect(fds["report_r"], pid)
        pid = None
        for chunk in range(first_of_child, n_chunks):
            report = reports.get(chunk)
            if report is not None:
                writer.append_part(lock_fd, report)
            else:
                for item in items[bounds[chunk]:bounds[chunk + 1]]:
                    load_one(writer, item)
    finally:
        if delegating:
            decode.set_detector(previous)
        if freezing:
            gc.unfreeze()
        if pid:  # interrupted or failed before the child was reaped
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        for fd in fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        counters.close()
        with contextlib.suppress(OSError):
            os.unlink(part)
