"""The MCPServer: the tools' schemas and descriptions (written for the calling model), the
per-client state, and the two ways to serve it.

:func:`serve_stdio` serves one client on stdin/stdout. From start-up on, fd 1 points at stderr for
everything but the transport (a library that prints, a REPL child, a progress bar cannot reach the
protocol stream); the SDK's stdio transport then takes the real stdout. :func:`serve_http` serves
streamable HTTP at ``/mcp`` with ``rlm serve``'s rules: a non-loopback bind needs an API key
(``Authorization: Bearer KEY``, compared in constant time), and a loopback bind refuses foreign
``Host`` and ``Origin`` headers (the SDK's DNS-rebinding protection), key or no key.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from rlm_cli.mcp import tools
from rlm_cli.mcp.config import McpConfig
from rlm_cli.mcp.scope import Clients, Scope, client_key, client_roots, server_sources

INSTRUCTIONS = (
    "rlm answers questions about inputs far larger than your context window (whole repositories, huge logs, "
    "long PDFs) with a Recursive Language Model: a model explores the files in a sandboxed Python REPL and "
    "delegates pieces to sub-models, then answers with checked path:line citations. Use `ask` instead of "
    "reading many or very large files yourself; use `ls` to see what would be read. Each `ask` makes many "
    "LM calls and costs money and minutes; lower max_cost / timeout when a rough answer will do.")

ASK_DESCRIPTION = (
    "Answer a question about files or directories too large to read yourself (a repository, a log of "
    "gigabytes, a PDF, a tool output you saved to a file). A Recursive Language Model loads them into a "
    "sandboxed REPL, searches and reads them with code and sub-model calls, and returns a short answer "
    "citing path:line (p.N for PDF pages). Slow (tens of seconds to minutes) and paid: dozens of LM calls. "
    "Paths must be inside your workspace roots. Set continue=true for a follow-up to your previous question "
    "(same files, and the REPL's variables are kept).")
LS_DESCRIPTION = (
    "List what `ask` would read for these sources: each file with its size in characters and lines, the "
    "files skipped and why (binary, too large, ignored), and totals with estimated tokens. Cheap: no LM call.")
SHOW_DESCRIPTION = "Show a past `ask` run by its run_id: its questions, iterations, code steps and sub-calls, as text."


class AskResult(BaseModel):
    """The structured content of ``ask``."""

    run_id: str = Field(description="Id of the run (for `show`, and `rlm show RUN_ID` in a terminal).")
    status: str = Field(description="answered, budget_exhausted, max_iterations, interrupted or error.")
    usage: dict = Field(description="Tokens and calls of the root and sub models, and total_cost_usd.")
    cost_usd: float | None = Field(description="What the run cost in USD (null when the models have no price).")
    citations: dict | None = Field(description="The answer's path:line / p.N references, checked against the "
                                   "files: valid and invalid lists.")
    trajectory: str | None = Field(description="Path of the run's trajectory file (JSON).")


SourcesArg = Annotated[list[str] | None, Field(
    description="Files or directories to read (absolute paths inside your workspace roots). Default: the "
    "sources the server was started with.")]


def build_server(cfg: McpConfig) -> MCPServer:
    """The MCPServer for ``cfg``: tools ``ask``, ``ls``, ``show``, and a middleware that forgets a
    client's roots when it sends ``notifications/roots/list_changed``."""
    from rlm_cli import __version__

    clients = Clients()
    own_sources = server_sources(s for s in cfg.sources if not _remote(s))
    semaphores: list[asyncio.Semaphore] = []

    async def on_message(ctx: Any, call_next: Any) -> Any:
        if ctx.method == "notifications/roots/list_changed":
            clients.roots_changed(client_key(getattr(ctx.request, "headers", None)))
        return await call_next(ctx)

    server = MCPServer("rlm", version=__version__, instructions=INSTRUCTIONS, middleware=[on_message],
                       log_level="WARNING")

    async def call_context(ctx: Context) -> tools.CallContext:
        session = ctx.session
        state = clients.get(client_key(ctx.headers))
        roots = await client_roots(state, session)
        scope = Scope(roots=roots, sources=own_sources, allow_remote=cfg.load_options.allow_remote)
        return tools.CallContext(state=state, scope=scope, report=ctx.report_progress)

    @server.tool(name="ask", description=ASK_DESCRIPTION, structured_output=True,
                 annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True))
    async def ask(
        question: Annotated[str, Field(description="The question, in plain words (what to find, explain or check).")],
        ctx: Context,
        sources: SourcesArg = None,
        model: Annotated[str | None, Field(description="Root model (only one the server allows; default: its own).")] = None,
        sub_model: Annotated[str | None, Field(description="Sub-model for the delegated calls (default: the server's).")] = None,
        max_cost: Annotated[float | None, Field(description="Spend at most this many USD (can only lower the server's limit).", ge=0)] = None,
        max_sub_calls: Annotated[int | None, Field(description="At most this many sub-model calls (can only lower the server's limit).", ge=0)] = None,
        timeout: Annotated[float | None, Field(description="Stop after this many seconds with the best answer so far (can only lower the server's limit).", ge=0.1)] = None,
        continue_: Annotated[bool, Field(validation_alias="continue", description="Follow up your previous question: same sources (plus any given) and the REPL's variables from then.")] = False,
    ) -> Annotated[CallToolResult, AskResult]:
        if not semaphores:
            semaphores.append(asyncio.Semaphore(max(1, cfg.max_lm_calls)))
        args = {"question": question, "sources": sources, "model": model, "sub_model": sub_model,
                "max_cost": max_cost, "max_sub_calls": max_sub_calls, "timeout": timeout, "continue": continue_}
        return await tools.ask(cfg, await call_context(ctx), args, semaphores[0])

    @server.tool(name="ls", description=LS_DESCRIPTION,
                 annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    async def ls(ctx: Context, sources: SourcesArg = None) -> CallToolResult:
        return await tools.ls(cfg, await call_context(ctx), sources)

    @server.tool(name="show", description=SHOW_DESCRIPTION,
                 annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    async def show(run_id: Annotated[str, Field(description="The run_id an `ask` call returned (or a prefix of it).")],
                   ) -> CallToolResult:
        return await asyncio.to_thread(tools.show, run_id)

    return server


def _remote(source: str) -> bool:
    from rlm_cli.loader.remote import looks_remote

    return looks_remote(source)


def divert_stdout() -> int:
    """Point fd 1 at stderr and return a duplicate of the real stdout (the protocol's), so nothing
    but the transport can write there."""
    sys.stdout.flush()
    wire = os.dup(1)
    os.dup2(2, 1)
    return wire


def serve_stdio(cfg: McpConfig, wire: int) -> None:
    """Serve one client over stdio until stdin closes. ``wire``: the real stdout from
    :func:`divert_stdout`; it is given back to fd 1 only for the instant the SDK's transport claims it
    (the transport then diverts fd 1 to stderr again for as long as it runs)."""
    import anyio

    from rlm_cli.repl.process import kill_all_now

    server = build_server(cfg)

    async def main() -> None:
        sys.stdout.flush()
        os.dup2(wire, 1)
        os.close(wire)
        await server.run_stdio_async()

    try:
        anyio.run(main)
    finally:
        kill_all_now()


def serve_http(cfg: McpConfig) -> None:
    """Serve streamable HTTP at ``http://HOST:PORT/mcp`` until SIGINT or SIGTERM (see the module
    doc). Prints the address on stderr once listening. Raises OSError when the address cannot be
    bound."""
    import socket

    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    from rlm_cli.repl.process import kill_all_now
    from rlm_cli.serve.config import is_loopback

    server = build_server(cfg)
    host = cfg.host or "127.0.0.1"
    if is_loopback(host):
        security = TransportSecuritySettings(
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])
    else:  # the key guards it (a browser page cannot send it); any Host name may reach this address
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app: Any = server.streamable_http_app(transport_security=security, host=host)
    if cfg.api_key:
        app = BearerKey(app, cfg.api_key)
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), cfg.port))
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=10)
    userver = uvicorn.Server(config)
    shown = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
    print(f"rlm mcp: listening on http://{shown}:{port}/mcp", file=sys.stderr, flush=True)
    try:
        asyncio.run(userver.serve(sockets=[sock]))
    finally:
        kill_all_now()
        with contextlib.suppress(OSError):
            sock.close()


class BearerKey:
    """ASGI middleware: every HTTP request needs ``Authorization: Bearer KEY`` (else 401)."""

    def __init__(self, app: Any, key: str) -> None:
        self.app, self.key = app, key

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        from rlm_cli.serve.app import authorized

        if scope.get("type") == "http":
            header = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"authorization"), None)
            if not authorized(header, self.key):
                body = b'{"error": "missing or wrong API key (Authorization: Bearer <key>)"}'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
