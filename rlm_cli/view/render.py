"""Rich renderables for a :class:`~rlm_cli.view.tree.RunModel`: the live tree, the end-of-run summary
and ``rlm show``'s fully expanded tree. One renderer, three densities (:class:`RenderOptions`).

Live: finished iterations collapse to one line each (the oldest fold into a count), only the current
iteration of each RLM is expanded, and a step's finished sub-calls fold into one count line once
there are more than ``fold_at`` of them (failed and running ones stay listed, up to a few each; queued
ones are a count). Only running sub-calls (sent) have a ticking clock; queued ones say so.
Building is proportional to what is shown, never to the number of events.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from rlm_cli.run.citations import summary as citation_summary
from rlm_cli.view import fmt
from rlm_cli.view.labels import FAIL, OK, WARN, Labels, _line
from rlm_cli.view.phrases import Phrases
from rlm_cli.view.safe import inline
from rlm_cli.view.tree import CallNode, IterNode, RlmNode, RunModel, StepNode
from rlm_cli.view.words import is_sandbox_notice, outcome, skipped_words


@dataclass
class RenderOptions:
    """How much to show. ``0`` means "no limit" for the line and fold counts."""

    mode: str = "live"  # "live" | "summary" | "show"
    full: bool = False  # show: complete code, outputs, replies, prompts and responses
    code_lines: int = 4
    output_lines: int = 2
    reply_lines: int = 0  # prose lines of a reply shown under an iteration (0: none)
    fold_at: int = 6  # more sub-calls than this in a step: fold the finished ones into a count
    max_failed: int = 4
    max_running: int = 5
    keep_iterations: int = 6  # collapsed iterations listed per RLM before older ones fold
    preview: int = 160  # characters of a one-line preview

    @classmethod
    def live(cls) -> RenderOptions:
        """The live tree."""
        return cls()

    @classmethod
    def summary(cls) -> RenderOptions:
        """What stays on the terminal after a live run: one line per iteration, plus the footer."""
        return cls(mode="summary", keep_iterations=12)

    @classmethod
    def show(cls, full: bool = False) -> RenderOptions:
        """``rlm show``: everything expanded; ``full``: nothing cut."""
        if full:
            return cls(mode="show", full=True, code_lines=0, output_lines=0, reply_lines=0, fold_at=0,
                       max_failed=0, max_running=0, keep_iterations=0, preview=300)
        return cls(mode="show", code_lines=20, output_lines=10, reply_lines=6, fold_at=40, max_failed=40,
                   max_running=40, keep_iterations=0, preview=200)


def _block(text: str, style: str = "", max_lines: int = 0, from_end: bool = False, prefix: str = "") -> Text:
    """Several lines of model or REPL text, cut to ``max_lines`` (0: all) with a note of what was cut."""
    lines, cut = (fmt.tail_lines if from_end else fmt.head_lines)(text, max_lines)
    out = Text(style=style)
    if cut and from_end:
        out.append(f"… {cut} earlier line(s)\n", style="dim")
    out.append("\n".join(prefix + ln for ln in lines))
    if cut and not from_end:
        out.append(f"\n… {cut} more line(s)", style="dim")
    return out


class Renderer(Labels):
    """Builds the renderable for a model; ``now`` is the model clock's time (for spinners, elapsed)."""

    def __init__(self, model: RunModel, opts: RenderOptions, now: float | None = None) -> None:
        self.m, self.o = model, opts
        self.now = model.clock() if now is None else now
        self.live = opts.mode == "live" and model.live and not model.finished

    # --- the whole -----------------------------------------------------------------------------
    def build(self) -> RenderableType:
        """The tree and its footer."""
        return Group(self.tree(), self.footer())

    def tree(self) -> Tree:
        """The run as a tree: the question at the root, then iterations, steps and sub-calls."""
        m, o = self.m, self.o
        head = Text()
        head.append("◆ ", style="bold magenta")
        head.append(fmt.one_line(m.question, 0 if o.mode == "show" else o.preview * 2), style="bold")
        ctx = m.context or {}
        head.append(f"\n  root {inline(m.root_model, 200)} · sub {inline(m.sub_model, 200)}", style="cyan")
        if ctx.get("files") is not None:
            head.append(f" · {len(ctx['files'])} file(s), {ctx.get('total_chars', 0):,} chars "
                        f"(~{fmt.tokens(ctx.get('est_tokens'))} tokens){skipped_words(ctx)}", style="dim")
        tree = Tree(head, guide_style="dim")
        if m.root is not None:
            self.rlm(tree, m.root)
        if o.mode == "show" and m.answer is not None:
            node = tree.add(_line(("answer", "bold green")))
            node.add(_block(m.answer, max_lines=0 if o.full else 30))
            headline, problems = citation_summary(m.citations, 0 if o.full else 10)
            if headline:
                cites = tree.add(_line(("citations ", "bold"), (headline, WARN if problems else "dim")))
                for problem in problems:
                    cites.add(_line(("✗ ", FAIL), fmt.one_line(problem, 0 if o.full else 300)))
        if m.error and m.status not in ("answered", "budget_exhausted"):  # a budget: the footer says which
            err = m.error if isinstance(m.error, dict) else {"message": m.error}
            kind = inline(err.get("type", "error"), 200)
            message = fmt.clean(err.get("message"))
            if kind == "interrupted":  # the engine's code for Ctrl-C: say it in words, once
                tree.add(Text(f"✗ {message or 'interrupted'}", style=FAIL))
            else:
                tree.add(Text(f"✗ {kind}: {message}", style=FAIL))
        # The weaker-sandbox warning is said once above the live tree, not pinned in it (view.words).
        notices = m.notices if o.mode == "show" else [n for n in m.notices if not is_sandbox_notice(n[1])][-3:]
        for level, message in notices:
            tree.add(_line(("⚠ " if level != "info" else "ℹ ", WARN if level != "info" else "dim"),
                           fmt.one_line(message, 0 if o.mode == "show" else 300)))
        return tree

    def footer(self) -> Phrases:
        """Elapsed (or how the run ended, in words), iterations, sub-calls, tokens, cost, budgets left:
        phrases on one line, broken between phrases (never inside one) when the width is short."""
        m = self.m
        out = Phrases()
        elapsed = m.elapsed()
        if m.finished:
            words = outcome(m.status, elapsed, exhausted=m.exhausted, limits=m.limits)
            out.add(words, style=OK if m.status == "answered" else (FAIL if m.status == "error" else WARN))
        else:
            out.add(f"⏱ {fmt.seconds(elapsed)}" if elapsed is not None else "unfinished log", style="bold")
        nested = m.iterations - m.root_iterations
        out.add(f"iterations {m.root_iterations}" + (f" (+{nested} nested)" if nested else ""))
        calls = Text(f"sub-calls {m.calls_done:,} done")
        if m.calls_failed:
            calls.append(f" ({m.calls_failed:,} failed)", style=FAIL)
        if m.calls_running:
            calls.append(f", {m.calls_running:,} running", style="cyan")
        if m.calls_queued > 0:
            calls.append(f", {m.calls_queued:,} queued", style="dim")
        if m.calls_cancelled:
            calls.append(f", {m.calls_cancelled:,} cancelled", style=WARN)
        out.add(calls)
        out.add(f"tokens {fmt.tokens(m.tokens_in)} in / {fmt.tokens(m.tokens_out)} out")
        out.add(fmt.usd(m.cost))
        for i, (name, value) in enumerate(m.budget_left()):
            out.add(("left: " if i == 0 else "") + f"{name} {value}", sep=" · " if i == 0 else ", ", style="dim")
        return out

    # --- RLMs and iterations -------------------------------------------------------------------
    def rlm(self, parent: Tree, rlm: RlmNode) -> None:
        """Add ``rlm``'s iterations under ``parent``."""
        its, o = rlm.iterations, self.o
        if o.mode == "show":
            for it in its:
                self.iteration(parent, it, expanded=True, rlm=rlm)
            return
        collapsed = its[:-1] if (o.mode == "live" and self.live) else its
        keep = o.keep_iterations
        if keep and len(collapsed) > keep:
            parent.add(_line(f"… {len(collapsed) - keep} earlier iteration(s)", style="dim"))
            collapsed = collapsed[-keep:]
        for it in collapsed:
            self.iteration(parent, it, expanded=False, rlm=rlm)
        if len(collapsed) < len(its) and its:
            self.iteration(parent, its[-1], expanded=True, rlm=rlm)

    def iteration(self, parent: Tree, it: IterNode, expanded: bool, rlm: RlmNode | None = None) -> None:
        """Add one iteration: a summary line, and when expanded its streaming reply or its steps."""
        node = parent.add(self.iteration_label(it, rlm))
        if not expanded:
            for step in it.steps:  # keep failures visible even when collapsed
                if step.error:
                    node.add(_line((f"✗ step {step.step + 1}: ", FAIL), fmt.one_line(step.error, 300)))
            return
        o = self.o
        if it.reply is None:
            if it.streamed and (self.live or o.mode == "show"):
                node.add(_block(it.streaming_text, style="dim italic", max_lines=3, from_end=True))
            return
        parsed = it.parsed
        if o.mode == "show" and o.full:
            node.add(_line(("reply", "bold")))
            node.add(_block(it.reply, style="dim"))
        elif o.reply_lines and parsed.prose.strip():
            node.add(_block(parsed.prose.strip(), style="dim italic", max_lines=o.reply_lines))
        for step in it.steps:
            self.step(node, step)

    # --- steps and sub-calls -------------------------------------------------------------------
    def step(self, parent: Tree, step: StepNode) -> None:
        """Add a code step: label, code, output preview and its sub-calls."""
        o = self.o
        node = parent.add(self.step_label(step))
        if step.code:
            node.add(self.code(step))
        if step.error:
            node.add(_block(f"error: {step.error}", style=FAIL, max_lines=0 if o.full else 6))
        if step.done:
            if step.stdout.strip():
                node.add(_block(step.stdout, style="green" if o.mode == "show" else "dim",
                                max_lines=o.output_lines, prefix="│ "))
            if step.stderr.strip() and not step.error:
                node.add(_block(step.stderr, style=WARN, max_lines=o.output_lines, prefix="│ "))
        self.calls(node, step)

    def code(self, step: StepNode) -> Text:
        """The step's code, syntax highlighted (cached on the step), cut to ``code_lines`` lines."""
        limit = self.o.code_lines
        key = (limit, step.code)
        if step.syntax is None or step.syntax[0] != key:
            from rich.syntax import Syntax

            lines, cut = fmt.head_lines(step.code, limit)
            text = Syntax("", "python", theme="ansi_dark").highlight("\n".join(lines))
            text.rstrip()
            text.no_wrap = not self.o.full
            text.overflow = "ellipsis"
            if cut:
                text.append(f"\n… {cut} more line(s)", style="dim")
            step.syntax = (key, text)
        return step.syntax[1]

    def calls(self, parent: Tree, step: StepNode) -> None:
        """Add the step's sub-calls, folding the finished ones when there are many."""
        o = self.o
        if not o.fold_at or len(step.calls) <= o.fold_at:
            for call in step.calls:
                self.call(parent, call)
            if self.live and step.waiting:
                more = "more " if step.queued else ""
                parent.add(_line(f"◦ {step.waiting:,} {more}queued (waiting for a free slot)", style="dim"))
            return
        listed = []  # show: finished recursive calls stay listed (each nests a whole RLM)
        if o.mode == "show":
            listed = [c for c in step.recursive if c.done and not c.error][: o.max_running or None]
        n_ok = step.n_ok - len(listed)
        if n_ok > 0:
            t_in = step.ok_in - sum(c.input_tokens for c in listed)
            t_out = step.ok_out - sum(c.output_tokens for c in listed)
            avg = (step.ok_time - sum(c.duration_s or 0.0 for c in listed)) / n_ok
            parent.add(_line(("✓ ", OK), f"{n_ok:,} sub-calls finished · {fmt.tokens(t_in)}→"
                             f"{fmt.tokens(t_out)} tok · avg {fmt.seconds(avg)}", style="dim"))
        for call in listed:
            self.call(parent, call)
        self._some(parent, step.failed, o.max_failed, "failed")
        running = list(step.running.values()) if self.live else []
        running.sort(key=lambda c: c.kind != "rlm")  # recursive ones first: they nest their own work
        self._some(parent, running, o.max_running, "running")
        queued = step.n_queued if self.live else 0
        if queued:
            parent.add(_line(f"◦ {queued:,} queued (waiting for a free slot)", style="dim"))

    def _some(self, parent: Tree, calls: list[CallNode], limit: int, what: str) -> None:
        for call in calls[:limit] if limit else calls:
            self.call(parent, call)
        if limit and len(calls) > limit:
            parent.add(_line(f"… {len(calls) - limit:,} more {what}", style=FAIL if what == "failed" else "dim"))

    def call(self, parent: Tree, call: CallNode) -> None:
        """Add one sub-call; an rlm call nests its child RLM's iterations (live: while it runs)."""
        o = self.o
        node = parent.add(self.call_label(call))
        if o.mode == "show" and o.full:
            node.add(_line(("prompt", "bold")))
            node.add(_block(call.prompt, style="dim"))
            if call.response is not None:
                node.add(_line(("response", "bold")))
                node.add(_block(call.response))
        if call.error and o.mode == "show" and o.full:
            node.add(_block(call.error, style=FAIL))
        if call.child is not None and (o.mode == "show" or (self.live and not call.done)):
            self.rlm(node, call.child)



def render(model: RunModel, opts: RenderOptions, now: float | None = None) -> RenderableType:
    """The tree and footer of ``model`` at the density ``opts``."""
    return Renderer(model, opts, now).build()
