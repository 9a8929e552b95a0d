"""Conversions in a separate worker process, with memory and time limits.

A hostile document (a PDF decompression bomb, a page that makes a parser loop) must not hang or
exhaust the load. :class:`ConverterProcess` starts one worker (``python -m
rlm_cli.loader.convert.worker``) on first use and keeps it for the files that follow. The worker
caps its own address space at :data:`MEMORY_LIMIT_BYTES` (``RLIMIT_AS``; a ``MemoryError`` is
reported as a reason) and reports progress after each page; the parent kills it when no progress
arrives for :data:`IDLE_TIMEOUT` seconds or a file takes over :data:`FILE_TIMEOUT` seconds, and
starts a fresh one for the next file. Frames on the pipes are a 4-byte length and a ``marshal``
payload; the worker reads the file itself from its path.

Requests: ``(kind, fs_path, max_chars)``. Replies: ``("progress", done, total)`` any number of
times, then ``("ok", text, note, pages)`` or ``("error", reason)``. ``("warm", kinds, 0)`` asks the
worker to import those converters' libraries ahead of time (no reply): :meth:`ConverterProcess.prestart`
starts the worker when the plan holds documents, so its start overlaps the loading of other files.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from rlm_cli.loader.convert import ConversionError, Converted, convert_file

MEMORY_LIMIT_BYTES = 3 * 1024**3  # the worker's address space (bytes)
IDLE_TIMEOUT = 60.0  # seconds without progress before a conversion is stopped
FILE_TIMEOUT = 600.0  # seconds one file may take in all
_LEN = struct.Struct("=Q")

try:
    import fcntl
except ImportError:  # Windows: no fork, no sharing, no lock needed
    fcntl = None


def _read_exact(fd: int, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        more = os.read(fd, min(n - len(data), 1 << 20))
        if not more:
            raise EOFError
        data += more
    return bytes(data)


def _write_frame(fd: int, obj) -> None:
    payload = marshal.dumps(obj)
    view = memoryview(_LEN.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view):]


def _read_frame(fd: int):
    (size,) = _LEN.unpack(_read_exact(fd, _LEN.size))
    return marshal.loads(_read_exact(fd, size))


class ConverterProcess:
    """The loading process's handle on the worker (see the module doc).

    :meth:`convert` returns a :class:`Converted` or raises :class:`ConversionError`; :meth:`close`
    ends the worker. After a ``fork`` (the two-process load) the child shares the parent's worker:
    each request and its reply are made under a ``lockf`` lock on an inherited file, so the two
    never interleave and the child pays no second start. A child whose shared worker fails kills it
    (the parent sees it dead and starts another) and goes on with a worker of its own. A worker that
    dies under a file is replaced and the file tried once more.
    """

    def __init__(self) -> None:
        # -P: no current directory on sys.path (with -m it would come first: a `pypdf/` or `rlm_cli/`
        # in the directory rlm runs from would be imported by the worker)
        self.command = [sys.executable, "-P", "-m", "rlm_cli.loader.convert.worker"]  # the worker's argv
        self._proc: subprocess.Popen | None = None
        self._owner = os.getpid()  # the process that started self._proc
        self._lock = None  # a temporary file, locked around each request (shared across fork)

    def _start(self) -> subprocess.Popen:
        pid = os.getpid()
        if self._proc is not None:
            if self._owner != pid:  # forked: the parent's worker (the child cannot wait for it)
                return self._proc
            if self._proc.poll() is None:
                return self._proc
            self._kill()
        self._owner = pid
        if self._lock is None and fcntl is not None:
            self._lock = tempfile.TemporaryFile(prefix="rlm-convert-lock-")  # noqa: SIM115 - closed by close()
        self._proc = subprocess.Popen(  # noqa: S603 - our own module, no shell
            self.command, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True)
        return self._proc

    @contextlib.contextmanager
    def _locked(self):
        lock = self._lock
        if lock is None or fcntl is None:
            yield
            return
        fcntl.lockf(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(lock.fileno(), fcntl.LOCK_UN)

    def prestart(self, kinds: list[str]) -> None:
        """Start the worker now and have it import the converters for ``kinds`` (``"pdf"``, ``"html"``...)
        while this process goes on; never raises (a failure shows at the first :meth:`convert`)."""
        try:
            proc = self._start()
            with self._locked():
                _write_frame(proc.stdin.fileno(), ("warm", sorted(kinds), 0))
        except OSError:
            self._kill()

    def convert(self, kind: str, fs_path: str, max_chars: int,
                progress: Callable[[int, int], None] | None = None) -> Converted:
        """Convert one file in the worker; ``progress(done, total)`` as pages are done.

        Raises :class:`ConversionError` (the reason: the converter's, or a timeout, or the worker's
        death).
        """
        for attempt in (1, 2):
            try:
                with self._locked():
                    proc = self._start()
                    return self._exchange(proc, kind, fs_path, max_chars, progress)
            except _WorkerLost as lost:
                # The worker died under this file, or was already gone (killed by the other process
                # of a two-process load after a failure of its own): once more with a fresh worker.
                if attempt == 2:
                    raise ConversionError(lost.reason) from None
                if self._owner != os.getpid():  # forked: from now on a worker of our own
                    self._proc, self._lock = None, None
        raise AssertionError("unreachable")

    def _exchange(self, proc: subprocess.Popen, kind: str, fs_path: str, max_chars: int,
                  progress: Callable[[int, int], None] | None) -> Converted:
        try:
            _write_frame(proc.stdin.fileno(), (kind, fs_path, max_chars))
        except OSError:
            code = self._kill()
            raise _WorkerLost(f"the converter process died ({_how(code)})", code) from None
        fd = proc.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        started = last = time.monotonic()
        while True:
            now = time.monotonic()
            idle_left, file_left = IDLE_TIMEOUT - (now - last), FILE_TIMEOUT - (now - started)
            wait = min(idle_left, file_left)
            if wait <= 0 or not poller.poll(max(1, int(wait * 1000) + 1)):
                self._kill()
                limit = f"no progress for {IDLE_TIMEOUT:g} s" if idle_left <= file_left else f"over {FILE_TIMEOUT:g} s"
                raise ConversionError(f"conversion stopped: {limit}")
            try:
                frame = _read_frame(fd)
            except (EOFError, OSError, ValueError):
                code = self._kill()
                raise _WorkerLost(f"the converter process died ({_how(code)})", code) from None
            if frame[0] == "progress":
                last = time.monotonic()
                if progress is not None:
                    progress(frame[1], frame[2])
                continue
            if frame[0] == "ok":
                return Converted(frame[1], frame[2], frame[3])
            raise ConversionError(frame[1])

    def _kill(self) -> int | None:
        """Kill the worker; its exit status when this process started it (else ``None``)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if self._owner != os.getpid():  # the parent's: killed by pid (Popen cannot, here); it reaps it
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGKILL)
            return None
        with contextlib.suppress(OSError):
            proc.kill()
        code = proc.wait()
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        return code

    def stop(self) -> None:
        """Kill an idle worker this process started (one started ahead of a need that did not come)."""
        if self._proc is not None and self._owner == os.getpid():
            self._kill()

    def close(self) -> None:
        """End the worker (if this process started one) and drop the lock file."""
        if self._proc is not None and self._owner == os.getpid():
            proc, self._proc = self._proc, None
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            with contextlib.suppress(OSError):
                proc.stdout.close()
        if self._lock is not None and self._owner == os.getpid():
            self._lock.close()
            self._lock = None


