"""LM calls for a run: the root LM and sub-LMs, with timeouts, retries, usage, cost and one
concurrency limit.

Two request paths, chosen per model: ``openai/`` models (OpenAI and every OpenAI-compatible server)
go through the OpenAI SDK directly (:mod:`rlm_cli.lm.backend_openai`), every other provider through litellm
(:mod:`rlm_cli.lm.backend_litellm`, imported on first use only). ``RLM_LM_BACKEND=litellm`` sends all models
through litellm. Every request carries an explicit ``timeout`` and the libraries' own retries are
off: this module retries rate limits (429), server errors (5xx), timeouts and connection errors
itself, with exponential backoff and full jitter, honouring ``Retry-After`` (RFC 9110 section
10.2.3). Authentication errors, unknown models and bad requests are not retried
(:mod:`rlm_cli.lm.errors`). A reply that arrived but is unusable (cut off, an error body with status
200, no choices, null content, not JSON: :mod:`rlm_cli.lm.replies`) is retried the same way, then
reported as a :class:`ProviderError` naming what was wrong.

The API key and secret-looking request options of a client are remembered for redaction
(:mod:`rlm_cli.secrets`): error messages never carry them.

All LM calls of a run share one :class:`asyncio.Semaphore` (``--concurrency``): a fan-out never has
more requests in flight than that, across all depths. Backoff sleeps do not hold a slot.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlm_cli.errors import ProviderError, UsageError, debug_traceback
from rlm_cli.lm.backend_litellm import LitellmBackend, load_litellm
from rlm_cli.lm.errors import FatalLMError, MalformedReply, TransientLMError, parse_retry_after
from rlm_cli.lm.replies import estimated_usage, usage_of
from rlm_cli.run.events import Usage
from rlm_cli.secrets import remember, remember_options
from rlm_cli.settings.endpoints import Endpoint

__all__ = ["BACKENDS", "FatalLMError", "LMClient", "LMResult", "Price", "TransientLMError", "load_litellm",
           "needs_cache_markers", "parse_retry_after", "prewarm", "usage_of"]

BACKENDS = ("auto", "litellm")
"""Values of ``RLM_LM_BACKEND``: ``auto`` (``openai/`` models via the OpenAI SDK, the rest via
litellm) or ``litellm`` (everything via litellm)."""

REFUSED_RETRIES = 1
"""Retries after a refused connection (nothing listens on the port) or a failed DNS lookup: a wrong
``--api-base`` or an unreachable provider fails in seconds instead of backing off for a minute."""


def check_backend(name: str) -> str:
    """``name`` if it is one of :data:`BACKENDS`; raises :class:`UsageError` (exit 2) otherwise."""
    if name not in BACKENDS:
        raise UsageError(f"RLM_LM_BACKEND={name!r}: expected one of {', '.join(BACKENDS)}")
    return name


def prewarm(models: list[str], backend: str = "auto") -> threading.Thread:
    """Import the request paths ``models`` will use, and look their prices up, in a background
    thread, so that this CPU work overlaps the context loading and the REPL start-up instead of
    delaying the first root LM call (the OpenAI SDK and its transport take ~1 s to import, litellm
    ~3 s). Errors are ignored here: the call that needs the module raises them. Returns the
    (daemon) thread.

    Every import it makes holds :data:`rlm_cli.lm.imports.IMPORT_LOCK`, as every lazy import of
    these libraries in the main thread does: a call that needs a library the thread is importing
    waits for that import, and never runs a second one beside it (two threads importing litellm,
    httpx and the SDK at once could leave one with a partially initialised module)."""
    from rlm_cli.lm import backend_openai

    sdk = backend == "auto" and any(backend_openai.handles(m) for m in models)
    litellm_too = backend != "auto" or not all(backend_openai.handles(m) for m in models)
    if sdk and litellm_too:  # before any request can start: see backend_openai.PEEKED_MODULES
        backend_openai.expect_litellm()

    def work() -> None:
        try:
            if sdk:
                backend_openai.warm_up()
            if litellm_too:
                load_litellm()
            from rlm_cli.lm.pricing import model_info

            model_info(*models)
        except Exception:
            pass

    thread = threading.Thread(target=work, name="rlm-prewarm", daemon=True)
    thread.start()
    return thread


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


def needs_cache_markers(model: str) -> bool:
    """True for models whose provider caches prompts only at explicit markers (Anthropic Claude)."""
    m = model.lower()
    return m.startswith("anthropic/") or "claude" in m


@dataclass
class LMClient:
    """Makes LM calls for one run.

    ``api_base``/``api_key``: the default endpoint (an OpenAI-compatible server, optional);
    ``endpoints``: model -> :class:`~rlm_cli.settings.endpoints.Endpoint` for models with their own
    server and key; ``role_endpoints``: ``(role, model)`` -> endpoint, before ``endpoints`` (the root
    and sub roles may use the same model on two servers; see :meth:`endpoint_for`); ``timeout_s``: per
    request, seconds; ``max_retries``: retries after the first attempt for rate limits (429), server
    errors (5xx), timeouts and unusable replies (an unreachable server: :data:`REFUSED_RETRIES` at
    most); ``concurrency``: LM
    requests in flight at once over the whole run; ``options``: extra keyword arguments per role
    (``"root"``/``"sub"``), litellm-style; ``prices``: model -> :class:`Price` for models litellm's
    map does not price; ``backend``: one of :data:`BACKENDS`; ``backend_override``: when set, the one
    request path for every model instead of the OpenAI SDK and litellm: any object with their
    methods (``complete``, ``stream``, ``classify``, ``cost``, ``aclose``, as
    :class:`~rlm_cli.lm.backend_openai.OpenAIBackend` has them; the test suite's in-process fake LM).
    Use it as ``async with client:`` (or call :meth:`aclose`) so its HTTP connections are closed
    when the run ends.
    """

    api_base: str | None = None
    api_key: str | None = None
    timeout_s: float = 300.0
    max_retries: int = 3
    concurrency: int = 16
    options: dict[str, dict] = field(default_factory=dict)
    prices: dict[str, Price] = field(default_factory=dict)
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    on_retry: Callable[[str], None] | None = None
    backend: str = "auto"
    backend_override: Any = None
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    role_endpoints: dict[tuple[str, str], Endpoint] = field(default_factory=dict)
    _sem: asyncio.Semaphore | None = None
    _backends: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_backend(self.backend)
        remember(self.api_key)
        for endpoint in (*self.endpoints.values(), *self.role_endpoints.values()):
            remember(endpoint.api_key)
        remember_options(self.options)

    def endpoint_for(self, model: str, role: str) -> Endpoint:
        """Where a ``role`` (``"root"``/``"sub"``) request for ``model`` goes, and with which key:
        ``role_endpoints[(role, model)]``, else ``endpoints[model]``, else the default
        (``api_base``, ``api_key``). A model's key is sent only with its own endpoint."""
        found = self.role_endpoints.get((role, model)) or self.endpoints.get(model)
        return found if found is not None else Endpoint(self.api_base, self.api_key)

    def semaphore(self) -> asyncio.Semaphore:
        """The run-wide limit on requests in flight (``concurrency`` slots, made on first use): a
        request holds a slot while it is sent and answered, not while it backs off."""
        if self._sem is None:
            self._sem = asyncio.Semaphore(max(1, self.concurrency))
        return self._sem

    def backend_for(self, model: str):
        """The request path for ``model``: the OpenAI SDK for ``openai/`` models (unless
        ``backend="litellm"``), litellm otherwise (``backend_override`` instead, when set). One
        instance of each per client."""
        if self.backend_override is not None:
            return self.backend_override
        from rlm_cli.lm import backend_openai

        name = "openai" if self.backend == "auto" and backend_openai.handles(model) else "litellm"
        if name not in self._backends:
            self._backends[name] = backend_openai.OpenAIBackend() if name == "openai" else LitellmBackend()
        return self._backends[name]

    def cost(self, model: str, response: Any, usage: Usage) -> float | None:
        """USD for one response: the user's ``--price`` for ``model``, else what its request path
        prices it at (litellm's ``response_cost``, or litellm's bundled map); None when unpriced."""
        price = self.prices.get(model)
        if price is not None:
            return price.cost(usage)
        return self.backend_for(model).cost(model, response, usage)

    def request_kwargs(self, model: str, messages: list[dict], role: str) -> dict[str, Any]:
        """The keyword arguments of the call, litellm-style (``litellm.acompletion``; the OpenAI
        path translates them), without streaming flags.

        Root calls to providers that need explicit prompt-cache markers (Anthropic's Claude, directly
        or through Bedrock/Vertex) get litellm's ``cache_control_injection_points`` on the system
        prompt and on the newest message: the history is append-only, so each call's prefix is the
        previous call's whole prompt (Anthropic docs, "Prompt caching"; litellm docs, "Auto-Inject
        Prompt Caching Checkpoints"). OpenAI-style providers cache prefixes without markers.
        """
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "timeout": self.timeout_s,
                                  "num_retries": 0, "max_retries": 0}
        endpoint = self.endpoint_for(model, role)
        if endpoint.api_base:
            kwargs["api_base"] = endpoint.api_base
        if endpoint.api_key:
            kwargs["api_key"] = endpoint.api_key
        if role == "root" and needs_cache_markers(model):
            kwargs["cache_control_injection_points"] = [{"location": "message", "role": "system"},
                                                        {"location": "message", "index": -1}]
        kwargs.update(self.options.get(role, {}))
        return kwargs

    async def complete(self, model: str, messages: list[dict], role: str = "sub",
                       on_delta: Callable[[str], None] | None = None,
                       on_sent: Callable[[], None] | None = None) -> LMResult:
        """One chat completion with retries. ``on_delta`` set: stream and call it per text piece.
        ``on_sent`` set: called once, when the first attempt holds a concurrency slot and its request
        is about to be sent (the time before it is queueing; see :meth:`semaphore`).

        ``role`` is ``"root"`` for root LM calls (any depth) and ``"sub"`` for sub-LM calls: it
        selects the per-role options and prompt-cache markers. Raises :class:`FatalLMError` (not
        retried) or :class:`ProviderError` once retries are spent (transient faults and unusable
        replies alike); messages are redacted of known secrets.
        """
        backend = self.backend_for(model)
        kwargs = self.request_kwargs(model, messages, role)
        t0 = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self.semaphore():
                    if on_sent is not None and attempt == 1:
                        on_sent()
                    if on_delta is None:
                        text, response = await backend.complete(kwargs)
                    else:
                        text, response = await backend.stream(kwargs, on_delta)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                err = exc if isinstance(exc, FatalLMError | TransientLMError) else backend.classify(exc, model)
                if isinstance(err, MalformedReply):
                    err = MalformedReply(f"{model}: unusable reply: {err}")
                refused = isinstance(err, TransientLMError) and err.refused
                retries = min(self.max_retries, REFUSED_RETRIES) if refused else self.max_retries
                if isinstance(err, FatalLMError) or attempt > retries:
                    if isinstance(err, FatalLMError):
                        if err.kind == "other":  # no rule knew this exception: maybe a bug
                            debug_traceback(exc)
                        raise err from exc
                    raise ProviderError(f"{err} (gave up after {attempt} attempts)") from exc
                delay = self._backoff(attempt, getattr(err, "retry_after", None))
                if self.on_retry:
                    self.on_retry(f"{err}; retrying in {delay:.1f}s (attempt {attempt + 1})")
                await asyncio.sleep(delay)
        inp, out, cached = usage_of(response)
        if inp == 0 and out == 0:  # the server reported no usage: count an estimate, not zero
            estimate = estimated_usage(messages, text)
            inp, out = estimate["prompt_tokens"], estimate["completion_tokens"]
        usage = Usage(input_tokens=inp, output_tokens=out, cached_tokens=cached)
        usage = Usage(inp, out, cached, self.cost(model, response, usage))
        return LMResult(text=text, usage=usage, duration_s=time.monotonic() - t0, model=model,
                        attempts=attempt)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max_s) + random.uniform(0, 0.25)
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)))

    async def __aenter__(self) -> LMClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the request paths' HTTP clients (idempotent; ``async with client:`` calls it)."""
        backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            await backend.aclose()
