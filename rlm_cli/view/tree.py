"""The view-model of a run: a tree of RLMs, iterations, code steps and sub-calls.

Built incrementally from the engine's events (:meth:`RunModel.apply`, O(1) work per event: a few
dictionary look-ups and counter updates) for the live view, or from a saved trajectory
(:meth:`RunModel.from_trajectory`, which replays the document as the same events) for ``rlm show``
and the HTML export. So the live tree and ``rlm show`` share one model and one renderer
(:mod:`rlm_cli.view.render`).

Per step, finished sub-calls are counted as they finish (calls, failures, tokens, time), calls in
flight and queued calls sit in insertion-ordered dicts, a batch's calls not yet taken by a worker are
one count, and failed calls are in a list, so a renderer can show "987 finished" plus the running,
queued and failed ones without walking a thousand nodes.

A sub-call is *queued* from the moment the code asked for it until it is sent (its request holds one
of the run's ``--concurrency`` slots, or its child RLM got a live-REPL slot: ``SubCallSent``), then
*running*: only running calls have a ticking clock, started when they were sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from rlm_cli.run.events import (
    BatchDone,
    BatchQueued,
    CitationsChecked,
    IterationStarted,
    Notice,
    RlmStarted,
    RootDelta,
    RootReply,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    SubCallFinished,
    SubCallSent,
    SubCallStarted,
    Usage,
)


class CallNode:
    """One sub-call (``kind`` ``"llm"`` or ``"rlm"``); ``child`` is the recursive RLM of an rlm call.
    ``t0``: when it was asked for, then (once ``sent``) when it was sent (model clock, seconds);
    ``queued_s``: seconds it waited before it was sent (None until known)."""

    __slots__ = ("call_id", "kind", "model", "prompt", "response", "error", "input_tokens", "output_tokens",
                 "cost_usd", "duration_s", "queued_s", "t0", "sent", "done", "child")

    def __init__(self, call_id: str, kind: str, model: str, prompt: str, t0: float) -> None:
        self.call_id, self.kind, self.model, self.prompt, self.t0 = call_id, kind, model, prompt, t0
        self.response: str | None = None
        self.error: str | None = None
        self.input_tokens = self.output_tokens = 0
        self.cost_usd: float | None = None
        self.duration_s: float | None = None
        self.queued_s: float | None = None
        self.sent = False
        self.done = False
        self.child: RlmNode | None = None


class StepNode:
    """One code block run in the REPL, with its sub-calls and running counts over them."""

    __slots__ = ("step", "code", "stdout", "stderr", "duration_s", "error", "final_answer", "repl_restarted",
                 "done", "t0", "calls", "running", "queued", "waiting", "failed", "recursive", "n_ok", "ok_in",
                 "ok_out", "ok_time", "syntax")

    def __init__(self, step: int, code: str, t0: float) -> None:
        self.step, self.code, self.t0 = step, code, t0
        self.stdout = self.stderr = ""
        self.duration_s: float | None = None
        self.error: str | None = None
        self.final_answer: str | None = None
        self.repl_restarted = False
        self.done = False
        self.calls: list[CallNode] = []  # every sub-call, in start order
        self.running: dict[str, CallNode] = {}  # sent (in flight), in the order they were sent
        self.queued: dict[str, CallNode] = {}  # asked for, not sent yet, in the order they were asked for
        self.waiting = 0  # calls of batches not yet taken by a worker (no node of their own yet)
        self.failed: list[CallNode] = []
        self.recursive: list[CallNode] = []  # rlm calls (they nest whole RLMs: listed, not folded, by show)
        self.n_ok = self.ok_in = self.ok_out = 0
        self.ok_time = 0.0
        self.syntax = None  # a renderer's cache for the highlighted code

    @property
    def n_failed(self) -> int:
        """Sub-calls of this step that ended with an error."""
        return len(self.failed)

    @property
    def n_queued(self) -> int:
        """Sub-calls of this step waiting to be sent: asked for one by one, or in a batch."""
        return len(self.queued) + self.waiting


class IterNode:
    """One root LM call of an RLM (``index`` 0-based) and the code steps its reply ran."""

    __slots__ = ("index", "depth", "final_call", "pieces", "streamed", "reply", "model", "input_tokens",
                 "output_tokens", "cost_usd", "duration_s", "t0", "steps", "_parsed")

    def __init__(self, index: int, depth: int, t0: float, final_call: bool = False) -> None:
        self.index, self.depth, self.t0, self.final_call = index, depth, t0, final_call
        self.pieces: list[str] = []  # streamed reply so far
        self.streamed = 0
        self.reply: str | None = None
        self.model = ""
        self.input_tokens = self.output_tokens = 0
        self.cost_usd: float | None = None
        self.duration_s: float | None = None
        self.steps: list[StepNode] = []
        self._parsed = None

    @property
    def streaming_text(self) -> str:
        """The reply streamed so far (joined lazily, at render time)."""
        if len(self.pieces) > 1:
            self.pieces = ["".join(self.pieces)]
        return self.pieces[0] if self.pieces else ""

    @property
    def parsed(self):
        """The reply parsed into code blocks, prose and a text answer (cached; None before the reply)."""
        if self._parsed is None and self.reply is not None:
            from rlm_cli.run.parsing import parse_reply

            self._parsed = parse_reply(self.reply)
        return self._parsed


class RlmNode:
    """One RLM instance: the root (``parent`` None) or a recursive child of an rlm sub-call."""

    __slots__ = ("rlm_id", "depth", "prompt", "parent", "iterations")

    def __init__(self, rlm_id: str, depth: int, prompt: str, parent: CallNode | None) -> None:
        self.rlm_id, self.depth, self.prompt, self.parent = rlm_id, depth, prompt, parent
        self.iterations: list[IterNode] = []


class RunModel:
    """Everything a view shows about one run, kept up to date by :meth:`apply`.

    ``clock`` (default ``time.monotonic``) times the things still running; tests pass a fake one.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.run_id = self.question = self.root_model = self.sub_model = self.started_at = ""
        self.context: dict = {}
        self.limits: dict = {}
        self.t0 = clock()
        self.root: RlmNode | None = None
        self.rlms: dict[str, RlmNode] = {}
        self.calls: dict[str, tuple[CallNode, StepNode]] = {}  # not finished (queued or running)
        self.live = True  # False for a model replayed from a saved trajectory
        self.iterations = 0  # root LM replies, all depths
        self.root_iterations = 0  # replies of the top-level root LM
        self.calls_started = self.calls_done = self.calls_failed = 0
        self.calls_sent = 0  # sent and not finished
        self.calls_cancelled = 0  # never finished: the run ended first (Ctrl-C, a budget, an error)
        self.calls_waiting = 0  # batch items not started yet (see StepNode.waiting)
        self.tokens_in = self.tokens_out = 0
        self.cost: float | None = None
        self.notices: list[tuple[str, str]] = []
        self.status = "running"
        self.answer: str | None = None
        self.error: dict | None = None
        self.usage: dict | None = None
        self.duration_s: float | None = None
        self.ended_at: str | None = None
        self.citations: dict | None = None  # the answer's reference check, once done
        self.exhausted: str | None = None  # the budget that ran out (cost, tokens, timeout, sub_calls)
        self.events = 0

    # --- queries -------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """True once the run has ended (any status)."""
        return self.status != "running"

    @property
    def calls_running(self) -> int:
        """Sub-calls in flight now (sent, not finished)."""
        return self.calls_sent

    @property
    def calls_queued(self) -> int:
        """Sub-calls the code asked for that wait to be sent (for a ``--concurrency`` slot, or for a
        batch worker)."""
        if self.finished:
            return 0
        return self.calls_started - self.calls_done - self.calls_sent + self.calls_waiting

    def elapsed(self) -> float | None:
        """Seconds the run took (finished) or has taken so far (live); None for an unfinished log."""
        if self.duration_s is not None:
            return self.duration_s
        return self.clock() - self.t0 if self.live else None

    def budget_left(self) -> list[tuple[str, str]]:
        """What is left of each budget in force, as (name, "left/limit") pairs."""
        lim, out = self.limits, []
        if lim.get("max_sub_calls") is not None:
            out.append(("sub-calls", f"{max(0, lim['max_sub_calls'] - self.calls_started):,}/{lim['max_sub_calls']:,}"))
        if lim.get("max_iterations") is not None:
            left = max(0, lim["max_iterations"] - self.root_iterations)
            out.append(("iterations", f"{left}/{lim['max_iterations']}"))
        if lim.get("max_cost") is not None:
            out.append(("cost", f"${max(0.0, lim['max_cost'] - (self.cost or 0.0)):.4f}/${lim['max_cost']:g}"))
        if lim.get("max_tokens") is not None:
            left = max(0, lim["max_tokens"] - self.tokens_in - self.tokens_out)
            out.append(("tokens", f"{left:,}/{lim['max_tokens']:,}"))
        if lim.get("timeout") is not None:
            elapsed = self.elapsed() or 0.0
            out.append(("time", f"{max(0.0, lim['timeout'] - elapsed):.0f}s/{lim['timeout']:g}s"))
        return out

    # --- building ------------------------------------------------------------------------------
    def _iteration(self, rlm_id: str, index: int) -> IterNode:
        rlm = self.rlms.get(rlm_id)
        if rlm is None:  # an event for an RLM we never saw start: attach it to the root
            rlm = self.rlms[rlm_id] = RlmNode(rlm_id, 0, "", None)
        its = rlm.iterations
        while len(its) <= index:
            its.append(IterNode(len(its), rlm.depth, self.clock()))
        return its[index]

    def _step(self, rlm_id: str, index: int, step: int) -> StepNode:
        steps = self._iteration(rlm_id, index).steps
        while len(steps) <= step:
            steps.append(StepNode(len(steps), "", self.clock()))
        return steps[step]

    def _add_usage(self, usage: Usage) -> None:
        self.tokens_in += usage.input_tokens
        self.tokens_out += usage.output_tokens
        if usage.cost_usd is not None:
            self.cost = (self.cost or 0.0) + usage.cost_usd

    def apply(self, ev) -> None:
        """Update the model with one engine event (unknown events are ignored)."""
        self.events += 1
        if isinstance(ev, RootDelta):
            it = self._iteration(ev.rlm_id, ev.index)
            it.pieces.append(ev.text)
            it.streamed += len(ev.text)
        elif isinstance(ev, SubCallStarted):
            call = CallNode(ev.call_id, ev.kind, ev.model, ev.prompt, self.clock())
            step = self._step(ev.rlm_id, ev.index, ev.step)
            step.calls.append(call)
            step.queued[ev.call_id] = call
            if ev.batched and step.waiting > 0:
                step.waiting -= 1
                self.calls_waiting -= 1
            if ev.kind == "rlm":
                step.recursive.append(call)
            self.calls[ev.call_id] = (call, step)
            self.calls_started += 1
        elif isinstance(ev, SubCallSent):
            found = self.calls.get(ev.call_id)
            if found is None or found[0].sent:
                return
            call, step = found
            call.sent, call.t0, call.queued_s = True, self.clock(), ev.queued_s
            step.queued.pop(ev.call_id, None)
            step.running[ev.call_id] = call
            self.calls_sent += 1
        elif isinstance(ev, SubCallFinished):
            found = self.calls.pop(ev.call_id, None)
            if found is None:
                return
            call, step = found
            call.response, call.error, call.done = ev.response, ev.error, True
            call.input_tokens, call.output_tokens = ev.usage.input_tokens, ev.usage.output_tokens
            call.cost_usd, call.duration_s, call.queued_s = ev.usage.cost_usd, ev.duration_s, ev.queued_s
            if call.sent:
                step.running.pop(ev.call_id, None)
                self.calls_sent -= 1
            else:
                step.queued.pop(ev.call_id, None)
            self.calls_done += 1
            self._add_usage(ev.usage)
            if ev.error:
                step.failed.append(call)
                self.calls_failed += 1
            else:
                step.n_ok += 1
                step.ok_in += ev.usage.input_tokens
                step.ok_out += ev.usage.output_tokens
                step.ok_time += ev.duration_s
        elif isinstance(ev, BatchQueued):
            self._step(ev.rlm_id, ev.index, ev.step).waiting += ev.count
            self.calls_waiting += ev.count
        elif isinstance(ev, BatchDone):
            step = self._step(ev.rlm_id, ev.index, ev.step)
            left = min(step.waiting, ev.not_started)
            step.waiting -= left
            self.calls_waiting -= left
        elif isinstance(ev, IterationStarted):
            it = self._iteration(ev.rlm_id, ev.index)
            it.final_call, it.t0 = ev.final_call, self.clock()
        elif isinstance(ev, RootReply):
            it = self._iteration(ev.rlm_id, ev.index)
            it.reply, it.model, it.duration_s, it.pieces = ev.text, ev.model, ev.duration_s, []
            it.input_tokens, it.output_tokens, it.cost_usd = (ev.usage.input_tokens, ev.usage.output_tokens,
                                                              ev.usage.cost_usd)
            self.iterations += 1
            if self.root is not None and ev.rlm_id == self.root.rlm_id:
                self.root_iterations += 1
            self._add_usage(ev.usage)
        elif isinstance(ev, StepStarted):
            step = self._step(ev.rlm_id, ev.index, ev.step)
            step.code, step.t0 = ev.code, self.clock()
        elif isinstance(ev, StepFinished):
            step = self._step(ev.rlm_id, ev.index, ev.step)
            step.stdout, step.stderr, step.duration_s, step.error = ev.stdout, ev.stderr, ev.duration_s, ev.error
            step.final_answer, step.repl_restarted, step.done = ev.final_answer, ev.repl_restarted, True
        elif isinstance(ev, RlmStarted):
            parent = self.calls.get(ev.parent_call_id) if ev.parent_call_id else None
            node = RlmNode(ev.rlm_id, ev.depth, ev.prompt, parent[0] if parent else None)
            self.rlms[ev.rlm_id] = node
            if parent is not None:
                parent[0].child = node
            elif self.root is None:
                self.root = node
        elif isinstance(ev, RunStarted):
            self.run_id, self.question, self.root_model, self.sub_model = (ev.run_id, ev.question,
                                                                           ev.root_model, ev.sub_model)
            self.context, self.limits, self.started_at, self.t0 = ev.context, ev.limits, ev.started_at, self.clock()
        elif isinstance(ev, Notice):
            self.notices.append((ev.level, ev.message))
        elif isinstance(ev, RunFinished):
            self.status, self.answer, self.error, self.usage = ev.status, ev.answer, ev.error, ev.usage
            self.ended_at, self.duration_s = ev.ended_at, ev.duration_s
            self.exhausted = (ev.extra or {}).get("exhausted")
            self._cancel_unfinished()
            if isinstance(ev.usage, dict) and ev.usage.get("total_cost_usd") is not None:
                self.cost = ev.usage["total_cost_usd"]
        elif isinstance(ev, CitationsChecked):
            self.citations = ev.report

    def _cancel_unfinished(self) -> None:
        """The run ended: sub-calls still queued or in flight (and batch items never started) were
        cancelled with it; they are counted as cancelled, no longer as running or queued."""
        for call, step in self.calls.values():
            step.running.pop(call.call_id, None)
            step.queued.pop(call.call_id, None)
            step.waiting = 0
        self.calls_cancelled += len(self.calls) + self.calls_waiting
        self.calls.clear()
        self.calls_sent = self.calls_waiting = 0

    # --- from a saved trajectory ---------------------------------------------------------------
    @classmethod
    def from_trajectory(cls, doc: dict) -> RunModel:
        """The model of a saved run (``rlm-trajectory/1`` document), built by replaying it as events."""
        model = cls(clock=lambda: 0.0)
        for ev in trajectory_events(doc):
            model.apply(ev)
        model.live = False  # nothing is running any more: elapsed comes from the document
        if model.status == "running":  # an unfinished (or crashed) run's log
            model.status = doc.get("status") or "running"
        return model


