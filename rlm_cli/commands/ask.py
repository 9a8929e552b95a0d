"""``rlm ask SOURCE... QUESTION``: load the sources, run the RLM, print the answer.

stdout carries the answer and nothing else (or one JSON object with ``--json``); progress, warnings
and errors go to stderr. Exit codes: see :mod:`rlm_cli.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import typer

from rlm_cli.budget import Limits
from rlm_cli.errors import EXIT_BUDGET, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, UsageError
from rlm_cli.events import EventBus
from rlm_cli.loader.cli_options import (
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
from rlm_cli.loader.options import LoadOptions

HELP = ("Answer QUESTION about SOURCE... (files, directories, or - for standard input) with a Recursive "
        "Language Model: the root LM explores the input in a Python REPL and delegates to sub-LMs.")

STATUS_EXIT = {"answered": EXIT_OK, "budget_exhausted": EXIT_BUDGET, "max_iterations": EXIT_BUDGET,
               "interrupted": EXIT_INTERRUPTED, "error": EXIT_ERROR}
JSON_SCHEMA = "rlm-answer/1"


def _default_log_path(run_id: str) -> Path:
    from rlm_cli.paths import log_dir

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return log_dir() / f"{stamp}-{run_id}.json"


def ask_command(
    args: list[str] = typer.Argument(..., metavar="SOURCE... QUESTION",
                                     help="Files, directories or - (stdin), then the question."),
    model: str = typer.Option(None, "--model", "-m", envvar="RLM_MODEL",
                              help="Root LM, a litellm model string (e.g. openai/gpt-4o)."),
    sub_model: str = typer.Option(None, "--sub-model", envvar="RLM_SUB_MODEL",
                                  help="Sub-LM for llm_query (default: the root model)."),
    api_base: str = typer.Option(None, "--api-base", envvar="RLM_API_BASE",
                                 help="Base URL of an OpenAI-compatible server (vLLM, llama.cpp, Ollama...)."),
    max_iterations: int = typer.Option(Limits.max_iterations, "--max-iterations", min=1,
                                       help="Root LM calls before a last best-answer call."),
    max_depth: int = typer.Option(Limits.max_depth, "--max-depth", min=0,
                                  help="Recursion depth for rlm_query (0: rlm_query acts as llm_query)."),
    max_sub_calls: int = typer.Option(Limits.max_sub_calls, "--max-sub-calls", min=0,
                                      help="Sub-calls over all depths (hard limit)."),
    max_cost: float = typer.Option(None, "--max-cost", min=0, help="USD over all LM calls (hard limit)."),
    max_tokens: int = typer.Option(None, "--max-tokens", min=1,
                                   help="Input + output tokens over all LM calls (hard limit)."),
    timeout: float = typer.Option(None, "--timeout", min=0.1, help="Seconds for the whole run (hard limit)."),
    step_timeout: float = typer.Option(Limits.step_timeout, "--step-timeout", min=0.1,
                                       help="Seconds one REPL step may run before it is killed."),
    concurrency: int = typer.Option(Limits.concurrency, "--concurrency", min=1,
                                    help="LM calls in flight at once, over the whole run."),
    max_output_chars: int = typer.Option(Limits.max_output_chars, "--max-output-chars", min=100,
                                         help="Characters of a step's output shown to the root LM."),
    request_timeout: float = typer.Option(300.0, "--request-timeout", min=1,
                                          help="Seconds one LM request may take."),
    system: str = typer.Option(None, "--system", "-s", help="Extra instructions for the root LM."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout instead of the answer."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output; only the answer."),
    log: Path = typer.Option(None, "--log", help="Where to write the trajectory (default: the log directory)."),
    no_log: bool = typer.Option(False, "--no-log", help="Do not write a trajectory."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
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
    if not model:
        raise UsageError("no model chosen: pass -m/--model (e.g. -m openai/gpt-4o-mini), set RLM_MODEL, "
                         "or point --api-base at a local OpenAI-compatible server and name its model")
    load_options = load_options_from(include, exclude, no_default_excludes, max_file_size, max_input_size,
                                     follow_symlinks)
    limits = Limits(max_iterations=max_iterations, max_depth=max_depth, max_sub_calls=max_sub_calls,
                    max_cost=max_cost, max_tokens=max_tokens, timeout=timeout, step_timeout=step_timeout,
                    concurrency=concurrency, max_output_chars=max_output_chars)
    code = run_ask(sources, question, load_options, model=model, sub_model=sub_model or model, api_base=api_base,
                   limits=limits, system=system, as_json=as_json, quiet=quiet, log=log, no_log=no_log,
                   request_timeout=request_timeout)
    raise typer.Exit(code)


def run_ask(sources: list[str], question: str, load_options: LoadOptions, *, model: str, sub_model: str, api_base: str | None,
            limits: Limits, system: str | None, as_json: bool, quiet: bool, log: Path | None, no_log: bool,
            request_timeout: float) -> int:
    """Load, run, print; returns the exit code. Raises RlmError subclasses for unusable input."""
    from rlm_cli.loader import load_sources

    workdir = Path(tempfile.mkdtemp(prefix="rlm-run-"))
    try:
        loaded = load_sources(sources, load_options, workdir / "context.txt")
        if not loaded.files:
            raise UsageError("nothing to load: every file was skipped (see `rlm ls " + " ".join(sources) + "`)")
        from rlm_cli import engine
        from rlm_cli.lm import LMClient
        from rlm_cli.trajectory import TrajectoryRecorder
        from rlm_cli.view.select import attach_view

        cfg = engine.RunConfig(question=question, root_model=model, sub_model=sub_model, limits=limits,
                               system_extra=system)
        log_path = None if no_log else (log or _default_log_path(cfg.run_id))
        recorder = TrajectoryRecorder(log_path)
        bus = EventBus([recorder])
        view = attach_view(bus, quiet=quiet)
        cfg.stream_root = view.stream_root
        lm = LMClient(api_base=api_base, timeout_s=request_timeout)
        lm.on_retry = _retry_notifier(bus)
        try:
            result = _run_with_signals(engine.run(cfg, loaded, lm, bus, workdir / "repl"))
        finally:
            view.close()
        if result is None:  # interrupted
            if not quiet:
                print("rlm: interrupted" + (f"; trajectory: {log_path}" if log_path else ""), file=sys.stderr)
            return EXIT_INTERRUPTED
        code = STATUS_EXIT.get(result.status, EXIT_ERROR)
        if result.error and result.status == "error":
            print(f"rlm: error: {result.error['message']}", file=sys.stderr)
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
            sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        elif result.answer is not None:
            view.print_answer(result.answer)
        sys.stdout.flush()
        if log_path and not quiet:
            print(f"rlm: trajectory: {log_path}", file=sys.stderr)
        for err in recorder.write_errors[-1:]:
            print(f"rlm: warning: could not write the trajectory: {err}", file=sys.stderr)
        return code
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _retry_notifier(bus: EventBus):
    from rlm_cli.events import Notice

    def notify(message: str) -> None:
        bus.emit(Notice(message, level="info"))

    return notify


def _run_with_signals(coro):
    """Run ``coro``; the first SIGINT/SIGTERM cancels it cleanly (returns None), a second exits at once."""
    from rlm_cli.repl.process import kill_all_now

    loop = asyncio.new_event_loop()
    task = loop.create_task(coro)
    interrupts = 0

    def on_signal() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            print("\nrlm: interrupting (press Ctrl-C again to exit at once)...", file=sys.stderr)
            task.cancel()
        else:
            kill_all_now()
            import os

            os._exit(EXIT_INTERRUPTED)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        return None
    finally:
        kill_all_now()
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
