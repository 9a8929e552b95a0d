"""``rlm ask SOURCE... QUESTION``: load the sources, run the RLM, print the answer.

stdout carries the answer and nothing else (or one JSON object with ``--json``); progress, warnings
and errors go to stderr. Exit codes: see :mod:`rlm_cli.errors`.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from rlm_cli.commands.options import (
    BUDGET,
    DEFAULT_MAX_OUTPUT_CHARS,
    LOADING,
    MODEL,
    OUTPUT,
    SESSION,
    BudgetOptions,
    ModelOptions,
    OutputOptions,
    SessionOptions,
    option_groups,
)
from rlm_cli.errors import EXIT_BUDGET, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, UsageError
from rlm_cli.loader.options import LoadOptions

if TYPE_CHECKING:  # imported lazily at run time: `rlm --help` and Tab completion stay fast
    from rlm_cli.run.budget import Limits
    from rlm_cli.settings.resolve import Settings


__all__ = ["DEFAULT_MAX_OUTPUT_CHARS", "HELP", "ask_command", "run_ask", "settings_for"]

HELP = ("Answer QUESTION about SOURCE... (files, directories, URLs, git remotes such as gh:ORG/REPO#REF, "
        "or - for standard input) with a Recursive "
        "Language Model: the root LM explores the input in a Python REPL and delegates to sub-LMs.")

STATUS_EXIT = {"answered": EXIT_OK, "budget_exhausted": EXIT_BUDGET, "max_iterations": EXIT_BUDGET,
               "interrupted": EXIT_INTERRUPTED, "error": EXIT_ERROR}
JSON_SCHEMA = "rlm-answer/1"


@option_groups(model=MODEL, budget=BUDGET, load=LOADING, session=SESSION, out=OUTPUT)
def ask_command(
    args: list[str] = typer.Argument(..., metavar="SOURCE... QUESTION",
                                     help="Files, directories, URLs, git remotes or - (stdin), then the question."),
    log: Path = typer.Option(None, "--log", metavar="PATH", rich_help_panel="Output",
                             help="Where to write the trajectory (default: the log directory)."),
    no_log: bool = typer.Option(False, "--no-log", rich_help_panel="Output", help="Do not write a trajectory."),
    debug: bool = typer.Option(False, "--debug", rich_help_panel="Output", help="Show tracebacks for errors."),
    *, model: ModelOptions, budget: BudgetOptions, load: LoadOptions, session: SessionOptions,
    out: OutputOptions,
) -> None:
    following = session.following
    from rlm_cli.commands.ask_hints import check_arguments, stdin_is_pipe

    piped = stdin_is_pipe()
    if len(args) < (1 if following else 2):
        if len(args) == 1 and piped:
            check_arguments([], args[0], stdin_is_pipe=True, following=False)
        raise UsageError("give at least one SOURCE and a QUESTION, e.g. rlm ask src/ \"where is auth handled?\"")
    sources, question = args[:-1], args[-1]
    if not question.strip():
        raise UsageError("the question is empty")
    for note in check_arguments(sources, question, stdin_is_pipe=piped, following=following):
        print(f"rlm: note: {note}", file=sys.stderr)
    if log is not None and no_log:
        raise UsageError("--log and --no-log contradict each other; give one of them")
    load.progress = not out.quiet
    from rlm_cli.run.session import continue_session, new_session

    link = continue_session(session.resume, sources, persist=not no_log) if following else None
    settings = settings_for(model, budget, link)
    if link is not None:
        sources = link.sources
    elif not no_log:
        link = new_session(sources)
        link.settings = settings
    code = run_ask(sources, question, load, settings=settings, limits=settings.limits(
                   max_output_chars=budget.max_output_chars), system=model.system, repl_network=budget.repl_network,
                   session=link, as_json=out.as_json, quiet=out.quiet, log=log, no_log=no_log,
                   request_timeout=model.request_timeout)
    raise typer.Exit(code)


def settings_for(model: ModelOptions, budget: BudgetOptions, link=None, **overrides) -> Settings:
    """The run's settings; for a continued conversation (``link``) its stored models, endpoints and
    limits stand unless flags name others (then one ``rlm: note:`` line on stderr says what changed)."""
    from rlm_cli.commands.options import resolve_settings

    stored = link.stored_settings() if link is not None else None
    settings = resolve_settings(model, budget, session=stored, **overrides)
    if link is not None:
        from rlm_cli.run.session import changed_settings
        from rlm_cli.view.safe import inline

        changes = changed_settings(settings, stored)
        if changes:
            print(f"rlm: note: {inline('; '.join(changes), 600)}", file=sys.stderr)
        link.settings = settings
    return settings


def run_ask(sources: list[str], question: str, load_options: LoadOptions, *, settings: Settings,
            limits: Limits, system: str | None, as_json: bool, quiet: bool, log: Path | None, no_log: bool,
            request_timeout: float, repl_network: bool = False, session=None) -> int:
    """Run the question through :func:`rlm_cli.run.service.answer_question` and print the ending:
    the answer (or one JSON object) on stdout, the rest on stderr. ``session``: a
    :class:`~rlm_cli.run.session.SessionLink` (this run as a turn of a conversation; stored after
    the run). Returns the exit code. Raises RlmError subclasses for unusable input."""
    from rlm_cli.run.service import RunRequest, answer_question
    from rlm_cli.view.safe import inline, json_text
    from rlm_cli.view.select import attach_view

    views: list = []

    def attach(bus):
        views.append(attach_view(bus, quiet=quiet))
        return views[0]

    req = RunRequest(sources=sources, question=question, load_options=load_options, settings=settings,
                     limits=limits, system=system, log=log, no_log=no_log, request_timeout=request_timeout,
                     repl_network=repl_network, session=session)
    try:
        out = answer_question(req, attach)
    finally:
        for view in views:
            with contextlib.suppress(OSError):  # a closed terminal (SIGHUP) must not lose the rest
                view.close()
    result = out.result
    if result.status == "interrupted" and not quiet:
        print("rlm: interrupted", file=sys.stderr)
    code = STATUS_EXIT.get(result.status, EXIT_ERROR)
    if result.status == "interrupted" and out.signals:  # 130 SIGINT, 143 SIGTERM, 129 SIGHUP
        code = 128 + out.signals[0]
    if result.error and result.status == "error":
        print(f"rlm: error: {inline(result.error.get('message'))}", file=sys.stderr)  # provider text
    elif result.status in ("budget_exhausted", "max_iterations") and not quiet:
        from rlm_cli.view.words import outcome

        ended = outcome(result.status, out.duration_s, exhausted=result.exhausted, limits=limits.as_dict())
        print(f"rlm: {ended}" + ("; the best partial answer follows" if result.answer else "; no answer"),
              file=sys.stderr)
    if as_json:
        doc = {"schema": JSON_SCHEMA, "status": result.status, "exit_code": code, "answer": result.answer,
               "error": result.error, "exhausted": result.exhausted, "run_id": out.run_id,
               "trajectory": str(out.log_path) if out.log_path else None, "models": out.models,
               "usage": out.usage, "duration_s": out.duration_s, "citations": out.citations, "mode": out.mode}
        sys.stdout.write(json_text(doc) + "\n")  # the same JSON; DEL, C1, bidi as \\u escapes
    elif result.answer is not None:
        views[0].print_answer(result.answer)
    sys.stdout.flush()
    if not quiet:
        warn_citations(out.citations)
    for warning in session.finish(result.answer, result.status, out.log_path) if session is not None else []:
        print(f"rlm: warning: {inline(warning)}", file=sys.stderr)
    if out.log_path and not quiet:
        print(f"rlm: trajectory: {inline(out.log_path)}", file=sys.stderr)
    for err in out.write_errors[-1:]:
        print(f"rlm: warning: could not write the trajectory: {inline(err)}", file=sys.stderr)
    return code


MAX_CITATION_WARNINGS = 10


def warn_citations(report: dict | None) -> None:
    """One ``rlm: warning:`` line on stderr per invalid reference in the answer (at most
    :data:`MAX_CITATION_WARNINGS`, then a count), made safe for a terminal; nothing when all are valid."""
    from rlm_cli.run.citations import summary
    from rlm_cli.view.safe import inline

    _, problems = summary(report, MAX_CITATION_WARNINGS)
    for problem in problems:
        what = problem if problem.startswith("... and ") else f"the answer cites {problem}"
        print(f"rlm: warning: {inline(what, 400)}", file=sys.stderr)
