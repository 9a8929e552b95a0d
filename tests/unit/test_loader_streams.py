"""Streams and limits: stdin, FIFOs, devices and sockets named explicitly, and --max-input-size over
every source (reading stops at the limit instead of filling the disk)."""

from __future__ import annotations

import io
import os
import socket
import threading

import pytest
from loader_support import git_env, write  # noqa: F401

from rlm_cli.errors import InputError
from rlm_cli.loader import LoadOptions, load_sources

pytestmark = pytest.mark.usefixtures("git_env")


def load(sources, tmp_path, stdin=None, **opts):
    return load_sources([str(s) for s in sources], LoadOptions(**opts), tmp_path / "ctx.txt", stdin=stdin)


SAFETY_BYTES = 64 << 20  # a stream that is read this far was not stopped: fail, do not fill the disk


class Endless(io.RawIOBase):
    """A stream that never ends (like ``yes``), counting the bytes taken from it."""

    def __init__(self, line: bytes = b"y\n") -> None:
        self.line, self.taken = line, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.taken > SAFETY_BYTES:
            raise AssertionError("read far past --max-input-size")
        n = len(buf)
        chunk = (self.line * (n // len(self.line) + 1))[:n]
        buf[:n] = chunk
        self.taken += n
        return n


def no_spool_left(tmp_path) -> bool:
    return not list(tmp_path.glob(".rlm-spool-*"))


def test_endless_stdin_stops_at_max_input_size(tmp_path):
    stream = Endless()
    with pytest.raises(InputError, match=r"^standard input goes over --max-input-size \(1 MB\): stopped reading"):
        load(["-"], tmp_path, stdin=stream, max_input_size=1_000_000)
    assert stream.taken <= 1_000_001 + 8192  # the limit, plus at most the sniffed prefix
    assert no_spool_left(tmp_path) and not (tmp_path / "ctx.txt").exists()


def test_stdin_budget_is_what_the_other_sources_leave(tmp_path):
    write(tmp_path / "d", "a.txt", "a" * 3000)
    with pytest.raises(InputError, match=r"of which the other sources take 3 kB"):
        load([tmp_path / "d", "-"], tmp_path, stdin=io.BytesIO(b"b" * 1500), max_input_size=4000)
    ctx = load([tmp_path / "d", "-"], tmp_path, stdin=io.BytesIO(b"b" * 1000), max_input_size=4000)
    assert [f.chars for f in ctx.files] == [3000, 1000] and no_spool_left(tmp_path)


def test_binary_stdin_is_skipped_after_its_prefix(tmp_path):
    stream = Endless(b"\0")
    ctx = load(["-"], tmp_path, stdin=stream)
    assert ctx.files == [] and [(s.path, s.reason) for s in ctx.skipped] == [("<stdin>", "binary (NUL bytes)")]
    assert stream.taken <= 8192 and no_spool_left(tmp_path)


def test_named_files_count_toward_max_input_size(tmp_path):
    big = write(tmp_path, "big.log", "x" * 5000)
    pic = write(tmp_path, "pic.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 50_000)  # binary: does not count
    with pytest.raises(InputError, match=r"big\.log would load 5 kB, over --max-input-size \(4 kB\): raise"):
        load([big, pic], tmp_path, max_input_size=4000)
    assert not (tmp_path / "ctx.txt").exists()
    ctx = load([big, pic], tmp_path, max_input_size=6000)
    assert [f.chars for f in ctx.files] == [5000] and ctx.skipped[0].reason == "binary (PNG image)"


def fifo_writer(path, data: bytes | None):
    """Write ``data`` (or ``y\\n`` until the reader stops, at most SAFETY_BYTES) into the FIFO at
    ``path``, in a thread."""
    def run():
        try:
            with open(path, "wb") as fh:
                if data is not None:
                    fh.write(data)
                    return
                for _ in range(SAFETY_BYTES // (2 * 65536)):
                    fh.write(b"y\n" * 65536)
        except BrokenPipeError:  # the reader stopped: what an endless producer should see
            pass
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_named_fifo_is_read_like_stdin(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    thread = fifo_writer(fifo, "from a process substitution: café\n".encode())
    ctx = load([fifo], tmp_path)
    thread.join(10)
    assert [(f.path, f.chars, f.encoding) for f in ctx.files] == [(str(fifo), 34, "utf-8")]
    assert ctx.read().endswith("café\n") and no_spool_left(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_endless_fifo_stops_at_max_input_size(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    thread = fifo_writer(fifo, None)
    with pytest.raises(InputError, match=r"pipe goes over --max-input-size \(2 MB\): stopped reading after 2 MB"):
        load([fifo], tmp_path, max_input_size=2_000_000)
    thread.join(10)
    assert not thread.is_alive() and no_spool_left(tmp_path)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_dev_zero_named_explicitly_is_skipped_as_binary(cli, tmp_path):
    # before: spooled without limit (the run never ended); the timeout makes that a failure
    proc = cli("ls", "/dev/zero", "--json", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert '"reason": "binary (NUL bytes)"' in proc.stdout and no_spool_left(tmp_path)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_named_socket_is_skipped_with_a_reason(tmp_path):
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        ctx = load([path], tmp_path)
    assert ctx.files == [] and [s.reason for s in ctx.skipped] == ["not a regular file (socket)"]


def test_ls_reports_stdin_over_the_limit_in_one_line(cli, tmp_path):
    proc = cli("ls", "-", "--max-input-size", "100kB", cwd=tmp_path, input=b"z\n" * 100_000)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("rlm: error: standard input goes over --max-input-size (100 kB)")
    assert no_spool_left(tmp_path)
