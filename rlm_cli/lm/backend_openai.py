"""LM calls to OpenAI and OpenAI-compatible servers (``openai/`` models) through the OpenAI SDK.

For ``openai/`` models litellm itself calls this SDK; calling it directly skips litellm's import
(~3 s of CPU and ~110 MB more than the SDK's own) and its per-call bookkeeping (~3 ms of CPU per
call, which serialises on the event loop and stretched a 64-call fan-out to 1.2-1.3 x its ideal
time; ``bench/bench_fanout.py``). Behaviour is kept the same as through litellm:

- the model is the part after ``openai/``; the base URL is ``api_base``, else ``OPENAI_BASE_URL``,
  else ``OPENAI_API_BASE``, else the SDK's default; the key is ``api_key``, else ``OPENAI_API_KEY``;
- every option goes in the JSON body as given (``-o top_k 5`` reaches a vLLM server); litellm-only
  arguments (``num_retries``, ``drop_params``...) are dropped;
- the SDK's own retries are off (``max_retries=0``): :class:`rlm_cli.lm.client.LMClient` retries;
- requests go over the SDK's aiohttp transport (``openai[aiohttp]``), which costs half the CPU per
  call of its default httpx one;
- prices come from litellm's bundled map (:mod:`rlm_cli.lm.pricing`), as litellm would price them;
- replies are checked (:mod:`rlm_cli.lm.replies`): a body that is not JSON, carries an ``error``,
  has no choices or null content, or a stream cut off before its finish reason, is a
  :class:`~rlm_cli.lm.errors.MalformedReply` (retried); so is a connection lost mid-stream.

``RLM_LM_BACKEND=litellm`` sends ``openai/`` models through litellm instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

from rlm_cli.lm import imports, pricing
from rlm_cli.lm.errors import (
    FatalLMError,
    Fault,
    MalformedReply,
    classify,
    retry_after_from,
    short_message,
    status_of,
)
from rlm_cli.lm.replies import StreamCheck, reply_text
from rlm_cli.run.events import Usage

PREFIX = "openai/"
PATH = "/chat/completions"
_DROPPED = frozenset({"num_retries", "max_retries", "drop_params", "api_base", "api_key", "base_url",
                      "custom_llm_provider", "cache_control_injection_points", "mock_response"})


def handles(model: str) -> bool:
    """True for the models this path serves: ``openai/<name>`` (OpenAI or any compatible server)."""
    return model.startswith(PREFIX) and len(model) > len(PREFIX)


CALL_TIME_MODULES = ("openai", "httpx2", "anyio._backends._asyncio", "anyio.streams.memory",
                     "anyio.streams.stapled", "concurrent.futures.thread", "encodings.idna", "queue",
                     "stringprep")
"""What the first call imports besides the SDK itself (openai 3.57 over aiohttp: its transport's
anyio backend, the resolver's thread pool, IDNA host names): imported by :func:`warm_up`, so that a
call made while the prewarm imports litellm imports nothing (``tests/unit/test_lm_imports.py``
checks the list)."""

PEEKED_MODULES = ("httpx",)
"""Modules the SDK reads from ``sys.modules`` during every request without importing them (openai
3.57, ``_httpx2.normalize_httpx_timeout``: ``isinstance(value, sys.modules["httpx"].Timeout)``, for
callers that pass httpx objects). litellm imports httpx: were that import running in the prewarm
thread while a request is built, the SDK would read a half-initialised module and the call fail with
``AttributeError: partially initialized module 'httpx' has no attribute 'Timeout'`` (an ``openai/``
root beside a litellm-routed sub-model: 1 run in 13 under load). So when this process will import
litellm too (:func:`expect_litellm`), :func:`warm_up` imports them before the first call can go."""

_warm = threading.Event()
_peeked_too = False


def expect_litellm() -> None:
    """Say that this process will import litellm as well: :func:`warm_up` then imports
    :data:`PEEKED_MODULES` with the SDK. Call it before the first request (``prewarm`` does)."""
    global _peeked_too
    _peeked_too = True


def warm_up() -> None:
    """Import the SDK, its aiohttp transport and what its first call imports
    (:data:`CALL_TIME_MODULES`), under :data:`rlm_cli.lm.imports.IMPORT_LOCK`, and build the TLS
    context. Called by the prewarm thread and before the first client is made (then a no-op)."""
    if _warm.is_set():
        return
    with imports.IMPORT_LOCK:
        imports.load_all(CALL_TIME_MODULES + (PEEKED_MODULES if _peeked_too else ()))
        with contextlib.suppress(ImportError):
            _http_client(imports.load("openai"))  # the transport's own imports and the TLS context
        _warm.set()


async def _warmed() -> None:
    """:func:`warm_up` in a worker thread when it has not run yet: the first call waits for the SDK's
    import (or the prewarm thread's) without blocking the event loop, so the REPL start scheduled
    beside the first root call goes on meanwhile."""
    if not _warm.is_set():
        import asyncio

        await asyncio.to_thread(warm_up)


def _http_client(openai):
    """The SDK's aiohttp-based client (the ``openai[aiohttp]`` extra): about 1.2 ms of CPU per call
    against 1.9 ms for its default httpx2 one (openai 3.57, 640 calls at 16 in flight;
    ``bench/bench_lm_paths.py``), on the process's one TLS context (:func:`_tls_context`); the
    default client when the extra is missing."""
    try:
        context = _tls_context()
        return openai.DefaultAioHttpClient(**({"verify": context} if context is not None else {}))
    except Exception:
        return None


_tls_lock = threading.Lock()
_tls: list = []  # the one TLS context, once built (None if it could not be)


def _tls_context():
    """The TLS context the SDK's HTTP client builds for itself when given none
    (``httpx2.create_ssl_context()``: the default CA store, ``SSL_CERT_FILE`` and friends honoured),
    built once per process and shared by its clients. Building it reads the CA bundle (60-200 ms of
    CPU): :func:`warm_up` does it in the prewarm thread, so the first call no longer does it again.
    None when httpx2 is not the SDK's HTTP library (the client then builds its own)."""
    with _tls_lock:
        if not _tls:
            try:
                _tls.append(imports.load("httpx2").create_ssl_context())
            except Exception:
                _tls.append(None)
        return _tls[0]


def _lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` is an HTTP transport error (other than an unsupported URL scheme) raised while
    a reply was read: the SDK wraps transport errors only while it sends. openai 3.x raises httpx2's
    (its HTTP library); httpx's count too when it is loaded (openai 2.x, litellm)."""
    import sys

    modules = [sys.modules[name] for name in ("httpx2", "httpx") if name in sys.modules]
    return any(isinstance(exc, getattr(m, "TransportError", ())) and
               not isinstance(exc, getattr(m, "UnsupportedProtocol", ())) for m in modules)


class OpenAIBackend:
    """Chat completions through ``openai.AsyncOpenAI``; one client per (base URL, key), reused.

    Requests go through the SDK's request method (``client.post("/chat/completions", ...)``, the
    openai-python README's "Making custom/undocumented requests") with the JSON body as given, and
    replies are read as plain dicts: the SDK's typed chat resource and its pydantic models are never
    imported (~0.45 s and ~14 MB per run), while its HTTP client, error classes and SSE stream are
    used as they are.
    """

    name = "openai"

    def __init__(self) -> None:
        self._clients: dict[tuple[str | None, str | None], Any] = {}

    def _client(self, api_base: str | None, api_key: str | None):
        base = api_base or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE") or None
        key = api_key or os.environ.get("OPENAI_API_KEY") or None
        client = self._clients.get((base, key))
        if client is None:
            warm_up()
            openai = imports.load("openai")
            if key is None:
                raise FatalLMError("openai: no API key; set OPENAI_API_KEY (a local server accepts any "
                                   "value) or pass --api-base for a local server", "auth")
            client = openai.AsyncOpenAI(api_key=key, base_url=base, max_retries=0, http_client=_http_client(openai))
            self._clients[(base, key)] = client
        return client

    def prepare(self, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """(client, JSON body, request options) from litellm-style ``kwargs``: the model without its
        ``openai/`` prefix, every option in the body (``extra_body`` merged in), ``timeout``,
        ``extra_headers`` and ``extra_query`` as request options, litellm-only arguments dropped."""
        kwargs = dict(kwargs)
        client = self._client(kwargs.get("api_base"), kwargs.get("api_key"))
        body: dict[str, Any] = {"model": kwargs.pop("model")[len(PREFIX):]}
        options: dict[str, Any] = {}
        extra = kwargs.pop("extra_body", None) or {}
        for key, value in kwargs.items():
            if key in _DROPPED:
                continue
            if key == "timeout":
                options["timeout"] = value
            elif key == "extra_headers":
                options["headers"] = value
            elif key == "extra_query":
                options["params"] = value
            else:
                body[key] = value
        body.update(extra)
        return client, body, options

    async def complete(self, kwargs: dict[str, Any]) -> tuple[str, Any]:
        """One non-streamed call: (reply text, the chat completion as a dict). Raises
        :class:`MalformedReply` for a reply that is not a usable chat completion."""
        await _warmed()
        client, body, options = self.prepare(kwargs)
        try:
            reply = await client.post(PATH, body=body, options=options, cast_to=object)
        except ValueError as exc:  # json.JSONDecodeError: the SDK parses the body as JSON
            raise MalformedReply(f"the reply is not valid JSON ({short_message(exc)})") from exc
        return reply_text(reply), reply

    async def stream(self, kwargs: dict[str, Any], on_delta: Callable[[str], None]) -> tuple[str, Any]:
        """One streamed call; ``on_delta`` gets each text piece. Returns (text, the chunk that carried
        usage, or None when the server sent none). Raises :class:`MalformedReply` for an event that
        is not JSON or carries an error, and for a stream that ends before its finish reason."""
        await _warmed()
        openai = imports.load("openai")

        client, body, options = self.prepare(kwargs)
        body.update(stream=True, stream_options={"include_usage": True})
        stream = await client.post(PATH, body=body, options=options, cast_to=object, stream=True,
                                   stream_cls=openai.AsyncStream[object])
        pieces: list[str] = []
        last_usage = None
        check = StreamCheck()
        try:
            async for chunk in stream:
                if isinstance(chunk, dict) and chunk.get("usage"):
                    last_usage = chunk
                piece = check.feed(chunk)
                if piece:
                    pieces.append(piece)
                    on_delta(piece)
        except ValueError as exc:  # json.JSONDecodeError from an event's data
            raise MalformedReply(f"a streamed event is not valid JSON ({short_message(exc)})") from exc
        finally:
            await stream.close()
        check.finish()
        return "".join(pieces), last_usage

    def cost(self, model: str, response: Any, usage: Usage) -> float | None:
        """USD for ``usage`` from litellm's bundled price map (:func:`rlm_cli.lm.pricing.cost_usd`), or None."""
        return pricing.cost_usd(model, usage.input_tokens, usage.output_tokens, usage.cached_tokens)

    def classify(self, exc: BaseException, model: str) -> Exception:
        """Map an OpenAI SDK exception to :class:`TransientLMError` or :class:`FatalLMError`
        (:func:`rlm_cli.lm.errors.classify` decides; this reads the SDK's exception types)."""
        return classify(self.fault(exc), model, exc)

    @staticmethod
    def fault(exc: BaseException) -> Fault:
        """What the OpenAI SDK's exception says, as a :class:`~rlm_cli.lm.errors.Fault`."""
        openai = imports.load("openai")

        response = getattr(exc, "response", None)
        kind = None
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            kind = "auth"
        elif isinstance(exc, openai.NotFoundError):
            kind = "not_found"
        elif _lost_connection(exc):
            kind = "connection_lost"  # the SDK wraps transport errors only while it sends
        elif isinstance(exc, openai.APIConnectionError | asyncio.TimeoutError | ConnectionError):
            kind = "transient"
        elif isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError):
            kind = "context_window" if getattr(exc, "code", None) == "context_length_exceeded" else "bad_request"
        elif isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIStatusError):
            kind = "stream_error"  # e.g. an error event mid-stream
        return Fault(kind, status_of(exc), retry_after_from(getattr(response, "headers", None)),
                     type(exc).__name__, short_message(exc))

    async def aclose(self) -> None:
        """Close every HTTP client this backend opened."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
