"""Shared by the ``rlm serve`` end-to-end tests: a running server (:class:`Server`), a free loopback
port, the root LM's script (:func:`root_reply`) and raw HTTP on loopback (:func:`raw_request`)."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

import openai
from helpers import trajectories, wait_until

NEEDLE = "NEEDLE-4711"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def root_reply(body: dict) -> str:
    """Root script: the question's ``QID-<n>`` decides; ``slow`` sleeps in the REPL, else the answer
    counts the needles in ``context`` (the server's sources plus the other messages)."""
    text = "\n".join(str(m.get("content") or "") for m in body["messages"])
    qid = re.search(r"QID-(\w+)", text)
    qid = qid.group(1) if qid else "none"
    if "slow" in qid:
        return "```repl\nimport time\ntime.sleep(120)\n```"
    return f'```repl\nFINAL("answer-{qid}: " + str(context.count("{NEEDLE}")))\n```'


def last_status(home: Path) -> str | None:
    """The newest trajectory's status under ``home`` (None when there is none yet)."""
    files = trajectories(home)
    return json.loads(files[-1].read_text())["status"] if files else None


class Server:
    """A running ``rlm serve``: ``url`` (…/v1), ``proc``, ``tmp`` (its TMPDIR), ``client(key)``."""

    def __init__(self, cli, tmp_path: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        self.tmp = tmp_path / "tmp"
        self.tmp.mkdir(exist_ok=True)
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.proc = cli.popen("serve", "--port", str(self.port), *args, TMPDIR=str(self.tmp), **env)
        self.stderr_lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert wait_until(lambda: self._up() or self.proc.poll() is not None, 60), "server did not start"
        assert self.proc.poll() is None, "".join(self.stderr_lines)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def _up(self) -> bool:
        try:
            urllib.request.urlopen(self.url + "/models", timeout=2)
            return True
        except urllib.error.HTTPError:
            return True  # answered (401 with a key)
        except OSError:
            return False

    def client(self, key: str = "unused", **kw) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key=key, max_retries=0, **kw)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self._reader.join(timeout=5)
        return code




def raw_request(port: int, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None, timeout: float = 60) -> tuple[int, dict, bytes]:
    """One request over ``http.client`` to 127.0.0.1:``port`` with exactly ``headers`` (``Host``
    included when given: http.client then sends no Host of its own). Returns (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = dict(headers or {})
        conn.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()

