"""LM calls through litellm: the root LM and sub-LMs, with timeouts, retries, usage and cost.

litellm is imported on first use only (``rlm --help`` must not pay its ~4 s import), with
``LITELLM_LOCAL_MODEL_COST_MAP=True`` so the import never touches the network, and its stdout
banners suppressed. Every request carries an explicit ``timeout`` and litellm's own retries are off
(``num_retries=0``, ``max_retries=0``): this module retries rate limits (429), server errors (5xx),
timeouts and connection errors itself, with exponential backoff and full jitter, honouring
``Retry-After`` (seconds or HTTP date; provider doc: RFC 9110 section 10.2.3). Authentication errors,
unknown models and bad requests are not retried.

All LM calls of a run share one :class:`asyncio.Semaphore` (``--concurrency``): a fan-out never has
more requests in flight than that, across all depths. Backoff sleeps do not hold a slot.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlm_cli.errors import ProviderError
from rlm_cli.events import Usage

_litellm = None


def load_litellm():
    """Import and configure litellm once (offline cost map, no banners, quiet logging)."""
    global _litellm
    if _litellm is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        os.environ.setdefault("LITELLM_LOG", "ERROR")
        import litellm

        litellm.suppress_debug_info = True
        litellm.telemetry = False
        litellm.drop_params = True
        for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm", "httpx"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        _litellm = litellm
    return _litellm


class TransientLMError(Exception):
    """A failure worth retrying (429, 5xx, timeout, connection); ``retry_after`` in seconds or None."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalLMError(ProviderError):
    """A failure retries cannot fix: authentication, permission, unknown model, bad request (exit 1).

    ``kind`` is ``auth``, ``not_found``, ``bad_request``, ``context_window`` or ``other``.
    """

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Price:
    """A user-given price: USD per million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, usage: Usage) -> float:
        return (usage.input_tokens * self.input_per_mtok + usage.output_tokens * self.output_per_mtok) / 1e6


@dataclass
class LMResult:
    """One successful LM call: reply ``text``, its :class:`Usage`, wall ``duration_s`` (seconds,
    retries included) and the number of ``attempts`` it took."""

    text: str
    usage: Usage
    duration_s: float
    model: str
    attempts: int = 1


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


def _short(exc: BaseException) -> str:
    """The provider's message without litellm's repeated class-name prefixes."""
    text = " ".join(str(exc).split())
    for prefix in ("litellm.", "OpenAIException - ", "Error code: "):
        text = text.replace(prefix, "")
    name = type(exc).__name__ + ": "
    while text.startswith(name):
        text = text[len(name):]
    return text[:300]


def classify(exc: BaseException, model: str) -> Exception:
    """Map a litellm/openai exception to :class:`TransientLMError` or :class:`FatalLMError`."""
    lt = load_litellm()
    name = type(exc).__name__
    if isinstance(exc, lt.exceptions.ContextWindowExceededError):
        return FatalLMError(f"{model}: the prompt is longer than the model's context window", "context_window")
    if isinstance(exc, lt.exceptions.AuthenticationError | lt.exceptions.PermissionDeniedError):
        return FatalLMError(f"{model}: authentication failed ({_short(exc)}); check the provider's API key "
                            "variable (e.g. OPENAI_API_KEY)", "auth")
    if isinstance(exc, lt.exceptions.NotFoundError):
        return FatalLMError(f"{model}: model or endpoint not found ({_short(exc)})", "not_found")
    retry_after = None
    # litellm keeps the provider's headers in `litellm_response_headers`; `response.headers` is
    # often empty (litellm rebuilds the response object without the vendor's headers).
    for headers in (getattr(exc, "litellm_response_headers", None),
                    getattr(getattr(exc, "response", None), "headers", None), getattr(exc, "headers", None)):
        if headers:
            try:
                retry_after = parse_retry_after(headers.get("retry-after"))
            except Exception:
                retry_after = None
            if retry_after is not None:
                break
    transient = (lt.exceptions.RateLimitError, lt.exceptions.Timeout, lt.exceptions.APIConnectionError,
                 lt.exceptions.InternalServerError, lt.exceptions.ServiceUnavailableError,
                 lt.exceptions.BadGatewayError, asyncio.TimeoutError, ConnectionError)
    status = _status(exc)
    if isinstance(exc, transient) or (status is not None and (status == 429 or status >= 500)):
        return TransientLMError(f"{model}: {name} ({_short(exc)})", retry_after)
    if isinstance(exc, lt.exceptions.BadRequestError) or status in (400, 422):
        if "LLM Provider NOT provided" in str(exc):
            return FatalLMError(f"{model}: unknown model or provider; use a litellm model string such as "
                                "'openai/gpt-4o-mini' (see `rlm models`)", "not_found")
        return FatalLMError(f"{model}: bad request ({_short(exc)})", "bad_request")
    if isinstance(exc, lt.exceptions.APIError) and status is None:
        return TransientLMError(f"{model}: {name} ({_short(exc)})", retry_after)
    return FatalLMError(f"{model}: {name}: {_short(exc)}", "other")


def needs_cache_markers(model: str) -> bool:
    """True for models whose provider caches prompts only at explicit markers (Anthropic Claude)."""
    m = model.lower()
    return m.startswith("anthropic/") or "claude" in m


def _usage_of(response: Any) -> tuple[int, int, int]:
    usage = getattr(response, "usage", None) or {}
    get = usage.get if isinstance(usage, dict) else (lambda k, d=None: getattr(usage, k, d))
    details = get("prompt_tokens_details", None)
    cached = 0
    if details is not None:
        cached = (details.get("cached_tokens") if isinstance(details, dict)
                  else getattr(details, "cached_tokens", 0)) or 0
    cached = cached or get("cache_read_input_tokens", 0) or 0
    return int(get("prompt_tokens", 0) or 0), int(get("completion_tokens", 0) or 0), int(cached)


@dataclass
class LMClient:
    """Makes LM calls for one run.

    ``api_base``: an OpenAI-compatible server (optional); ``timeout_s``: per request, seconds;
    ``max_retries``: retries after the first attempt for transient failures; ``concurrency``: LM
    requests in flight at once over the whole run; ``options``: extra litellm keyword arguments per
    role (``"root"``/``"sub"``); ``prices``: model -> :class:`Price` for models litellm cannot price.
    """

    api_base: str | None = None
    api_key: str | None = None
    timeout_s: float = 300.0
    max_retries: int = 6
    concurrency: int = 16
    options: dict[str, dict] = field(default_factory=dict)
    prices: dict[str, Price] = field(default_factory=dict)
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    on_retry: Callable[[str], None] | None = None
    _sem: asyncio.Semaphore | None = None
    _unpriced: set[str] = field(default_factory=set)

    def semaphore(self) -> asyncio.Semaphore:
        if self._sem is None:
            self._sem = asyncio.Semaphore(max(1, self.concurrency))
        return self._sem

    def cost(self, model: str, response: Any, usage: Usage) -> float | None:
        """USD for one response: a user price, else the cost litellm already computed for it
        (``_hidden_params["response_cost"]``), else litellm's price map once per model (for
        streamed responses); None when the model has no price. Unpriced models are remembered, so
        a fan-out of thousands of calls does not repeat a failing price lookup per call."""
        price = self.prices.get(model)
        if price is not None:
            return price.cost(usage)
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

    def request_kwargs(self, model: str, messages: list[dict], role: str) -> dict[str, Any]:
        """The keyword arguments for ``litellm.acompletion`` (without streaming flags).

        Root calls to providers that need explicit prompt-cache markers (Anthropic's Claude, directly
        or through Bedrock/Vertex) get litellm's ``cache_control_injection_points`` on the system
        prompt and on the newest message: the history is append-only, so each call's prefix is the
        previous call's whole prompt (Anthropic docs, "Prompt caching"; litellm docs, "Auto-Inject
        Prompt Caching Checkpoints"). OpenAI-style providers cache prefixes without markers.
        """
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "timeout": self.timeout_s,
                                  "num_retries": 0, "max_retries": 0}
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key
        if role == "root" and needs_cache_markers(model):
            kwargs["cache_control_injection_points"] = [{"location": "message", "role": "system"},
                                                        {"location": "message", "index": -1}]
        kwargs.update(self.options.get(role, {}))
        return kwargs

    async def complete(self, model: str, messages: list[dict], role: str = "sub",
                       on_delta: Callable[[str], None] | None = None) -> LMResult:
        """One chat completion with retries. ``on_delta`` set: stream and call it per text piece.

        ``role`` is ``"root"`` for root LM calls (any depth) and ``"sub"`` for sub-LM calls: it
        selects the per-role options and prompt-cache markers. Raises :class:`FatalLMError` (not
        retried) or :class:`ProviderError` once retries are spent.
        """
        lt = load_litellm()
        kwargs = self.request_kwargs(model, messages, role)
        t0 = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self.semaphore():
                    if on_delta is None:
                        response = await lt.acompletion(**kwargs)
                        text = response.choices[0].message.content or ""
                    else:
                        response, text = await self._stream(lt, kwargs, on_delta)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                err = classify(exc, model)
                if isinstance(err, FatalLMError) or attempt > self.max_retries:
                    if isinstance(err, FatalLMError):
                        raise err from exc
                    raise ProviderError(f"{err} (gave up after {attempt} attempts)") from exc
                delay = self._backoff(attempt, getattr(err, "retry_after", None))
                if self.on_retry:
                    self.on_retry(f"{err}; retrying in {delay:.1f}s (attempt {attempt + 1})")
                await asyncio.sleep(delay)
        inp, out, cached = _usage_of(response)
        usage = Usage(input_tokens=inp, output_tokens=out, cached_tokens=cached)
        usage = Usage(inp, out, cached, self.cost(model, response, usage))
        return LMResult(text=text, usage=usage, duration_s=time.monotonic() - t0, model=model,
                        attempts=attempt)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max_s) + random.uniform(0, 0.25)
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)))

    async def _stream(self, lt, kwargs: dict, on_delta: Callable[[str], None]) -> tuple[Any, str]:
        stream = await lt.acompletion(**kwargs, stream=True, stream_options={"include_usage": True})
        chunks = []
        pieces: list[str] = []
        async for chunk in stream:
            chunks.append(chunk)
            choices = getattr(chunk, "choices", None) or []
            delta = getattr(choices[0], "delta", None) if choices else None
            piece = getattr(delta, "content", None) if delta is not None else None
            if piece:
                pieces.append(piece)
                on_delta(piece)
        text = "".join(pieces)
        try:
            response = lt.stream_chunk_builder(chunks, messages=kwargs["messages"])
        except Exception:
            response = None
        return response, text
