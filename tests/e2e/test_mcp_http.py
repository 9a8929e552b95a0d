"""End-to-end: ``rlm mcp --http`` driven by the MCP SDK's streamable-HTTP client: tools, an answer,
progress, the roots scope, ``continue``; a foreign Origin or Host refused on loopback (key or no
key), the API key rule, and a non-loopback bind without a key refused."""

from __future__ import annotations

import re
import signal
import threading
import urllib.error
import urllib.request

import anyio
import pytest
from helpers import wait_until
from mcp_support import NEEDLE, http_session, root_reply
from scripted_server import Reply


class HttpServer:
    """A running ``rlm mcp --http 127.0.0.1:0``: ``url`` (…/mcp) read from its stderr."""

    def __init__(self, cli, *args: str) -> None:
        self.proc = cli.popen("mcp", "--http", "127.0.0.1:0", *args)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True).start()
        assert wait_until(lambda: self.url or self.proc.poll() is not None, 60), "did not start"
        assert self.proc.poll() is None, "".join(self.lines)

    @property
    def url(self) -> str | None:
        for line in list(self.lines):
            m = re.search(r"listening on (http://\S+/mcp)", line)
            if m:
                return m.group(1)
        return None

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def http(cli, scripted_server):
    scripted_server.default("root", root_reply)
    scripted_server.default("sub", Reply("sub ok", delay_s=0.3))
    servers = []

    def start(*args: str) -> HttpServer:
        servers.append(HttpServer(cli, *args))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def _post(url: str, headers: dict) -> int:
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}'
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_http_ask_progress_scope_and_continue(http, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text(f"{NEEDLE}\n{NEEDLE}\n")
    (tmp_path / "secret.txt").write_text("no\n")
    server = http("--concurrency", "2")
    messages = []

    async def progress(value, total, message):
        messages.append(message)

    async def main():
        async with http_session(server.url, roots=[ws]) as s:
            tools = {t.name for t in (await s.list_tools()).tools}
            answer = await s.call_tool("ask", {"question": "QID-count", "sources": [str(ws / "a.txt")]})
            fan = await s.call_tool("ask", {"question": "QID-fan", "sources": [str(ws)]}, progress_callback=progress)
            refused = await s.call_tool("ask", {"question": "QID-count", "sources": [str(tmp_path / "secret.txt")]})
            keep = await s.call_tool("ask", {"question": "QID-keep", "sources": [str(ws)]})
            recall = await s.call_tool("ask", {"question": "QID-recall", "continue": True})
            return tools, answer, fan, refused, keep, recall

    tools, answer, fan, refused, keep, recall = anyio.run(main)
    assert tools == {"ask", "ls", "show"}
    assert answer.content[0].text == "n=2" and answer.structured_content["status"] == "answered"
    assert fan.content[0].text == "fanned 6" and len(messages) >= 2
    assert refused.is_error and "outside the client's roots" in refused.content[0].text
    assert recall.content[0].text == "recalled 42"


def test_foreign_origin_and_host_are_refused_on_loopback(http):
    for args in ((), ("--api-key", "k1")):
        server = http(*args)
        auth = {"Authorization": "Bearer k1"} if args else {}
        assert _post(server.url, {**auth, "Origin": "http://evil.example"}) == 403
        assert _post(server.url, {**auth, "Host": "evil.example"}) == 421
        assert _post(server.url, {**auth, "Origin": "http://127.0.0.1:1"}) not in (403, 421)
        if args:
            assert _post(server.url, {"Authorization": "Bearer wrong"}) == 401
            assert _post(server.url, {}) == 401


def test_http_with_the_key_works_with_the_sdk_client(http, tmp_path):
    server = http("--api-key", "k2")

    async def main():
        async with http_session(server.url, roots=[tmp_path], headers={"Authorization": "Bearer k2"}) as s:
            return {t.name for t in (await s.list_tools()).tools}

    assert anyio.run(main) == {"ask", "ls", "show"}


def test_non_loopback_bind_without_a_key_is_refused(cli):
    proc = cli("mcp", "--http", "0.0.0.0:0")
    assert proc.returncode == 2
    assert "API key" in proc.stderr and proc.stderr.count("\n") == 1
    assert cli("mcp", "--http", "nonsense").returncode == 2
