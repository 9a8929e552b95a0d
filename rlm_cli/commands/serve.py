"""``rlm serve [SOURCE...]``: the RLM as an OpenAI-compatible model over HTTP (see rlm_cli/serve/).

Parses the options (the model, budget, sandbox and loader options of ``rlm ask``, plus where to
listen and the server's bounds), refuses a non-loopback bind without an API key (exit 2), and runs
:func:`rlm_cli.serve.app.serve` until SIGINT or SIGTERM (exit 0 after a graceful shutdown).
"""

from __future__ import annotations

import os

import typer

from rlm_cli.commands.loader_options import (
    DEFAULT_MAX_FILE_SIZE_TEXT,
    DEFAULT_MAX_INPUT_SIZE_TEXT,
    ExcludeOpt,
    FollowSymlinksOpt,
    IncludeOpt,
    MaxFileSizeOpt,
    MaxInputSizeOpt,
    NoDefaultExcludesOpt,
    load_options_from,
)
from rlm_cli.commands.options import (
    DEFAULT_MAX_OUTPUT_CHARS,
    DEFAULT_REQUEST_TIMEOUT_S,
    AllowModelOpt,
    ApiBaseOpt,
    ConcurrencyOpt,
    MaxCostOpt,
    MaxDepthOpt,
    MaxIterationsOpt,
    MaxOutputCharsOpt,
    MaxSubCallsOpt,
    MaxTokensOpt,
    ModelOpt,
    OptionOpt,
    PriceOpt,
    RequestTimeoutOpt,
    StepTimeoutOpt,
    SubModelOpt,
    SubOptionOpt,
    TimeoutOpt,
    check_request_timeout,
    flags_from,
)
from rlm_cli.errors import EXIT_OK, UsageError

HELP = ("Serve the RLM as an OpenAI-compatible model: POST /v1/chat/completions (the last user message is "
        "the question; the other messages plus SOURCE... are the context) and GET /v1/models. Loopback "
        "only unless an API key is set. Each request writes its trajectory; SIGINT or SIGTERM stops the "
        "server after cancelling the running requests.")

API_KEY_ENV = "RLM_SERVE_API_KEY"


