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
import math
import random
import signal
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["RecordedRequest", "Reply", "ScriptedServer"]

WILDCARD = "*"
"""Model name whose queue and default apply to any model that has none of its own."""

MALFORMED = ("cut", "drop", "error_body", "no_choices", "null_content", "invalid_json")
"""The broken answers :class:`Reply` can script (``Reply(malformed=...)``)."""


@dataclass
class Reply:
    """One scripted answer.

    ``status`` other than 200 produces an OpenAI-style error body
    ``{"error": {"message", "type", "code"}}`` whose message is ``text`` (or a generic one).
    ``headers`` are sent with the response whatever its status (e.g. ``{"Retry-After": "1"}``).
    Token counts default to ``ceil(chars / 4)`` of the prompt messages and of ``text`` (at least 1).
    ``chunk_delay_s`` (streaming only) sleeps between SSE events; ``finish_reason`` is reported
    as given. ``send_usage=False`` leaves usage out (as llama.cpp's and other servers do), streamed
    or not.

    ``malformed`` scripts a broken answer (status 200 unless ``status`` says otherwise), one of
    :data:`MALFORMED`: ``"cut"`` (streamed: the text's pieces, then the stream ends cleanly with no
    finish reason and no ``[DONE]``; plain: half the body, then the connection closes), ``"drop"``
    (streamed: the pieces, then the connection closes mid-stream), ``"error_body"`` (an
    OpenAI-style ``{"error": ...}`` object whose message is ``text``, as the body or as an SSE
    event), ``"no_choices"`` (a completion without ``choices``; streamed: chunks with empty
    ``choices`` then ``[DONE]``), ``"null_content"`` (``content: null``, finish reason as given) and
    ``"invalid_json"`` (a body, or an SSE event, that is not JSON). ``echo_auth=True`` appends the
    request's ``Authorization`` header to ``text`` (a provider quoting the key back in an error).
    """

    text: str = ""
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    chunk_delay_s: float = 0.0
    finish_reason: str = "stop"
    send_usage: bool = True
    malformed: str | None = None
    echo_auth: bool = False

    def __post_init__(self) -> None:
        if self.malformed is not None and self.malformed not in MALFORMED:
            raise ValueError(f"malformed={self.malformed!r}: expected one of {', '.join(MALFORMED)}")


ReplySpec = str | Reply | Callable[[dict], "str | Reply"]


@dataclass
class RecordedRequest:
    """One request the server received (recorded on arrival, completed when answered).

    ``model`` is the body's ``"model"`` field (``None`` for non-chat requests), ``body`` the parsed
    JSON (``{}`` when absent or unparsable), ``status`` the HTTP status answered, ``reply_text``
    the text answered (or the error message); ``t_start``/``t_end`` are ``time.monotonic()`` values.
    ``status``, ``reply_text`` and ``t_end`` are set just before the answer's last bytes are sent
    (so a client that has its answer always sees them); they stay ``None`` while in flight, and
    ``status`` stays ``None`` for a request dropped by ``stop()``.
    """

    path: str
    method: str
    model: str | None
    body: dict
    headers: dict[str, str]
    t_start: float
    status: int | None = None
    t_end: float | None = None
    reply_text: str | None = None
    _in_flight: bool = field(default=False, repr=False, compare=False)

    @property
    def is_chat(self) -> bool:
        """Whether this was a ``POST .../chat/completions`` request."""
        return self.method == "POST" and self.path.split("?", 1)[0].rstrip("/").endswith("/chat/completions")

    @property
    def stream(self) -> bool:
        """Whether the request asked for a streamed (SSE) answer."""
        return bool(self.body.get("stream"))

    @property
    def messages(self) -> list[dict]:
        """The request's chat messages (empty list if none)."""
        return list(self.body.get("messages") or [])

    @property
    def prompt_text(self) -> str:
        """All message contents joined with newlines (handy for ``in`` assertions)."""
        return "\n".join(_content_text(m.get("content")) for m in self.messages if isinstance(m, dict))


