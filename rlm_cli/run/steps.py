"""Running the root LM's code blocks for an RLM instance: each step in the REPL, what the model is
told about it (output, repeated failures and outputs, refused guesses), ``FINAL_VAR`` lookups, and
what the model has read so far (for the guess checks of :mod:`rlm_cli.run.guesses`).

:class:`Steps` is a part of :class:`rlm_cli.run.engine.RlmInstance` kept in its own module, like
:class:`rlm_cli.run.endings.Endings`; it uses the instance's ``state``, ``repl``, ``messages``,
``loaded``, ``_ran``, ``_outputs``, ``_errors``, ``_finals`` and ``_run_child``.
"""

from __future__ import annotations

from rlm_cli.run import prompts
from rlm_cli.run.events import StepFinished, StepStarted
from rlm_cli.run.subcalls import StepRef, SubCallRouter

MAX_READ_PATHS = 5000  # loaded paths counted as read (the tree the first message shows is cut too)


class Steps:
    """The code steps of an RLM instance (see the module's docstring)."""

    async def _read_var(self, name: str, restart: bool = False) -> tuple[str | None, str]:
        """The text of REPL variable ``name`` for ``FINAL_VAR``: (value, "") or (None, what the root
        LM is told). A lookup that times out (the value's conversion to text hangs) is not an answer
        and not a run timeout; with ``restart`` the stuck REPL is restarted."""
        if self.repl is None:
            return None, f"There is no variable named {name!r}: the REPL is not running."
        try:
            await self._repl_ready()
            value = await self.repl.get_var(name)
        except TimeoutError:
            note = ""
            if restart:
                await self.repl.restart()
                note = " The REPL was restarted and all variables were lost (context and files are loaded again)."
            return None, (f"Reading the variable {name!r} for FINAL_VAR timed out (turning its value into text "
                          f"did not finish).{note} Answer with FINAL(text) instead.")
        if value is None:
            return None, (f"There is no variable named {name!r} in the REPL. Define it in a ```repl block first, "
                          "or answer with FINAL(your answer).")
        return value, ""

    async def _run_blocks(self, index: int, blocks: list[str]) -> tuple[str | None, list[str]]:
        """Run a reply's blocks in order. Returns (answer from an executed FINAL or None, feedback)."""
        state = self.state
        assert self.repl is not None
        await self._repl_ready()
        feedback: list[str] = []
        unread = blind = not self._ran  # the model has read no output yet, or this reply's code printed some
        for step, code in enumerate(blocks):
            state.bus.emit(StepStarted(self.rlm_id, index, step, code))
            router = SubCallRouter(state, StepRef(self.rlm_id, index, step, self.depth), self._run_child,
                                   self.question)
            outcome = await self.repl.execute(code, router, state.limits.step_timeout)
            self._outputs.append(prompts.truncate_output(outcome.stdout.rstrip("\n"), state.limits.max_output_chars))
            if outcome.error:
                self._errors.append(outcome.error)
            unread = unread or bool(outcome.stdout.strip())
            blind = blind and not outcome.stdout.strip()
            outcome.final, guessed = self._finals.settle(code, outcome.final, outcome.error, unread, self._read,
                                                          blind)
            if guessed:
                outcome.notes.append(prompts.GUESSED_FINAL)
                if blind:  # no output read or printed yet: the loop runs the offered block (see engine)
                    self._blind_guess = prompts.RAN_FIRST_BLOCK_ECHO if guessed == "echo" else prompts.RAN_FIRST_BLOCK_GUESS
            state.bus.emit(StepFinished(self.rlm_id, index, step, outcome.stdout, outcome.stderr,
                                        outcome.duration_s, outcome.error, outcome.final, outcome.restarted))
            notes = list(outcome.notes)
            key = code.strip()
            seen = hash((outcome.stdout, outcome.stderr))
            if key in self._ran and outcome.error and self._ran[key][0] == outcome.error:
                notes.append(prompts.REPEATED_FAILURE)
            elif key in self._ran and self._ran[key] == (None, seen) and not outcome.error:
                notes.append(prompts.REPEATED_OUTPUT)
            self._ran[key] = (outcome.error, seen)
            feedback.append(prompts.step_feedback(step + 1, len(blocks), outcome.stdout, outcome.stderr,
                                                  outcome.error, notes, state.limits.max_output_chars))
            if outcome.final is not None:
                return outcome.final, feedback
            if outcome.restarted and step + 1 < len(blocks):
                feedback.append(f"Blocks {step + 2}-{len(blocks)} were not run because the REPL was restarted.")
                break
        return None, feedback

    def _read(self) -> str:
        """Everything the root LM has been shown so far: the user messages of its history, and the
        loaded files' paths written out whole (the first message shows them as a tree)."""
        shown = [m["content"] for m in self.messages if m["role"] == "user"]
        return "\n".join([*shown, *(f.path for f in self.loaded.files[:MAX_READ_PATHS])])
