"""Remote sources against hostile servers and repositories (issue 21, points 7 and 8), through the
installed ``rlm``: a local server on 127.0.0.1 that drips its headers or its body a byte at a time
(each read well under any read timeout), a two-member gzip body, and a tiny repository whose trees
re-use one blob until its checkout would be hundreds of MB. Nothing here leaves the machine; every
server stops by itself."""

from __future__ import annotations

import gzip
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from loader_support import git_env  # noqa: F401

pytestmark = pytest.mark.usefixtures("git_env")

SAFETY_S = 90  # an outer bound for a hung rlm only: the assertions are on the error, never on time


class DripServer:
    """A raw HTTP server on 127.0.0.1: ``/headers`` drips its status line and headers one byte per
    ``interval`` seconds, ``/body`` sends its headers at once and drips a long body the same way,
    ``/gzip2`` answers with a two-member gzip body. Each connection stops after ``SAFETY_S`` seconds
    or when the client goes; the server stops with :meth:`close`."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket, data: bytes) -> None:
        end = time.monotonic() + SAFETY_S
        for i in range(len(data)):
            if self.stop.is_set() or time.monotonic() > end:
                return
            conn.sendall(data[i:i + 1])
            time.sleep(self.interval)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                path = request.split(b" ", 2)[1].decode()
                if path == "/headers":
                    self._drip(conn, b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 400 + b"\r\n"
                               b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
                elif path == "/body":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n")
                    self._drip(conn, b"b" * 1000)
                elif path == "/gzip2":
                    body = gzip.compress(b"first member PART-ONE\n") + gzip.compress(b"second member PART-TWO\n")
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n"
                                 + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
                elif path == "/gzip-cut":
                    body = gzip.compress(b"x" * 5000)[:-20]
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n"
                                 + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            except OSError:  # the client went away: that is the point
                return

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def drip():
    server = DripServer()
    try:
        yield server
    finally:
        server.close()


def one_line_error(proc, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith("rlm: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


@pytest.mark.parametrize("path", ["/headers", "/body"])
def test_a_dripping_server_is_cut_off_at_the_time_limit(cli, drip, tmp_path, path):
    # 400+ header bytes or 1000 body bytes at 2 per second: minutes of trickle, each read instant
    proc = cli("ls", f"{drip.url}{path}", cwd=tmp_path, RLM_FETCH_TIMEOUT="2", timeout=SAFETY_S)
    one_line_error(proc, "timed out (time limit 2 s, RLM_FETCH_TIMEOUT)")
    assert not list(tmp_path.glob("**/rlm-url-*"))


def test_every_gzip_member_is_read(cli, drip, tmp_path):
    import json

    proc = cli("ls", f"{drip.url}/gzip2", "--json", cwd=tmp_path, timeout=SAFETY_S)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["files"][0]["chars"] == len("first member PART-ONE\nsecond member PART-TWO\n")


def test_a_truncated_gzip_body_is_refused(cli, drip, tmp_path):
    proc = cli("ls", f"{drip.url}/gzip-cut", cwd=tmp_path, timeout=SAFETY_S)
    one_line_error(proc, "compressed body")


# --- git: a tree that re-uses one blob --------------------------------------------------------------

MIB = 1 << 20


def _git(repo: Path, *args: str, input: bytes | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], input=input, check=True,
                          capture_output=True).stdout.decode().strip()


def reuse_repo(tmp_path: Path, fan: tuple[int, ...] = (10, 10, 8)) -> Path:
    """A bare repository of a few kB whose one commit checks out ``prod(fan)`` copies of one 1 MiB
    blob (``fan``: entries per tree level, the last level files), built object by object."""
    bare = tmp_path / "reuse.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    blob = _git(bare, "hash-object", "-w", "--stdin", input=b"\n" * MIB)
    entries = "".join(f"100644 blob {blob}\tf{i}.txt\n" for i in range(fan[-1]))
    tree = _git(bare, "mktree", input=entries.encode())
    for width in reversed(fan[:-1]):
        tree = _git(bare, "mktree", input="".join(f"040000 tree {tree}\td{i}\n" for i in range(width)).encode())
    commit = _git(bare, "commit-tree", tree, "-m", "reuse", input=b"")
    _git(bare, "update-ref", "refs/heads/main", commit)
    _git(bare, "symbolic-ref", "HEAD", "refs/heads/main")
    return bare


def _cache_checkouts(home: Path) -> list[Path]:
    root = home / "cache" / "git"
    return [p for p in root.glob("*/*") if p.is_dir()] if root.is_dir() else []


def test_a_tree_reuse_repository_is_refused_before_checkout(cli, tmp_path):
    bare = reuse_repo(tmp_path)
    assert sum(f.stat().st_size for f in bare.rglob("*") if f.is_file()) < 200_000
    proc = cli("ls", f"file://{bare}", "--max-input-size", "1MB", cwd=tmp_path, timeout=SAFETY_S)
    one_line_error(proc, "refused", "before checkout", "--max-input-size")
    assert _cache_checkouts(cli.home) == []  # nothing checked out, nothing kept
    # the caps of the cache hold without --max-input-size too
    proc = cli("ls", f"file://{bare}", cwd=tmp_path, RLM_GIT_MAX_FILES="100", timeout=SAFETY_S)
    one_line_error(proc, "RLM_GIT_MAX_FILES")
    proc = cli("ls", f"file://{bare}", cwd=tmp_path, RLM_GIT_MAX_BYTES="10MB", timeout=SAFETY_S)
    one_line_error(proc, "RLM_GIT_MAX_BYTES")
    assert _cache_checkouts(cli.home) == []


def test_a_checkout_that_fails_to_load_is_not_kept(cli, tmp_path):
    bare = reuse_repo(tmp_path, fan=(3,))  # 3 MiB in 3 files: under the tree check of 4 MB ...
    local = tmp_path / "local.txt"
    local.write_text("y\n" * 1_000_000)  # ... but 2 MB more of local input is over it: the load fails
    proc = cli("ls", local, f"file://{bare}", "--max-input-size", "4MB", "--max-file-size", "2MB", cwd=tmp_path,
               timeout=SAFETY_S)
    one_line_error(proc, "--max-input-size")
    assert _cache_checkouts(cli.home) == []
    proc = cli("ls", f"file://{bare}", "--max-input-size", "4MB", "--max-file-size", "2MB", cwd=tmp_path,
               timeout=SAFETY_S)
    assert proc.returncode == 0, proc.stderr  # loaded: kept for the next run
    assert len(_cache_checkouts(cli.home)) == 1
