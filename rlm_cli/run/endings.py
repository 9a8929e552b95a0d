"""How an RLM instance ends without a clean ``FINAL``: the last call for the best answer, its checks
and the one rescue call (see :mod:`rlm_cli.run.answers` and docs/harness.md).

:class:`Endings` is a part of :class:`rlm_cli.run.engine.RlmInstance` kept in its own module; it uses
the instance's ``state``, ``question``, ``messages``, ``_outputs``, ``_prompt_text`` and its
``_ask``/``_read_var``/``_read`` methods.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rlm_cli.errors import BudgetExceeded
from rlm_cli.run import prompts
from rlm_cli.run.answers import NO_ANSWER, relevant_lines, rescue_messages, why_not_an_answer
from rlm_cli.run.events import Notice
from rlm_cli.run.first_block import KEPT_MARK
from rlm_cli.run.guesses import invented, literal_final
from rlm_cli.run.parsing import find_final, is_placeholder, parse_reply

FINAL_ANSWER_LINE = re.compile(r"^[ \t*_#>-]*final answer[ \t*_]*[:\uff1a][ \t*_]*(.+?)[ \t*_]*$",
                               re.IGNORECASE | re.MULTILINE)
"""A last-call reply's "Final answer: X" line (weak models write it instead of FINAL(X))."""


@dataclass
class Outcome:
    status: str  # answered | max_iterations | budget_exhausted
    answer: str | None


class Endings:
    """The last call, the answer checks and the rescue call of an RLM instance."""

    async def _last_call(self, index: int, status: str, stalled: int = 0) -> Outcome:
        """One last call asking for the best answer (when the budgets still allow one). ``stalled``:
        the number of identical replies in a row that ended the loop early (0: none did)."""
        state = self.state
        if stalled:
            reason = prompts.STALLED.format(count=stalled)
        elif status == "max_iterations":
            reason = "You have run out of iterations"
        else:
            reason = f"You have run out of budget ({state.budget.exhausted})"
        told = prompts.LAST_CALL.format(reason=reason)
        if (kept := await self._kept_answer()) is not None:
            shown = kept if len(kept) <= prompts.MAX_KEPT_SHOWN else kept[:prompts.MAX_KEPT_SHOWN] + "..."
            told += prompts.KEPT_ANSWER.format(value=repr(shown))
        self.messages.append({"role": "user", "content": told})
        try:
            reply = await self._ask(index, final_call=True)
        except BudgetExceeded:
            return Outcome(status, kept)
        answer = await self._best_answer(reply)
        if (why := self._why(answer)) is not None and kept is not None:
            state.bus.emit(Notice(f"the root LM's last answer was {why}; the answer is the one rlm's first block kept "
                                  "in the variable answer", level="info"))
            answer = kept
        elif why is not None:
            answer = await self._rescue(index + 1, why)
        if answer is not None and invented(answer, self._read()):
            state.bus.emit(Notice("the answer holds numbers or paths that appear nowhere in what the root LM read: "
                                  "it may be a guess"))
        return Outcome(status, answer)

    async def _kept_answer(self) -> str | None:
        """The text of the REPL variable ``answer`` when rlm's offered block kept an answer there and
        its output said so, and it is one (:meth:`_why`); None otherwise or when it is gone or empty.
        The last call is told what it holds (seen: the block kept ``time_comps``, the 1.5B root sent
        other code twice, then answered its last call with a paragraph of its own), and it is the
        answer when the last call's is not one (seen: told of the kept pairs, the root answered the
        worked example's sentence)."""
        if not any(KEPT_MARK in out for out in self._outputs):
            return None
        value, _ = await self._read_var("answer")
        return value if value and self._why(value) is None else None

    async def _history_full(self, index: int) -> Outcome:
        """The history no longer fits the root LM's window (seen: a weak model printing all of
        ``context`` three times into a 16k window): no more turns can be sent, so the answer comes
        from one rescue call, a fresh short conversation with the printed lines that bear on the
        question; None when there are none or it finds no answer."""
        answer = await self._rescue(index, "", notice="the conversation no longer fits the root LM's context window; "
                                                       "rlm asked once more, showing the lines its code printed")
        return Outcome("max_iterations", answer)

    def _why(self, answer: str | None) -> str | None:
        """What ``answer`` is when it is not one (:func:`~rlm_cli.run.answers.why_not_an_answer`)."""
        return why_not_an_answer(answer, prompt_text=self._prompt_text, outputs=self._outputs,
                                 question=self.question, errors=self._errors)

    async def _rescue(self, index: int, why: str, notice: str | None = None) -> str | None:
        """One more root call when the last call's answer is not one (``why``): the question and the
        printed lines that bear on it, the answer asked for in plain words. None when nothing was
        printed, the budget refuses, or the reply is no answer either."""
        lines = relevant_lines(self._outputs, self.question)
        if not lines:
            return None
        self.state.bus.emit(Notice(notice or f"the root LM's last answer was {why}; rlm asked once more, showing "
                                             "the lines its code printed", level="info"))
        try:
            reply = await self._ask(index, final_call=True, messages=rescue_messages(self.question, lines))
        except BudgetExceeded:
            return None
        text = await self._best_answer(reply)
        if text is None or text.upper().startswith(NO_ANSWER) or self._why(text) is not None:
            return None
        return text

    async def _best_answer(self, reply: str) -> str | None:
        """The answer in a last-call reply: a FINAL/FINAL_VAR anywhere in it (code is not run now), a
        literal ``Final(...)`` in any case in one of its blocks, else its prose, else the text of its
        blocks (small models fence plain answers). A FINAL_VAR
        whose variable is missing (or cannot be read) gives no answer: its literal text is not one."""
        found = find_final(reply)
        if found is not None and found[0] == "FINAL":
            return None if is_placeholder(found[1]) else (found[1] or None)
        if found is not None:
            value, _ = await self._read_var(found[1])
            return value
        parsed = parse_reply(reply)
        if parsed.final_text is not None and not parsed.blocks:  # Final(0) then a paragraph: the 0
            return parsed.final_text.strip() or None
        for block in parsed.blocks:  # ```repl\nFinal('the pairs are ...')\n```: the literal, not the code
            if (text := literal_final(block)) is not None:
                return text.strip() or None
        said = FINAL_ANSWER_LINE.search(reply)
        if said and not parsed.blocks and said.group(1).strip():  # "Final answer: u1285 and u5997" in prose
            return said.group(1).strip()
        if not (parsed.prose or parsed.blocks or parsed.unclosed_block):
            return None  # nothing but empty fences ("```\nrepl\n```"): no answer
        return (parsed.prose or "\n".join(parsed.blocks) or reply).strip() or None

