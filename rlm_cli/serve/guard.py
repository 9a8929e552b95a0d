"""Who may talk to the server from a browser: the ``Host``, ``Origin`` and ``Content-Type`` rules.

A server on loopback without a key is still reachable by every web page the user opens: a page may
POST a "simple" request (``text/plain``, no CORS preflight) to ``http://127.0.0.1:8000``, and a page
whose domain is re-pointed at 127.0.0.1 (DNS rebinding) even reads the answer as same-origin. So,
as Jupyter and Ollama do:

- ``Host`` must name this server: an IP address literal (a rebinding page always sends its own
  domain name), ``localhost`` (``*.localhost`` too), the bound host, or a name the user allowed
  (``--allow-host``); any port. Else 403 ``host_not_allowed``.
- ``Origin``, when a browser sends one, must be the server's own origin (``http://`` + the
  ``Host`` it was reached by) or one the user allowed (``--cors-origin``). Else 403
  ``origin_not_allowed``; ``Origin: null`` (sandboxed frames, ``file://``) is foreign.
- A chat request's body must be ``application/json`` (415 otherwise): a browser cannot send that
  cross-site without a preflight, which only an allowed origin passes.

Allowed origins get CORS headers (the preflight answered 204 with ``Access-Control-Allow-*``).
"""

from __future__ import annotations

import functools
import ipaddress

from aiohttp import web

from rlm_cli.serve.config import ServeConfig, normal_host
from rlm_cli.serve.errors import ApiError

CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type"
CORS_MAX_AGE = "600"
JSON_BODY_PATHS = ("/v1/chat/completions",)


def host_allowed(header: str | None, cfg: ServeConfig) -> bool:
    """Whether a ``Host`` header names this server (see the module docstring). A missing header
    (HTTP/1.0 clients; browsers always send one) is allowed."""
    if header is None:
        return True
    host = normal_host(header)
    if not host:
        return False
    if _is_ip(host):
        return True
    if host == "localhost" or host.endswith(".localhost"):
        return True
    return host == normal_host(cfg.host) or host in cfg.allow_hosts


@functools.lru_cache(maxsize=256)  # bounded: the header is the caller's
def _is_ip(host: str) -> bool:
    """Whether ``host`` is an IP address literal (parsing one costs ~0.1-0.5 ms; a client sends the
    same ``Host`` on every request)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def origin_allowed(origin: str, host_header: str | None, cfg: ServeConfig) -> bool:
    """Whether a request's ``Origin`` may call the server: its own origin (``http(s)://`` + the
    ``Host`` header) or one of ``cfg.cors_origins``."""
    o = origin.strip().lower().rstrip("/")
    if o in cfg.cors_origins:
        return True
    if not host_header:
        return False
    own = host_header.strip().lower()
    return o in (f"http://{own}", f"https://{own}")


def cors_origin(request: web.Request, cfg: ServeConfig) -> str | None:
    """The ``Origin`` to echo in ``Access-Control-Allow-Origin`` (an allowed cross origin), else None."""
    origin = request.headers.get("Origin")
    if origin and origin.strip().lower().rstrip("/") in cfg.cors_origins:
        return origin.strip()
    return None


def check_request(request: web.Request, cfg: ServeConfig) -> None:
    """Refuse a request a web page could have forged: a foreign ``Host`` or ``Origin`` (403), a chat
    body that is not JSON (415). Raises :class:`ApiError`."""
    host = request.headers.get("Host")
    if not host_allowed(host, cfg):
        raise ApiError(403, "this server does not answer to that Host name (DNS rebinding guard); "
                       "allow it with rlm serve --allow-host NAME", "host_not_allowed")
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin, host, cfg):
        raise ApiError(403, "requests from that web page's origin are refused; allow it with "
                       "rlm serve --cors-origin ORIGIN", "origin_not_allowed")
    if request.method == "POST" and request.path in JSON_BODY_PATHS and request.content_type != "application/json":
        raise ApiError(415, "the request body must be JSON (Content-Type: application/json)",
                       "unsupported_media_type")


def preflight(request: web.Request, cfg: ServeConfig) -> web.Response:
    """Answer a CORS preflight (``OPTIONS``) after :func:`check_request`: 204 with the permissions
    for an allowed cross origin, 403 for any other ``OPTIONS``."""
    origin = cors_origin(request, cfg)
    if origin is None or not request.headers.get("Access-Control-Request-Method"):
        raise ApiError(403, "no CORS permission for this origin (rlm serve --cors-origin ORIGIN)",
                       "origin_not_allowed")
    return web.Response(status=204, headers={
        "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": CORS_METHODS,
        "Access-Control-Allow-Headers": CORS_HEADERS, "Access-Control-Max-Age": CORS_MAX_AGE,
        "Access-Control-Expose-Headers": "X-RLM-Run-Id", "Vary": "Origin"})


def add_cors(request: web.Request, resp: web.StreamResponse, cfg: ServeConfig) -> None:
    """Add ``Access-Control-Allow-Origin`` (and ``Vary: Origin``) to a response not yet sent, when
    the request came from an allowed cross origin."""
    origin = cors_origin(request, cfg)
    if origin is not None and not resp.prepared:
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers["Access-Control-Expose-Headers"] = "X-RLM-Run-Id"
        resp.headers["Vary"] = "Origin"
