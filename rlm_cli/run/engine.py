"""The RLM loop (arXiv 2512.24601, Algorithm 1): the root LM writes code, the REPL runs it, repeat.

:func:`run` drives one top-level run: it owns the :class:`RunState` shared by every depth (LM
client, budget, event bus), enforces ``--timeout`` around everything, and always ends with a
:class:`~rlm_cli.run.events.RunFinished` event, also on error and on cancellation (Ctrl-C). Each RLM
instance (the root, and every recursive ``rlm_query`` child) is an :class:`RlmInstance` with its own
REPL subprocess and append-only message history.

What crosses in from the model is bounded and checked here: a root reply longer than
:data:`~rlm_cli.lm.replies.MAX_REPLY_CHARS` is cut before it enters the history, the trajectory and
the next prompt; a code block left unclosed is not run (the root LM is told); ``FINAL_VAR(name)``
naming no variable is never an answer (its literal text is not printed). A final-variable lookup
that outlives its own timeout is reported as such, never as the ``--timeout`` budget, which only a
run-wide deadline that really expired can exhaust. The run's answer and error message are redacted
of known secrets (:mod:`rlm_cli.secrets`) before they are emitted or returned.

For weak root LMs (measured with a 1.5B model, docs/harness.md and docs/bench.md): a first reply
without runnable code is replaced in the history by the search block the first message offered,
which rlm runs; three identical replies in a row go straight to the last call; a literal ``FINAL``
holding a number the model never read is refused as a guess (:mod:`rlm_cli.run.guesses`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from rlm_cli.context import ContextWriter, LoadedContext
from rlm_cli.errors import BudgetExceeded, RlmError, debug_traceback
from rlm_cli.lm.client import FatalLMError, LMClient
from rlm_cli.lm.errors import short_message
from rlm_cli.loader.tree import render_tree
from rlm_cli.repl.process import ReplProcess
from rlm_cli.repl.steps import FatalStepError
from rlm_cli.run import prompts
from rlm_cli.run.answer_form import formed_answer
from rlm_cli.run.answers import static_prompt_lines
from rlm_cli.run.budget import Budget
from rlm_cli.run.config import RunConfig, RunResult, RunState, now_iso
from rlm_cli.run.direct import DirectInstance, InputTooLong, choose_mode
from rlm_cli.run.endings import Endings, Outcome
from rlm_cli.run.events import (
    EventBus,
    ModeChanged,
    Notice,
    RlmStarted,
    RunFinished,
    RunStarted,
)
from rlm_cli.run.first_block import first_block
from rlm_cli.run.guesses import FinalCheck, invented
from rlm_cli.run.parsing import parse_python, parse_reply
from rlm_cli.run.root_call import ask_root
from rlm_cli.run.steps import Steps
from rlm_cli.secrets import Redactor

STALL_REPLIES = 2  # identical root replies in a row (each run as itself) that end the loop early with a last call
# (135 bench trajectories of the 1.5B root: a reply sent twice came a third time in 55 of 59 cases, the
# other 4 scored 0; the third round of issue 22 stalled at 3)
DEFAULT_SUB_CHARS = 32_000  # prompt size suggested to the root LM when the sub-LM's window is unknown


class RlmInstance(Steps, Endings):
    """One RLM: a REPL over ``loaded`` and a root LM conversation about ``question`` at ``depth``."""

    def __init__(self, state: RunState, rlm_id: str, depth: int, question: str, loaded: LoadedContext,
                 parent_call_id: str | None = None) -> None:
        self.state = state
        self.rlm_id = rlm_id
        self.depth = depth
        self.question = question
        self.loaded = loaded
        self.parent_call_id = parent_call_id
        self.role = "root" if depth == 0 else "sub"
        self.messages: list[dict] = []
        self.repl: ReplProcess | None = None
        self._starting: asyncio.Future | None = None  # the REPL's start, overlapping the first LM call
        self._ran: dict[str, tuple[str | None, int]] = {}  # code run -> (its error, hash of (stdout, stderr))
        # FINALs as the model meant them; guesses refused. A child's prompt may carry the text to read
        # (rlm_query(question + chunk)): an answer taken from it is no echo there.
        self._finals = FinalCheck(question, echo=depth == 0)
        self._outputs: list[str] = []  # each step's stdout, as the root LM was shown it
        self._errors: list[str] = []  # each failed step's error line ("NameError: name 'x' is not defined")
        self._prompt_text: list[str] = []  # lines of rlm's own prompts: never an answer
        self._blind_guess = ""  # a literal FINAL refused as a guess before any output was read or printed: what to tell
        self._replaced = False  # the last reply was not run itself: rlm ran the offered block in its place

    async def solve(self) -> Outcome:
        """Run the loop until an answer, the iteration limit or a budget. Always closes the REPL."""
        state = self.state
        state.bus.emit(RlmStarted(self.rlm_id, self.depth, self.parent_call_id, self.question))
        repl_dir = state.workdir / self.rlm_id
        link = state.cfg.session if self.depth == 0 else None  # the root of a session: its REPL is kept
        warm = state.cfg.make_repl if self.depth == 0 and link is None else None
        self.repl = (warm and warm(self.loaded, repl_dir)) or ReplProcess(
            self.loaded.path, self.loaded.index(), repl_dir,
            network=state.cfg.repl_network,  # the sandbox is planned as it starts, off the event loop
            state_in=link.repl_state if link else None, keep_state=link is not None)
        state.repls.add(self.repl)
        cancelled = False
        try:
            if link is None or link.repl_state is None:  # the REPL starts while the first LM call is made
                self._starting = asyncio.ensure_future(self._start_repl())
            else:  # a continued session's opening reports what the REPL restored
                await self._start_repl()
            return await self._loop()
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            starting = self._starting
            if starting is not None and not starting.done() and (cancelled or link is None):
                starting.cancel()  # (a session's REPL, still starting, is waited for: its variables are kept)
            if starting is not None:
                with contextlib.suppress(BaseException):
                    await starting  # its failure was raised at the first step, if one came
            if link is None:  # a session's root REPL saves its variables first (run() closes it)
                await self.repl.close()
                state.repls.discard(self.repl)

    async def _start_repl(self) -> None:
        assert self.repl is not None
        await self.repl.start()
        for note in self.repl.sandbox.notices:
            self.state.bus.emit(Notice(note))

    async def _repl_ready(self) -> None:
        """Wait for the REPL's start (begun by :meth:`solve`); raises its ReplError if it failed."""
        if self._starting is not None:
            await asyncio.shield(self._starting)

    async def _loop(self) -> Outcome:
        state, lim = self.state, self.state.limits
        link = state.cfg.session if self.depth == 0 else None
        opening = None
        if link is not None:
            opening = await link.opening(self.question, self.loaded, self.repl and self.repl.restore_report,
                                         state.root_model)
        self.messages = opening or first_messages(state, self.question, self.loaded, self.depth)
        if link is not None:
            link.transcript = self.messages  # appended to in place from here on
        self._prompt_text = static_prompt_lines(
            *(m["content"] for m in self.messages[:1] if m["role"] == "system"),
            prompts.first_message(self.question, self.loaded, ""), exclude=self.question)
        previous, repeats = None, 0
        for index in range(lim.max_iterations):
            try:
                reply = await self._ask(index)
            except BudgetExceeded:
                return await self._last_call(index, "budget_exhausted")
            except FatalLMError as exc:
                if exc.kind != "context_window" or index == 0:
                    raise
                return await self._history_full(index)
            parsed = parse_reply(reply)
            # the same code (a weak model also copies the status line, whose numbers change), or the same text
            signature = tuple(b.strip() for b in parsed.blocks) or reply.strip()
            if self._replaced:  # sent again after the offered block ran in its place, it meets new state
                previous, self._replaced = None, False
            repeats = repeats + 1 if signature == previous else 0
            previous = signature
            if repeats + 1 >= STALL_REPLIES:
                try:
                    state.budget.check_call()  # a spent budget is the harder stop: its status and exit code
                except BudgetExceeded:
                    return await self._last_call(index + 1, "budget_exhausted")
                state.bus.emit(Notice(f"the root LM sent the same reply {repeats + 1} times in a row; "
                                      "it was asked for its best answer early"))
                return await self._last_call(index + 1, "max_iterations", stalled=repeats + 1)
            if parsed.blocks and not self._ran and all(parse_python(b) is None for b in parsed.blocks):
                await self._run_first_block(index)  # fences around prose ("Error: file not found"): no code
            elif parsed.blocks:
                answer, feedback = await self._run_blocks(index, parsed.blocks)
                if answer is not None and (why := self._why(answer)) is None:
                    return Outcome("answered", answer)
                if self._blind_guess:  # the worked example's FINAL("12345") copied before anything ran
                    told, self._blind_guess = self._blind_guess, ""
                    await self._run_first_block(index, "the root LM answered before reading any output (a guess)",
                                                told)
                    continue
                if answer is not None:
                    feedback.append(prompts.NOT_AN_ANSWER.format(what=why))
                if parsed.final_beside_code:
                    feedback.append(prompts.FINAL_BESIDE_CODE)
                if parsed.unclosed_block:
                    feedback.append(prompts.UNCLOSED)
                if state.budget.exhausted:
                    return await self._last_call(index + 1, "budget_exhausted")
                self._send(index, feedback)
            elif parsed.final_text is not None and not self._ran and invented(parsed.final_text, self._read()):
                await self._run_first_block(index)  # numbers chosen before any code ran: a guess
            elif parsed.final_text is not None and not self._ran and self._finals.restates(parsed.final_text):
                await self._run_first_block(index, "the root LM answered with the question's own words before "
                                            "reading any output", prompts.RAN_FIRST_BLOCK_ECHO)
            elif parsed.final_text is not None:
                text = parsed.final_text
                if text.strip().isidentifier():
                    value, _ = await self._read_var(text.strip())
                    text = value if value is not None else text  # FINAL(name) of a variable: its value
                if (why := self._why(text)) is None:
                    return Outcome("answered", text)
                self.messages.append({"role": "user", "content": prompts.NOT_AN_ANSWER.format(what=why)})
            elif parsed.final_var is not None:
                value, problem = await self._read_var(parsed.final_var, restart=True)
                if value is None and not self._ran:  # a variable of code that never ran: an imagined output
                    await self._run_first_block(index)
                    continue
                if value is not None and (why := self._why(value)) is None:
                    return Outcome("answered", value)
                if value is not None:
                    problem = prompts.NOT_AN_ANSWER.format(what=why)
                if parsed.other_case_final:
                    problem = prompts.LOWER_FINAL.format(word=parsed.other_case_final)
                self.messages.append({"role": "user", "content": problem})
            elif parsed.other_case_final:
                self.messages.append({"role": "user", "content": prompts.LOWER_FINAL.format(
                    word=parsed.other_case_final)})
            elif parsed.unclosed_block:
                self.messages.append({"role": "user", "content": prompts.UNCLOSED})
            elif not self._ran and not parsed.untagged_code:  # no code yet: prose, or an imagined output
                await self._run_first_block(index)
            else:
                nudge = prompts.NUDGE + (prompts.UNTAGGED if parsed.untagged_blocks else "")
                nudge += prompts.EMPTY_BLOCK if parsed.empty_blocks else ""
                self.messages.append({"role": "user", "content": nudge})
        return await self._last_call(lim.max_iterations, "max_iterations")

    async def _run_first_block(self, index: int, why: str = "the root LM's first reply had no code",
                               told: str = prompts.RAN_FIRST_BLOCK) -> None:
        """Before any code has run, a reply with neither code nor an answer (or with invented numbers
        as its answer, or with only blocks that are not Python) is replaced in the history by the first block the first message offered, and
        rlm runs that block (a search for the question's words) as this iteration's step. Small models
        copy their own last reply verbatim from then on (seen: eight identical replies in a row), and
        often write what the block would print instead of the block: left in the history, such a reply
        is repeated, not corrected. The real reply stays in the trajectory; a notice says what rlm did."""
        block = first_block(self.question)
        self._replaced = True
        self.messages[-1] = {"role": "assistant", "content": f"```repl\n{block}\n```"}
        self.state.bus.emit(Notice(f"{why}; rlm ran the search it had offered", level="info"))
        _answer, feedback = await self._run_blocks(index, [block])
        self._send(index, [*feedback, told])

    def _send(self, index: int, feedback: list[str]) -> None:
        """The user message closing iteration ``index``: the feedback parts, then where the run stands."""
        status = prompts.continue_note(index, self.state.limits.max_iterations, self.state.budget.status_line())
        self.messages.append({"role": "user", "content": "\n\n".join([*feedback, status])})

    async def _ask(self, index: int, final_call: bool = False, messages: list[dict] | None = None) -> str:
        """One root LM call over the history (or over ``messages``, which are not kept); appends the
        reply to the history when it was sent. Raises BudgetExceeded when refused."""
        text = await ask_root(self.state, self.rlm_id, index, self.depth,
                              self.messages if messages is None else messages, role=self.role, final_call=final_call)
        if messages is None:
            self.messages.append({"role": "assistant", "content": text})
        return text

    async def _run_child(self, prompt: str, context: str | None, call_id: str, depth: int) -> str:
        """``rlm_query``: a child RLM over ``context`` (default: this RLM's context)."""
        state = self.state
        child_id = f"{self.rlm_id}.{next(state.ids)}"
        loaded = self.loaded
        if context is not None:
            # Not in any REPL's working directory: only the parent writes there (see ContextWriter).
            contexts = state.workdir / "_contexts"
            contexts.mkdir(mode=0o700, exist_ok=True)
            writer = ContextWriter(contexts / f"{child_id}.txt")
            writer.add("<rlm_query context>", context)
            loaded = writer.finish()
        child = RlmInstance(state, child_id, depth, prompt, loaded, parent_call_id=call_id)
        try:
            outcome = await child.solve()
        except FatalLMError as exc:
            if exc.kind in ("auth", "not_found"):
                raise FatalStepError(str(exc)) from exc
            return f"Error: {exc}"
        if outcome.answer is None:
            return f"Error: the recursive RLM ended without an answer ({outcome.status})"
        return outcome.answer


