"""Scripted event sequences: for the view tests, the view benchmark, and for watching the live tree
without a model (``python -m rlm_cli.view.demo [N_SUBCALLS]``).

:class:`EventScript` emits the events the engine would, in the engine's order, with made-up
durations and token counts; :func:`demo_run` scripts a whole realistic run (a peek at the context,
a fan-out of ``n_calls`` sub-calls with a few failures plus a recursive ``rlm_query`` two levels
deep, and a final answer).
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable

from rlm_cli.run.events import (
    BatchDone,
    BatchQueued,
    IterationStarted,
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

LIMITS = {"max_iterations": 20, "max_depth": 2, "max_sub_calls": 2000, "max_cost": 5.0, "max_tokens": None,
          "timeout": 600.0, "step_timeout": 120.0, "concurrency": 8, "max_output_chars": 20000}


class EventScript:
    """Accumulates a run's events in ``events`` (or hands each to ``emit`` as it is scripted)."""

    def __init__(self, question: str = "Which modules handle authentication?", root_model: str = "openai/root",
                 sub_model: str = "openai/sub", limits: dict | None = None, files: int = 3,
                 emit: Callable | None = None, run_id: str = "demo0001") -> None:
        self.events: list = []
        self.emit = emit or self.events.append
        self._ids = itertools.count(1)
        ctx = {"total_chars": 1_234_567, "est_tokens": 308_641,
               "files": [{"path": f"src/file{i}.py", "chars": 1000, "lines": 40} for i in range(files)]}
        self.emit(RunStarted(run_id, question, root_model, sub_model, ctx, dict(limits or LIMITS),
                             "2025-01-01T00:00:00.000Z"))
        self.emit(RlmStarted("r0", 0, None, question))
        self.root_model, self.sub_model = root_model, sub_model
        self.usage = {role: {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "cost_usd": None}
                      for role in ("root", "sub")}
        self.sub_calls = 0

    def _count(self, role: str, usage: Usage) -> None:
        u = self.usage[role]
        u["calls"] += 1
        u["input_tokens"] += usage.input_tokens
        u["output_tokens"] += usage.output_tokens
        if usage.cost_usd is not None:
            u["cost_usd"] = (u["cost_usd"] or 0.0) + usage.cost_usd

    def reply(self, rlm_id: str, index: int, text: str, depth: int = 0, tokens: tuple[int, int] = (1200, 80),
              cost: float | None = 0.001, duration: float = 0.8, stream: bool = False, final_call: bool = False) -> None:
        """One root LM call of ``rlm_id``: IterationStarted, optional RootDelta pieces, RootReply."""
        self.emit(IterationStarted(rlm_id, index, depth, final_call))
        if stream:
            for start in range(0, len(text), 7):
                self.emit(RootDelta(rlm_id, index, text[start:start + 7]))
        usage = Usage(tokens[0], tokens[1], 0, cost)
        self._count("root" if rlm_id == "r0" else "sub", usage)
        self.emit(RootReply(rlm_id, index, text, usage, duration, self.root_model))

    def step_start(self, rlm_id: str, index: int, step: int, code: str) -> None:
        """A code block starts running."""
        self.emit(StepStarted(rlm_id, index, step, code))

    def step_end(self, rlm_id: str, index: int, step: int, stdout: str = "", stderr: str = "",
                 error: str | None = None, final: str | None = None, duration: float = 0.2) -> None:
        """A code block ended."""
        self.emit(StepFinished(rlm_id, index, step, stdout, stderr, duration, error, final))

    def call_start(self, rlm_id: str, index: int, step: int, prompt: str, kind: str = "llm",
                   model: str | None = None, queued: bool = False, batched: bool = False) -> str:
        """A sub-call is asked for (an item of a :meth:`batch_queued` batch if ``batched``) and, unless
        ``queued``, sent at once; returns its call id."""
        call_id = f"c{next(self._ids)}"
        model = model or (self.root_model if kind == "rlm" else self.sub_model)
        self.sub_calls += 1
        self.emit(SubCallStarted(call_id, rlm_id, index, step, kind, model, prompt, batched))
        if not queued:
            self.call_sent(call_id, rlm_id)
        return call_id

    def call_sent(self, call_id: str, rlm_id: str, queued_s: float = 0.0) -> None:
        """A queued sub-call is sent after ``queued_s`` seconds of waiting."""
        self.emit(SubCallSent(call_id, rlm_id, queued_s))

    def batch_queued(self, rlm_id: str, index: int, step: int, count: int) -> None:
        """A batch asks for ``count`` sub-calls at once."""
        self.emit(BatchQueued(rlm_id, index, step, count))

    def batch_done(self, rlm_id: str, index: int, step: int, not_started: int = 0) -> None:
        """A batch ends; ``not_started`` of its calls never started."""
        self.emit(BatchDone(rlm_id, index, step, not_started))

    def call_end(self, call_id: str, rlm_id: str, response: str | None = "ok", error: str | None = None,
                 tokens: tuple[int, int] = (300, 20), cost: float | None = 0.0001, duration: float = 0.05,
                 queued_s: float = 0.0) -> None:
        """A sub-call ends with ``response`` or ``error``."""
        usage = Usage() if error else Usage(tokens[0], tokens[1], 0, cost)
        if not error and (tokens[0] or tokens[1]):
            self._count("sub", usage)
        self.emit(SubCallFinished(call_id, rlm_id, None if error else response, usage, duration, error, queued_s))

    def child(self, call_id: str, parent_rlm: str, depth: int, prompt: str) -> str:
        """A recursive RLM started by the rlm sub-call ``call_id``; returns its rlm id."""
        rlm_id = f"{parent_rlm}.{next(self._ids)}"
        self.emit(RlmStarted(rlm_id, depth, call_id, prompt))
        return rlm_id

    def finish(self, status: str = "answered", answer: str | None = "The answer.", error: dict | None = None,
               duration: float = 12.5) -> None:
        """The run ends."""
        costs = [u["cost_usd"] for u in self.usage.values() if u["cost_usd"] is not None]
        usage = {**self.usage, "total_cost_usd": sum(costs) if costs else None, "sub_calls": self.sub_calls}
        self.emit(RunFinished(status, answer, error, usage, "2025-01-01T00:00:12.500Z", duration,
                              {"exhausted": None}))


