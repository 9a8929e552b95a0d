"""Plain progress lines on stderr, for pipes and CI logs: no colour, no redraw, no timestamps.

One line per root reply, per code step (with a count of its sub-calls), per failed sub-call, per
recursive RLM (start and end) and per notice; a summary line at the end. Lines of a recursive RLM
are indented two spaces per depth level. Sub-calls that succeed are counted, not listed, so a step
with a thousand of them stays one line; it also says how many were in flight at most at once (sent,
not queued for a ``--concurrency`` slot). Text that came from a model or from the REPL is put on one
line with its control characters made visible (:mod:`rlm_cli.view.safe`), so no escape code
ever reaches the log.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import TextIO

from rlm_cli.run.events import (
    IterationStarted,
    Notice,
    RlmStarted,
    RootReply,
    RunFinished,
    RunStarted,
    StepFinished,
    SubCallFinished,
    SubCallSent,
    SubCallStarted,
)
from rlm_cli.view.fmt import ascii_one_line as _one_line
from rlm_cli.view.fmt import cost_report
from rlm_cli.view.safe import inline
from rlm_cli.view.words import is_sandbox_notice, outcome, sandbox_line, sandbox_warning_wanted, skipped_words


class PlainView:
    """Event sink writing plain progress lines to ``stream`` (default: stderr)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        # step key -> [sub-calls, failed, in flight now, most in flight at once]
        self._step_calls: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self._calls: dict[str, list] = {}  # call id -> [step key, kind, sent]
        self._depth: dict[str, int] = {}
        self._children: dict[str, str] = {}  # rlm call id -> child rlm id
        self._iterations = 0  # replies of the top-level root LM
        self._nested = 0  # replies of recursive RLMs
        self._said_sandbox = False
        self._limits: dict = {}

    def _print(self, line: str, rlm_id: str | None = None) -> None:
        indent = "  " * self._depth.get(rlm_id, 0) if rlm_id else ""
        print(indent + line, file=self.stream, flush=True)

    def __call__(self, ev) -> None:
        if isinstance(ev, SubCallStarted):
            key = (ev.rlm_id, ev.index, ev.step)
            self._calls[ev.call_id] = [key, ev.kind, False]
            self._step_calls[key][0] += 1
        elif isinstance(ev, SubCallSent):
            found = self._calls.get(ev.call_id)
            if found is not None and not found[2]:
                found[2] = True
                counts = self._step_calls[found[0]]
                counts[2] += 1
                counts[3] = max(counts[3], counts[2])
        elif isinstance(ev, SubCallFinished):
            self._call_finished(ev)
        elif isinstance(ev, RunStarted):
            self._limits = ev.limits or {}
            ctx = ev.context
            self._print(f"rlm: run {inline(ev.run_id, 80)}: root {inline(ev.root_model, 200)}, "
                        f"sub {inline(ev.sub_model, 200)}; "
                        f"{len(ctx.get('files', []))} file(s), {ctx.get('total_chars', 0):,} chars "
                        f"(~{ctx.get('est_tokens', 0):,} tokens){skipped_words(ctx)}")
        elif isinstance(ev, RlmStarted):
            self._depth[ev.rlm_id] = ev.depth
            if ev.parent_call_id:
                self._children[ev.parent_call_id] = ev.rlm_id
            if ev.depth > 0:
                self._print(f"[{ev.rlm_id}] recursive RLM at depth {ev.depth}: {_one_line(ev.prompt, 80)}",
                            ev.rlm_id)
        elif isinstance(ev, IterationStarted) and ev.final_call:
            self._print(f"[{ev.rlm_id} iteration {ev.index + 1}] asking for a last best answer", ev.rlm_id)
        elif isinstance(ev, RootReply):
            self._root_reply(ev)
        elif isinstance(ev, StepFinished):
            calls, errors, _, peak = self._step_calls.pop((ev.rlm_id, ev.index, ev.step), [0, 0, 0, 0])
            status = f"error: {_one_line(ev.error, 120)}" if ev.error else "ok"
            extra = f", {calls} sub-call(s)" + (f" ({errors} failed)" if errors else "") if calls else ""
            extra += f", up to {peak} in flight" if calls > 1 and peak else ""
            final = ", FINAL" if ev.final_answer is not None else ""
            restarted = ", REPL restarted" if ev.repl_restarted else ""
            self._print(f"[{ev.rlm_id} iteration {ev.index + 1} step {ev.step + 1}] {status} "
                        f"({ev.duration_s:.2f}s, {len(ev.stdout):,} chars of output{extra}{final}{restarted})",
                        ev.rlm_id)
        elif isinstance(ev, Notice) and is_sandbox_notice(ev.message):
            if not self._said_sandbox and sandbox_warning_wanted():
                self._print(sandbox_line(ev.message))
            self._said_sandbox = True
        elif isinstance(ev, Notice):
            self._print(f"rlm: {inline(ev.level, 20)}: {_one_line(ev.message, 300)}")
        elif isinstance(ev, RunFinished):
            self._run_finished(ev)

    def _root_reply(self, ev: RootReply) -> None:
        from rlm_cli.run.parsing import parse_reply

        if self._depth.get(ev.rlm_id, 0) == 0:
            self._iterations += 1
        else:
            self._nested += 1
        parsed = parse_reply(ev.text)
        what = f"{len(parsed.blocks)} code block(s)" if parsed.blocks else (
            "answer" if parsed.final_text is not None or parsed.final_var else "no code")
        self._print(f"[{ev.rlm_id} iteration {ev.index + 1}] root reply: {what} "
                    f"({ev.duration_s:.1f}s, {ev.usage.input_tokens:,} in / {ev.usage.output_tokens:,} out tokens)",
                    ev.rlm_id)

    def _call_finished(self, ev: SubCallFinished) -> None:
        found = self._calls.pop(ev.call_id, None)
        if found is None:
            return
        key, kind, sent = found
        counts = self._step_calls.get(key)
        if sent and counts is not None:
            counts[2] -= 1
        child = self._children.pop(ev.call_id, None)
        if ev.error:
            self._step_calls[key][1] += 1
            self._print(f"[{ev.rlm_id} iteration {key[1] + 1} step {key[2] + 1}] {inline(kind, 40)} sub-call failed: "
                        f"{_one_line(ev.error, 160)}", ev.rlm_id)
        elif child is not None:
            queued = f" after {ev.queued_s:.1f}s queued" if ev.queued_s >= 0.05 else ""
            self._print(f"[{child}] recursive RLM done ({ev.duration_s:.1f}s{queued}): {_one_line(ev.response, 80)}",
                        child)

    def _run_finished(self, ev: RunFinished) -> None:
        u = ev.usage or {}
        root, sub = u.get("root") or {}, u.get("sub") or {}
        tokens_in = root.get("input_tokens", 0) + sub.get("input_tokens", 0)
        tokens_out = root.get("output_tokens", 0) + sub.get("output_tokens", 0)
        cost = u.get("total_cost_usd")
        cost_s = f"${cost:.4f}" if cost is not None else "cost unknown"
        nested = f" (+{self._nested} nested)" if self._nested else ""
        said = outcome(ev.status, round(ev.duration_s, 1), exhausted=(ev.extra or {}).get("exhausted"),
                       limits=self._limits)
        self._print(f"rlm: {said}; {self._iterations} iteration(s){nested}, "
                    f"{u.get('sub_calls', 0)} sub-call(s), {tokens_in:,} in / {tokens_out:,} out tokens, {cost_s}")
        for line in cost_report(u):
            self._print(line)
