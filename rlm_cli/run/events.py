"""Events the engine emits while a run progresses; views and the trajectory log consume them.

Data flows one way: ``load -> run (engine) -> events -> view / trajectory log``. Each RLM instance
(the root run and every recursive ``rlm_query`` child) has an ``rlm_id``; a child's
``parent_call_id`` names the sub-call that started it, so a consumer can nest the tree. Times are
``time.monotonic()`` seconds unless a name says otherwise; token counts are provider-reported tokens;
costs are USD (``None`` when litellm has no price for the model).

Sinks are plain callables ``sink(event) -> None`` called synchronously on the engine's event-loop
thread, in order: they must be fast and must not raise (the :class:`EventBus` isolates failures).
Every string in an event (nested in dicts and lists too) is redacted of known secret values
(:mod:`rlm_cli.secrets`) before any sink sees it, so no view and no log can show a key.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlm_cli.secrets import Redactor


@dataclass(frozen=True)
class Usage:
    """Token and cost usage of one LM call. ``cost_usd`` is ``None`` when the model has no price."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None


@dataclass(frozen=True)
class RunStarted:
    """The top-level run began. ``limits`` is the budgets in force (see :class:`rlm_cli.run.budget.Limits`)."""

    run_id: str
    question: str
    root_model: str
    sub_model: str
    context: dict
    limits: dict
    started_at: str  # ISO 8601, UTC
    mode: str = "rlm"  # "rlm" (the loop) or "direct" (one call, the input in the prompt): rlm_cli.run.direct


@dataclass(frozen=True)
class RlmStarted:
    """An RLM instance began: the root (``depth == 0``, ``parent_call_id is None``) or a recursive child."""

    rlm_id: str
    depth: int
    parent_call_id: str | None
    prompt: str


@dataclass(frozen=True)
class IterationStarted:
    """The root LM of ``rlm_id`` is being asked for its ``index``-th reply (0-based)."""

    rlm_id: str
    index: int
    depth: int
    final_call: bool = False  # the last best-answer call after a limit ran out


@dataclass(frozen=True)
class RootDelta:
    """A streamed piece of the root LM's reply (only when streaming)."""

    rlm_id: str
    index: int
    text: str


@dataclass(frozen=True)
class RootReply:
    """The root LM's whole reply for iteration ``index``, with its usage and duration (seconds)."""

    rlm_id: str
    index: int
    text: str
    usage: Usage
    duration_s: float
    model: str


@dataclass(frozen=True)
class StepStarted:
    """Code block ``step`` of iteration ``index`` starts running in the REPL."""

    rlm_id: str
    index: int
    step: int
    code: str


@dataclass(frozen=True)
class StepFinished:
    """A code step ended. ``stdout``/``stderr`` are what was captured (bounded), ``error`` a one-line
    summary when the step raised, timed out or crashed the REPL (``None`` otherwise)."""

    rlm_id: str
    index: int
    step: int
    stdout: str
    stderr: str
    duration_s: float
    error: str | None = None
    final_answer: str | None = None
    repl_restarted: bool = False


@dataclass(frozen=True)
class BatchQueued:
    """A batch (``llm_query_batched``/``rlm_query_batched``) of code step ``step`` asked for ``count``
    sub-calls at once. They wait, queued, for one of the batch's ``--concurrency`` workers; each one a
    worker takes is announced by its own :class:`SubCallStarted` with ``batched=True`` (which takes it
    out of this count), and :class:`BatchDone` gives back the ones never started."""

    rlm_id: str
    index: int
    step: int
    count: int


@dataclass(frozen=True)
class BatchDone:
    """A batch ended; ``not_started`` of the calls its :class:`BatchQueued` announced were never started
    (refused by a budget, or not valid prompts) and leave the queue."""

    rlm_id: str
    index: int
    step: int
    not_started: int


@dataclass(frozen=True)
class SubCallStarted:
    """The model's code asked for a sub-call. ``kind`` is ``"llm"`` (sub-LM) or ``"rlm"`` (recursive
    RLM). The call is *queued* until :class:`SubCallSent` (it waits for a ``--concurrency`` slot);
    ``batched``: it was taken from a :class:`BatchQueued` batch."""

    call_id: str
    rlm_id: str
    index: int
    step: int
    kind: str
    model: str
    prompt: str
    batched: bool = False


@dataclass(frozen=True)
class SubCallSent:
    """A sub-call stopped waiting and is *in flight*: an llm call's request was sent (it holds one of
    the run's ``--concurrency`` LM slots), an rlm call's child RLM got its live-REPL slot. ``queued_s``:
    seconds it waited since the code asked (for a batch item, since the batch was asked for)."""

    call_id: str
    rlm_id: str
    queued_s: float


@dataclass(frozen=True)
class SubCallFinished:
    """A sub-call ended, with its response or an ``error`` string (never both). ``duration_s``: seconds
    from :class:`SubCallSent` to the end (0 when it was never sent), retries included; ``queued_s``:
    seconds it waited before being sent (or before it ended, if never sent)."""

    call_id: str
    rlm_id: str
    response: str | None
    usage: Usage
    duration_s: float
    error: str | None = None
    queued_s: float = 0.0


@dataclass(frozen=True)
class ModeChanged:
    """The run answers another way than :class:`RunStarted` said: ``mode`` ``"rlm"`` once a
    ``--mode auto`` direct call was refused for its length (:mod:`rlm_cli.run.direct`)."""

    mode: str


@dataclass(frozen=True)
class Notice:
    """Something the user should see once (a weaker sandbox, a budget that ran out, a retry)."""

    message: str
    level: str = "warning"  # "info" | "warning" | "error"


@dataclass(frozen=True)
class RunFinished:
    """The top-level run ended. ``status`` is one of the contract's trajectory statuses."""

    status: str
    answer: str | None
    error: dict | None
    usage: dict
    ended_at: str  # ISO 8601, UTC
    duration_s: float
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CitationsChecked:
    """The answer's ``path:line`` references were checked against the loaded files (after RunFinished).
    ``report``: ``{"checked", "valid", "invalid": [{"ref", "reason"}], "truncated"}``
    (:func:`rlm_cli.run.citations.check_answer`)."""

    report: dict


Event = Any
Sink = Callable[[Event], None]


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # event class -> its field names (looked up once)


class EventBus:
    """Fans events out to sinks in registration order; a sink that raises is dropped with a warning.
    Events are redacted of known secrets first (see the module docstring)."""

    def __init__(self, sinks: list[Sink] | None = None) -> None:
        self._sinks: list[Sink] = list(sinks or [])
        self._redactor = Redactor()

    def add(self, sink: Sink) -> None:
        """Register a sink."""
        self._sinks.append(sink)

    def _redacted(self, event: Event) -> Event:
        cls = type(event)
        names = _FIELD_NAMES.get(cls)
        if names is None:
            if not dataclasses.is_dataclass(event) or isinstance(event, type):
                return event
            names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(event))
        changes = {}
        for name in names:
            value = getattr(event, name)
            if isinstance(value, str | dict | list | tuple):
                new = self._redactor.obj(value)
                if new is not value:
                    changes[name] = new
        return dataclasses.replace(event, **changes) if changes else event

    def emit(self, event: Event) -> None:
        """Deliver ``event`` (secrets redacted) to every sink."""
        event = self._redacted(event)
        for sink in list(self._sinks):
            try:
                sink(event)
            except Exception as exc:  # a broken view must never break a run
                self._sinks.remove(sink)
                print(f"rlm: warning: an output sink failed and was disabled: {exc!r}", file=sys.stderr)
