"""Reading what an LM call returned, the same way for both request paths: token usage of a
response (or of the streamed chunk that carries it) and the text piece of a streamed chunk.

Shapes follow the OpenAI chat completions API (``usage.prompt_tokens``, ``completion_tokens``,
``prompt_tokens_details.cached_tokens``; ``choices[0].delta.content``), which litellm mirrors;
Anthropic's ``cache_read_input_tokens`` is read too.
"""

from __future__ import annotations

from typing import Any


def usage_of(response: Any) -> tuple[int, int, int]:
    """(input, output, cached input) tokens of a response or usage-carrying chunk (an object, or a
    dict from the OpenAI path); zeros when absent."""
    usage = (response.get("usage") if isinstance(response, dict) else getattr(response, "usage", None)) or {}
    get = usage.get if isinstance(usage, dict) else (lambda k, d=None: getattr(usage, k, d))
    details = get("prompt_tokens_details", None)
    cached = 0
    if details is not None:
        cached = (details.get("cached_tokens") if isinstance(details, dict)
                  else getattr(details, "cached_tokens", 0)) or 0
    cached = cached or get("cache_read_input_tokens", 0) or 0
    return int(get("prompt_tokens", 0) or 0), int(get("completion_tokens", 0) or 0), int(cached)


def delta_text(chunk: Any) -> str | None:
    """The text a streamed chunk (an object, or a dict from the OpenAI path) adds
    (``choices[0].delta.content``), or None (usage-only chunks)."""
    if isinstance(chunk, dict):
        choices = chunk.get("choices") or []
        delta = (choices[0] or {}).get("delta") if choices else None
        return (delta or {}).get("content")
    choices = getattr(chunk, "choices", None) or []
    delta = getattr(choices[0], "delta", None) if choices else None
    return getattr(delta, "content", None) if delta is not None else None


def _chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return sum(len(part.get("text") or "") for part in content if isinstance(part, dict))
    return 0


def estimated_usage(messages: list[dict], text: str) -> dict[str, Any]:
    """A usage block estimated from characters (``ceil(chars / 4)``, the rule of
    :func:`rlm_cli.context.estimate_tokens`) for servers that report none (llama.cpp's server ignores
    ``stream_options.include_usage``; litellm reports zeros for a non-streamed reply without usage):
    budgets then count an estimate rather than zero. Marked ``"estimated": True``."""
    from rlm_cli.context import estimate_tokens

    prompt = estimate_tokens(sum(_chars(m.get("content")) for m in messages if isinstance(m, dict)))
    completion = estimate_tokens(len(text))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "estimated": True}
