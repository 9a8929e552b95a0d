"""``rlm mcp [SOURCE...]``: rlm as a Model Context Protocol server for coding agents (rlm_cli/mcp/).

Serves on stdio (one process per client, as agents start it) or, with ``--http HOST:PORT``, over
streamable HTTP with ``rlm serve``'s rules (a non-loopback address needs an API key). Takes the
model, budget, sandbox and loader options of ``rlm ask``: they are the ceilings every call runs
under. The SDK is imported only here, when the command runs.
"""

from __future__ import annotations

import os

import typer

from rlm_cli.commands.options import (
    BUDGET,
    LOADING,
    MODEL,
    SETTINGS_HELP,
    BudgetOptions,
    ModelOptions,
    option_groups,
)
from rlm_cli.errors import EXIT_OK, UsageError

HELP = ("Serve rlm to coding agents over the Model Context Protocol: tools ask, ls and show. Stdio by default "
        "(e.g. `claude mcp add rlm -- rlm mcp`); --http HOST:PORT serves streamable HTTP at /mcp (loopback only "
        "unless an API key is set). Calls read only inside the client's roots or SOURCE...; the options are the "
        "ceilings every call runs under.")

API_KEY_ENV = "RLM_MCP_API_KEY"


def parse_http(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> (host, port). Raises UsageError."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--http {value!r}: expected HOST:PORT, e.g. --http 127.0.0.1:8765")
    return host, int(port)


@option_groups(model=MODEL, budget=BUDGET, load=LOADING)
def mcp_command(
    sources: list[str] = typer.Argument(None, metavar="[SOURCE...]",
                                        help="Files or directories every call may read (and reads by default)."),
    http: str = typer.Option(None, "--http", metavar="HOST:PORT",
                             help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio."),
    api_key: str = typer.Option(None, "--api-key", help=f"With --http: require Authorization: Bearer KEY "
                                f"(env {API_KEY_ENV}); needed for a non-loopback HOST."),
    allow_remote: bool = typer.Option(False, "--allow-remote",
                                      help="Let calls name URLs and git remotes as sources (fetched or cloned)."),
    max_lm_calls: int = typer.Option(16, "--max-lm-calls", min=1, help="LM calls in flight at once, over all calls."),
    *, model: ModelOptions, budget: BudgetOptions, load,
) -> None:
    wire = None
    if http is None:  # from here on nothing but the transport may write to the real stdout
        from rlm_cli.mcp.server import divert_stdout

        wire = divert_stdout()
    api_key = api_key or os.environ.get(API_KEY_ENV) or None
    host, port = parse_http(http) if http is not None else (None, 0)
    if api_key and http is None:
        raise UsageError("--api-key is for --http (a stdio server has one client: the process that started it)")
    if host is not None:
        from rlm_cli.serve.config import check_bind

        check_bind(host, api_key)
    if api_key:
        os.environ[API_KEY_ENV] = api_key  # so redaction knows it
    sources = [str(s) for s in sources or []]
    from rlm_cli.loader.remote import classify

    for source in sources:
        if source == "-" or classify(source) is not None:
            raise UsageError(f"rlm mcp takes local files and directories as SOURCE, not {source!r}")
        if not os.path.exists(source):
            raise UsageError(f"no such file or directory: {source}")
    load.allow_remote = allow_remote
    load.progress = False  # never a progress bar: stdout is the protocol's
    from rlm_cli.settings.resolve import check_prices, resolve

    settings = resolve({**model.flags(), **budget.flags()}, require_model=False)
    check_prices(settings)
    from rlm_cli.mcp.config import McpConfig

    cfg = McpConfig(sources=[os.path.abspath(s) for s in sources], load_options=load, settings=settings,
                    limits=settings.limits(max_output_chars=budget.max_output_chars), system=model.system,
                    request_timeout=model.request_timeout, repl_network=budget.repl_network, host=host, port=port,
                    api_key=api_key, max_lm_calls=max_lm_calls)
    from rlm_cli.mcp import server

    if http is None:
        server.serve_stdio(cfg, wire)
    else:
        try:
            server.serve_http(cfg)
        except OSError as exc:
            raise UsageError(f"cannot listen on {http}: {exc.strerror or exc}") from None
    raise typer.Exit(EXIT_OK)


def register(app: typer.Typer) -> None:
    """Add ``rlm mcp`` to ``app``."""
    from rlm_cli.commands.options import AskCommand

    app.command("mcp", help=HELP, epilog=SETTINGS_HELP, cls=AskCommand)(mcp_command)
