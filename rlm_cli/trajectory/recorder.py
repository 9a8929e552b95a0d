"""The trajectory log: one JSON document per run (schema ``rlm-trajectory/1``, see the contract).

:class:`TrajectoryRecorder` is an event sink that builds the document from the run's events and
writes it atomically (temporary file + ``os.replace``), so the file is valid JSON at every moment:
at the start, at most every ``interval_s`` seconds while the run goes on, and at the end (also for
runs that fail, run out of budget or are interrupted). Secrets (values of environment variables
whose names look like keys, tokens or passwords, and any explicit API key) are redacted from the
whole document before it is written.

A sub-call's ``duration_s`` counts from when its request was sent (an llm call) or its child RLM got
a slot (an rlm call); ``queued_s`` (beyond the contract's fields) is how long it waited for that,
since the code asked for it.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

from rlm_cli import __version__
from rlm_cli.atomic import atomic_write_text
from rlm_cli.run.events import (
    CitationsChecked,
    IterationStarted,
    ModeChanged,
    Notice,
    RlmStarted,
    RootReply,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    SubCallFinished,
    SubCallSent,
    SubCallStarted,
)
from rlm_cli.run.prompts import truncate_output
from rlm_cli.secrets import Redactor

SCHEMA = "rlm-trajectory/1"
MAX_FIELD_CHARS = 200_000  # per stdout/stderr/response field kept in the log


def _clip(text: str | None, limit: int = MAX_FIELD_CHARS) -> str | None:
    return None if text is None else truncate_output(text, limit, "characters omitted from the log")


def check_log_path(path: Path) -> None:
    """Refuse a trajectory path that is anything but a regular file or a new name: a device (as root,
    renaming over ``/dev/null`` would break the system), a FIFO, a socket or a directory. A symlink
    is judged by what it points to. Raises :class:`~rlm_cli.errors.UsageError` (exit 2)."""
    from rlm_cli.errors import UsageError

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"--log {path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else (
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise UsageError(f"--log {path} is {kind}; the trajectory is written to a regular file "
                         "(give a file path, or --no-log for none)")


class TrajectoryRecorder:
    """Builds and writes the trajectory of one run. ``path`` None: build only (``--no-log``)."""

    def __init__(self, path: Path | None, interval_s: float = 1.0, secrets: list[str] | None = None,
                 prior: dict | None = None, turn_extra: dict | None = None, writer: Any = None) -> None:
        """``prior``: the session's trajectory so far (its root iterations and turns come first, see
        docs/sessions.md); ``turn_extra``: fields merged into this run's turn when it ends;
        ``writer``: a :class:`~rlm_cli.trajectory.background.TrajectoryWriter` that writes off the
        event loop (``rlm serve``; None: each write is made here, fsync-ed)."""
        self.path = path
        self.writer = writer
        self._prior = prior or {}
        self._turn_extra = turn_extra if turn_extra is not None else {}
        self.interval_s = interval_s
        self._redactor = Redactor(secrets)  # also the keys remembered after it was made
        self.doc: dict = {"schema": SCHEMA, "rlm_version": __version__, "status": "running"}
        self._rlms: dict[str, dict] = {}  # rlm_id -> {"iterations": [...]}
        self._calls: dict[str, dict] = {}
        self._last_write = 0.0
        self.write_errors: list[str] = []
        self._base = 0  # root iterations of earlier turns
        self._turn: dict = {}

    # --- building ----------------------------------------------------------------------------
    def _iteration(self, rlm_id: str, index: int) -> dict:
        its = self._rlms[rlm_id]["iterations"]
        index += self._rlms[rlm_id].get("base", 0)
        while len(its) <= index:
            its.append({"index": len(its), "depth": self._rlms[rlm_id]["depth"], "response": None,
                        "duration_s": None, "steps": []})
        return its[index]

    def __call__(self, ev) -> None:
        if isinstance(ev, SubCallStarted):  # the most frequent events first
            call = {"id": ev.call_id, "kind": ev.kind, "model": ev.model, "prompt": _clip(ev.prompt),
                    "response": None, "input_tokens": 0, "output_tokens": 0, "cost_usd": None,
                    "duration_s": None, "queued_s": None, "error": None}
            self._calls[ev.call_id] = call
            self._iteration(ev.rlm_id, ev.index)["steps"][ev.step]["sub_calls"].append(call)
        elif isinstance(ev, SubCallSent):
            call = self._calls.get(ev.call_id)
            if call is not None:
                call["queued_s"] = round(ev.queued_s, 4)
        elif isinstance(ev, SubCallFinished):
            call = self._calls.pop(ev.call_id, None)
            if call is not None:
                call.update({"response": _clip(ev.response), "input_tokens": ev.usage.input_tokens,
                             "output_tokens": ev.usage.output_tokens, "cached_tokens": ev.usage.cached_tokens,
                             "cost_usd": ev.usage.cost_usd, "duration_s": round(ev.duration_s, 4),
                             "queued_s": round(ev.queued_s, 4), "error": ev.error})
        elif isinstance(ev, RunStarted):
            self.doc.update({
                "id": ev.run_id, "started_at": ev.started_at, "ended_at": None, "status": "running",
                "question": ev.question, "answer": None, "mode": ev.mode,
                "models": {"root": ev.root_model, "sub": ev.sub_model},
                "context": ev.context, "limits": ev.limits,
                "usage": {"root": None, "sub": None, "total_cost_usd": None},
                "iterations": [], "notices": [], "error": None,
            })
            self._start_turn(ev)
            self.write(force=True)
        elif isinstance(ev, RlmStarted):
            if ev.parent_call_id is None:
                self._rlms[ev.rlm_id] = {"depth": ev.depth, "iterations": self.doc["iterations"],
                                         "base": self._base}
            else:
                call = self._calls.get(ev.parent_call_id)
                iterations: list = []
                if call is not None:
                    call["iterations"] = iterations
                self._rlms[ev.rlm_id] = {"depth": ev.depth, "iterations": iterations}
        elif isinstance(ev, IterationStarted):
            it = self._iteration(ev.rlm_id, ev.index)
            it["final_call"] = ev.final_call
        elif isinstance(ev, RootReply):
            it = self._iteration(ev.rlm_id, ev.index)
            it.update({"response": ev.text, "duration_s": round(ev.duration_s, 4), "model": ev.model,
                       "input_tokens": ev.usage.input_tokens, "output_tokens": ev.usage.output_tokens,
                       "cached_tokens": ev.usage.cached_tokens, "cost_usd": ev.usage.cost_usd})
            self.write()
        elif isinstance(ev, StepStarted):
            steps = self._iteration(ev.rlm_id, ev.index)["steps"]
            steps.append({"code": ev.code, "stdout": None, "stderr": None, "duration_s": None, "error": None,
                          "sub_calls": []})
        elif isinstance(ev, StepFinished):
            step = self._iteration(ev.rlm_id, ev.index)["steps"][ev.step]
            step.update({"stdout": _clip(ev.stdout), "stderr": _clip(ev.stderr),
                         "duration_s": round(ev.duration_s, 4), "error": ev.error,
                         "final_answer": ev.final_answer, "repl_restarted": ev.repl_restarted})
            self.write()
        elif isinstance(ev, ModeChanged):
            self.doc["mode"] = ev.mode
        elif isinstance(ev, Notice):
            self.doc.setdefault("notices", []).append({"level": ev.level, "message": ev.message})
        elif isinstance(ev, RunFinished):
            self.doc.update({"status": ev.status, "answer": ev.answer, "error": ev.error, "usage": ev.usage,
                             "ended_at": ev.ended_at, "duration_s": round(ev.duration_s, 3)})
            self.doc["exhausted"] = ev.extra.get("exhausted")
            self._end_turn(ev)
            self.write(force=True)
        elif isinstance(ev, CitationsChecked):
            self.doc["citations"] = ev.report
            self.write(force=True)

    # --- the session's turns (docs/sessions.md) --------------------------------------------------
    def _start_turn(self, ev: RunStarted) -> None:
        """Seed the session: the earlier turns and root iterations, then this run's turn."""
        prior = self._prior
        iterations = prior.get("iterations") if isinstance(prior.get("iterations"), list) else []
        session = prior.get("session") if isinstance(prior.get("session"), dict) else {}
        turns = [t for t in session.get("turns") or [] if isinstance(t, dict)]
        self.doc["iterations"].extend(iterations)
        self._base = len(iterations)
        self.doc["session"] = {"id": ev.run_id, "started_at": session.get("started_at") or ev.started_at,
                               "turns": turns, "compactions": list(session.get("compactions") or [])}
        self._turn = {"index": len(turns), "question": ev.question, "answer": None, "status": "running",
                      "started_at": ev.started_at, "ended_at": None, "duration_s": None, "usage": None,
                      "error": None, "iterations": [self._base, None]}
        turns.append(self._turn)

    def _end_turn(self, ev: RunFinished) -> None:
        self._turn.update({"answer": ev.answer, "status": ev.status, "ended_at": ev.ended_at,
                           "duration_s": round(ev.duration_s, 3), "usage": ev.usage, "error": ev.error,
                           "iterations": [self._base, len(self.doc["iterations"])], **self._turn_extra})
        if isinstance(self._turn_extra.get("compaction"), dict) and "session" in self.doc:
            self.doc["session"]["compactions"].append(self._turn_extra["compaction"])

    # --- writing -----------------------------------------------------------------------------
    def render(self) -> str:
        """The document as JSON text, secrets redacted."""
        return json.dumps(self._redactor.obj(self.doc), ensure_ascii=False, indent=1)

    def write(self, force: bool = False) -> None:
        """Write now if ``force`` or ``interval_s`` has passed since the last write."""
        if self.path is None:
            return
        now = time.monotonic()
        if not force and now - self._last_write < self.interval_s:
            return
        self._last_write = now
        if self.writer is not None:  # a snapshot with the C encoder; redacted and indented in the thread
            try:
                snapshot = json.dumps(self.doc, ensure_ascii=False)
            except (TypeError, ValueError) as exc:
                self.write_errors.append(str(exc))
                return
            self.writer.submit(self.path, snapshot, self._redactor, self.doc.get("status") != "running",
                               self.write_errors)
            return
        try:
            atomic_write_text(self.path, self.render())
        except OSError as exc:
            self.write_errors.append(str(exc))
