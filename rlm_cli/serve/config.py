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
DEFAULT_MAX_CONNECTIONS = 64
"""Open client connections at once (``--max-connections``); one more is answered 503 and closed."""
DEFAULT_HEADERS_TIMEOUT = 10.0
"""Seconds a new connection has to deliver its first request's head (``--headers-timeout``)."""
DEFAULT_BODY_TIMEOUT = 60.0
"""Seconds a request's body may take to arrive once its head has (``--body-timeout``); then 408."""
DEFAULT_KEEPALIVE_TIMEOUT = 15.0
"""Seconds an idle keep-alive connection is kept after a response (``--keepalive-timeout``); a
next request's head must be complete by then."""
WINDOWS = {"h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}


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
    allow_hosts: tuple[str, ...] = ()
    """Extra ``Host`` names accepted (``--allow-host``), lower-case, without port."""
    cors_origins: tuple[str, ...] = ()
    """Origins (``scheme://host[:port]``) whose pages may call the server (``--cors-origin``)."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    headers_timeout: float = DEFAULT_HEADERS_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT
    max_total_cost: float | None = None
    """USD all requests together may spend (``--max-total-cost``); None: no server-wide limit."""
    cost_window: float | None = None
    """Seconds of the rolling window ``max_total_cost`` applies to; None: the server's lifetime."""


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


def parse_total_cost(text: str | None) -> tuple[float | None, float | None]:
    """``--max-total-cost`` as (USD, window seconds): ``"5"`` -> (5.0, None) for the server's
    lifetime, ``"5/h"`` (or ``/hour``) -> (5.0, 3600.0), ``"5/d"`` (``/day``) -> (5.0, 86400.0).
    None -> (None, None). Raises :class:`UsageError` (exit 2) for anything else."""
    import math

    if text is None:
        return None, None
    amount, _, per = text.strip().partition("/")
    window = None
    if per:
        window = WINDOWS.get(per.strip().lower())
        if window is None:
            raise UsageError(f"--max-total-cost {text!r}: the window must be /h or /d (e.g. 5/h)")
    try:
        usd = float(amount.strip().lstrip("$"))
    except ValueError:
        raise UsageError(f"--max-total-cost {text!r} is not an amount in USD (e.g. 5 or 5/h)") from None
    if not math.isfinite(usd) or usd <= 0:
        raise UsageError(f"--max-total-cost must be a positive amount in USD, not {text!r}")
    return usd, window


def normal_host(name: str) -> str:
    """A ``Host`` name compared case-insensitively, without a port, brackets or a trailing dot:
    ``"LocalHost.:8000"`` -> ``"localhost"``, ``"[::1]:80"`` -> ``"::1"``."""
    name = name.strip().lower()
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    return name.rstrip(".")


def normal_origin(origin: str) -> str:
    """An origin as browsers send it: ``scheme://host[:port]``, lower-case, no trailing slash.
    Raises :class:`UsageError` for one that is not ``http(s)://host[:port]`` (``*`` included: name
    each origin)."""
    from urllib.parse import urlsplit

    o = origin.strip().lower().rstrip("/")
    parts = urlsplit(o)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
        raise UsageError(f"--cors-origin {origin!r} is not an origin like http://localhost:3000 "
                         "(scheme://host[:port]; name each one, no wildcard)")
    return o


def network_options(allow_host: list[str] | None, cors_origin: list[str] | None, max_connections: int,
                    headers_timeout: float, body_timeout: float, keepalive_timeout: float,
                    max_total_cost: str | None) -> dict[str, Any]:
    """The :class:`ServeConfig` fields of ``rlm serve``'s network and spending options, checked.
    Raises :class:`UsageError` (exit 2) for a bad host name, origin, timeout or amount."""
    hosts = []
    for name in allow_host or []:
        host = normal_host(name)
        if not host or "/" in host or " " in host:
            raise UsageError(f"--allow-host {name!r} is not a host name")
        hosts.append(host)
    for flag, value in (("--headers-timeout", headers_timeout), ("--body-timeout", body_timeout),
                        ("--keepalive-timeout", keepalive_timeout)):
        if not value > 0:
            raise UsageError(f"{flag} must be a positive number of seconds")
    usd, window = parse_total_cost(max_total_cost)
    return {"allow_hosts": tuple(hosts), "cors_origins": tuple(normal_origin(o) for o in cors_origin or []),
            "max_connections": max_connections, "headers_timeout": headers_timeout,
            "body_timeout": body_timeout, "keepalive_timeout": keepalive_timeout,
            "max_total_cost": usd, "cost_window": window}


def check_total_cost_prices(settings: Any, served: dict[str, str], max_total_cost: float | None) -> None:
    """With ``--max-total-cost``, every served root model and the sub model need a price (as
    ``--max-cost`` does, :func:`rlm_cli.settings.resolve.check_prices`): an unpriced call could not
    be counted. Raises :class:`UsageError` naming ``--price``."""
    if max_total_cost is None:
        return
    for model in [*served.values(), settings.sub_model or settings.model]:
        if unpriced(settings, model):
            raise UsageError(f"--max-total-cost needs a price for the model {model}, which litellm's price map "
                             f"does not list; pass --price {model}=IN/OUT (USD per million input/output tokens)")


def unpriced(settings: Any, model: str) -> bool:
    """Whether ``model`` has no price: neither ``--price`` (``settings.prices``) nor litellm's map
    lists it (the rule of :func:`rlm_cli.settings.resolve.check_prices`)."""
    from rlm_cli.lm.pricing import has_price

    return bool(model) and model not in settings.prices and not has_price(model)