def _usage(d: dict) -> Usage:
    return Usage(int(d.get("input_tokens") or 0), int(d.get("output_tokens") or 0),
                 int(d.get("cached_tokens") or 0), d.get("cost_usd"))


def trajectory_events(doc: dict) -> Iterator:
    """The events that would rebuild ``doc`` (a trajectory), in a valid order."""
    ids = iter(range(1, 1 << 62))
    yield RunStarted(str(doc.get("id") or "?"), str(doc.get("question") or ""),
                     str((doc.get("models") or {}).get("root") or "?"), str((doc.get("models") or {}).get("sub") or "?"),
                     doc.get("context") or {}, doc.get("limits") or {}, str(doc.get("started_at") or ""))
    yield RlmStarted("r0", 0, None, str(doc.get("question") or ""))
    yield from _rlm_events("r0", 0, doc.get("iterations") or [], ids)
    for notice in doc.get("notices") or []:
        yield Notice(str(notice.get("message", "")), str(notice.get("level", "warning")))
    if doc.get("status") not in (None, "running"):
        yield RunFinished(doc["status"], doc.get("answer"), doc.get("error"), doc.get("usage") or {},
                          str(doc.get("ended_at") or ""), float(doc.get("duration_s") or 0.0),
                          {"exhausted": doc.get("exhausted")})
    if isinstance(doc.get("citations"), dict):
        yield CitationsChecked(doc["citations"])


