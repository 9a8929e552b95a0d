"""The aiohttp application and the server's life.

:func:`build_app` wires the routes behind one middleware that refuses what a web page could forge
(a foreign ``Host`` or ``Origin``, a non-JSON chat body: :mod:`rlm_cli.serve.guard`), answers CORS
preflights for allowed origins, authenticates (``Authorization: Bearer <key>``, compared in
constant time), turns every failure into OpenAI's error shape and writes one access-log line per
request on stderr (method, path, status, duration, run id; control characters made visible).
:func:`serve` runs it behind a :class:`~rlm_cli.serve.listener.Listener` (connection cap, head,
body and keep-alive timeouts) until SIGINT or SIGTERM, then cancels the running requests (their
trajectories are written, their REPLs killed) and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import signal
import sys
import time
from typing import Any

from aiohttp import web

from rlm_cli.errors import RlmError
from rlm_cli.serve.admission import Admission
from rlm_cli.serve.cache import SourceCache, log_load
from rlm_cli.serve.config import ServeConfig
from rlm_cli.serve.errors import ApiError, error_response
from rlm_cli.serve.guard import add_cors, check_request, preflight
from rlm_cli.serve.handlers import STATE, ServerState, chat_completions, list_models
from rlm_cli.serve.listener import Listener
from rlm_cli.serve.spending import Spending

SHUTDOWN_GRACE_S = 10.0
"""Seconds the shutdown waits for cancelled runs to write their trajectories."""


def log_line(method: str, path: str, status: int, duration_s: float, run_id: str | None) -> None:
    """One access-log line on stderr: ``rlm serve: METHOD PATH STATUS DURATIONs run=ID``."""
    from rlm_cli.view.safe import inline

    with contextlib.suppress(OSError, ValueError):
        print(f"rlm serve: {inline(method, 16)} {inline(path, 200)} {status} {duration_s:.3f}s "
              f"run={inline(run_id or '-', 40)}", file=sys.stderr, flush=True)


def authorized(header: str | None, key: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <key>`` (constant-time comparison)."""
    scheme, _, given = (header or "").partition(" ")
    ok_scheme = scheme.lower() == "bearer"
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), key.encode("utf-8")) and ok_scheme


