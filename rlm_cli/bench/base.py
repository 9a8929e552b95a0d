"""The ``base`` system: the root model called once with the input in its prompt.

The input is the same concatenation the ``rlm`` system's REPL gets as ``context`` (the loader's,
file headers included), cut to what fits the model's context window: the window (tokens, from the
model catalogue or ``--context-window``) minus room for the instructions, the question and the reply,
at :data:`rlm_cli.context.CHARS_PER_TOKEN` characters per token. A cut input keeps its start, and the
prompt says it was cut and where. The call is recorded as a trajectory (one iteration, no code) that
``rlm show`` opens like any run.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from rlm_cli.run.direct import (
    TRUNCATION_NOTE,
    WINDOW_RETRIES,
    WINDOW_SHRINK,
    DirectPrompt,
    build_prompt,
    input_budget_chars,
)

__all__ = ["TRUNCATION_NOTE", "WINDOW_RETRIES", "WINDOW_SHRINK", "DirectPrompt", "build_prompt",
           "input_budget_chars", "resolve_window", "run_base"]


def resolve_window(model: str, given: int | None) -> int | None:
    """The context window in tokens: ``given`` (``--context-window``), else the model catalogue's
    (:func:`rlm_cli.lm.pricing.context_window`), else None."""
    if given:
        return given
    from rlm_cli.lm.pricing import context_window

    return context_window(model)


async def run_base(task: Any, sources: list[str], *, settings: Any, limits: Any, window_tokens: int,
                   log_path: Path | None, request_timeout: float, backend: str = "auto",
                   run_id: str | None = None) -> dict:
    """Answer ``task`` with one root-model call over ``sources`` (loaded as ``rlm`` loads them) and
    write its trajectory to ``log_path`` (None: none) under ``run_id`` (None: a new one). ``limits.timeout`` (seconds, None: none)
    bounds the call. Returns ``{"status", "answer", "error", "usage", "duration_s", "run_id",
    "truncated", "kept_chars", "input_chars"}`` (``usage`` the trajectory's). Provider failures
    end in ``status`` ``error``; cancellation writes the trajectory (``interrupted``) and propagates."""
    from rlm_cli.lm.client import FatalLMError, LMClient
    from rlm_cli.loader import LoadOptions, load_sources
    from rlm_cli.repl.sandbox import remove_tree
    from rlm_cli.run.budget import Budget
    from rlm_cli.run.config import now_iso
    from rlm_cli.run.events import IterationStarted, RlmStarted, RootReply, RunFinished, RunStarted
    from rlm_cli.settings.endpoints import lm_endpoints
    from rlm_cli.trajectory.recorder import TrajectoryRecorder

    model = settings.model
    run_id = run_id or uuid.uuid4().hex[:12]
    tmp = Path(tempfile.mkdtemp(prefix="rlm-bench-base-"))
    try:
        loaded = await asyncio.to_thread(load_sources, sources, LoadOptions(), tmp / "context.txt")
        context = await asyncio.to_thread(loaded.read)
        log_context = loaded.log_dict()
    finally:
        remove_tree(tmp)
    prompt = build_prompt(context, task.question, window_tokens)
    recorder = TrajectoryRecorder(log_path)
    budget = Budget(limits)
    t0 = time.monotonic()
    recorder(RunStarted(run_id, task.question, model, model, log_context, limits.as_dict(), now_iso()))
    recorder.doc["bench"] = {"system": "base", "task": task.id, "window_tokens": window_tokens,
                             "input_chars": prompt.input_chars, "kept_chars": prompt.kept_chars,
                             "truncated": prompt.truncated}
    recorder(RlmStarted("r0", 0, None, task.question))
    recorder(IterationStarted("r0", 0, 0))
    status, answer, error = "error", None, None
    try:
        async with LMClient(**lm_endpoints(settings), timeout_s=request_timeout, max_retries=settings.max_retries,
                            options=settings.options, prices=settings.prices, backend=backend) as lm:
            async with asyncio.timeout(limits.timeout):
                for attempt in range(WINDOW_RETRIES + 1):
                    try:
                        result = await lm.complete(model, [{"role": "user", "content": prompt.text}], role="root")
                        break
                    except FatalLMError as exc:
                        # chars/4 is an estimate: a tokenizer that needs more tokens overflows the window;
                        # cut the input further and say so in the trajectory
                        if exc.kind != "context_window" or attempt == WINDOW_RETRIES or not prompt.kept_chars:
                            raise
                        prompt = build_prompt(context, task.question,
                                              int(window_tokens * WINDOW_SHRINK ** (attempt + 1)))
                        recorder.doc["bench"].update(kept_chars=prompt.kept_chars, truncated=prompt.truncated,
                                                     window_retries=attempt + 1)
        budget.record(model, result.usage, "root")
        recorder(RootReply("r0", 0, result.text, result.usage, result.duration_s, model))
        status, answer = "answered", result.text
    except asyncio.CancelledError:
        status, error = "interrupted", {"type": "interrupted", "message": "interrupted by the user"}
        raise
    except TimeoutError:
        status, error = "budget_exhausted", {"type": "budget", "message": "budget exhausted: timeout"}
    except Exception as exc:  # a provider failure ends this task, not the bench
        error = {"type": type(exc).__name__, "message": str(exc) or repr(exc)}
    finally:
        duration = time.monotonic() - t0
        recorder(RunFinished(status, answer, error, budget.usage_dict(), now_iso(), duration,
                             {"exhausted": "timeout" if status == "budget_exhausted" else None}))
    return {"status": status, "answer": answer, "error": error, "usage": recorder.doc.get("usage"),
            "duration_s": duration, "run_id": run_id, "truncated": prompt.truncated,
            "kept_chars": prompt.kept_chars, "input_chars": prompt.input_chars}
