"""A scripted OpenAI-compatible chat-completions server for tests and benchmarks.

No LLM provider is reachable from the test machines, so tests point litellm at this server
(``model="openai/<name>"``, ``api_base=server.base_url``, any ``api_key``) and script, per model
name, the replies it must give. Standard library only.

Typical use (see ``tests/conftest.py`` for the ``scripted_server`` fixture)::

    with ScriptedServer() as server:
        server.script("root", "first reply", Reply("slow", delay_s=0.5))
        server.default("sub", lambda body: "echo: " + body["messages"][-1]["content"])
        litellm.completion(model="openai/root", api_base=server.base_url, api_key="sk-test", ...)
        assert server.requests_for("root")[0].body["messages"] == [...]

Standalone (benchmarks)::

    python tests/scripted_server.py --port 8123 --script script.json

where ``script.json`` is ``{"root": ["reply", ...], "sub": [...], "defaults": {"sub": "ok"},
"delay_s": 0.05}``; a reply may also be an object with :class:`Reply`'s fields. The base URL is
printed on one line of stdout once the server accepts connections; it runs until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # scripted_replies, when run as a script

from scripted_replies import (  # noqa: E402
    MALFORMED,
    WILDCARD,
    Headers,
    RecordedRequest,
    Reply,
    ReplyScript,
    ReplySpec,
    completion_payload,
    error_payload,
    stream_events,
    usage_payload,
)

__all__ = ["MALFORMED", "WILDCARD", "RecordedRequest", "Reply", "ReplySpec", "ScriptedServer"]


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks open connections so ``stop()`` can close them."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # listen backlog: tests fan out 100+ connections at once

    def __init__(self, addr, handler, owner: ScriptedServer):
        self.owner = owner
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def handle_error(self, request, client_address):
        """Stay quiet about disconnects (clients drop pools, ``stop()`` cuts connections)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)) or self.owner._stopping.is_set():
            return
        if isinstance(exc, OSError) and exc.errno in (9, 32, 104, 107):  # EBADF EPIPE ECONNRESET ENOTCONN
            return
        traceback.print_exc()


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # headers and body go in separate writes: no 40 ms delayed-ACK stalls
    """Request handler; all state lives on ``self.server.owner`` (the ScriptedServer)."""

    protocol_version = "HTTP/1.1"  # keep-alive, like real providers (clients pool connections)
    server_version = "ScriptedServer/1"
    sys_version = ""
    server: _HTTPServer

    # -- connection bookkeeping -------------------------------------------------------------
    def setup(self):
        super().setup()
        with self.server.conns_lock:
            self.server.conns.add(self.connection)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        finally:
            with self.server.conns_lock:
                self.server.conns.discard(self.connection)

    def log_message(self, format, *args):
        pass

    # -- low-level writers ------------------------------------------------------------------
    _outcome: tuple[RecordedRequest, int | None, str | None] | None = None

    def _settle(self, rec: RecordedRequest, status: int | None, text: str | None) -> None:
        """Say how ``rec`` will be answered; recorded by ``_complete()`` before the last bytes go out."""
        self._outcome = (rec, status, text)

    def _complete(self) -> None:
        """Record the settled outcome now, so a client holding its answer always finds it recorded."""
        if self._outcome is not None:
            rec, status, text = self._outcome
            self._outcome = None
            self.server.owner._finish(rec, status, text)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self._complete()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error_json(self, status: int, message: str, headers: dict[str, str] | None = None):
        self._send_json(status, error_payload(status, message), headers)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # -- routes -----------------------------------------------------------------------------
    def do_GET(self):
        owner = self.server.owner
        path = self.path.split("?", 1)[0].rstrip("/")
        rec = owner._record(self, "GET", None, {})
        if path in ("/v1/models", "/models"):
            data = [
                {"id": name, "object": "model", "created": 0, "owned_by": "scripted-server"}
                for name in owner.model_names()
            ]
            self._settle(rec, 200, None)
            self._send_json(200, {"object": "list", "data": data})
        else:
            message = f"scripted server: no route GET {self.path}"
            self._settle(rec, 404, message)
            self._send_error_json(404, message)

    def do_POST(self):
        owner = self.server.owner
        path = self.path.split("?", 1)[0].rstrip("/")
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else {}
            if not isinstance(body, dict):
                raise ValueError("body is not a JSON object")
        except ValueError as exc:
            rec = owner._record(self, "POST", None, {})
            message = f"scripted server: invalid JSON body: {exc}"
            self._settle(rec, 400, message)
            self._send_error_json(400, message)
            return
        model = body.get("model")
        chat = path in ("/v1/chat/completions", "/chat/completions")
        rec = owner._record(self, "POST", model if isinstance(model, str) else None, body, chat=chat)
        try:
            if chat:
                self._chat(owner, rec, body)
            else:
                message = f"scripted server: no route POST {self.path}"
                self._settle(rec, 404, message)
                self._send_error_json(404, message)
        finally:
            self._outcome = None
            if rec.t_end is None:  # dropped (stop() or a broken connection)
                owner._finish(rec, None, None)

    def _chat(self, owner: ScriptedServer, rec: RecordedRequest, body: dict):
        model = rec.model or ""
        reply = owner._next_reply(model, body)
        if reply.delay_s > 0 and owner._stopping.wait(reply.delay_s):
            self.close_connection = True  # stopping: drop the request
            return
        if reply.echo_auth:
            reply = dataclasses.replace(reply, text=f"{reply.text} {self.headers.get('Authorization', '')}")
        if reply.malformed is not None and not body.get("stream"):
            self._malformed_plain(rec, reply)
            return
        if reply.status != 200:
            message = reply.text or f"scripted server: error {reply.status}"
            self._settle(rec, reply.status, message)
            self._send_error_json(reply.status, message, reply.headers)
            return
        self._settle(rec, 200, reply.text)
        usage = usage_payload(reply, body)
        ident = f"chatcmpl-scripted-{owner._next_id()}"
        created = int(time.time())
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(ident, created, model, reply, usage if include_usage and reply.send_usage else None)
        else:
            self._send_json(200, completion_payload(reply, ident, created, model, usage), reply.headers)

    def _malformed_plain(self, rec: RecordedRequest, reply: Reply) -> None:
        """A broken non-streamed answer (see :class:`Reply`'s ``malformed``)."""
        kind, status = reply.malformed, reply.status
        self._settle(rec, status, reply.text)
        if kind == "error_body":
            self._send_json(status, error_payload(400, reply.text))
            return
        base = {"id": "chatcmpl-broken", "object": "chat.completion", "created": int(time.time()),
                "model": rec.model}
        if kind == "no_choices":
            self._send_json(status, base)
            return
        if kind == "null_content":
            choice = {"index": 0, "message": {"role": "assistant", "content": None},
                      "finish_reason": reply.finish_reason}
            self._send_json(status, {**base, "choices": [choice]})
            return
        data = json.dumps({**base, "choices": [{"index": 0, "message": {"role": "assistant",
                                                                         "content": reply.text}}]}).encode()
        if kind == "invalid_json":
            data = data[: len(data) // 2] + b"<html>not json"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self._complete()
        if kind in ("cut", "drop"):  # half the promised body, then the connection goes
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(data)
        self.wfile.flush()

    def _stream(self, ident: str, created: int, model: str, reply: Reply, usage: dict | None):
        """Answer as Server-Sent Events over chunked transfer encoding (keeps the connection)."""
        stopping = self.server.owner._stopping
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in reply.headers.items():
            self.send_header(k, str(v))
        self.end_headers()

        kind = reply.malformed
        events = stream_events(reply, ident, created, model, usage)
        payloads = [b"data: %s\n\n" % (e if isinstance(e, str) else json.dumps(e)).encode() for e in events]
        for n, data in enumerate(payloads):
            if n and reply.chunk_delay_s > 0 and stopping.wait(reply.chunk_delay_s):
                self.close_connection = True
                return
            if n == len(payloads) - 1:
                self._complete()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self._complete()
        if kind == "drop":  # the connection goes without the chunked encoding's last chunk
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class ScriptedServer(ReplyScript):
    """A scripted OpenAI-compatible server on a background thread (see the module docstring).

    Replies are queued per model name (the request body's ``"model"``: litellm's
    ``"openai/root"`` sends ``"root"``); scripting and inspection are :class:`ReplyScript`'s.

    Thread-safe. Use as a context manager, or ``start()``/``stop()``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port
        super().__init__()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1`` (the real port once started)."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> ScriptedServer:
        """Bind and serve on a daemon thread; returns self. Port 0 picks a free port."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), _Handler, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"scripted-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: wake delayed handlers, cut open (keep-alive) connections, close the socket.

        Idempotent and bounded in time (never waits on client connections).
        """
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()  # returns once serve_forever has left its loop
        with httpd.conns_lock:
            conns = list(httpd.conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- internals used by the handler -------------------------------------------------------
    def _record(
        self, handler: _Handler, method: str, model: str | None, body: dict, chat: bool = False
    ) -> RecordedRequest:
        """Record an arriving request; a chat request also counts as in flight until finished."""
        rec = RecordedRequest(
            path=handler.path,
            method=method,
            model=model,
            body=body,
            headers=Headers(handler.headers.items()),
            t_start=time.monotonic(),
        )
        return self._add(rec, chat)


# -- standalone ----------------------------------------------------------------------------------
def _reply_from_json(item: Any, delay_s: float) -> Reply:
    if isinstance(item, str):
        return Reply(item, delay_s=delay_s)
    if isinstance(item, dict):
        return Reply(**{"delay_s": delay_s, **item})
    raise ValueError(f"a reply must be a string or an object, not {item!r}")


def load_script(server: ScriptedServer, script: dict) -> None:
    """Load a JSON script ``{"model": [reply, ...], "defaults": {model: reply}, "delay_s": s}``."""
    delay_s = float(script.get("delay_s", 0.0))
    for model, reply in (script.get("defaults") or {}).items():
        server.default(model, _reply_from_json(reply, delay_s))
    for model, replies in script.items():
        if model in ("defaults", "delay_s"):
            continue
        if not isinstance(replies, list):
            replies = [replies]
        server.script(model, *(_reply_from_json(r, delay_s) for r in replies))


def main(argv: list[str] | None = None) -> int:
    """Run the server in the foreground; print the base URL on stdout when ready."""
    parser = argparse.ArgumentParser(
        description="Scripted OpenAI-compatible chat server (for tests and benchmarks)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--script", help="JSON file: {model: [reply, ...], 'defaults': {...}, 'delay_s': s}")
    args = parser.parse_args(argv)

    server = ScriptedServer(args.host, args.port)
    if args.script:
        with open(args.script, encoding="utf-8") as fh:
            load_script(server, json.load(fh))
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: it is ignored in background jobs otherwise
        signal.signal(sig, lambda *_: done.set())
    server.start()
    print(server.base_url, flush=True)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
