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

    ``refused`` is True when the server is unreachable (its port refused the connection, or its
    name did not resolve): retried once at most, since waiting rarely helps.
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


UNREACHABLE = ("connection refused", "connect call failed", "name or service not known",
               "nodename nor servname", "temporary failure in name resolution", "getaddrinfo failed",
               "no address associated with hostname")
"""What a refused connection or a failed DNS lookup says, in the exception or what it wraps."""


def _refused(exc: BaseException | None) -> bool:
    """Whether the server is unreachable: the connection was refused or its name did not resolve."""
    import socket

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ConnectionRefusedError | socket.gaierror):
            return True
        if any(m in str(exc).lower() for m in UNREACHABLE):
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


MAX_MESSAGE = 300
TRACEBACK = "Traceback (most recent call last):"


def short_message(exc: BaseException, limit: int = MAX_MESSAGE) -> str:
    """The provider's message on one line, without litellm's repeated class-name prefixes, secrets
    redacted (before it is cut, so no part of a key survives the cut), at most ``limit`` characters,
    cut between words (ending in ``…``). A library traceback quoted in the message (litellm puts
    one in some ``APIConnectionError`` texts) is replaced by its last line, the exception it ended
    in (``KeyError: 'content'``)."""
    raw = redact(str(exc))
    if TRACEBACK in raw:
        head, _, trace = raw.partition(TRACEBACK)
        lines = [ln.strip() for ln in trace.splitlines() if ln.strip() and not ln.startswith((" ", "\t"))]
        last = lines[-1] if lines else ""
        raw = last if last and (not head.strip() or head.strip() in last) else f"{head.strip()} ({last})".strip()
    text = " ".join(raw.split())
    for prefix in ("litellm.", "OpenAIException - ", "Error code: "):
        text = text.replace(prefix, "")
    name = type(exc).__name__ + ": "
    while text.startswith(name):
        text = text[len(name):]
    return cut_words(text, limit)


def cut_words(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else cut at the last space before it, with ``…``."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:-(") + "…"


def key_variables(model: str) -> tuple[str, ...]:
    """The environment variables that hold the API key for ``model``'s provider (its litellm prefix):
    rlm's provider table (:mod:`rlm_cli.settings.providers`), else what litellm says is missing for
    the model when litellm is loaded (``litellm.validate_environment``), else ``PROVIDER_API_KEY``."""
    from rlm_cli.settings.providers import PROVIDERS

    provider = model.partition("/")[0].lower() if "/" in model else "openai"
    for p in PROVIDERS:
        if p.name == provider:
            return p.key_vars
    import sys

    litellm = sys.modules.get("litellm")
    if litellm is not None and hasattr(litellm, "validate_environment"):
        try:
            missing = litellm.validate_environment(model).get("missing_keys") or []
        except Exception:
            missing = []
        names = tuple(k for k in missing if isinstance(k, str) and k.isupper() and "KEY" in k)
        if names:
            return names
    return (f"{provider.upper()}_API_KEY",)


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
        names = " or ".join(key_variables(model))
        missing = "api key" in text.lower() and any(w in text.lower() for w in ("missing", "no api key", "not set"))
        what = f"no API key: set {names}" if missing else f"authentication failed; check {names}"
        return FatalLMError(f"{model}: {what} ({cut_words(text, 160)})", "auth")
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
