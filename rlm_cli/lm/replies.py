"""Reading what an LM call returned, the same way for both request paths: token usage of a
response (or of the streamed chunk that carries it), the text piece of a streamed chunk, and
whether a reply is a usable chat completion at all.

Shapes follow the OpenAI chat completions API (``usage.prompt_tokens``, ``completion_tokens``,
``prompt_tokens_details.cached_tokens``; ``choices[0].message.content``,
``choices[0].delta.content``, ``choices[0].finish_reason``), which litellm mirrors; Anthropic's
``cache_read_input_tokens`` is read too.

What a provider sends is not trusted. :func:`reply_text` and :class:`StreamCheck` raise
:class:`~rlm_cli.lm.errors.MalformedReply` (retried, then a clear error) for a body with an
``error`` object, no ``choices``, ``content: null`` without a refusal or tool call, and a stream that
ends without a finish reason (cut off). A reply whose finish reason is ``"length"`` (cut by the token
limit) or ``"content_filter"`` is a real reply: it is returned as it is, empty or not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlm_cli.lm.errors import MalformedReply

REAL_WHEN_EMPTY = ("length", "content_filter")
"""Finish reasons under which a reply with no content is still a reply (returned as ``""``)."""

MAX_REPLY_CHARS = 200_000
"""The longest LM reply kept, in characters. Root replies longer than this are cut to it before
they enter the root LM's history, the next prompt and the trajectory (:func:`clip_reply`); sub-LM
replies before they reach the REPL's code (and the trajectory, :data:`rlm_cli.trajectory.recorder.MAX_FIELD_CHARS`,
the same number)."""


def clip_reply(text: str, limit: int = MAX_REPLY_CHARS) -> str:
    """``text`` if it has at most ``limit`` characters, else its first ``limit`` characters and a
    line saying how many were cut. The head is kept (not head and tail): a code block cut in the
    middle stays unclosed and is therefore not run (:mod:`rlm_cli.run.parsing`)."""
    if len(text) <= limit:
        return text
    return (text[:limit] + f"\n[... {len(text) - limit:,} more characters of this reply were cut: replies are "
            f"limited to {limit:,} characters ...]")


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _error_text(error: Any) -> str:
    message = _get(error, "message") if not isinstance(error, str) else error
    text = " ".join(str(message if message else error).split())
    return text[:300]


def _text_of(content: Any) -> str | None:
    """A message content as text: a string, or the text of content parts; None otherwise."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(_get(part, "text") or "") for part in content)
    return None


def reply_text(reply: Any) -> str:
    """The text of a non-streamed chat completion (a dict, or litellm's object).

    Returns ``choices[0].message.content``; the refusal text for a refusal; ``""`` for a tool call
    or for null content under a finish reason in :data:`REAL_WHEN_EMPTY`. Raises
    :class:`MalformedReply` for anything else: not an object, an ``error`` object, no ``choices``,
    content null or not text.
    """
    if reply is None or isinstance(reply, str | bytes | int | float | list):
        raise MalformedReply(f"the body is not a chat completion ({type(reply).__name__})")
    error = _get(reply, "error")
    if error:
        raise MalformedReply(f"the server answered with an error: {_error_text(error)}")
    choices = _get(reply, "choices")
    if not isinstance(choices, list) or not choices:
        raise MalformedReply("the reply has no choices")
    message = _get(choices[0], "message")
    if message is None:
        raise MalformedReply("the reply's choice has no message")
    text = _text_of(_get(message, "content"))
    if text is not None:
        return text
    refusal = _get(message, "refusal")
    if isinstance(refusal, str) and refusal:
        return refusal
    if _get(message, "tool_calls") or _get(message, "function_call"):
        return ""
    if _get(choices[0], "finish_reason") in REAL_WHEN_EMPTY:
        return ""
    raise MalformedReply("the reply's content is null")


class StreamCheck:
    """Follows a streamed reply chunk by chunk (dicts or litellm's objects) and says, at the end,
    whether it was complete.

    :meth:`feed` returns a chunk's text piece (or None) and raises :class:`MalformedReply` for an
    error object inside the stream; :meth:`finish` raises it for a stream that ended without a
    finish reason (cut off), and for one whose content was null throughout with no refusal or tool
    call (unless its finish reason is in :data:`REAL_WHEN_EMPTY`).
    """

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.saw_content = False
        self.saw_other = False

    def feed(self, chunk: Any) -> str | None:
        """The text piece ``chunk`` adds (``choices[0].delta.content``), or None."""
        error = _get(chunk, "error") if isinstance(chunk, dict) else None
        if error:
            raise MalformedReply(f"the stream carried an error: {_error_text(error)}")
        choices = _get(chunk, "choices") or []
        if not isinstance(choices, list) or not choices:
            return None
        choice = choices[0]
        reason = _get(choice, "finish_reason")
        if isinstance(reason, str) and reason:
            self.finish_reason = reason
        delta = _get(choice, "delta")
        if delta is None:
            return None
        if _get(delta, "tool_calls") or _get(delta, "function_call"):
            self.saw_other = True
        refusal = _get(delta, "refusal")
        if isinstance(refusal, str) and refusal:
            self.saw_other = True
            return refusal
        content = _text_of(_get(delta, "content"))
        if content is not None:
            self.saw_content = True
        return content or None

    def finish(self, finish_reason: str | None | Callable[[], str | None] = None) -> None:
        """Raise :class:`MalformedReply` unless the stream was complete. ``finish_reason``: what the
        client library knows the server sent, when it differs from the chunks (litellm adds a
        made-up ``"stop"`` to a stream cut off without one)."""
        reason = finish_reason() if callable(finish_reason) else finish_reason
        if reason is not None or callable(finish_reason):
            self.finish_reason = reason
        if not self.finish_reason:
            raise MalformedReply("the stream ended before the reply was complete (no finish reason): "
                                 "the reply was cut off")
        if not (self.saw_content or self.saw_other) and self.finish_reason not in REAL_WHEN_EMPTY:
            raise MalformedReply("the reply's content is null")


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