def _rlm_events(rlm_id: str, depth: int, iterations: list, ids: Iterator[int]) -> Iterator:
    for pos, it in enumerate(iterations):
        index = it.get("index", pos)
        yield IterationStarted(rlm_id, index, depth, bool(it.get("final_call")))
        if it.get("response") is not None:
            yield RootReply(rlm_id, index, it["response"], _usage(it), float(it.get("duration_s") or 0.0),
                            str(it.get("model") or ""))
        for s, step in enumerate(it.get("steps") or []):
            yield StepStarted(rlm_id, index, s, str(step.get("code") or ""))
            for call in step.get("sub_calls") or []:
                call_id = f"{call.get('id') or 'c'}#{next(ids)}"
                yield SubCallStarted(call_id, rlm_id, index, s, str(call.get("kind") or "llm"),
                                     str(call.get("model") or ""), str(call.get("prompt") or ""))
                if call.get("iterations") is not None:
                    child = f"{rlm_id}.{next(ids)}"
                    yield RlmStarted(child, depth + 1, call_id, str(call.get("prompt") or ""))
                    yield from _rlm_events(child, depth + 1, call["iterations"], ids)
                if call.get("duration_s") is not None or call.get("error") or call.get("response") is not None:
                    yield SubCallFinished(call_id, rlm_id, call.get("response"), _usage(call),
                                          float(call.get("duration_s") or 0.0), call.get("error"),
                                          float(call.get("queued_s") or 0.0))
            if step.get("duration_s") is not None:
                yield StepFinished(rlm_id, index, s, step.get("stdout") or "", step.get("stderr") or "",
                                   float(step["duration_s"]), step.get("error"), step.get("final_answer"),
                                   bool(step.get("repl_restarted")))
