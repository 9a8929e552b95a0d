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
