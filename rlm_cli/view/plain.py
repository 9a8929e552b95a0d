"""Plain progress lines on stderr, for pipes and CI logs: no colour, no redraw, no timestamps.

One line per root reply, per code step (with a count of its sub-calls) and per failed sub-call;
a summary line at the end. Sub-calls that succeed are counted, not listed, so a step with a
thousand of them stays one line.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import TextIO

from rlm_cli.events import (
    Notice,
    RlmStarted,
    RootReply,
    RunFinished,
    RunStarted,
    StepFinished,
    SubCallFinished,
    SubCallStarted,
)
from rlm_cli.parsing import parse_reply


def _one_line(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class PlainView:
    """Event sink writing plain progress lines to ``stream`` (default: stderr)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._step_calls: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
        self._call_step: dict[str, tuple] = {}
        self._iterations = 0

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def __call__(self, ev) -> None:
        if isinstance(ev, RunStarted):
            ctx = ev.context
            self._print(f"rlm: run {ev.run_id}: root {ev.root_model}, sub {ev.sub_model}; "
                        f"{len(ctx['files'])} file(s), {ctx['total_chars']:,} chars (~{ctx['est_tokens']:,} tokens)")
        elif isinstance(ev, RlmStarted) and ev.depth > 0:
            self._print(f"[{ev.rlm_id}] recursive RLM at depth {ev.depth}: {_one_line(ev.prompt, 80)}")
        elif isinstance(ev, RootReply):
            self._iterations += 1
            parsed = parse_reply(ev.text)
            what = f"{len(parsed.blocks)} code block(s)" if parsed.blocks else (
                "answer" if parsed.final_text is not None or parsed.final_var else "no code")
            self._print(f"[{ev.rlm_id} iteration {ev.index + 1}] root reply: {what} "
                        f"({ev.duration_s:.1f}s, {ev.usage.input_tokens:,} in / {ev.usage.output_tokens:,} out tokens)")
        elif isinstance(ev, SubCallStarted):
            key = (ev.rlm_id, ev.index, ev.step)
            self._call_step[ev.call_id] = key
            self._step_calls[key][0] += 1
        elif isinstance(ev, SubCallFinished):
            key = self._call_step.pop(ev.call_id, None)
            if ev.error and key is not None:
                self._step_calls[key][1] += 1
                self._print(f"[{ev.rlm_id} iteration {key[1] + 1} step {key[2] + 1}] sub-call failed: "
                            f"{_one_line(ev.error, 160)}")
        elif isinstance(ev, StepFinished):
            calls, errors = self._step_calls.pop((ev.rlm_id, ev.index, ev.step), [0, 0])
            status = f"error: {_one_line(ev.error, 120)}" if ev.error else "ok"
            extra = f", {calls} sub-call(s)" + (f" ({errors} failed)" if errors else "") if calls else ""
            final = ", FINAL" if ev.final_answer is not None else ""
            self._print(f"[{ev.rlm_id} iteration {ev.index + 1} step {ev.step + 1}] {status} "
                        f"({ev.duration_s:.2f}s, {len(ev.stdout):,} chars of output{extra}{final})")
        elif isinstance(ev, Notice):
            self._print(f"rlm: {ev.level}: {ev.message}")
        elif isinstance(ev, RunFinished):
            u = ev.usage
            tokens_in = (u["root"]["input_tokens"] + u["sub"]["input_tokens"]) if u.get("root") else 0
            tokens_out = (u["root"]["output_tokens"] + u["sub"]["output_tokens"]) if u.get("root") else 0
            cost = u.get("total_cost_usd")
            cost_s = f"${cost:.4f}" if cost is not None else "cost unknown"
            self._print(f"rlm: {ev.status} in {ev.duration_s:.1f}s; {self._iterations} root call(s), "
                        f"{u.get('sub_calls', 0)} sub-call(s), {tokens_in:,} in / {tokens_out:,} out tokens, {cost_s}")