def _content_text(content: Any) -> str:
    """Text of a message content: a string, or a list of parts (``{"type": "text", "text"}``)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                parts.append(str(part.get("text", "")))
            else:
                parts.append(str(part))
        return "".join(parts)
    return str(content)


def _error_type(status: int) -> tuple[str, str]:
    """OpenAI-style (type, code) for an HTTP error status."""
    if status == 429:
        return "rate_limit_error", "rate_limit_exceeded"
    if status == 401:
        return "authentication_error", "invalid_api_key"
    if status == 403:
        return "permission_error", "permission_denied"
    if status == 404:
        return "not_found_error", "model_not_found"
    if 400 <= status < 500:
        return "invalid_request_error", "invalid_request"
    return "server_error", "server_error"


def _split_text(text: str, pieces: int = 4) -> list[str]:
    """Split ``text`` into up to ``pieces`` non-empty consecutive parts (``[""]`` for empty text)."""
    if not text:
        return [""]
    n = min(pieces, len(text))
    size = math.ceil(len(text) / n)
    return [text[i : i + size] for i in range(0, len(text), size)]


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
        etype, code = _error_type(status)
        self._send_json(status, {"error": {"message": message, "type": etype, "code": code}}, headers)

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
        prompt_tokens = reply.prompt_tokens
        if prompt_tokens is None:
            chars = sum(
                len(_content_text(m.get("content")))
                for m in body.get("messages") or []
                if isinstance(m, dict)
            )
            prompt_tokens = math.ceil(chars / 4)
        completion_tokens = reply.completion_tokens
        if completion_tokens is None:
            completion_tokens = max(1, math.ceil(len(reply.text) / 4))
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
        }
        ident = f"chatcmpl-scripted-{owner._next_id()}"
        created = int(time.time())
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(ident, created, model, reply, usage if include_usage and reply.send_usage else None)
        else:
            self._send_json(
                200,
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": None,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply.text},
                            "logprobs": None,
                            "finish_reason": reply.finish_reason,
                        }
                    ],
                    **({"usage": usage} if reply.send_usage else {}),
                },
                reply.headers,
            )

    def _malformed_plain(self, rec: RecordedRequest, reply: Reply) -> None:
        """A broken non-streamed answer (see :class:`Reply`'s ``malformed``)."""
        kind, status = reply.malformed, reply.status
        self._settle(rec, status, reply.text)
        if kind == "error_body":
            etype, code = _error_type(400)
            self._send_json(status, {"error": {"message": reply.text, "type": etype, "code": code}})
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

        def chunk(choices: list, with_usage: dict | None = None) -> dict:
            obj = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": choices,
            }
            if usage is not None:  # as OpenAI: "usage": null on every chunk but the last
                obj["usage"] = with_usage
            return obj

        kind = reply.malformed
        events: list = []
        if kind == "error_body":
            etype, code = _error_type(400)
            events.append({"error": {"message": reply.text, "type": etype, "code": code}})
        for i, piece in enumerate(_split_text(reply.text) if kind != "error_body" else []):
            content = None if kind == "null_content" else piece
            delta = {"role": "assistant", "content": content} if i == 0 else {"content": content}
            choices = [] if kind == "no_choices" else [{"index": 0, "delta": delta, "logprobs": None,
                                                        "finish_reason": None}]
            events.append(chunk(choices))
        if kind not in ("cut", "drop", "no_choices", "error_body"):
            events.append(
                chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": reply.finish_reason}])
            )
        if usage is not None and kind not in ("cut", "drop"):
            events.append(chunk([], usage))
        payloads = [f"data: {json.dumps(e)}\n\n".encode() for e in events]
        if kind == "invalid_json":
            payloads.insert(1, b"data: {this is not json\n\n")
        if kind not in ("cut", "drop"):
            payloads.append(b"data: [DONE]\n\n")
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


