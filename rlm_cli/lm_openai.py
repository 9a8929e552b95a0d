"""LM calls to OpenAI and OpenAI-compatible servers (``openai/`` models) through the OpenAI SDK.

For ``openai/`` models litellm itself calls this SDK; calling it directly skips litellm's import
(~3 s of CPU and ~110 MB more than the SDK's own) and its per-call bookkeeping (~3 ms of CPU per
call, which serialises on the event loop and stretched a 64-call fan-out to 1.2-1.3 x its ideal
time; ``bench/bench_fanout.py``). Behaviour is kept the same as through litellm:

- the model is the part after ``openai/``; the base URL is ``api_base``, else ``OPENAI_BASE_URL``,
  else ``OPENAI_API_BASE``, else the SDK's default; the key is ``api_key``, else ``OPENAI_API_KEY``;
- options the SDK's ``chat.completions.create`` does not name go in ``extra_body`` (sent as is);
  litellm-only arguments (``num_retries``, ``drop_params``...) are dropped;
- the SDK's own retries are off (``max_retries=0``): :class:`rlm_cli.lm.LMClient` retries;
- requests go over the SDK's aiohttp transport (``openai[aiohttp]``), which costs half the CPU per
  call of its default httpx one;
- prices come from litellm's bundled map (:mod:`rlm_cli.catalogue`), as litellm would price them.

``RLM_LM_BACKEND=litellm`` sends ``openai/`` models through litellm instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import Any

from rlm_cli import catalogue
from rlm_cli.lm_errors import FatalLMError, TransientLMError, retry_after_from, short_message, status_of
from rlm_cli.lm_replies import delta_text, usage_of

PREFIX = "openai/"
_DROPPED = frozenset({"num_retries", "max_retries", "drop_params", "api_base", "api_key", "base_url",
                      "custom_llm_provider", "cache_control_injection_points", "mock_response"})
_create_params: frozenset[str] | None = None


def handles(model: str) -> bool:
    """True for the models this path serves: ``openai/<name>`` (OpenAI or any compatible server)."""
    return model.startswith(PREFIX) and len(model) > len(PREFIX)


def _known_params() -> frozenset[str]:
    global _create_params
    if _create_params is None:
        import inspect

        from openai.resources.chat.completions import AsyncCompletions

        _create_params = frozenset(inspect.signature(AsyncCompletions.create).parameters) - {"self"}
    return _create_params


def warm_up() -> None:
    """Import the SDK, its chat resource and its aiohttp transport (what the first call would)."""
    import openai

    _known_params()
    with contextlib.suppress(Exception):
        import httpx_aiohttp  # noqa: F401
    del openai


def _http_client(openai):
    """The SDK's aiohttp-based client (the ``openai[aiohttp]`` extra): about 1.7 ms of CPU per call
    against 3.6 ms for its default httpx one, measured over 640 calls at 16 in flight; the default
    client when the extra is missing."""
    try:
        return openai.DefaultAioHttpClient()
    except Exception:
        return None


class OpenAIBackend:
    """Chat completions through ``openai.AsyncOpenAI``; one client per (base URL, key), reused."""

    name = "openai"

    def __init__(self) -> None:
        self._clients: dict[tuple[str | None, str | None], Any] = {}

    def _client(self, api_base: str | None, api_key: str | None):
        base = api_base or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE") or None
        key = api_key or os.environ.get("OPENAI_API_KEY") or None
        client = self._clients.get((base, key))
        if client is None:
            import openai

            if key is None:
                raise FatalLMError("openai: no API key; set OPENAI_API_KEY (a local server accepts any "
                                   "value) or pass --api-base for a local server", "auth")
            client = openai.AsyncOpenAI(api_key=key, base_url=base, max_retries=0, http_client=_http_client(openai))
            self._clients[(base, key)] = client
        return client

    def prepare(self, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """(client, arguments of ``chat.completions.create``) from litellm-style ``kwargs``."""
        kwargs = dict(kwargs)
        client = self._client(kwargs.get("api_base"), kwargs.get("api_key"))
        known = _known_params()
        args: dict[str, Any] = {"model": kwargs.pop("model")[len(PREFIX):]}
        extra = dict(kwargs.pop("extra_body", None) or {})
        for key, value in kwargs.items():
            if key in _DROPPED:
                continue
            if key in known:
                args[key] = value
            else:
                extra[key] = value
        if extra:
            args["extra_body"] = extra
        return client, args

    async def complete(self, kwargs: dict[str, Any]) -> tuple[str, Any]:
        """One non-streamed call: (reply text, the SDK's ChatCompletion)."""
        client, args = self.prepare(kwargs)
        response = await client.chat.completions.create(**args)
        choices = response.choices or []
        return (choices[0].message.content or "") if choices else "", response

    async def stream(self, kwargs: dict[str, Any], on_delta: Callable[[str], None]) -> tuple[str, Any]:
        """One streamed call; ``on_delta`` gets each text piece. Returns (text, the chunk that carried
        usage, or None when the server sent none)."""
        client, args = self.prepare(kwargs)
        stream = await client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True})
        pieces: list[str] = []
        last_usage = None
        try:
            async for chunk in stream:
                if getattr(chunk, "usage", None) is not None:
                    last_usage = chunk
                piece = delta_text(chunk)
                if piece:
                    pieces.append(piece)
                    on_delta(piece)
        finally:
            await stream.close()
        return "".join(pieces), last_usage

    def cost(self, model: str, response: Any) -> float | None:
        """USD from litellm's bundled price map (:func:`rlm_cli.catalogue.cost_usd`), or None."""
        if response is None:
            return None
        inp, out, cached = usage_of(response)
        return catalogue.cost_usd(model, inp, out, cached)

    def classify(self, exc: BaseException, model: str) -> Exception:
        """Map an OpenAI SDK exception to :class:`TransientLMError` or :class:`FatalLMError`.

        Transient as the SDK's own retry rule has it: timeouts, connection errors, 408, 409, 429, 5xx
        (openai-python README, "Retries").
        """
        import openai

        name = type(exc).__name__
        status = status_of(exc)
        response = getattr(exc, "response", None)
        retry_after = retry_after_from(getattr(response, "headers", None))
        text = short_message(exc)
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError) or status in (401, 403):
            return FatalLMError(f"{model}: authentication failed ({text}); check the provider's API key "
                                "variable (e.g. OPENAI_API_KEY)", "auth")
        if isinstance(exc, openai.NotFoundError) or status == 404:
            return FatalLMError(f"{model}: model or endpoint not found ({text})", "not_found")
        if isinstance(exc, openai.APIConnectionError | asyncio.TimeoutError | ConnectionError) or (
                status is not None and (status in (408, 409, 429) or status >= 500)):
            return TransientLMError(f"{model}: {name} ({text})", retry_after, exc)
        if isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError) or status in (400, 422):
            code = getattr(exc, "code", None)
            if code == "context_length_exceeded" or "context length" in text.lower():
                return FatalLMError(f"{model}: the prompt is longer than the model's context window",
                                    "context_window")
            return FatalLMError(f"{model}: bad request ({text})", "bad_request")
        return FatalLMError(f"{model}: {name}: {text}", "other")

    async def aclose(self) -> None:
        """Close every HTTP client this backend opened."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
