"""The tools' work: ``ask`` (a run through :func:`rlm_cli.run.service.run_question`), ``ls`` (the
loader's listing, as ``rlm ls --json``) and ``show`` (a past run as plain text, as ``rlm show``).

Each returns an MCP ``CallToolResult``; anything the user or the client can cause (a source out of
scope, no model, a budget that ran out, input over ``--max-input-size``, a provider error) is a
result with ``isError`` and a one-line message, never an exception out of the server. A cancelled
``ask`` (``notifications/cancelled``) cancels its run as Ctrl-C does: the REPL is killed and the
trajectory written before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from typing import Any

from rlm_cli.errors import RlmError, UsageError
from rlm_cli.mcp.config import MAX_QUESTION_CHARS, MAX_SOURCES, McpConfig, chosen_settings, lowered_limits
from rlm_cli.mcp.scope import ClientState, Scope

RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def error_result(message: str) -> Any:
    """A tool result with ``isError`` and ``message`` on one line (secrets redacted, control
    characters made visible)."""
    from mcp_types import CallToolResult, TextContent

    from rlm_cli.secrets import redact
    from rlm_cli.view.safe import inline

    return CallToolResult(content=[TextContent(type="text", text=inline(redact(str(message)), 2000))], is_error=True)


@dataclass
class CallContext:
    """What a tool needs from its MCP call: the client's ``state``, the ``scope`` it may read, and
    ``report`` (the SDK's ``report_progress(progress, total, message)``)."""

    state: ClientState
    scope: Scope
    report: Any


def _sources(cfg: McpConfig, scope: Scope, given: list[str] | None) -> list[str]:
    """The checked sources of a call: ``given`` or the server's SOURCEs. Raises UsageError."""
    if given is None or given == []:
        if not cfg.sources:
            raise UsageError("no sources: pass `sources` (paths inside your roots); this server was started "
                             "without SOURCEs")
        given = list(cfg.sources)
    if not isinstance(given, list) or len(given) > MAX_SOURCES:
        raise UsageError(f"sources must be a list of at most {MAX_SOURCES} paths")
    return [scope.check(s) for s in given]


def _structured(outcome: Any) -> dict:
    usage = outcome.usage or {}
    return {"run_id": outcome.run_id, "status": outcome.result.status, "usage": usage,
            "cost_usd": usage.get("total_cost_usd"), "citations": outcome.citations,
            "trajectory": str(outcome.log_path) if outcome.log_path else None}


def outcome_result(outcome: Any) -> Any:
    """The tool result of a finished run: the answer text and the structured content, or an error
    result (status other than ``answered``: the reason, then the partial answer if any)."""
    from mcp_types import CallToolResult, TextContent

    result = outcome.result
    doc = _structured(outcome)
    if result.status == "answered" and result.answer is not None:
        return CallToolResult(content=[TextContent(type="text", text=result.answer)], structured_content=doc)
    if result.status in ("budget_exhausted", "max_iterations"):
        from rlm_cli.view.words import outcome as ended

        message = (f"run {outcome.run_id} {ended(result.status, outcome.duration_s, exhausted=result.exhausted)}"
                   + ("; the best partial answer follows" if result.answer else "; no answer"))
    elif result.status == "interrupted":
        message = f"run {outcome.run_id} was interrupted"
    else:
        message = f"run {outcome.run_id} failed: {(result.error or {}).get('message') or 'unknown error'}"
    out = error_result(message)
    if result.answer:
        out.content.append(TextContent(type="text", text=result.answer))
    out.structured_content = doc
    return out


def _request(cfg: McpConfig, call: CallContext, args: dict) -> tuple[Any, Any]:
    """The :class:`~rlm_cli.run.service.RunRequest` and session link of an ``ask`` call. Raises
    UsageError (out of scope, bad argument, nothing to continue, no model)."""
    from rlm_cli.run.service import RunRequest
    from rlm_cli.run.session import continue_session, new_session

    question = args.get("question")
    if not isinstance(question, str) or not question.strip():
        raise UsageError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise UsageError(f"the question is longer than {MAX_QUESTION_CHARS:,} characters: put the text in a file "
                         "and pass it in sources")
    settings = chosen_settings(cfg, args.get("model"), args.get("sub_model"))
    limits = lowered_limits(cfg.limits, max_cost=args.get("max_cost"), max_sub_calls=args.get("max_sub_calls"),
                            timeout=args.get("timeout"))
    given = args.get("sources")
    if args.get("continue"):
        if call.state.last_run is None:
            raise UsageError("nothing to continue: this client has asked no question yet")
        new = [call.scope.check(s) for s in given] if given else []
        session = continue_session(call.state.last_run, new)
        session.sources = [call.scope.check(s) for s in session.sources]  # the roots may have changed since
    else:
        sources = _sources(cfg, call.scope, given)
        session = new_session(sources)
    req = RunRequest(sources=session.sources, question=question, load_options=cfg.load_options, settings=settings,
                     limits=limits, system=cfg.system, request_timeout=cfg.request_timeout,
                     repl_network=cfg.repl_network, session=session)
    return req, session


async def ask(cfg: McpConfig, call: CallContext, args: dict, lm_semaphore: asyncio.Semaphore) -> Any:
    """Answer one ``ask`` call (see the module doc). ``args``: the tool's arguments by their wire
    names."""
    from rlm_cli.mcp.progress import ProgressTracker, stop
    from rlm_cli.run.service import run_question

    try:
        req, session = _request(cfg, call, args)
    except RlmError as exc:
        return error_result(str(exc))
    tracker = ProgressTracker()
    started: list[Any] = []

    def attach(bus: Any) -> ProgressTracker:
        bus.add(tracker)
        return tracker

    task = asyncio.ensure_future(run_question(req, attach, lm_semaphore=lm_semaphore, started=started.append))
    pump = asyncio.ensure_future(tracker.pump(call.report))
    try:
        outcome = await asyncio.shield(task)
    except asyncio.CancelledError:  # notifications/cancelled or the client left: end the run like Ctrl-C
        import anyio

        task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.wait({task})
            await stop(pump)
            if started:
                with contextlib.suppress(Exception):
                    session.finish(None, "interrupted", started[0].log_path)
                call.state.last_run = started[0].run_id
        raise
    except RlmError as exc:  # unusable input: nothing to load, over --max-input-size, a missing path
        return error_result(str(exc))
    finally:
        await stop(pump)
    for warning in session.finish(outcome.result.answer, outcome.result.status, outcome.log_path):
        import sys

        from rlm_cli.view.safe import inline

        print(f"rlm mcp: warning: {inline(warning)}", file=sys.stderr)
    call.state.last_run = outcome.run_id
    return outcome_result(outcome)


async def ls(cfg: McpConfig, call: CallContext, sources: list[str] | None) -> Any:
    """What ``rlm ask`` would load for ``sources`` (default: the server's SOURCEs): ``rlm ls
    --json``'s document, as structured content and as JSON text."""
    import tempfile
    from pathlib import Path

    from mcp_types import CallToolResult, TextContent

    from rlm_cli.commands.ls import listing_dict
    from rlm_cli.loader import load_sources
    from rlm_cli.view.safe import json_text

    try:
        checked = _sources(cfg, call.scope, sources)

        def listing() -> dict:
            with tempfile.TemporaryDirectory(prefix="rlm-ls-") as tmp:
                return listing_dict(load_sources(checked, cfg.load_options, Path(tmp) / "context.txt"))

        doc = await asyncio.to_thread(listing)
    except RlmError as exc:
        return error_result(str(exc))
    return CallToolResult(content=[TextContent(type="text", text=json_text(doc))], structured_content=doc)


def show(run_id: str) -> Any:
    """A past run's summary by id (or id prefix) as plain text, as ``rlm show`` prints it without
    colour. Only run ids of the log directory: a path is refused."""
    import io
    import os

    from mcp_types import CallToolResult, TextContent
    from rich.console import Console

    from rlm_cli.settings.paths import log_dir
    from rlm_cli.trajectory import store
    from rlm_cli.view.render import RenderOptions, render
    from rlm_cli.view.safe import inline
    from rlm_cli.view.tree import RunModel
    from rlm_cli.view.turns import turns_text

    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id) or os.path.lexists(run_id):
        return error_result(f"{str(run_id)[:80]!r} is not a run id (letters, digits, - and _; as `ask` returned)")
    try:
        path = store.resolve(run_id, log_dir())
        doc = store.load(path)
        model = RunModel.from_trajectory(doc)
    except RlmError as exc:
        return error_result(str(exc))
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        return error_result(f"run {run_id} is not a valid rlm trajectory ({type(exc).__name__})")
    buf = io.StringIO()
    console = Console(file=buf, width=120, color_system=None, no_color=True, highlight=False, soft_wrap=False,
                      force_terminal=False)
    turns = turns_text(doc, False)
    if turns is not None:
        console.print(turns)
    console.print(render(model, RenderOptions.show(False)))
    console.print(f"trajectory: {inline(path)}", markup=False, soft_wrap=True)
    return CallToolResult(content=[TextContent(type="text", text=buf.getvalue())])
