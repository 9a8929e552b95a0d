"""What can go wrong in an LM call, in two kinds: worth retrying, or not.

Shared by both request paths (:mod:`rlm_cli.lm.backend_litellm`, :mod:`rlm_cli.lm.backend_openai`) and by
:class:`rlm_cli.lm.client.LMClient`, which retries :class:`TransientLMError` and stops on
:class:`FatalLMError`. A reply that arrived but is not a usable chat completion (cut off, an error
body with status 200, no choices, null content, not JSON) is a :class:`MalformedReply`, retried like
any transient fault.

Provider text in these errors is hostile: it may quote the API key back (a 401 echoing the
``Authorization`` header). Every message is redacted (:func:`rlm_cli.secrets.redact`) when the error
is made, so no error string that reaches REPL code, stderr, ``--json`` or the trajectory carries a
known secret.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass

from rlm_cli.errors import ProviderError
from rlm_cli.secrets import redact


class TransientLMError(Exception):
    """A failure worth retrying (429, 5xx, timeout, connection); ``retry_after`` in seconds or None.

    ``refused`` is True when the server's port refused the connection (nothing listens there):
    retried a little only, since waiting rarely helps.
    """

    def __init__(self, message: str, retry_after: float | None = None, cause: BaseException | None = None) -> None:
        super().__init__(redact(message))
        self.retry_after = retry_after
        self.refused = _refused(cause)


class MalformedReply(TransientLMError):
    """A reply that is not a usable chat completion; the message says what was wrong with it (no
    model name: :class:`rlm_cli.lm.client.LMClient` adds it). Retried like other transient faults."""


class FatalLMError(ProviderError):
    """A failure retries cannot fix: authentication, permission, unknown model, bad request (exit 1).

    ``kind`` is ``auth``, ``not_found``, ``bad_request``, ``context_window`` or ``other``.
    """

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(redact(message))
        self.kind = kind


def _refused(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ConnectionRefusedError) or "connection refused" in str(exc).lower():
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None.

    Source: RFC 9110 section 10.2.3.
    """
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def retry_after_from(*header_sets: Mapping[str, str] | None) -> float | None:
    """The first usable ``Retry-After`` (seconds) among ``header_sets`` (case-insensitive mappings)."""
    for headers in header_sets:
        if not headers:
            continue
        try:
            value = parse_retry_after(headers.get("retry-after"))
        except Exception:
            value = None
        if value is not None:
            return value
    return None


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an SDK exception carries (``status_code``), or None."""
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


def short_message(exc: BaseException) -> str:
    """The provider's message on one line, without litellm's repeated class-name prefixes, secrets
    redacted (before it is cut, so no part of a key survives the cut), at most 300 chars."""
    text = redact(" ".join(str(exc).split()))
    for prefix in ("litellm.", "OpenAIException - ", "Error code: "):
        text = text.replace(prefix, "")
    name = type(exc).__name__ + ": "
    while text.startswith(name):
        text = text[len(name):]
    return text[:300]


@dataclass
class Fault:
    """What a backend could tell about a failed call, in library-neutral terms, for :func:`classify`.

    ``kind``: what the library's exception type says, or None: ``auth``, ``not_found``,
    ``context_window``, ``unknown_provider``, ``not_json``, ``connection_lost`` (a connection lost
    during the reply), ``transient`` (timeout, connection, rate limit, server error), ``bad_request``,
    ``stream_error`` (an error event without a status). ``status``: the HTTP status, or None;
    ``retry_after``: seconds, or None; ``name``: the exception's class name; ``text``: its message
    (:func:`short_message`).
    """

    kind: str | None
    status: int | None
    retry_after: float | None
    name: str
    text: str


def classify(fault: Fault, model: str, cause: BaseException | None = None) -> Exception:
    """The one decision for both request paths: a :class:`TransientLMError` (retried; transient as
    the OpenAI SDK's own retry rule has it: timeouts, connection errors, 408, 409, 429, 5xx, per
    openai-python's README, "Retries") or a :class:`FatalLMError` with its ``kind``. ``cause`` is
    the original exception (a refused connection is retried less)."""
    kind, status, text = fault.kind, fault.status, fault.text
    if kind == "not_json":
        return MalformedReply(f"the reply is not valid JSON ({text})")
    if kind == "context_window":
        return FatalLMError(f"{model}: the prompt is longer than the model's context window", "context_window")
    if kind == "auth" or status in (401, 403):
        return FatalLMError(f"{model}: authentication failed ({text}); check the provider's API key variable "
                            "(e.g. OPENAI_API_KEY)", "auth")
    if kind == "not_found" or status == 404:
        return FatalLMError(f"{model}: model or endpoint not found ({text})", "not_found")
    if kind == "unknown_provider":
        return FatalLMError(f"{model}: unknown model or provider; use a litellm model string such as "
                            "'openai/gpt-4o-mini' (see `rlm models`)", "not_found")
    if kind == "connection_lost":
        return TransientLMError(f"{model}: the connection was lost during the reply ({text})", fault.retry_after,
                                cause)
    if kind == "transient" or (status is not None and (status in (408, 409, 429) or status >= 500)):
        return TransientLMError(f"{model}: {fault.name} ({text})", fault.retry_after, cause)
    if kind == "bad_request" or status in (400, 422):
        if "context length" in text.lower():
            return FatalLMError(f"{model}: the prompt is longer than the model's context window", "context_window")
        return FatalLMError(f"{model}: bad request ({text})", "bad_request")
    if kind == "stream_error":
        return TransientLMError(f"{model}: {fault.name} ({text})", fault.retry_after, cause)
    return FatalLMError(f"{model}: {fault.name}: {text}", "other")