@web.middleware
async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Browser guard, CORS, authentication, error shape and the access log around every request."""
    start = time.monotonic()
    status = 499  # the client went away (or the server stopped) before an answer
    state = request.app[STATE]
    if state.listener is not None:  # a whole request head arrived: its deadline is met
        conn = state.listener.connection_for(request.transport)
        if conn is not None:
            conn.request_started()
    resp: web.StreamResponse | None = None
    try:
        check_request(request, state.cfg)
        if request.method == "OPTIONS":
            resp = preflight(request, state.cfg)
            status = resp.status
            return resp
        key = state.cfg.api_key
        if key and not authorized(request.headers.get("Authorization"), key):
            raise ApiError(401, "missing or wrong API key (Authorization: Bearer <key>)", "invalid_api_key")
        resp = await handler(request)
        status = request.get("status", resp.status)
        return resp
    except ApiError as exc:
        status = exc.status
        resp = error_response(exc.status, exc.message, exc.code, exc.param)
        return resp
    except web.HTTPException as exc:  # aiohttp's own: unknown path (404), wrong method (405), 413
        status = exc.status
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status)
        resp = error_response(exc.status, exc.reason or "error", code)
        return resp
    except RlmError as exc:  # unusable input for the run (a source that vanished, nothing to load)
        from rlm_cli.secrets import redact
        from rlm_cli.view.safe import inline

        status = 400  # the detail names server paths: it goes to the server's log only
        with contextlib.suppress(OSError, ValueError):
            print(f"rlm serve: {redact(inline(exc, 400))}", file=sys.stderr, flush=True)
        resp = error_response(400, "the run could not load its input (see the server's log)", "unusable_input")
        return resp
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - never a traceback to the client
        status = 500
        resp = error_response(500, f"internal error: {type(exc).__name__}", "internal_error")
        return resp
    finally:
        if resp is not None:
            add_cors(request, resp, state.cfg)
        log_line(request.method, request.path_qs, status, time.monotonic() - start, request.get("run_id"))


def warm_size(cfg: ServeConfig) -> int:
    """REPLs kept started ahead (:mod:`rlm_cli.serve.warm`): one per running slot, or
    ``RLM_SERVE_WARM_REPLS`` (0 turns them off; a bad value is ignored)."""
    import os

    value = os.environ.get("RLM_SERVE_WARM_REPLS", "").strip()
    if value.isdigit():
        return min(int(value), 64)
    return cfg.max_running


def shared_paths() -> Any:
    """The LM request paths every run shares (:mod:`rlm_cli.serve.lmpaths`), for the backend
    ``RLM_LM_BACKEND`` names (as each run would pick it; a bad value fails the run, as before)."""
    import os

    from rlm_cli.serve.lmpaths import SharedPaths

    try:
        return SharedPaths(os.environ.get("RLM_LM_BACKEND", "").strip().lower() or "auto")
    except RlmError:
        return None


def build_app(cfg: ServeConfig) -> web.Application:
    """The application for ``cfg`` (create it inside the running loop: it holds asyncio primitives).
    Bodies beyond ``cfg.max_body`` bytes are refused (413)."""
    app = web.Application(middlewares=[middleware], client_max_size=cfg.max_body)
    app[STATE] = ServerState(cfg=cfg, admission=Admission(cfg.max_running, cfg.max_queue),
                             lm_semaphore=asyncio.Semaphore(max(1, cfg.max_lm_calls)),
                             spending=Spending(cfg.max_total_cost, cfg.cost_window),
                             sources=SourceCache(cfg.sources, cfg.load_options, log_load) if cfg.sources else None)
    app[STATE].lm_paths = shared_paths()
    size = warm_size(cfg)
    if app[STATE].sources is not None and size:
        from rlm_cli.serve.warm import WarmPool

        app[STATE].warm = WarmPool(size, cfg.repl_network)
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    return app


async def serve_until_stopped(cfg: ServeConfig, stop: asyncio.Event, ready: Any = None) -> None:
    """Serve ``cfg`` until ``stop`` is set, then shut down: new requests refused, running runs
    cancelled and awaited (trajectories written, REPLs killed), the listener closed. ``ready(url)``
    is called once the socket accepts connections. Raises OSError when the address cannot be bound."""
    app = build_app(cfg)
    state = app[STATE]
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S,
                           keepalive_timeout=cfg.keepalive_timeout)
    await runner.setup()
    listener = None
    try:
        assert runner.server is not None
        listener = state.listener = Listener(runner.server, cfg.host, cfg.port, cfg.max_connections,
                                             cfg.headers_timeout)
        listener.start()
        if ready is not None:
            host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
            ready(f"http://{host}:{listener.port}/v1")
        await stop.wait()
        await listener.close()
        state.closing = True
        tasks = list(state.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
    finally:
        if state.warm is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(state.warm.close(), SHUTDOWN_GRACE_S)
        if listener is not None:
            await listener.close()
        await runner.cleanup()
        if state.sources is not None:
            state.sources.close()
        if state.lm_paths is not None:
            with contextlib.suppress(Exception):
                await state.lm_paths.close()


def serve(cfg: ServeConfig) -> None:
    """Run the server in a fresh event loop until SIGINT or SIGTERM (a second signal exits at once,
    after killing every REPL). Prints the address on stderr once listening. Raises OSError when the
    address cannot be bound."""
    import os

    from rlm_cli.repl.process import kill_all_now

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        if len(received) == 1:
            with contextlib.suppress(OSError):
                print("rlm serve: stopping (running requests are cancelled)...", file=sys.stderr, flush=True)
            stop.set()
        else:
            kill_all_now()
            os._exit(128 + received[0])

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    def ready(url: str) -> None:
        print(f"rlm serve: listening on {url} (models: {', '.join(cfg.model_names)})", file=sys.stderr, flush=True)

    try:
        loop.run_until_complete(serve_until_stopped(cfg, stop, ready))
    finally:
        kill_all_now()
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