def first_messages(state: RunState, question: str, loaded: LoadedContext, depth: int) -> list[dict]:
    """The loop's opening messages for an RLM at ``depth``: the system prompt and the first user
    message (the question and the context's metadata, never the context)."""
    lim = state.limits
    return [
        {"role": "system", "content": prompts.system_prompt(
            loaded, state.sub_model, lim.max_output_chars, state.cfg.sub_chars or DEFAULT_SUB_CHARS,
            depth, lim.max_depth, state.cfg.system_extra)},
        {"role": "user", "content": prompts.first_message(question, loaded, render_tree(loaded.files, 4000))},
    ]


def sub_chars_for(model: str) -> int:
    """Characters a sub-LM prompt should stay under: from the context window in litellm's bundled
    model map (3 chars per token, leaving room for the reply), capped at 400,000;
    :data:`DEFAULT_SUB_CHARS` when unknown. Never imports litellm (:mod:`rlm_cli.lm.pricing`)."""
    from rlm_cli.lm.pricing import context_window

    try:
        tokens = context_window(model)
    except Exception:
        tokens = None
    return min(400_000, int(tokens) * 3) if tokens else DEFAULT_SUB_CHARS


async def run(cfg: RunConfig, loaded: LoadedContext, lm: LMClient, bus: EventBus, workdir: Path) -> RunResult:
    """Run one top-level RLM over ``loaded``. Emits RunStarted ... RunFinished on ``bus``.

    Never raises for run failures (they become ``status="error"``); re-raises cancellation after
    emitting RunFinished with status ``interrupted``. Every REPL process is killed before returning.
    """
    budget = Budget(cfg.limits)
    lm.concurrency = cfg.limits.concurrency
    state = RunState(cfg=cfg, lm=lm, budget=budget, bus=bus, workdir=Path(workdir))
    if cfg.sub_chars is None:
        from rlm_cli.lm.pricing import model_info

        model_info(cfg.sub_model, cfg.root_model)  # one parse of the price map for both models
        cfg.sub_chars = sub_chars_for(cfg.sub_model)
    t0 = time.monotonic()
    from rlm_cli.lm.pricing import context_window

    window = cfg.window_tokens or context_window(cfg.root_model)
    mode = choose_mode(cfg.mode, loaded, cfg.question, window,
                       continued=cfg.session is not None and cfg.session.continued)
    bus.emit(RunStarted(cfg.run_id, cfg.question, cfg.root_model, cfg.sub_model, loaded.log_dict(),
                        cfg.limits.as_dict(), now_iso(), mode))
    result = RunResult("error", None)
    if mode == "direct":
        from rlm_cli.run.session import DEFAULT_WINDOW_TOKENS

        root = DirectInstance(state, cfg.question, loaded, window or DEFAULT_WINDOW_TOKENS,
                              first_messages(state, cfg.question, loaded, 0), fallback=cfg.mode == "auto")
    else:
        root = RlmInstance(state, "r0", 0, cfg.question, loaded)
    deadline = asyncio.timeout(cfg.limits.timeout)
    try:
        try:
            async with deadline:
                try:
                    outcome = await root.solve()
                except InputTooLong as exc:  # auto: the input did not fit after all; the loop answers
                    bus.emit(Notice(f"--mode auto: the input did not fit the root model's window after all ({exc}); "
                                    "the loop runs instead", level="info"))
                    bus.emit(ModeChanged("rlm"))
                    root = RlmInstance(state, "r0", 0, cfg.question, loaded)
                    outcome = await root.solve()
            result = RunResult(outcome.status, formed_answer(cfg.question, outcome.answer, bus),
                               exhausted=budget.exhausted)
        except TimeoutError as exc:
            if not deadline.expired():  # some inner wait timed out: an error, not the --timeout budget
                raise RlmError(f"an internal wait timed out ({str(exc) or 'TimeoutError'})") from exc
            budget.exhausted = budget.exhausted or "timeout"
            result = RunResult("budget_exhausted", None, exhausted="timeout")
        if result.status == "budget_exhausted":
            result.error = {"type": "budget", "message": f"budget exhausted: {result.exhausted}"}
        if cfg.session is not None and root.repl is not None:  # outside --timeout: its own bound
            await cfg.session.keep(root.repl)
    except asyncio.CancelledError:
        result = RunResult("interrupted", None, {"type": "interrupted", "message": "interrupted by the user"})
        raise
    except RlmError as exc:
        result = RunResult("error", None, {"type": type(exc).__name__, "message": str(exc)})
    except Exception as exc:  # a bug or an unexpected library failure: still end cleanly
        debug_traceback(exc)
        result = RunResult("error", None, {"type": type(exc).__name__,
                                           "message": short_message(exc) or type(exc).__name__})
    finally:
        for repl in list(state.repls):
            with contextlib.suppress(Exception):
                await asyncio.shield(repl.close())
        redactor = Redactor()
        result.answer, result.error = redactor.obj(result.answer), redactor.obj(result.error)
        bus.emit(RunFinished(result.status, result.answer, result.error, budget.usage_dict(), now_iso(),
                             time.monotonic() - t0, {"exhausted": result.exhausted}))
    return result