class _WorkerLost(Exception):
    """The worker died or could not be written to: ``reason``, and its exit status when known."""

    def __init__(self, reason: str, code: int | None) -> None:
        super().__init__(reason)
        self.reason, self.code = reason, code


def _how(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {-code}; out of memory?" if -code == 9 else f"signal {-code}"
    return f"exit status {code}"


_MODULES = {"pdf": "pypdf", "html": "bs4", "epub": "bs4", "docx": "docx"}


def _warm(kinds) -> None:
    """Import the libraries of the converters for ``kinds`` (errors are left to the conversion);
    bs4 as the HTML converter imports it (:func:`~rlm_cli.loader.convert.html.import_bs4`)."""
    import importlib

    for kind in kinds if isinstance(kinds, list) else ():
        name = _MODULES.get(kind)
        if name:
            try:
                if name == "bs4":
                    from rlm_cli.loader.convert.html import import_bs4

                    import_bs4()
                else:
                    importlib.import_module(name)
            except Exception:  # noqa: BLE001, S112 - reported by the conversion itself
                continue


def main() -> None:
    """The worker's loop: read requests from stdin until it closes, answer on stdout."""
    try:
        import resource

        soft = MEMORY_LIMIT_BYTES
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except (ImportError, ValueError, OSError):
        pass
    import warnings

    warnings.simplefilter("ignore")
    import logging

    logging.disable(logging.CRITICAL)  # pypdf logs warnings about broken files: the reason says enough
    rfd, wfd = sys.stdin.fileno(), sys.stdout.fileno()
    while True:
        try:
            kind, fs_path, max_chars = _read_frame(rfd)
        except (EOFError, OSError, ValueError):
            return
        if kind == "warm":
            _warm(fs_path)
            continue
        try:
            result = convert_file(kind, fs_path, max_chars,
                                  lambda done, total: _write_frame(wfd, ("progress", done, total)))
            reply = ("ok", result.text, result.note, result.pages)
        except ConversionError as exc:
            reply = ("error", str(exc))
        except MemoryError:
            reply = ("error", "needs too much memory to convert")
        except Exception as exc:  # noqa: BLE001 - a converter's bug must not end the load
            reply = ("error", f"conversion failed ({type(exc).__name__}: {' '.join(str(exc).split())[:100]})")
        _write_frame(wfd, reply)


if __name__ == "__main__":
    main()