class ScriptedServer:
    """A scripted OpenAI-compatible server on a background thread (see the module docstring).

    Replies are queued per model name (the request body's ``"model"``: litellm's
    ``"openai/root"`` sends ``"root"``). Each reply is a ``str``, a :class:`Reply`, or a callable
    ``(request_body: dict) -> str | Reply`` evaluated at request time. When a model's queue is
    empty its default is used; without one the server answers HTTP 500
    ``"scripted server: no reply left for model X"``. The model name ``"*"`` (``WILDCARD``)
    scripts/defaults any model that has no queue entry or default of its own.

    Thread-safe. Use as a context manager, or ``start()``/``stop()``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port
        self.requests: list[RecordedRequest] = []
        self.max_in_flight = 0
        self.in_flight = 0
        self._lock = threading.Lock()
        self._queues: dict[str, deque[ReplySpec]] = {}
        self._defaults: dict[str, ReplySpec] = {}
        self._fail_rate = 0.0
        self._fail_statuses: tuple[int, ...] = (429, 500)
        self._fail_retry_after: str | None = "0"
        self._fail_rng = random.Random(0)
        self._ids = 0
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

    # -- scripting ---------------------------------------------------------------------------
    def script(self, model: str, *replies: ReplySpec) -> ScriptedServer:
        """Append ``replies`` (str, Reply or callable(body) -> str | Reply) to ``model``'s FIFO queue."""
        for r in replies:
            _check_spec(r)
        with self._lock:
            self._queues.setdefault(model, deque()).extend(replies)
        return self

    def default(self, model: str, reply: ReplySpec) -> ScriptedServer:
        """Set the reply used for ``model`` whenever its queue is empty (``None`` removes it)."""
        with self._lock:
            if reply is None:
                self._defaults.pop(model, None)
            else:
                _check_spec(reply)
                self._defaults[model] = reply
        return self

    def fail_randomly(
        self,
        rate: float,
        statuses: tuple[int, ...] = (429, 500),
        seed: int = 0,
        retry_after: str | None = "0",
    ) -> ScriptedServer:
        """Answer a fraction ``rate`` of chat requests with one of ``statuses`` before consulting the script.

        The RNG is seeded (``seed``) so runs are reproducible; a failed request does not consume a
        scripted reply. ``retry_after`` (if not None) is sent as the ``Retry-After`` header.
        ``rate=0`` turns it off.
        """
        with self._lock:
            self._fail_rate = float(rate)
            self._fail_statuses = tuple(statuses)
            self._fail_rng = random.Random(seed)
            self._fail_retry_after = retry_after
        return self

    def pending(self, model: str) -> int:
        """How many scripted replies are still queued for ``model``."""
        with self._lock:
            return len(self._queues.get(model, ()))

    def model_names(self) -> list[str]:
        """Names of the models that have a queue or a default (what ``GET /v1/models`` lists)."""
        with self._lock:
            names = set(self._queues) | set(self._defaults)
        return sorted(n for n in names if n != WILDCARD)

    # -- inspection --------------------------------------------------------------------------
    def requests_for(self, model: str) -> list[RecordedRequest]:
        """The recorded chat requests whose body named ``model``, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.model == model and r.is_chat]

    def chat_requests(self) -> list[RecordedRequest]:
        """The recorded chat-completion requests (any model), in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.is_chat]

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
            headers={k: v for k, v in handler.headers.items()},
            t_start=time.monotonic(),
        )
        with self._lock:
            self.requests.append(rec)
            if chat:
                rec._in_flight = True
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return rec

    def _finish(self, rec: RecordedRequest, status: int | None, text: str | None) -> None:
        """Complete ``rec`` (called just before the answer's last bytes are written)."""
        with self._lock:
            rec.status = status
            rec.reply_text = text
            rec.t_end = time.monotonic()
            if rec._in_flight:
                rec._in_flight = False
                self.in_flight -= 1

    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def _next_reply(self, model: str, body: dict) -> Reply:
        """Pick (and consume) the reply for this request; errors become Reply(status=500)."""
        with self._lock:
            if self._fail_rate > 0 and self._fail_rng.random() < self._fail_rate:
                status = self._fail_rng.choice(self._fail_statuses)
                headers = {} if self._fail_retry_after is None else {"Retry-After": self._fail_retry_after}
                return Reply(f"scripted server: injected failure {status}", status=status, headers=headers)
            spec: ReplySpec | None = None
            for name in (model, WILDCARD):
                queue = self._queues.get(name)
                if queue:
                    spec = queue.popleft()
                    break
                if name in self._defaults:
                    spec = self._defaults[name]
                    break
        if spec is None:
            return Reply(f"scripted server: no reply left for model {model}", status=500)
        if callable(spec) and not isinstance(spec, Reply):
            try:
                spec = spec(body)
            except Exception as exc:  # surface test bugs as a visible 500
                return Reply(f"scripted server: reply callable raised {exc!r}", status=500)
        if isinstance(spec, str):
            return Reply(spec)
        if isinstance(spec, Reply):
            return spec
        return Reply(
            f"scripted server: reply callable returned {type(spec).__name__}, not str | Reply", status=500
        )


def _check_spec(spec: Any) -> None:
    if not (isinstance(spec, (str, Reply)) or callable(spec)):
        raise TypeError(f"a scripted reply must be str, Reply or callable, not {type(spec).__name__}")


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
