"""The one-line labels of the tree's nodes (iterations, code steps, sub-calls), for
:class:`~rlm_cli.view.render.Renderer`: a status mark (spinner, ``✓``, ``✗``), what it is, its time
and tokens, a preview. Every string from a model or the REPL is made visible first."""

from __future__ import annotations

from rich.text import Text

from rlm_cli.view import fmt
from rlm_cli.view.safe import inline
from rlm_cli.view.tree import CallNode, IterNode, RlmNode, StepNode

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
OK, FAIL, WARN = "green", "red", "yellow"


def _spin(now: float) -> str:
    return SPINNER[int(now * 10) % len(SPINNER)]


def _line(*parts, style: str = "") -> Text:
    """A one-line Text (cropped with an ellipsis by Rich at the tree's width)."""
    text = Text(no_wrap=True, overflow="ellipsis", style=style)
    for part in parts:
        if isinstance(part, tuple):
            text.append(*part)
        elif part:
            text.append(part)
    return text



class Labels:
    """Mixin of :class:`~rlm_cli.view.render.Renderer`: needs ``self.m`` (the model), ``self.o``
    (the options), ``self.live`` and ``self.now``."""

    def answer_refused(self, it: IterNode, rlm: RlmNode | None) -> bool:
        """Whether ``it`` replied with an answer (FINAL/FINAL_VAR) that did not end its RLM: another
        iteration followed (e.g. FINAL_VAR named no variable), or it was the top-level RLM's last and
        the run ended without an answer."""
        if rlm is None or not rlm.iterations:
            return False
        if it is not rlm.iterations[-1]:
            return True
        return rlm is self.m.root and self.m.finished and self.m.status != "answered"

    def iteration_label(self, it: IterNode, rlm: RlmNode | None = None) -> Text:
        """``✓ iteration 2 · 1 code block · 0.91s · 2.1k→120 tok · "prose…"``; ``✗`` when a step
        failed or never finished, or when its answer was not accepted."""
        t = _line()
        name = f"iteration {it.index + 1}" + (" (last call)" if it.final_call else "")
        if it.reply is None:
            if self.live:
                t.append(f"{_spin(self.now)} ", style="cyan")
                t.append(name, style="bold")
                t.append(f" · root LM thinking {fmt.seconds(self.now - it.t0)}", style="cyan")
                if it.streamed:
                    t.append(f" · {it.streamed:,} chars", style="dim")
            else:
                t.append(f"✗ {name} · no reply", style=WARN)
            return t
        parsed = it.parsed
        unfinished = any(not s.done for s in it.steps)
        running = self.live and unfinished
        refused = (not parsed.blocks and (parsed.final_text is not None or bool(parsed.final_var))
                   and self.answer_refused(it, rlm))
        failed = any(s.error for s in it.steps) or refused or unfinished
        if running:
            t.append(f"{_spin(self.now)} ", style="cyan")
        else:
            t.append("✗ " if failed else "✓ ", style=FAIL if failed else OK)
        t.append(name, style="bold")
        if parsed.blocks:
            n = len(parsed.blocks)
            what = f"{n} code block" + ("s" if n != 1 else "")
        elif refused:
            what = (f"FINAL_VAR({inline(parsed.final_var, 60)}) gave no answer" if parsed.final_var
                    else "answer not accepted")
        elif parsed.final_text is not None or parsed.final_var:
            what = "answer"
        else:
            what = "no code"
        if unfinished and not running:
            what += ", " + ("cancelled" if self.m.finished else "not finished")
        t.append(f" · {what}", style=FAIL if refused else "dim")
        t.append(f" · {fmt.seconds(it.duration_s)} · {fmt.tokens(it.input_tokens)}→"
                 f"{fmt.tokens(it.output_tokens)} tok", style="dim")
        if it.cost_usd:
            t.append(f" · {fmt.usd(it.cost_usd)}", style="dim")
        prose = fmt.one_line(parsed.prose, self.o.preview) if self.o.mode != "show" else ""
        if prose:
            t.append(f" · {prose}", style="italic")
        return t

    def step_label(self, step: StepNode) -> Text:
        """``✓ step 1 · 3.41s · 1,000 sub-calls (2 failed) · 12 lines of output``."""
        t = _line()
        n = len(step.calls)
        if not step.done:
            if self.live:
                t.append(f"{_spin(self.now)} ", style="cyan")
                t.append(f"step {step.step + 1}", style="bold")
                t.append(f" · running {fmt.seconds(self.now - step.t0)}", style="cyan")
                queued = step.n_queued
                if n or queued:
                    done = n - len(step.running) - len(step.queued)
                    t.append(f" · {done:,}/{n + step.waiting:,} sub-calls done", style="dim")
                if queued:
                    t.append(f" · {queued:,} queued", style="dim")
            else:
                t.append(f"✗ step {step.step + 1} · " + ("cancelled" if self.m.finished else "not finished"),
                         style=WARN)
            return t
        t.append("✗ " if step.error else "✓ ", style=FAIL if step.error else OK)
        t.append(f"step {step.step + 1}", style="bold")
        t.append(f" · {fmt.seconds(step.duration_s)}", style="dim")
        if n:
            t.append(f" · {n:,} sub-call" + ("s" if n != 1 else ""), style="dim")
            if step.n_failed:
                t.append(f" ({step.n_failed:,} failed)", style=FAIL)
        lines = step.stdout.count("\n") + (1 if step.stdout and not step.stdout.endswith("\n") else 0)
        t.append(f" · {lines:,} line(s) of output" if lines else " · no output", style="dim")
        if step.final_answer is not None:
            t.append(" · FINAL", style="bold green")
        if step.repl_restarted:
            t.append(" · REPL restarted", style=WARN)
        return t

    def call_label(self, call: CallNode) -> Text:
        """``✓ llm openai/sub · 0.31s · 120→15 tok · "prompt…"`` (or the error, in red)."""
        t = _line()
        kind, model = inline(call.kind, 40), inline(call.model, 200)  # a model name may be chosen by code
        if not call.done:
            if self.live and call.sent:
                t.append(f"{_spin(self.now)} ", style="cyan")
                t.append(f"{kind} ", style="bold")
                t.append(f"{model} · {fmt.seconds(self.now - call.t0)}", style="cyan")
            elif self.live:
                t.append(f"◦ {kind} {model} · queued", style="dim")
            else:
                t.append(f"✗ {kind} {model} · " + ("cancelled" if self.m.finished else "not finished"), style=WARN)
        elif call.error:
            t.append(f"✗ {kind} ", style=f"bold {FAIL}")
            t.append(f"{model} · {fmt.seconds(call.duration_s)} · ", style="dim")
            t.append(fmt.one_line(call.error, self.o.preview), style=FAIL)
            t.append(f" · {fmt.one_line(call.prompt, self.o.preview // 2)}", style="dim italic")
            if call.child is not None:
                t.append(f" · {len(call.child.iterations)} iteration(s)", style="dim")
            return t
        else:
            t.append("✓ ", style=OK)
            t.append(f"{kind} ", style="bold")
            t.append(f"{model} · {fmt.seconds(call.duration_s)}", style="dim")
            if self.o.mode == "show" and call.queued_s is not None and call.queued_s >= 0.005:
                t.append(f" (after {fmt.seconds(call.queued_s)} queued)", style="dim")
            if call.input_tokens or call.output_tokens:
                t.append(f" · {fmt.tokens(call.input_tokens)}→{fmt.tokens(call.output_tokens)} tok", style="dim")
        if call.child is not None:
            t.append(f" · {len(call.child.iterations)} iteration(s)", style="dim")
        t.append(f" · {fmt.one_line(call.prompt, self.o.preview)}", style="italic")
        if call.done and call.response is not None and self.o.mode == "show" and not self.o.full:
            t.append(f" → {fmt.one_line(call.response, self.o.preview)}", style="green")
        return t
