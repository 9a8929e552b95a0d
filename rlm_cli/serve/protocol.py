"""A chat-completions request body, validated: everything from the client is hostile input.

:func:`parse_chat` turns the parsed JSON body into a :class:`ChatRequest`: the question (the last
user message), the context text (every other message, in order, with its role), the model,
``stream``, what the answer must look like (``max_tokens``, ``stop``, ``response_format``) and the
per-request budgets of the ``rlm`` object, which may lower the server's limits and never raise them
(:func:`lower_limits`). The body is checked by typed models (:mod:`rlm_cli.serve.schema`, pydantic,
unknown parameters forbidden): every error is an :class:`ApiError` 400 that names the parameter
(``param``), a parameter of OpenAI's API this server cannot honour too (:data:`UNSUPPORTED`).
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
MAX_DEPTH = 64
"""Nesting depth of JSON arrays and objects a body may have (a JSON Schema needs a few levels)."""

# Per-request budget keys: (integer only, smallest value allowed).
BUDGET_KEYS: dict[str, tuple[bool, float]] = {
    "max_iterations": (True, 1), "max_depth": (True, 0), "max_sub_calls": (True, 0),
    "max_cost": (False, 0), "max_tokens": (True, 1), "timeout": (False, 0.1),
    "step_timeout": (False, 0.1), "concurrency": (True, 1),
}

UNSUPPORTED: dict[str, str] = {
    "n": "one choice per request (n=1): each choice would be a whole RLM run; send several requests",
    "tools": "the RLM answers in text and cannot call the client's tools",
    "tool_choice": "the RLM answers in text and cannot call the client's tools",
    "functions": "the RLM answers in text and cannot call the client's functions",
    "function_call": "the RLM answers in text and cannot call the client's functions",
    "parallel_tool_calls": "the RLM answers in text and cannot call the client's tools",
    "logprobs": "an RLM answer is assembled over many LM calls: it has no token log-probabilities",
    "top_logprobs": "an RLM answer is assembled over many LM calls: it has no token log-probabilities",
    "logit_bias": "the answer is assembled over many LM calls: logit_bias cannot apply",
    "audio": "text only", "modalities": "text only", "prediction": "not supported",
    "web_search_options": "the RLM does not search the web",
}
"""OpenAI parameters refused with a 400 naming them (a value of null, false, or n=1, is accepted)."""

IGNORED = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "seed", "user", "metadata",
           "store", "service_tier", "reasoning_effort", "prompt_cache_key", "safety_identifier", "verbosity")
"""OpenAI parameters accepted and ignored: sampling knobs (the root LM's own options stay the
server's: ``--option``), and bookkeeping fields that change nothing in the answer."""


@dataclass
class ChatRequest:
    """A validated request: ``model`` (the served id), ``question``, ``context`` (the other messages'
    text; "" when none), ``stream``, ``include_usage`` (``stream_options.include_usage``),
    ``budgets`` (key -> number, the ``rlm`` object's limits), ``max_tokens`` (tokens the answer may
    have; None: no cap), ``stop`` (sequences that end the answer) and ``response_format`` (None for
    text, else ``{"type": "json_object"}`` or ``{"type": "json_schema", "name", "schema"}``)."""

    model: str
    question: str
    context: str
    stream: bool = False
    include_usage: bool = False
    budgets: dict[str, float] = field(default_factory=dict)
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    response_format: dict | None = None


def _bad(message: str, code: str = "invalid_request", param: str | None = None) -> ApiError:
    return ApiError(400, message, code, param)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _utf8(text: str) -> str:
    """``text`` with lone surrogates (valid in JSON's ``\\uD800`` escapes, not in UTF-8) replaced by
    U+FFFD, so it can be written, sent and logged."""
    return _SURROGATE.sub("\ufffd", text)  # json.loads already joined the valid pairs


def message_text(content: Any, where: str) -> str:
    """The text of a validated message's ``content`` (a string, None, or a list of text parts,
    :class:`rlm_cli.serve.schema.TextPart`), lone surrogates replaced by U+FFFD."""
    if content is None:
        return ""
    if isinstance(content, str):
        return _utf8(content)
    return _utf8("\n".join(part.text for part in content))


def parse_budgets(value: Any) -> dict[str, float]:
    """The ``rlm`` object's budgets: keys of :data:`BUDGET_KEYS`, numbers (integers where counted),
    finite, at least the key's minimum. Raises ApiError 400 naming the key."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad("'rlm' must be an object, e.g. {\"max_cost\": 0.2}", param="rlm")
    out: dict[str, float] = {}
    for key, v in value.items():
        if key not in BUDGET_KEYS:
            raise _bad(f"rlm.{str(key)[:80]!r} is not a budget; known: {', '.join(BUDGET_KEYS)}",
                       param=f"rlm.{str(key)[:80]}")
        integer, minimum = BUDGET_KEYS[key]
        ok = (isinstance(v, int) if integer else isinstance(v, (int, float))) and not isinstance(v, bool)
        if not ok or not math.isfinite(v) or v < minimum:
            kind = "an integer" if integer else "a number"
            raise _bad(f"rlm.{key} must be {kind} >= {minimum:g}", param=f"rlm.{key}")
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


def json_depth(value: Any) -> int:
    """The nesting depth of arrays and objects in a parsed JSON value (0 for a scalar), computed
    without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def param_name(loc: tuple) -> str:
    """A pydantic error location as a parameter path: ``("messages", 0, "content", "str")`` ->
    ``"messages[0].content"`` (the union branch tags pydantic adds are dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and (part in ("str", "int", "float", "bool", "none", "dict") or "[" in part
                                        or "(" in part or part.startswith(("function-", "literal"))):
            continue
        else:
            out += ("." if out else "") + part
    return out


def check_unsupported(body: dict) -> None:
    """Refuse an OpenAI parameter this server cannot honour (:data:`UNSUPPORTED`), naming it."""
    for name, why in UNSUPPORTED.items():
        value = body.get(name)
        if value is None or value is False or (name == "n" and value == 1 and value is not True):
            continue
        raise ApiError(400, f"'{name}' is not supported by rlm serve: {why}", "unsupported_parameter", name)


def parse_chat(body: Any, served: dict[str, str]) -> ChatRequest:
    """Validate a chat-completions body (parsed JSON) against the ``served`` model ids. Raises
    ApiError 400 naming the parameter for a bad shape or an unsupported parameter, 404 for an
    unknown model."""
    from pydantic import ValidationError

    from rlm_cli.serve.schema import ChatBody

    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    if json_depth(body) > MAX_DEPTH:
        raise _bad(f"the request body nests arrays and objects more than {MAX_DEPTH} levels deep", "invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "'model' must be a non-empty string", "missing_model", "model")
    check_unsupported(body)
    try:
        parsed = ChatBody.model_validate(body)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        name = param_name(tuple(err["loc"]))
        if err["type"] == "extra_forbidden":
            raise ApiError(400, f"'{name}' is not a parameter rlm serve knows", "unknown_parameter", name) from None
        raise ApiError(400, f"'{name}': {err['msg']}", "invalid_request", name) from None
    if model not in served:
        raise ApiError(404, f"the model {model[:200]!r} does not exist; served: {', '.join(served)}",
                       "model_not_found", "model")
    parts = [(m.role, message_text(m.content, f"messages[{i}]")) for i, m in enumerate(parsed.messages)]
    last_user = max((i for i, (role, _) in enumerate(parts) if role == "user"), default=None)
    if last_user is None or not parts[last_user][1].strip():
        raise ApiError(400, "the last user message (the question) is missing or empty", "missing_question",
                       "messages")
    context = "\n\n".join(f"[{role}]\n{text}" for i, (role, text) in enumerate(parts) if i != last_user)
    caps = [v for v in (parsed.max_tokens, parsed.max_completion_tokens) if v is not None]
    stop = [parsed.stop] if isinstance(parsed.stop, str) else list(parsed.stop or [])
    budgets = parse_budgets(body.get("rlm"))
    return ChatRequest(model=model, question=parts[last_user][1], context=context, stream=bool(parsed.stream),
                       include_usage=bool(parsed.stream_options and parsed.stream_options.include_usage),
                       budgets=budgets, max_tokens=min(caps) if caps else None, stop=[s for s in stop if s],
                       response_format=parsed.response_format.spec() if parsed.response_format else None)
