"""LM calls through litellm: every provider except OpenAI-compatible ``openai/`` models.

litellm is imported on first use only (``rlm --help`` must not pay its ~3 s import), with
``LITELLM_LOCAL_MODEL_COST_MAP=True`` so the import never touches the network, and its stdout
banners suppressed. litellm's own retries are off (``num_retries=0``, ``max_retries=0``):
:class:`rlm_cli.lm.client.LMClient` retries. Costs come from litellm's own ``response_cost``. Replies are
checked as on the OpenAI path (:mod:`rlm_cli.lm.replies`); for a stream, the finish reason is the one
litellm received from the server, not the ``"stop"`` it makes up for a stream that was cut off.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from typing import Any

from rlm_cli.lm import imports
from rlm_cli.lm.errors import (
    Fault,
    MalformedReply,
    classify,
    retry_after_from,
    short_message,
    status_of,
)
from rlm_cli.lm.replies import StreamCheck, reply_text
from rlm_cli.run.events import Usage

_litellm = None


def load_litellm():
    """Import and configure litellm once (offline cost map, no banners, quiet logging), under
    :data:`rlm_cli.lm.imports.IMPORT_LOCK`: a caller that comes while the prewarm thread imports it
    waits for that import instead of running a second one beside it."""
    global _litellm
    if _litellm is not None:
        return _litellm
    with imports.IMPORT_LOCK:  # a prewarm thread may be importing it: wait for the whole module
        if _litellm is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            os.environ.setdefault("LITELLM_LOG", "ERROR")
            litellm = imports.load("litellm")
            litellm.suppress_debug_info = True
            litellm.telemetry = False
            litellm.drop_params = True
            for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm", "httpx"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
            _litellm = litellm
    return _litellm


class LitellmBackend:
    """Chat completions through ``litellm.acompletion`` with litellm-style keyword arguments."""

    name = "litellm"

    def __init__(self) -> None:
        self._unpriced: set[str] = set()

    async def complete(self, kwargs: dict[str, Any]) -> tuple[str, Any]:
        """One non-streamed call: (reply text, litellm ModelResponse). Raises
        :class:`MalformedReply` for a reply that is not a usable chat completion."""
        response = await load_litellm().acompletion(**kwargs)
        return reply_text(response), response

    async def stream(self, kwargs: dict[str, Any], on_delta: Callable[[str], None]) -> tuple[str, Any]:
        """One streamed call; ``on_delta`` gets each text piece. Returns (text, rebuilt response or
        None). Raises :class:`MalformedReply` for a stream that ended before its finish reason."""
        lt = load_litellm()
        stream = await lt.acompletion(**kwargs, stream=True, stream_options={"include_usage": True})
        chunks = []
        pieces: list[str] = []
        check = StreamCheck()
        async for chunk in stream:
            chunks.append(chunk)
            piece = check.feed(chunk)
            if piece:
                pieces.append(piece)
                on_delta(piece)
        if hasattr(stream, "received_finish_reason"):  # litellm's wrapper: what the server really sent
            check.finish(lambda: getattr(stream, "received_finish_reason", None)
                         or getattr(stream, "intermittent_finish_reason", None))
        else:
            check.finish()
        try:
            response = lt.stream_chunk_builder(chunks, messages=kwargs["messages"])
        except Exception:
            response = None
        return "".join(pieces), response

    def cost(self, model: str, response: Any, usage: Usage) -> float | None:
        """USD litellm computed for ``response`` (``_hidden_params["response_cost"]``), else its price
        map once per model (streamed responses); None for models it cannot price. ``usage`` is not
        needed: litellm prices what it counted. Unpriced models are remembered, so a fan-out of
        thousands of calls does not repeat a failing lookup per call."""
        hidden = getattr(response, "_hidden_params", None) or {}
        value = hidden.get("response_cost") if isinstance(hidden, dict) else None
        if value is not None:
            return float(value)
        if model in self._unpriced or response is None:
            return None
        try:
            value = load_litellm().completion_cost(completion_response=response, model=model)
        except Exception:
            value = None
        if value is None:
            self._unpriced.add(model)
            return None
        return float(value)

    def classify(self, exc: BaseException, model: str) -> Exception:
        """Map a litellm exception to :class:`TransientLMError` or :class:`FatalLMError`
        (:func:`rlm_cli.lm.errors.classify` decides; this reads litellm's exception types). A stream
        cut off before its finish reason and a reply with no choices, which litellm (1.108 and later)
        finds itself, are the same :class:`MalformedReply` as on the OpenAI path."""
        if _chain_says(exc, "Stream ended before a finish_reason was received"):
            return MalformedReply("the stream ended before the reply was complete (no finish reason): "
                                  "the reply was cut off")
        if _chain_says(exc, "provider returned a response with no 'choices'"):
            return MalformedReply("the reply has no choices")
        return classify(self.fault(exc), model, exc)

    @staticmethod
    def fault(exc: BaseException) -> Fault:
        """What litellm's exception says, as a :class:`~rlm_cli.lm.errors.Fault`."""
        lt = load_litellm()
        transient = (lt.exceptions.RateLimitError, lt.exceptions.Timeout, lt.exceptions.APIConnectionError,
                     lt.exceptions.InternalServerError, lt.exceptions.ServiceUnavailableError,
                     lt.exceptions.BadGatewayError, asyncio.TimeoutError, ConnectionError)
        status = status_of(exc)
        kind = None
        if isinstance(exc, lt.exceptions.ContextWindowExceededError):
            kind = "context_window"
        elif isinstance(exc, lt.exceptions.AuthenticationError | lt.exceptions.PermissionDeniedError):
            kind = "auth"
        elif isinstance(exc, lt.exceptions.NotFoundError):
            kind = "not_found"
        elif _not_json(exc):
            kind = "not_json"
        elif isinstance(exc, transient):
            kind = "transient"
        elif isinstance(exc, lt.exceptions.BadRequestError) or status in (400, 422):
            kind = "unknown_provider" if "LLM Provider NOT provided" in str(exc) else "bad_request"
        elif isinstance(exc, lt.exceptions.APIError) and status is None:
            kind = "stream_error"
        # litellm keeps the provider's headers in `litellm_response_headers`; `response.headers` is
        # often empty (litellm rebuilds the response object without the vendor's headers).
        retry_after = retry_after_from(getattr(exc, "litellm_response_headers", None),
                                       getattr(getattr(exc, "response", None), "headers", None),
                                       getattr(exc, "headers", None))
        return Fault(kind, status, retry_after, type(exc).__name__, short_message(exc))

    async def aclose(self) -> None:
        """Nothing to close: litellm keeps its own client cache for the process."""


def _chain_says(exc: BaseException, text: str) -> bool:
    """Whether the message of ``exc`` or of what it wraps carries ``text``: litellm reports a stream
    cut off before its finish reason as a ``MidStreamFallbackError`` around its own
    ``RemoteProtocolError``, a reply without choices as an ``InternalServerError``."""
    seen = 0
    while exc is not None and seen < 10:
        if text in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _not_json(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is a JSON decoding failure: litellm re-raises one as an
    internal server error or a mid-stream error, keeping the decoder's message."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, json.JSONDecodeError):
            return True
        if any(m in str(exc) for m in ("JSONDecodeError", "Expecting value: line", "Expecting property name")):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False
