"""Serving the REPL's sub-call requests: ``llm_query``, ``llm_query_batched``, ``rlm_query``,
``rlm_query_batched``.

Everything in a request comes from model-written code and is validated here: prompts must be
strings, a ``model=`` name must be one the user chose or allowed (the root model, the sub-model, a
configured alias or its target, an ``--allow-model``), and with ``--max-cost`` it must have a price.
Anything else is an ``Error: ...`` string for the code, with no request made and no sub-call counted.

Every sub-call first reserves a slot in the run's :class:`~rlm_cli.run.budget.Budget` (over all depths,
calls in flight included). A refused or failed call becomes an error string for the model's code,
which keeps running; an authentication error or unknown model ends the run
(:class:`~rlm_cli.repl.steps.FatalStepError`).

Batches hold at most :data:`MAX_BATCH` items (a longer one is refused whole, as one error string).
They run in input order on at most ``--concurrency`` worker tasks, never one task per item; once the
budget refuses a call, the items not yet started all get one shared error string, without per-item
work. Recursive RLMs hold a slot while their REPL lives: at most ``--concurrency`` child RLMs per depth
run at once, so a run never has more than ``1 + concurrency * max_depth`` live REPL processes. Slots
are per depth, so a parent waiting for its children never holds a slot they need (no deadlock).
``rlm_query`` at the depth limit degrades to ``llm_query``.

A sub-call is *queued* from the moment the code asked for it (for a batch item: the moment the batch
was asked for) until it is sent: an llm call once its request holds one of the run's ``--concurrency``
LM slots (:meth:`~rlm_cli.lm.client.LMClient.complete`'s ``on_sent``), an rlm call once its child got a
live-REPL slot. Events say so (:class:`~rlm_cli.run.events.BatchQueued`, ``SubCallStarted``,
``SubCallSent``, ``SubCallFinished``, ``BatchDone``), and a call's ``duration_s`` counts from sending,
its ``queued_s`` the wait before.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlm_cli.errors import BudgetExceeded, ProviderError
from rlm_cli.lm.client import FatalLMError
from rlm_cli.lm.replies import clip_reply
from rlm_cli.repl.steps import FatalStepError
from rlm_cli.run.answers import MIN_QUESTION_WORDS, words
from rlm_cli.run.events import (
    BatchDone,
    BatchQueued,
    Notice,
    SubCallFinished,
    SubCallSent,
    SubCallStarted,
    Usage,
)
from rlm_cli.settings.resolve import expand_alias

if TYPE_CHECKING:
    from rlm_cli.run.config import RunState

MAX_BATCH = 10_000
"""Most items one ``llm_query_batched``/``rlm_query_batched`` call may hold."""

MAX_OWN_CHARS = 40  # characters of words beside the question in a prompt that is "the question alone"
QUESTION_ALONE = ("Error: not sent: this prompt is the user's question with no text to read, and the sub-LM "
                  "sees only its prompt, never `context`. Put the text it should read into the prompt, e.g. "
                  "llm_query(question + \"\\n\\n\" + chunk) with chunk a slice of context or lines from grep()")


def question_alone(prompt: str, question: str) -> bool:
    """Whether a sub-LM ``prompt`` is the run's ``question`` and nothing to read: the question's words
    (at least :data:`MIN_QUESTION_WORDS`) with at most :data:`MAX_OWN_CHARS` characters of other words
    ("Answer this: <question>"). Such a call can only make up an answer: a 1.5B root sent
    ``llm_query_batched([question, question])`` in 5 of 75 bench runs (14 of 27 sub-calls; issue 22),
    and its sub-LM invented users and pairs for two minutes."""
    asked_words = words(question)
    if len(asked_words) < MIN_QUESTION_WORDS:  # a shorter question may be a fair sub-LM prompt
        return False
    asked, said = " ".join(asked_words), " ".join(words(prompt))
    return asked in said and len(said) - len(asked) <= MAX_OWN_CHARS

_call_ids = itertools.count(1)

# A child RLM runner: (prompt, context text or None, parent call id, depth) -> answer text.
ChildRunner = Callable[[str, str | None, str, int], Awaitable[str]]


def shown(value: Any, limit: int = 80) -> str:
    """``value`` for an error message: its ``repr`` (control characters escaped), at most ``limit``
    characters of it (longer values are cut and say so)."""
    text = repr(value[:limit + 1] if isinstance(value, str) else value)
    return text if len(text) <= limit else text[:limit] + "...(cut)"


def allowed_models(cfg: Any) -> set[str]:
    """The model names ``llm_query(model=...)`` may use for a run configured by ``cfg`` (a
    :class:`~rlm_cli.run.config.RunConfig`): root model, sub-model, alias names and targets, and
    ``allowed_models`` (``--allow-model``)."""
    aliases = cfg.model_aliases or {}
    return {cfg.root_model, cfg.sub_model, *aliases, *aliases.values(), *(cfg.allowed_models or ())}


def has_price(model: str, prices: dict) -> bool:
    """Whether calls to ``model`` can be priced: a ``--price`` for it, or litellm's price map."""
    if model in prices:
        return True
    from rlm_cli.lm.pricing import has_price as listed

    try:
        return listed(model)
    except Exception:
        return False


