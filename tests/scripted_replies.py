"""Scripted LM replies, shared by the HTTP :class:`~scripted_server.ScriptedServer` and the in-process
:class:`~fake_lm.FakeLM`: what to answer (:class:`Reply`, queues and defaults per model, injected
failures), what was asked (:class:`RecordedRequest`, requests in flight), and the OpenAI-style
payloads of an answer (a chat completion, or the events of a stream). Standard library only.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MALFORMED", "WILDCARD", "Headers", "RecordedRequest", "Reply", "ReplyScript", "ReplySpec", "completion_payload",
           "error_payload", "stream_events", "usage_payload"]

WILDCARD = "*"
"""Model name whose queue and default apply to any model that has none of its own."""

MALFORMED = ("cut", "drop", "error_body", "no_choices", "null_content", "invalid_json")
"""The broken answers :class:`Reply` can script (``Reply(malformed=...)``)."""

INVALID_JSON_EVENT = "{this is not json"
"""The data of the event a ``Reply(malformed="invalid_json")`` stream carries second."""


@dataclass
class Reply:
    """One scripted answer.

    ``status`` other than 200 produces an OpenAI-style error body
    ``{"error": {"message", "type", "code"}}`` whose message is ``text`` (or a generic one).
    ``headers`` are sent with the response whatever its status (e.g. ``{"Retry-After": "1"}``).
    ``delay_s`` (seconds) passes before the answer starts. Token counts default to
    ``ceil(chars / 4)`` of the prompt messages and of ``text`` (at least 1). ``chunk_delay_s``
    (streaming only) sleeps between SSE events; ``finish_reason`` is reported as given.
    ``send_usage=False`` leaves usage out (as llama.cpp's and other servers do), streamed or not.

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
    """One request received (recorded on arrival, completed when answered).

    ``model`` is the body's ``"model"`` field (``None`` for non-chat requests): the model without
    its ``openai/`` prefix, as a provider sees it. ``body`` is the parsed JSON (``{}`` when absent or
    unparsable), ``status`` the HTTP status answered, ``reply_text`` the text answered (or the error
    message); ``t_start``/``t_end`` are ``time.monotonic()`` values. ``status``, ``reply_text`` and
    ``t_end`` are set just before the answer's last bytes are sent (so a client that has its answer
    always sees them); they stay ``None`` while in flight, and ``status`` stays ``None`` for a
    request dropped (a server stopped, a call cancelled).
    """

    path: str
    method: str
    model: str | None
    body: dict
    headers: dict[str, str]  # a Headers: names looked up case-insensitively
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
        return "\n".join(content_text(m.get("content")) for m in self.messages if isinstance(m, dict))


class Headers(dict):
    """Request headers as received (names as sent), looked up case-insensitively as HTTP names are
    (``headers.get("Authorization")`` finds ``authorization``)."""

    def _key(self, name: str) -> str:
        lower = name.lower()
        return next((k for k in self if k.lower() == lower), name)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(self._key(name))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(self._key(name))

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(self._key(name), default)


def content_text(content: Any) -> str:
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


def error_type(status: int) -> tuple[str, str]:
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


def error_payload(status: int, message: str) -> dict:
    """The OpenAI-style error body ``{"error": {"message", "type", "code"}}`` for ``status``."""
    etype, code = error_type(status)
    return {"error": {"message": message, "type": etype, "code": code}}


def split_text(text: str, pieces: int = 4) -> list[str]:
    """Split ``text`` into up to ``pieces`` non-empty consecutive parts (``[""]`` for empty text)."""
    if not text:
        return [""]
    n = min(pieces, len(text))
    size = math.ceil(len(text) / n)
    return [text[i : i + size] for i in range(0, len(text), size)]


def usage_payload(reply: Reply, body: dict) -> dict:
    """The ``usage`` object for ``reply`` to a request ``body`` (tokens: see :class:`Reply`)."""
    prompt_tokens = reply.prompt_tokens
    if prompt_tokens is None:
        chars = sum(len(content_text(m.get("content"))) for m in body.get("messages") or [] if isinstance(m, dict))
        prompt_tokens = math.ceil(chars / 4)
    completion_tokens = reply.completion_tokens
    if completion_tokens is None:
        completion_tokens = max(1, math.ceil(len(reply.text) / 4))
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
    }


