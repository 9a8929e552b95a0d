"""The server's settings (:class:`ServeConfig`) and the rule that only loopback binds go without a key."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from rlm_cli.errors import UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_BODY = 32 * 1024 * 1024
"""Bytes a request body may hold (32 MiB; ``--max-body``); a larger one is answered 413."""
DEFAULT_MAX_RUNNING = 4
"""RLMs running at once over the whole server (``--max-running``)."""
DEFAULT_MAX_QUEUE = 16
"""Requests waiting for a running slot (``--max-queue``); one more is answered 429."""
DEFAULT_MAX_LM_CALLS = 16
"""LM calls in flight at once over the whole server, all runs together (``--max-lm-calls``)."""


@dataclass
class ServeConfig:
    """Everything a server needs: where to listen (``host``, ``port``), the ``api_key`` (None: no
    authentication), bounds (``max_body`` bytes, ``max_running`` runs, ``max_queue`` waiting
    requests, ``max_lm_calls`` LM calls in flight), and what each request's run starts from: the
    server's ``sources``, ``load_options``, resolved ``settings`` and ``limits`` (the ceilings a
    request may lower), ``system`` (extra root instructions), ``request_timeout`` (seconds per LM
    request) and ``repl_network``."""

    sources: list[str]
    load_options: Any
    settings: Any
    limits: Any
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    max_running: int = DEFAULT_MAX_RUNNING
    max_queue: int = DEFAULT_MAX_QUEUE
    max_lm_calls: int = DEFAULT_MAX_LM_CALLS
    system: str | None = None
    request_timeout: float = 300.0
    repl_network: bool = False
    model_names: dict[str, str] = field(default_factory=dict)
    """Model ids served -> root model: ``rlm`` (the configured root model) and ``rlm/<alias>``."""


def is_loopback(host: str) -> bool:
    """True when ``host`` names only this machine: ``localhost`` or a loopback IP address."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve anywhere


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse a non-loopback ``host`` without an API key. Raises :class:`UsageError` (exit 2)."""
    if not is_loopback(host) and not api_key:
        raise UsageError(f"--host {host} is not a loopback address: serving it needs an API key "
                         "(--api-key or RLM_SERVE_API_KEY)")


def model_names(root_model: str, aliases: dict[str, str]) -> dict[str, str]:
    """Served model id -> root model: ``{"rlm": root_model, "rlm/<alias>": target, ...}``."""
    names = {"rlm": root_model}
    for alias, target in sorted(aliases.items()):
        names[f"rlm/{alias}"] = target
    return names
