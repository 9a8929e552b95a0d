"""``--mode``: the RLM loop, or one direct call with the whole input in the prompt.

The paper's own tables (arXiv 2512.24601, section 4) show the bare model ahead of the RLM on short
inputs, and follow-up studies found small root models doing worse with the loop than without it. So
``--mode auto`` answers the way the bare model would (one root call, the input in the prompt, as
``rlm bench``'s ``base`` system does) when the whole input fits the root model's context window with
room for the question and the reply, and runs the loop otherwise; ``direct`` always makes the one
call (an input too large is cut, and the prompt says so); ``rlm`` always runs the loop. The
trajectory's ``mode`` and the ``--json`` answer say which ran.

A direct call is made by :func:`rlm_cli.run.root_call.ask_root`, as every loop iteration is: the
same events (:class:`RlmStarted`, then IterationStarted, RootDelta pieces, RootReply), so the live
view, the budgets and the trajectory treat it like any root call.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rlm_cli.context import CHARS_PER_TOKEN, LoadedContext
from rlm_cli.errors import BudgetExceeded
from rlm_cli.lm.client import FatalLMError
from rlm_cli.run.config import RunState
from rlm_cli.run.events import Notice, RlmStarted
from rlm_cli.run.root_call import ask_root

MODES = ("auto", "rlm", "direct")
"""Values of ``--mode``."""
REPLY_TOKENS = 1_024
"""Tokens kept free in the window for the reply."""
PROMPT_TOKENS = 256
"""Tokens kept free for the instructions and the question (beyond their measured size)."""
TRUNCATION_NOTE = "Note: the input was truncated to fit your context window"
WINDOW_RETRIES = 3
"""Times ``--mode direct`` asks again, the input cut further, after a refusal for its length."""
WINDOW_SHRINK = 0.75
"""Each such retry assumes a window this fraction of the previous one (characters / 4 fell short)."""


class InputTooLong(Exception):
    """``--mode auto``'s direct call was refused for its length: the caller runs the loop instead."""


@dataclass
class DirectPrompt:
    """The one message of a direct call: ``text``; ``input_chars`` (characters of the whole input),
    ``kept_chars`` (characters of it in the prompt) and ``truncated`` (kept < input)."""

    text: str
    input_chars: int
    kept_chars: int

    @property
    def truncated(self) -> bool:
        return self.kept_chars < self.input_chars


def input_budget_chars(window_tokens: int, question: str) -> int:
    """Characters of input that fit a ``window_tokens`` window next to ``question``, the
    instructions and a reply of :data:`REPLY_TOKENS` (0 when nothing fits)."""
    reserve = REPLY_TOKENS + PROMPT_TOKENS + len(question) // CHARS_PER_TOKEN + 1
    return max(0, (window_tokens - reserve) * CHARS_PER_TOKEN)


def build_prompt(context: str, question: str, window_tokens: int) -> DirectPrompt:
    """The direct prompt for ``context`` (the loaded input) and ``question``, the input cut to
    :func:`input_budget_chars` (its start kept) with a note saying so when it is cut."""
    keep = min(len(context), input_budget_chars(window_tokens, question))
    note = ""
    if keep < len(context):
        note = (f"{TRUNCATION_NOTE}: you see only its first {keep:,} of {len(context):,} characters; "
                "the rest is missing.\n\n")
    text = (f"Answer the question about the input below.\n\n{note}<input>\n{context[:keep]}\n</input>\n\n"
            f"{note}Question: {question}\nAnswer concisely.")
    return DirectPrompt(text=text, input_chars=len(context), kept_chars=keep)


def choose_mode(mode: str, loaded: LoadedContext, question: str, window_tokens: int | None,
                continued: bool = False) -> str:
    """``"rlm"`` or ``"direct"`` for ``mode`` (one of :data:`MODES`): ``auto`` is ``direct`` when
    ``window_tokens`` (the root model's window, tokens; None: unknown) holds the whole input
    (``loaded.total_chars`` characters at :data:`~rlm_cli.context.CHARS_PER_TOKEN` a token) beside the
    question, the instructions and a reply, and the run does not continue a conversation (whose REPL
    variables only the loop has). Raises ValueError for an unknown mode."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode != "auto":
        return mode
    if continued or not window_tokens:
        return "rlm"
    return "direct" if loaded.total_chars <= input_budget_chars(window_tokens, question) else "rlm"


@dataclass
class DirectOutcome:
    status: str
    answer: str | None


class DirectInstance:
    """The root of a ``direct`` run: one root LM call over the whole input (no REPL)."""

    repl = None  # no REPL: nothing to keep for a conversation

    def __init__(self, state: RunState, question: str, loaded: LoadedContext, window_tokens: int,
                 opening: list[dict], fallback: bool = False) -> None:
        """``window_tokens``: the root model's window (tokens); ``opening``: the loop's opening
        messages (system prompt, first message: metadata, never the input), kept as the start of a
        conversation's history so that a follow-up continues in the loop; ``fallback`` (``--mode
        auto``): a refusal for the input's length raises :class:`InputTooLong` (the loop runs instead)
        where ``--mode direct`` cuts the input further, up to :data:`WINDOW_RETRIES` times."""
        self.fallback = fallback
        self.state = state
        self.question = question
        self.loaded = loaded
        self.window_tokens = window_tokens
        self.opening = opening

    async def solve(self) -> DirectOutcome:
        """Make the one call and return its reply as the answer (``status`` ``answered``; an empty
        reply: no answer; ``budget_exhausted`` when the budget refuses the call). Raises
        :class:`InputTooLong` (see ``fallback``) and the LM client's errors."""
        state = self.state
        state.bus.emit(RlmStarted("r0", 0, None, self.question))
        context = await asyncio.to_thread(self.loaded.read)
        window = self.window_tokens
        for attempt in range(WINDOW_RETRIES + 1):
            prompt = build_prompt(context, self.question, window)
            if prompt.truncated:
                state.bus.emit(Notice(f"--mode direct: the input was cut to its first {prompt.kept_chars:,} of "
                                      f"{prompt.input_chars:,} characters to fit the root model's window"))
            messages = [{"role": "user", "content": prompt.text}]
            try:
                text = await ask_root(state, "r0", attempt, 0, messages)
                break
            except BudgetExceeded:
                return DirectOutcome("budget_exhausted", None)
            except FatalLMError as exc:  # characters / 4 is an estimate; a tokenizer may need more
                if exc.kind != "context_window":
                    raise
                if self.fallback:
                    raise InputTooLong(str(exc)) from exc
                if attempt == WINDOW_RETRIES or not prompt.kept_chars:
                    raise
                window = int(window * WINDOW_SHRINK)
                state.bus.emit(Notice("--mode direct: the root model refused the input for its length; "
                                      "asking again with less of it"))
        link = state.cfg.session
        if link is not None:  # a follow-up continues in the loop: the history holds no input text
            link.transcript = [*self.opening, {"role": "assistant", "content": text}]
        answer = text.strip() or None
        return DirectOutcome("answered" if answer else "max_iterations", answer)
