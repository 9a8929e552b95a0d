"""``rlm ask SOURCE... QUESTION``: load the sources, run the RLM, print the answer.

stdout carries the answer and nothing else (or one JSON object with ``--json``); progress, warnings
and errors go to stderr. Exit codes: see :mod:`rlm_cli.errors`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

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
    AllowModelOpt,
    ApiBaseOpt,
    ConcurrencyOpt,
    MaxCostOpt,
    MaxDepthOpt,
    MaxIterationsOpt,
    MaxSubCallsOpt,
    MaxTokensOpt,
    ModelOpt,
    OptionOpt,
    PriceOpt,
    StepTimeoutOpt,
    SubModelOpt,
    SubOptionOpt,
    TimeoutOpt,
    flags_from,
)
from rlm_cli.errors import EXIT_BUDGET, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, UsageError
from rlm_cli.loader.options import LoadOptions

if TYPE_CHECKING:  # imported lazily at run time: `rlm --help` and Tab completion stay fast
    from rlm_cli.run.budget import Limits
    from rlm_cli.settings.resolve import Settings

DEFAULT_MAX_OUTPUT_CHARS = 20_000  # same as rlm_cli.run.budget.Limits.max_output_chars

HELP = ("Answer QUESTION about SOURCE... (files, directories, or - for standard input) with a Recursive "
        "Language Model: the root LM explores the input in a Python REPL and delegates to sub-LMs.")

STATUS_EXIT = {"answered": EXIT_OK, "budget_exhausted": EXIT_BUDGET, "max_iterations": EXIT_BUDGET,
               "interrupted": EXIT_INTERRUPTED, "error": EXIT_ERROR}
JSON_SCHEMA = "rlm-answer/1"


def _default_log_path(run_id: str) -> Path:
    from rlm_cli.settings.paths import log_dir

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return log_dir() / f"{stamp}-{run_id}.json"


def ask_command(
    args: list[str] = typer.Argument(..., metavar="SOURCE... QUESTION",
                                     help="Files, directories or - (stdin), then the question."),
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
    max_output_chars: int = typer.Option(DEFAULT_MAX_OUTPUT_CHARS, "--max-output-chars", min=100,
                                         help="Characters of a step's output shown to the root LM."),
    request_timeout: float = typer.Option(300.0, "--request-timeout", min=1,
                                          help="Seconds one LM request may take."),
    system: str = typer.Option(None, "--system", "-s", help="Extra instructions for the root LM."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout instead of the answer."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output; only the answer."),
    log: Path = typer.Option(None, "--log", help="Where to write the trajectory (default: the log directory)."),
    no_log: bool = typer.Option(False, "--no-log", help="Do not write a trajectory."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
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
    if len(args) < 2:
        raise UsageError("give at least one SOURCE and a QUESTION, e.g. rlm ask src/ \"where is auth handled?\"")
    sources, question = args[:-1], args[-1]
    if not question.strip():
        raise UsageError("the question is empty")
    if log is not None and no_log:
        raise UsageError("--log and --no-log contradict each other; give one of them")
    import math

    if not math.isfinite(request_timeout):
        raise UsageError(f"--request-timeout must be a finite number of seconds (>= 1), got {request_timeout!r}")
    load_options = load_options_from(include, exclude, no_default_excludes, max_file_size, max_input_size,
                                     follow_symlinks)
    from rlm_cli.settings.resolve import check_prices, resolve

    settings = resolve(flags_from(locals(), option, sub_option, price, allow_model))
    check_prices(settings)
    limits = settings.limits(max_output_chars=max_output_chars)
    code = run_ask(sources, question, load_options, settings=settings, limits=limits, system=system,
                   repl_network=repl_network,
                   as_json=as_json, quiet=quiet, log=log, no_log=no_log, request_timeout=request_timeout)
    raise typer.Exit(code)


def run_ask(sources: list[str], question: str, load_options: LoadOptions, *, settings: Settings,
            limits: Limits, system: str | None, as_json: bool, quiet: bool, log: Path | None, no_log: bool,
            request_timeout: float, repl_network: bool = False) -> int:
    """Load, run, print; returns the exit code. Raises RlmError subclasses for unusable input."""
    from rlm_cli.lm.client import check_backend, prewarm
    from rlm_cli.loader import load_sources

    backend = check_backend(os.environ.get("RLM_LM_BACKEND", "").strip().lower() or "auto")
    if log is not None and not no_log:
        from rlm_cli.trajectory.recorder import check_log_path

        check_log_path(log)
    workdir = Path(tempfile.mkdtemp(prefix="rlm-run-"))
    if os.geteuid() == 0:  # searchable (not listable), so a REPL dropped to an unprivileged uid reaches its dir
        os.chmod(workdir, 0o711)
    try:
        loaded = load_sources(sources, load_options, workdir / "context.txt")
        if not loaded.files:
            raise UsageError("nothing to load: every file was skipped (see `rlm ls " + " ".join(sources) + "`)")
        # The client library's import (~1 s of CPU) overlaps the REPL's start-up. Not before the
        # load: a large load forks a second loader process, which needs this process single-threaded.
        prewarm([settings.model, settings.sub_model or settings.model], backend)
        from rlm_cli.lm.client import LMClient
        from rlm_cli.run import engine
        from rlm_cli.run.events import EventBus, Notice
        from rlm_cli.trajectory.recorder import TrajectoryRecorder
        from rlm_cli.view.safe import inline, json_text
        from rlm_cli.view.select import attach_view

        model, sub_model = settings.model, settings.sub_model or settings.model
        cfg = engine.RunConfig(question=question, root_model=model, sub_model=sub_model, limits=limits,
                               system_extra=system, model_aliases=dict(settings.aliases),
                               allowed_models=tuple(settings.allow_models),
                               repl_network=repl_network)
        log_path = None if no_log else (log or _default_log_path(cfg.run_id))
        recorder = TrajectoryRecorder(log_path)
        bus = EventBus([recorder])
        view = attach_view(bus, quiet=quiet)
        cfg.stream_root = view.stream_root
        lm = LMClient(api_base=settings.api_base, api_key=settings.api_key, timeout_s=request_timeout,
                      options=settings.options, prices=settings.prices,
                      backend=backend)
        lm.on_retry = lambda message: bus.emit(Notice(message, level="info"))

        async def run_and_close():
            async with lm:
                return await engine.run(cfg, loaded, lm, bus, workdir / "repl")

        signals: list[int] = []
        try:
            result = _run_with_signals(run_and_close(), signals)
        finally:
            with contextlib.suppress(OSError):  # a closed terminal (SIGHUP) must not lose the rest
                view.close()
        if result is None:  # interrupted: the trajectory was written by the engine's RunFinished
            result = engine.RunResult("interrupted", None, {"type": "interrupted",
                                                            "message": "interrupted by the user"})
            if not quiet:
                print("rlm: interrupted", file=sys.stderr)
        code = STATUS_EXIT.get(result.status, EXIT_ERROR)
        if result.status == "interrupted" and signals:  # 130 SIGINT, 143 SIGTERM, 129 SIGHUP
            code = 128 + signals[0]
        if result.error and result.status == "error":
            print(f"rlm: error: {inline(result.error.get('message'))}", file=sys.stderr)  # provider text
        elif result.status in ("budget_exhausted", "max_iterations") and not quiet:
            what = result.exhausted or "iterations"
            print(f"rlm: stopped early ({result.status}: {what})" +
                  ("; the best partial answer follows" if result.answer else "; no answer"), file=sys.stderr)
        if as_json:
            out = {"schema": JSON_SCHEMA, "status": result.status, "exit_code": code, "answer": result.answer,
                   "error": result.error, "exhausted": result.exhausted, "run_id": cfg.run_id,
                   "trajectory": str(log_path) if log_path else None,
                   "models": {"root": model, "sub": sub_model}, "usage": recorder.doc.get("usage"),
                   "duration_s": recorder.doc.get("duration_s")}
            sys.stdout.write(json_text(out) + "\n")  # the same JSON; DEL, C1, bidi as \\u escapes
        elif result.answer is not None:
            view.print_answer(result.answer)
        sys.stdout.flush()
        if log_path and not quiet:
            print(f"rlm: trajectory: {inline(log_path)}", file=sys.stderr)
        for err in recorder.write_errors[-1:]:
            print(f"rlm: warning: could not write the trajectory: {inline(err)}", file=sys.stderr)
        return code
    finally:
        from rlm_cli.repl.sandbox import remove_tree

        remove_tree(workdir)


def _run_with_signals(coro, received: list[int]):
    """Run ``coro``; the first SIGINT, SIGTERM or SIGHUP cancels it cleanly (returns None; the signal
    number is appended to ``received``), a second exits at once. On SIGHUP (the terminal was closed)
    fds 1 and 2 that are terminals are pointed at /dev/null first, so writing the ending cannot fail."""
    import asyncio
    import signal

    from rlm_cli.repl.process import kill_all_now

    loop = asyncio.new_event_loop()
    task = loop.create_task(coro)

    def on_signal(signum: int) -> None:
        received.append(signum)
        if signum == signal.SIGHUP:
            _detach_terminal()
        if len(received) == 1:
            with contextlib.suppress(OSError):
                print("\nrlm: interrupting (press Ctrl-C again to exit at once)...", file=sys.stderr)
            task.cancel()
        else:
            kill_all_now()
            os._exit(128 + received[0])

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        return None
    finally:
        kill_all_now()
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _detach_terminal() -> None:
    """Point fds 1 and 2 at /dev/null where they are terminals (after SIGHUP nothing reads them);
    a redirected stdout keeps the answer."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                if os.isatty(fd):
                    os.dup2(null, fd)
    finally:
        os.close(null)
