"""A chat-completions request body, validated: everything from the client is hostile input.

:func:`parse_chat` turns the JSON body into a :class:`ChatRequest`: the question (the last user
message), the context text (every other message, in order, with its role), the model, ``stream``,
and the per-request budgets of the ``rlm`` object, which may lower the server's limits and never
raise them (:func:`lower_limits`). Every shape error is an :class:`ApiError` 400.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from rlm_cli.serve.errors import ApiError

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
MAX_MESSAGES = 100_000

# Per-request budget keys: (integer only, smallest value allowed).
BUDGET_KEYS: dict[str, tuple[bool, float]] = {
    "max_iterations": (True, 1), "max_depth": (True, 0), "max_sub_calls": (True, 0),
    "max_cost": (False, 0), "max_tokens": (True, 1), "timeout": (False, 0.1),
    "step_timeout": (False, 0.1), "concurrency": (True, 1),
}


@dataclass
class ChatRequest:
    """A validated request: ``model`` (the served id), ``question``, ``context`` (the other messages'
    text; "" when none), ``stream``, ``include_usage`` (``stream_options.include_usage``) and
    ``budgets`` (key -> number, the ``rlm`` object's limits)."""

    model: str
    question: str
    context: str
    stream: bool = False
    include_usage: bool = False
    budgets: dict[str, float] = field(default_factory=dict)


def _bad(message: str, code: str = "invalid_request") -> ApiError:
    return ApiError(400, message, code)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _utf8(text: str) -> str:
    """``text`` with lone surrogates (valid in JSON's ``\\uD800`` escapes, not in UTF-8) replaced by
    U+FFFD, so it can be written, sent and logged."""
    return _SURROGATE.sub("\ufffd", text)  # json.loads already joined the valid pairs


def message_text(content: Any, where: str) -> str:
    """The text of a message's ``content``: a string, None, or a list of ``{"type": "text", "text"}``
    parts (other part types are refused: this server reads text only), lone surrogates replaced by
    U+FFFD. Raises ApiError 400."""
    if content is None:
        return ""
    if isinstance(content, str):
        return _utf8(content)
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise _bad(f"{where}.content[{i}] must be a text part {{\"type\": \"text\", \"text\": str}}")
            texts.append(part["text"])
        return _utf8("\n".join(texts))
    raise _bad(f"{where}.content must be a string or a list of text parts")


def parse_budgets(value: Any) -> dict[str, float]:
    """The ``rlm`` object's budgets: keys of :data:`BUDGET_KEYS`, numbers (integers where counted),
    finite, at least the key's minimum. Raises ApiError 400 naming the key."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad("'rlm' must be an object, e.g. {\"max_cost\": 0.2}")
    out: dict[str, float] = {}
    for key, v in value.items():
        if key not in BUDGET_KEYS:
            raise _bad(f"rlm.{str(key)[:80]!r} is not a budget; known: {', '.join(BUDGET_KEYS)}")
        integer, minimum = BUDGET_KEYS[key]
        ok = (isinstance(v, int) if integer else isinstance(v, (int, float))) and not isinstance(v, bool)
        if not ok or not math.isfinite(v) or v < minimum:
            kind = "an integer" if integer else "a number"
            raise _bad(f"rlm.{key} must be {kind} >= {minimum:g}")
        out[key] = v
    return out


def lower_limits(limits: Any, budgets: dict[str, float]) -> Any:
    """A copy of ``limits`` (a :class:`~rlm_cli.run.budget.Limits`) where each budget given is the
    smaller of the server's and the request's (None, unlimited, takes the request's value)."""
    changes = {}
    for key, value in budgets.items():
        current = getattr(limits, key)
        changes[key] = value if current is None else min(current, value)
    return dataclasses.replace(limits, **changes)


def parse_chat(body: Any, served: dict[str, str]) -> ChatRequest:
    """Validate a chat-completions body against the ``served`` model ids. Raises ApiError 400 for a
    bad shape, 404 for an unknown model."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' must be a non-empty string", "missing_model")
    if model not in served:
        raise ApiError(404, f"the model {model[:200]!r} does not exist; served: {', '.join(served)}",
                       "model_not_found")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty list")
    if len(messages) > MAX_MESSAGES:
        raise _bad(f"at most {MAX_MESSAGES} messages")
    parts: list[tuple[str, str]] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _bad(f"{where} must be an object")
        role = msg.get("role")
        if role not in ROLES:
            raise _bad(f"{where}.role must be one of {', '.join(ROLES)}")
        parts.append((role, message_text(msg.get("content"), where)))
    last_user = max((i for i, (role, _) in enumerate(parts) if role == "user"), default=None)
    if last_user is None or not parts[last_user][1].strip():
        raise _bad("the last user message (the question) is missing or empty", "missing_question")
    context = "\n\n".join(f"[{role}]\n{text}" for i, (role, text) in enumerate(parts) if i != last_user)
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise _bad("'stream' must be a boolean")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _bad("'stream_options' must be an object")
    include_usage = bool(options and options.get("include_usage") is True)
    return ChatRequest(model=model, question=parts[last_user][1], context=context, stream=bool(stream),
                       include_usage=include_usage, budgets=parse_budgets(body.get("rlm")))