def serve_command(
    sources: list[str] = typer.Argument(None, metavar="[SOURCE...]",
                                        help="Files or directories every request's context starts with."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (not loopback: needs an API key)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on."),
    api_key: str = typer.Option(None, "--api-key", help=f"Require Authorization: Bearer KEY on every request "
                                f"(env {API_KEY_ENV})."),
    max_body: str = typer.Option("32MiB", "--max-body", metavar="SIZE",
                                 help="Largest request body (e.g. 32MiB); larger ones get 413."),
    max_running: int = typer.Option(4, "--max-running", min=1, help="RLMs running at once, server-wide."),
    max_queue: int = typer.Option(16, "--max-queue", min=0,
                                  help="Requests waiting for a running slot; beyond, 429."),
    max_lm_calls: int = typer.Option(16, "--max-lm-calls", min=1,
                                     help="LM calls in flight at once, over all requests."),
    allow_host: list[str] = typer.Option(None, "--allow-host", metavar="NAME",
                                         help="Also answer requests whose Host is NAME (besides localhost and IP "
                                         "addresses); repeatable. Guards against DNS rebinding."),
    cors_origin: list[str] = typer.Option(None, "--cors-origin", metavar="ORIGIN",
                                          help="Let web pages of ORIGIN (e.g. http://localhost:3000) call the "
                                          "server (CORS); repeatable. Other origins are refused."),
    max_connections: int = typer.Option(64, "--max-connections", min=1,
                                        help="Open connections at once; one more gets 503."),
    headers_timeout: float = typer.Option(10.0, "--headers-timeout", metavar="SECONDS",
                                          help="Seconds a new connection has to send its request head."),
    body_timeout: float = typer.Option(60.0, "--body-timeout", metavar="SECONDS",
                                       help="Seconds a request body may take to arrive; then 408."),
    keepalive_timeout: float = typer.Option(15.0, "--keepalive-timeout", metavar="SECONDS",
                                            help="Seconds an idle kept-alive connection stays open."),
    max_total_cost: str = typer.Option(None, "--max-total-cost", metavar="USD[/h|/d]",
                                       help="Server-wide spending limit in USD, for the server's lifetime or per "
                                       "rolling hour/day (e.g. 5/h); then 429. Needs priced models."),
    model: ModelOpt = None,
    sub_model: SubModelOpt = None,
    api_base: ApiBaseOpt = None,
    max_iterations: MaxIterationsOpt = None,
    max_depth: MaxDepthOpt = None,
    max_sub_calls: MaxSubCallsOpt = None,
    max_cost: MaxCostOpt = None,
    max_tokens: MaxTokensOpt = None,
    timeout: TimeoutOpt = None,
    step_timeout: StepTimeoutOpt = None,
    concurrency: ConcurrencyOpt = None,
    option: OptionOpt = None,
    sub_option: SubOptionOpt = None,
    price: PriceOpt = None,
    allow_model: AllowModelOpt = None,
    max_output_chars: MaxOutputCharsOpt = DEFAULT_MAX_OUTPUT_CHARS,
    request_timeout: RequestTimeoutOpt = DEFAULT_REQUEST_TIMEOUT_S,
    system: str = typer.Option(None, "--system", "-s", help="Extra instructions for the root LM."),
    repl_network: bool = typer.Option(False, "--repl-network",
                                      help="Let REPL code use the network (off by default where the platform "
                                      "allows: Linux namespaces or bubblewrap)."),
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    no_default_excludes: NoDefaultExcludesOpt = False,
    max_file_size: MaxFileSizeOpt = DEFAULT_MAX_FILE_SIZE_TEXT,
    max_input_size: MaxInputSizeOpt = DEFAULT_MAX_INPUT_SIZE_TEXT,
    follow_symlinks: FollowSymlinksOpt = False,
) -> None:
    api_key = api_key or os.environ.get(API_KEY_ENV) or None
    from rlm_cli.serve.config import (
        ServeConfig,
        check_bind,
        check_total_cost_prices,
        model_names,
        network_options,
    )

    check_bind(host, api_key)  # before anything else: a refused bind costs nothing
    network = network_options(allow_host, cors_origin, max_connections, headers_timeout, body_timeout,
                              keepalive_timeout, max_total_cost)
    if api_key:
        os.environ[API_KEY_ENV] = api_key  # so redaction knows it (never logged)
    if "-" in (sources or []):
        raise UsageError("rlm serve cannot read standard input as a SOURCE: give files or directories")
    from rlm_cli.loader.remote import classify

    for source in sources or []:
        spec = classify(source)
        if spec is not None:  # fetched again on every request otherwise; a local copy is loaded as it is
            raise UsageError(f"rlm serve takes local files and directories only, not {spec.display}: "
                             "download or clone it first and serve the local copy")
    check_request_timeout(request_timeout)
    from rlm_cli.loader.options import parse_size

    try:
        body_limit = parse_size(max_body)
    except ValueError as exc:
        raise UsageError(f"--max-body: {exc}") from None
    load_options = load_options_from(include, exclude, no_default_excludes, max_file_size, max_input_size,
                                     follow_symlinks)
    load_options.allow_remote = False  # requests never make the server fetch or clone anything
    from rlm_cli.settings.resolve import check_prices, resolve

    settings = resolve(flags_from(locals(), option, sub_option, price, allow_model))
    check_prices(settings)
    served = model_names(settings.model, dict(settings.aliases))
    check_total_cost_prices(settings, served, network["max_total_cost"])
    cfg = ServeConfig(sources=[str(s) for s in sources or []], load_options=load_options, settings=settings,
                      limits=settings.limits(max_output_chars=max_output_chars), host=host, port=port,
                      api_key=api_key, max_body=body_limit, max_running=max_running, max_queue=max_queue,
                      max_lm_calls=max_lm_calls, system=system, request_timeout=request_timeout,
                      repl_network=repl_network, model_names=served, **network)
    from rlm_cli.serve.app import serve

    try:
        serve(cfg)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    raise typer.Exit(EXIT_OK)


def register(app: typer.Typer) -> None:
    """Add ``rlm serve`` to ``app``."""
    from rlm_cli.commands.options import AskCommand

    app.command("serve", help=HELP, cls=AskCommand)(serve_command)