class _Refused(Exception):
    """A budget refused a batch item: the batch stops starting calls."""

    def __init__(self, exc: BudgetExceeded) -> None:
        super().__init__(str(exc))
        self.exc = exc


@dataclass
class _Batch:
    """One batch being served: when the code asked for it (``time.monotonic()``) and how many of its
    calls have been started (announced by ``SubCallStarted``)."""

    asked: float
    started: int = 0


@dataclass
class _Call:
    """One sub-call being served: its id, when it was asked for and when it was sent
    (``time.monotonic()`` seconds; ``sent`` None while queued)."""

    call_id: str
    asked: float
    sent: float | None = None


@dataclass
class StepRef:
    """Where sub-calls come from: the RLM instance, its iteration and code step, and its depth."""

    rlm_id: str
    index: int
    step: int
    depth: int


class SubCallRouter:
    """Serves one step's requests for the RLM instance at ``ref.depth``.

    Called as ``await router(op, args)`` with the child's request; returns a ``str`` (single calls,
    and whole-batch errors) or a ``list[str]`` (batches, in input order). Raises
    :class:`FatalStepError` only for errors that end the run (provider authentication, unknown model).
    """

    def __init__(self, state: RunState, ref: StepRef, run_child: ChildRunner, question: str = "") -> None:
        self.state = state
        self.ref = ref
        self.run_child = run_child
        self.question = question  # this RLM's question: a sub-LM prompt that is only this is not sent
        self._model_notice = False

    async def __call__(self, op: Any, args: Any):
        args = args if isinstance(args, dict) else {}
        if op == "llm_query":
            model, error = self.resolve_model(args.get("model"))
            return error or await self._one(self._llm_call, args.get("prompt"), model)
        if op == "llm_query_batched":
            return await self.llm_batch(args.get("prompts"), args.get("model"))
        if op == "rlm_query":
            return await self._one(self._rlm_call, args.get("prompt"), args.get("context"))
        if op == "rlm_query_batched":
            return await self.rlm_batch(args.get("prompts"), args.get("contexts"))
        return f"Error: unknown request {shown(op)}"

    # -- models ----------------------------------------------------------------------------------
    def resolve_model(self, model: Any) -> tuple[str, str | None]:
        """``(model to call, None)`` for a ``model=`` argument (None or ``""``: the sub-model), or
        ``("", error string)`` when it is not a string, not allowed, or unpriced under ``--max-cost``."""
        state = self.state
        if model is None or model == "":
            return state.sub_model, None
        if not isinstance(model, str):
            return "", f"Error: model must be a string naming a model, not {type(model).__name__}"
        cfg = state.cfg
        target = expand_alias(model, cfg.model_aliases or {})
        allowed = allowed_models(cfg)
        if model not in allowed and target not in allowed:
            if not self._model_notice:
                self._model_notice = True
                state.bus.emit(Notice(f"model code asked for model {shown(model)}, which is not allowed; it got "
                                      "an error string (allow a model with --allow-model)"))
            names = ", ".join(sorted(allowed))
            names = names if len(names) <= 500 else names[:500] + "..."
            return "", (f"Error: model {shown(model)} is not allowed; allowed: {names}; the user can allow it "
                        "with --allow-model")
        if state.limits.max_cost is not None and not has_price(target, getattr(state.lm, "prices", {}) or {}):
            return "", (f"Error: model {shown(target)} has no known price and a cost budget (--max-cost) is set; "
                        f"the user can price it with --price {target}=IN/OUT (USD per million tokens)")
        return target, None

    # -- events and refusals ---------------------------------------------------------------------
    def _start(self, kind: str, model: str, prompt: str, batch: _Batch | None = None) -> _Call:
        """Announce a sub-call the code asked for (queued until :meth:`_sent`)."""
        call = _Call(f"c{next(_call_ids)}", time.monotonic() if batch is None else batch.asked)
        if batch is not None:
            batch.started += 1
        self.state.bus.emit(SubCallStarted(call.call_id, self.ref.rlm_id, self.ref.index, self.ref.step, kind,
                                           model, prompt, batch is not None))
        return call

    def _sent(self, call: _Call) -> None:
        """``call`` stops waiting: its request goes out (or its child RLM starts)."""
        if call.sent is None:
            call.sent = time.monotonic()
            self.state.bus.emit(SubCallSent(call.call_id, self.ref.rlm_id, call.sent - call.asked))

    def _finish(self, call: _Call, response: str | None, usage: Usage, error: str | None) -> None:
        now = time.monotonic()
        sent = now if call.sent is None else call.sent
        self.state.bus.emit(SubCallFinished(call.call_id, self.ref.rlm_id, response, usage, now - sent, error,
                                            sent - call.asked))

    def _refused(self, exc: BudgetExceeded, count: int = 1) -> str:
        """``count`` sub-calls a budget refused: counted, not logged one by one (a model may ask for
        thousands more), with one notice the first time. Returns the error string they all get."""
        budget = self.state.budget
        first = budget.refused_sub_calls == 0
        budget.refused_sub_calls += count
        if first and count:
            self.state.bus.emit(Notice(f"{exc}; further sub-calls return an error string to the code"))
        return f"Error: budget exhausted ({exc.budget}): {exc}; no more sub-calls can be made"

    def _reserve(self) -> None:
        """Reserve one sub-call; raises :class:`_Refused` when a budget refuses it."""
        try:
            self.state.budget.reserve_sub_call()
        except BudgetExceeded as exc:
            raise _Refused(exc) from None

    async def _one(self, call: Callable[..., Awaitable[str]], *args: Any) -> str:
        try:
            return await call(*args)
        except _Refused as refused:
            return self._refused(refused.exc)

    # -- single calls ----------------------------------------------------------------------------
    async def llm(self, prompt: str, model: str | None = None, kind: str = "llm") -> str:
        """One sub-LM call with ``model`` checked (see :meth:`resolve_model`); returns its reply, or an
        ``Error: ...`` string."""
        target, error = self.resolve_model(model)
        return error or await self._one(self._llm_call, prompt, target, kind)

    async def _llm_call(self, prompt: Any, model: str, kind: str = "llm", batch: _Batch | None = None) -> str:
        """One sub-LM call to an already checked ``model`` (an item of ``batch``, if given); raises
        :class:`_Refused` when the budget refuses it."""
        if not isinstance(prompt, str):
            return f"Error: the prompt must be a string, not {type(prompt).__name__}"
        state = self.state
        if question_alone(prompt, self.question):  # not sent, not counted
            if "question alone" not in state.noticed:
                state.noticed.add("question alone")
                state.bus.emit(Notice("model code sent the question alone to a sub-LM, with no text to read; "
                                      "it was not sent and the code got an error string"))
            return QUESTION_ALONE
        self._reserve()
        call = self._start(kind, model, prompt, batch)
        try:
            result = await state.lm.complete(model, [{"role": "user", "content": prompt}], role="sub",
                                             on_sent=lambda: self._sent(call))
        except FatalLMError as exc:
            self._finish(call, None, Usage(), str(exc))
            if exc.kind in ("auth", "not_found"):
                raise FatalStepError(str(exc)) from exc
            return f"Error: {exc}"
        except ProviderError as exc:
            self._finish(call, None, Usage(), str(exc))
            return f"Error: {exc}"
        state.budget.record(model, result.usage, "sub")
        text = clip_reply(result.text)  # a provider's reply is hostile input too: bounded before the REPL
        self._finish(call, text, result.usage, None)
        return text

    async def rlm(self, prompt: str, context: str | None) -> str:
        """A recursive RLM one level deeper, or a sub-LM call at the depth limit; an ``Error: ...``
        string when refused or failed."""
        return await self._one(self._rlm_call, prompt, context)

    async def _rlm_call(self, prompt: Any, context: Any, batch: _Batch | None = None) -> str:
        state = self.state
        if not isinstance(prompt, str):
            return f"Error: the prompt must be a string, not {type(prompt).__name__}"
        if context is not None and not isinstance(context, str):
            return f"Error: the context must be a string or None, not {type(context).__name__}"
        depth = self.ref.depth + 1
        if depth > state.limits.max_depth:
            text = prompt if context is None else f"{prompt}\n\n---\n{context}"
            return await self._llm_call(text, state.sub_model, batch=batch)
        self._reserve()
        slots = state.child_slots.get(depth)
        if slots is None:
            slots = state.child_slots[depth] = asyncio.Semaphore(max(1, state.limits.concurrency))
        call = self._start("rlm", state.root_model, prompt, batch)  # queued until a slot is free
        async with slots:  # held while the child's REPL lives
            self._sent(call)
            try:
                answer = await self.run_child(prompt, context, call.call_id, depth)
            except FatalStepError:
                raise
            except (ProviderError, BudgetExceeded) as exc:
                self._finish(call, None, Usage(), str(exc))
                return f"Error: {exc}"
        self._finish(call, answer, Usage(), None)
        return answer

    # -- batches ---------------------------------------------------------------------------------
    def _batch_error(self, name: str, items: Any) -> str | None:
        if not isinstance(items, list):
            return f"Error: {name}: prompts must be a list of strings, not {type(items).__name__}"
        if len(items) > MAX_BATCH:
            return (f"Error: {name}: {len(items):,} prompts; a batch holds at most {MAX_BATCH:,} "
                    "(split the work, and mind the sub-call budget)")
        return None

    async def llm_batch(self, prompts: Any, model: Any = None) -> str | list[str]:
        """``llm_query_batched``: replies in input order (error strings for failed or refused items), or
        one error string when ``prompts`` is not a list or is longer than :data:`MAX_BATCH`."""
        error = self._batch_error("llm_query_batched", prompts)
        if error:
            return error
        target, error = self.resolve_model(model)
        if error:
            return [error] * len(prompts)
        return await self._batch(len(prompts), lambda i, batch: self._llm_call(prompts[i], target, batch=batch))

    async def rlm_batch(self, prompts: Any, contexts: Any = None) -> str | list[str]:
        """``rlm_query_batched``: like :meth:`llm_batch`; ``contexts`` is None or a list as long as
        ``prompts`` (each a string or None)."""
        error = self._batch_error("rlm_query_batched", prompts)
        if error:
            return error
        if contexts is not None and (not isinstance(contexts, list) or len(contexts) != len(prompts)):
            return "Error: rlm_query_batched: contexts must be None or a list as long as prompts"
        return await self._batch(len(prompts), lambda i, batch: self._rlm_call(
            prompts[i], None if contexts is None else contexts[i], batch))

    async def _batch(self, count: int, call: Callable[[int, _Batch], Awaitable[str]]) -> list[str]:
        """Run ``call(i, batch)`` for ``i`` in ``range(count)``, in order, on at most ``--concurrency``
        worker tasks; once the budget refuses one, the items not started get one shared refusal string.
        The calls that may start are announced as queued (``BatchQueued``) up front, the ones that did
        not given back at the end (``BatchDone``)."""
        if count == 0:
            return []
        try:
            allowance = self.state.budget.batch_allowance(count)
        except BudgetExceeded as exc:
            return [self._refused(exc, count)] * count
        ref, batch = self.ref, _Batch(time.monotonic())
        self.state.bus.emit(BatchQueued(ref.rlm_id, ref.index, ref.step, allowance))
        results: list[str | None] = [None] * count
        indexes = iter(range(count))
        stopped: list[BudgetExceeded] = []

        async def worker() -> None:
            for i in indexes:
                if stopped:
                    return
                try:
                    results[i] = await call(i, batch)
                except _Refused as refused:
                    stopped.append(refused.exc)
                    return

        workers = [asyncio.ensure_future(worker())
                   for _ in range(max(1, min(allowance, self.state.limits.concurrency)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            self.state.bus.emit(BatchDone(ref.rlm_id, ref.index, ref.step, max(0, allowance - batch.started)))
        missing = results.count(None)
        if missing:
            exc = stopped[0] if stopped else BudgetExceeded("sub_calls", "the sub-call budget ran out")
            text = self._refused(exc, missing)
            results = [text if r is None else r for r in results]
        return results  # type: ignore[return-value]
