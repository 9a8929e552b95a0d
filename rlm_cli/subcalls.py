"""Serving the REPL's sub-call requests: ``llm_query``, ``llm_query_batched``, ``rlm_query``,
``rlm_query_batched``.

Every sub-call first reserves a slot in the run's :class:`~rlm_cli.budget.Budget` (over all depths,
calls in flight included). A refused or failed call becomes an error string for the model's code,
which keeps running; an authentication error or unknown model ends the run
(:class:`~rlm_cli.repl.process.FatalStepError`). Batches run concurrently, bounded by the run-wide LM
semaphore (``--concurrency``). ``rlm_query`` at the depth limit degrades to ``llm_query``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rlm_cli.errors import BudgetExceeded, ProviderError
from rlm_cli.events import Notice, SubCallFinished, SubCallStarted, Usage
from rlm_cli.lm import FatalLMError
from rlm_cli.repl.process import FatalStepError

if TYPE_CHECKING:
    from rlm_cli.engine import RunState

_call_ids = itertools.count(1)

# A child RLM runner: (prompt, context text or None, parent call id, depth) -> answer text.
ChildRunner = Callable[[str, str | None, str, int], Awaitable[str]]


@dataclass
class StepRef:
    """Where sub-calls come from: the RLM instance, its iteration and code step, and its depth."""

    rlm_id: str
    index: int
    step: int
    depth: int


class SubCallRouter:
    """Serves one step's requests for the RLM instance at ``ref.depth``."""

    def __init__(self, state: RunState, ref: StepRef, run_child: ChildRunner) -> None:
        self.state = state
        self.ref = ref
        self.run_child = run_child

    async def __call__(self, op: str, args: dict):
        if op == "llm_query":
            return await self.llm(args.get("prompt", ""), args.get("model"))
        if op == "llm_query_batched":
            prompts = args.get("prompts") or []
            return list(await asyncio.gather(*(self.llm(p, args.get("model")) for p in prompts)))
        if op == "rlm_query":
            return await self.rlm(args.get("prompt", ""), args.get("context"))
        if op == "rlm_query_batched":
            prompts = args.get("prompts") or []
            contexts = args.get("contexts") or [None] * len(prompts)
            return list(await asyncio.gather(*(self.rlm(p, c) for p, c in zip(prompts, contexts, strict=False))))
        return f"Error: unknown request {op!r}"

    def _start(self, kind: str, model: str, prompt: str) -> tuple[str, float]:
        call_id = f"c{next(_call_ids)}"
        self.state.bus.emit(SubCallStarted(call_id, self.ref.rlm_id, self.ref.index, self.ref.step, kind,
                                           model, prompt))
        return call_id, time.monotonic()

    def _finish(self, call_id: str, t0: float, response: str | None, usage: Usage, error: str | None) -> None:
        self.state.bus.emit(SubCallFinished(call_id, self.ref.rlm_id, response, usage,
                                            time.monotonic() - t0, error))

    def _refused(self, exc: BudgetExceeded) -> str:
        """A sub-call a budget refused: counted, not logged one by one (a model may ask for thousands
        more), with one notice the first time."""
        budget = self.state.budget
        budget.refused_sub_calls += 1
        if budget.refused_sub_calls == 1:
            self.state.bus.emit(Notice(f"{exc}; further sub-calls return an error string to the code"))
        return f"Error: budget exhausted ({exc.budget}): {exc}; no more sub-calls can be made"

    async def llm(self, prompt: str, model: str | None = None, kind: str = "llm") -> str:
        """One sub-LM call; returns its reply, or an ``Error: ...`` string."""
        state = self.state
        model = state.cfg.model_aliases.get(model, model) if model else state.sub_model
        try:
            state.budget.reserve_sub_call()
        except BudgetExceeded as exc:
            return self._refused(exc)
        call_id, t0 = self._start(kind, model, prompt)
        try:
            result = await state.lm.complete(model, [{"role": "user", "content": prompt}], role="sub")
        except FatalLMError as exc:
            self._finish(call_id, t0, None, Usage(), str(exc))
            if exc.kind in ("auth", "not_found"):
                raise FatalStepError(str(exc)) from exc
            return f"Error: {exc}"
        except ProviderError as exc:
            self._finish(call_id, t0, None, Usage(), str(exc))
            return f"Error: {exc}"
        state.budget.record(model, result.usage, "sub")
        self._finish(call_id, t0, result.text, result.usage, None)
        return result.text

    async def rlm(self, prompt: str, context: str | None) -> str:
        """A recursive RLM one level deeper, or a sub-LM call at the depth limit."""
        state = self.state
        if self.ref.depth + 1 > state.limits.max_depth:
            text = prompt if context is None else f"{prompt}\n\n---\n{context}"
            return await self.llm(text)
        try:
            state.budget.reserve_sub_call()
        except BudgetExceeded as exc:
            return self._refused(exc)
        call_id, t0 = self._start("rlm", state.root_model, prompt)
        try:
            answer = await self.run_child(prompt, context, call_id, self.ref.depth + 1)
        except FatalStepError:
            raise
        except (ProviderError, BudgetExceeded) as exc:
            self._finish(call_id, t0, None, Usage(), str(exc))
            return f"Error: {exc}"
        self._finish(call_id, t0, answer, Usage(), None)
        return answer