def completion_payload(reply: Reply, ident: str, created: int, model: str, usage: dict) -> dict:
    """A whole (non-streamed) chat completion answering ``reply.text``; ``usage`` left out when the
    reply says ``send_usage=False``."""
    return {
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
    }


def stream_events(reply: Reply, ident: str, created: int, model: str, usage: dict | None) -> list[dict | str]:
    """The SSE ``data:`` payloads answering ``reply`` as a stream, in order: chunk objects (dicts),
    or raw text for a payload that is not an object (``"[DONE]"``, or the broken event of a
    ``malformed="invalid_json"`` reply). ``usage`` (None: not asked for or not sent) goes in a last
    chunk with no choices, as OpenAI sends it with ``stream_options.include_usage``."""

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
    events: list[dict | str] = []
    if kind == "error_body":
        events.append(error_payload(400, reply.text))
    for i, piece in enumerate(split_text(reply.text) if kind != "error_body" else []):
        content = None if kind == "null_content" else piece
        delta = {"role": "assistant", "content": content} if i == 0 else {"content": content}
        choices = [] if kind == "no_choices" else [{"index": 0, "delta": delta, "logprobs": None,
                                                    "finish_reason": None}]
        events.append(chunk(choices))
    if kind not in ("cut", "drop", "no_choices", "error_body"):
        events.append(chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": reply.finish_reason}]))
    if usage is not None and kind not in ("cut", "drop"):
        events.append(chunk([], usage))
    if kind == "invalid_json":
        events.insert(1, INVALID_JSON_EVENT)
    if kind not in ("cut", "drop"):
        events.append("[DONE]")
    return events


class ReplyScript:
    """Replies queued per model name, and the requests that consumed them. Thread-safe.

    Each reply is a ``str``, a :class:`Reply`, or a callable ``(request_body: dict) -> str | Reply``
    evaluated at request time. When a model's queue is empty its default is used; without one the
    answer is HTTP 500 ``"scripted server: no reply left for model X"``. The model name ``"*"``
    (:data:`WILDCARD`) scripts/defaults any model that has no queue entry or default of its own.
    ``requests`` lists every request in arrival order; ``in_flight``/``max_in_flight`` count chat
    requests not yet answered, now and at most.
    """

    def __init__(self) -> None:
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

    # -- scripting ---------------------------------------------------------------------------
    def script(self, model: str, *replies: ReplySpec):
        """Append ``replies`` (str, Reply or callable(body) -> str | Reply) to ``model``'s FIFO queue;
        returns self."""
        for r in replies:
            _check_spec(r)
        with self._lock:
            self._queues.setdefault(model, deque()).extend(replies)
        return self

    def default(self, model: str, reply: ReplySpec | None):
        """Set the reply used for ``model`` whenever its queue is empty (``None`` removes it); returns self."""
        with self._lock:
            if reply is None:
                self._defaults.pop(model, None)
            else:
                _check_spec(reply)
                self._defaults[model] = reply
        return self

    def fail_randomly(self, rate: float, statuses: tuple[int, ...] = (429, 500), seed: int = 0,
                      retry_after: str | None = "0"):
        """Answer a fraction ``rate`` of chat requests with one of ``statuses`` before consulting the
        script; returns self.

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

    # -- for the server and the fake ------------------------------------------------------------
    def _add(self, rec: RecordedRequest, chat: bool) -> RecordedRequest:
        """Record an arriving request; a chat request also counts as in flight until finished."""
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
        return Reply(f"scripted server: reply callable returned {type(spec).__name__}, not str | Reply", status=500)


def _check_spec(spec: Any) -> None:
    if not (isinstance(spec, (str, Reply)) or callable(spec)):
        raise TypeError(f"a scripted reply must be str, Reply or callable, not {type(spec).__name__}")