FANOUT = """```repl
chunks = [context[i:i + 20000] for i in range(0, len(context), 20000)]
answers = llm_query_batched([f"Which auth functions are in this chunk?\\n{c}" for c in chunks])
deep = rlm_query("Trace how login() validates tokens")
print(len(answers), deep[:200])
```"""


def recursive(s: EventScript, parent_rlm: str, index: int, step: int, depth: int, max_depth: int) -> None:
    """An rlm sub-call whose child runs one step (recursing again until ``max_depth``) and answers."""
    call = s.call_start(parent_rlm, index, step, f"Trace how login() validates tokens (depth {depth})", "rlm")
    child = s.child(call, parent_rlm, depth, "Trace how login() validates tokens")
    s.reply(child, 0, "Let me search.\n```repl\nprint(context.count('def login'))\n```", depth=depth)
    s.step_start(child, 0, 0, "print(context.count('def login'))\nhits = llm_query('where is login?')")
    sub = s.call_start(child, 0, 0, "where is login?")
    s.call_end(sub, child, "auth/login.py")
    if depth < max_depth:
        recursive(s, child, 0, 0, depth + 1, max_depth)
    s.step_end(child, 0, 0, stdout="2\n")
    s.reply(child, 1, "FINAL(login() checks the token in auth/tokens.py)", depth=depth)
    s.call_end(call, parent_rlm, "login() checks the token in auth/tokens.py", tokens=(0, 0), cost=None)


def demo_run(n_calls: int = 1000, failures: int = 3, depth: int = 2, emit: Callable | None = None,
             stream: bool = False, finish: bool = True, **script: str) -> EventScript:
    """A whole scripted run with ``n_calls`` sub-calls in one step, ``failures`` of them failing;
    ``script`` goes to :class:`EventScript` (``question``, ``run_id``...)."""
    s = EventScript(emit=emit, **script)
    s.reply("r0", 0, "First I'll look at the size.\n```repl\nprint(len(context))\n```", stream=stream)
    s.step_start("r0", 0, 0, "print(len(context))")
    s.step_end("r0", 0, 0, stdout="1234567\n")
    s.reply("r0", 1, "Now fan out over chunks.\n" + FANOUT, stream=stream)
    s.step_start("r0", 1, 0, FANOUT.split("\n", 1)[1].rsplit("```", 1)[0])
    every = max(1, n_calls // max(1, failures)) if failures else 0
    s.batch_queued("r0", 1, 0, n_calls)
    for first in range(0, n_calls, 8):  # eight in flight at a time, like --concurrency 8
        batch = [(i, s.call_start("r0", 1, 0, f"Which auth functions are in this chunk? chunk {i}", batched=True))
                 for i in range(first, min(n_calls, first + 8))]
        for i, call in batch:
            if every and i % every == every - 1:
                s.call_end(call, "r0", error=f"openai/sub: RateLimitError (chunk {i}) (gave up after 7 attempts)",
                           queued_s=0.05 * (i // 8))
            else:
                s.call_end(call, "r0", f"chunk {i}: none", queued_s=0.05 * (i // 8))
    s.batch_done("r0", 1, 0)
    if depth:
        recursive(s, "r0", 1, 0, 1, depth)
    s.step_end("r0", 1, 0, stdout=f"{n_calls}\nlogin() checks the token in auth/tokens.py\n", duration=3.2)
    s.reply("r0", 2, "FINAL(Authentication lives in auth/login.py and auth/tokens.py.)", stream=stream)
    if finish:
        s.finish(answer="Authentication lives in auth/login.py and auth/tokens.py.")
    return s


def main(argv: list[str] | None = None) -> int:
    """Play :func:`demo_run` through the view chosen for stderr, slowly enough to watch."""
    from rlm_cli.run.events import EventBus
    from rlm_cli.view.select import attach_view

    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 200
    bus = EventBus()
    handle = attach_view(bus, quiet=False)
    try:
        def emit(ev) -> None:
            bus.emit(ev)
            time.sleep(0.002 if isinstance(ev, SubCallFinished | SubCallStarted | SubCallSent) else 0.05)

        demo_run(n, emit=emit, stream=handle.stream_root)
    finally:
        handle.close()
    handle.print_answer("**Authentication** lives in `auth/login.py` and `auth/tokens.py`.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
