"""Secrets: what counts as one, and their redaction.

One rule for the REPL's environment filter (:func:`is_secret_name`) and for redaction, so the two
cannot drift apart.

Redaction replaces every known secret *value* with :data:`REDACTED` in text that leaves rlm's own
hands: LM error messages (so sub-call error strings handed to REPL code and root-LM errors never
carry a key a provider quoted back), run errors and answers (stderr, stdout, ``--json``), events (the
live and plain views) and the trajectory. A value is known when it is

- the value of an environment variable whose name looks secret (:func:`is_secret_name`: ``KEY``,
  ``TOKEN``, ``SECRET``, ``PASSWORD``, ``AUTH``...), except names whose only secret-looking part is
  ``AUTHOR`` (``GIT_AUTHOR_NAME`` holds a name, not a key) and values that are the paths of existing
  files (``SSH_AUTH_SOCK``, ``XAUTHORITY``), or
- given to :func:`remember` (the API key rlm sends, request options with secret-looking names such
  as ``-o api_key ...`` or a config file's ``[options]``).

Values shorter than :data:`MIN_SECRET_CHARS` characters are never redacted (a 4-character "token"
would mangle ordinary text); a value with spaces (``Bearer sk-...``) is redacted whole, and so is
each of its words that is long enough.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Iterable
from typing import Any

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION", re.IGNORECASE)
_NOT_SECRET_PART = re.compile(r"AUTHOR(?!I[SZ]ATION)", re.IGNORECASE)

MIN_SECRET_CHARS = 8
"""Shortest value redacted, in characters."""

REDACTED = "[REDACTED]"
"""What a secret value is replaced with."""

_remembered: set[str] = set()
_lock = threading.Lock()
_version = 0


def is_secret_name(name: str) -> bool:
    """True when an environment variable's name suggests it holds a key, token or password."""
    return SECRET_NAME.search(name) is not None


def _variants(value: str) -> set[str]:
    """``value`` and each of its whitespace-separated words, those of :data:`MIN_SECRET_CHARS`+ chars."""
    value = value.strip()
    out = {value} if len(value) >= MIN_SECRET_CHARS else set()
    words = value.split()
    if len(words) > 1:
        out.update(w for w in words if len(w) >= MIN_SECRET_CHARS)
    return out


def remember(*values: object) -> None:
    """Add secret values to redact from now on (non-strings and short values are ignored)."""
    global _version
    found: set[str] = set()
    for value in values:
        if isinstance(value, str):
            found |= _variants(value)
    with _lock:
        if not found <= _remembered:
            _remembered.update(found)
            _version += 1


def remember_options(options: Any) -> None:
    """Remember the values of secret-looking keys in a (nested) mapping of request options, e.g.
    ``{"api_key": ...}`` or ``{"extra_headers": {"Authorization": "Bearer ..."}}``."""
    if isinstance(options, dict):
        for key, value in options.items():
            if isinstance(value, dict | list):
                remember_options(value)
            elif isinstance(key, str) and _secret_key(key):
                remember(value)
    elif isinstance(options, list):
        for item in options:
            remember_options(item)


def _secret_key(name: str) -> bool:
    return is_secret_name(_NOT_SECRET_PART.sub("", name))


_ENV_SCAN: list[tuple[dict, list[str]]] = []  # [(the environment as last scanned, its candidate values)]


def _env_candidates() -> list[str]:
    """Values of secret-looking environment variables, long enough to redact. The scan (a regular
    expression per name, every name and value decoded: ~0.3 ms) is redone only when the environment
    differs in any way from the one last scanned (compared whole, in C, on the raw bytes)."""
    raw = getattr(os.environ, "_data", None)
    snapshot = dict(raw) if isinstance(raw, dict) else dict(os.environ)
    cached = _ENV_SCAN[0] if _ENV_SCAN else None
    if cached is not None and cached[0] == snapshot:
        return cached[1]
    found = [value for name, value in os.environ.items() if _secret_key(name) and len(value) >= MIN_SECRET_CHARS]
    _ENV_SCAN[:] = [(snapshot, found)]
    return found


def _env_secrets() -> set[str]:
    values: set[str] = set()
    for value in _env_candidates():
        if not _is_existing_path(value):  # checked each time: the file may have gone since
            values |= _variants(value)
    return values


def _is_existing_path(value: str) -> bool:
    try:
        return os.path.isabs(value) and os.path.exists(value)
    except (OSError, ValueError):
        return False


def known_secrets(extra: Iterable[str] | None = None) -> list[str]:
    """Every value redaction replaces, longest first: the environment's (read now), the remembered
    ones and ``extra`` (short values left out)."""
    values = _env_secrets()
    with _lock:
        values |= _remembered
    for value in extra or ():
        if isinstance(value, str):
            values |= _variants(value)
    return sorted(values, key=lambda v: (-len(v), v))


@functools.lru_cache(maxsize=16)
def _pattern(values: tuple[str, ...]) -> re.Pattern[str] | None:
    return re.compile("|".join(map(re.escape, values))) if values else None


class Redactor:
    """Redacts the secrets known when it was made, plus any :func:`remember`-ed later; reads the
    environment once (and again after each :func:`remember`), so it is cheap to call per event."""

    def __init__(self, extra: Iterable[str] | None = None) -> None:
        self._extra = [v for v in (extra or ()) if isinstance(v, str)]
        self._version = -1
        self._re: re.Pattern[str] | None = None

    def _current(self) -> re.Pattern[str] | None:
        if self._version != _version:
            self._version = _version
            self._re = _pattern(tuple(known_secrets(self._extra)))
        return self._re

    def text(self, text: str) -> str:
        """``text`` with every known secret value replaced by :data:`REDACTED`."""
        pattern = self._current()
        if pattern is None or not isinstance(text, str):
            return text
        return pattern.sub(REDACTED, text)

    def obj(self, value: Any) -> Any:
        """``value`` with secrets redacted from every string in it (str, dict keys and values, list,
        tuple; other types as they are). Returns the same object when nothing changed."""
        pattern = self._current()
        if pattern is None:
            return value
        return _redact_obj(value, pattern)


def _redact_obj(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(REDACTED, value) if pattern.search(value) else value
    if isinstance(value, dict):
        items = [(_redact_obj(k, pattern), _redact_obj(v, pattern)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, value.items(), strict=True)):
            return value
        return dict(items)
    if isinstance(value, list | tuple):
        items = [_redact_obj(v, pattern) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return type(value)(items) if isinstance(value, list) else tuple(items)
    return value


def redact(text: str, extra: Iterable[str] | None = None) -> str:
    """``text`` with every known secret value (see the module docstring) replaced by
    :data:`REDACTED`. Reads the environment on each call: for many small texts use a :class:`Redactor`."""
    return Redactor(extra).text(text)


def redact_obj(value: Any, extra: Iterable[str] | None = None) -> Any:
    """:meth:`Redactor.obj` with the secrets known now."""
    return Redactor(extra).obj(value)
