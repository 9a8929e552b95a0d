"""A saved run as one self-contained HTML page (``rlm show TRAJECTORY --html out.html``).

Same tree as ``rlm show`` (the labels come from the same :class:`~rlm_cli.view.render.Renderer`),
as nested ``<details>`` elements: iterations, steps, sub-calls and recursive RLMs fold and unfold;
code is highlighted by pygments with inline styles. Inline CSS and a few lines of inline JavaScript
(expand/collapse all); no network resource of any kind, so the file can be mailed or attached.
Without ``full``, prompts, responses and outputs are cut to :data:`CUT` characters each.
"""

from __future__ import annotations

import html

from rlm_cli.run.citations import summary as citation_summary
from rlm_cli.view import fmt
from rlm_cli.view.render import Renderer, RenderOptions
from rlm_cli.view.tree import CallNode, IterNode, RlmNode, RunModel, StepNode

CUT = 4000  # characters of each long text without --full
OPEN_CALLS = 20  # a step's sub-call list starts unfolded up to this many calls

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;
 padding:0 1em;color:#1f2328;background:#fff}
h1{font-size:1.3em;margin:.2em 0}.meta{color:#57606a;margin:.2em 0}
details{margin:.15em 0 .15em .2em;padding-left:.9em;border-left:1px solid #d0d7de}
summary{cursor:pointer;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
pre{margin:.3em 0;padding:.5em .7em;background:#f6f8fa;border-radius:6px;overflow-x:auto;
 white-space:pre-wrap;word-break:break-word;font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
.ok{color:#1a7f37}.fail{color:#cf222e}.warn{color:#9a6700}.dim{color:#57606a}
.label{font-weight:600;margin:.4em 0 0}.box{border:1px solid #d0d7de;border-radius:6px;padding:.6em 1em;margin:1em 0}
.highlight pre{background:#f6f8fa}button{margin-right:.5em}
"""

JS = """
function setAll(open){document.querySelectorAll('details').forEach(function(d){d.open=open;});}
document.addEventListener('DOMContentLoaded',function(){
 if(location.hash==='#expand-all'){setAll(true);}document.body.setAttribute('data-ready','1');});
"""


def _e(text: str | None) -> str:
    return html.escape(fmt.clean(text), quote=True)


def _cut(text: str | None, full: bool) -> str:
    text = fmt.clean(text)
    if full or len(text) <= CUT:
        return text
    return text[:CUT] + f"\n[... {len(text) - CUT:,} more characters: use rlm show --full --html]"


def _pre(text: str | None, full: bool, cls: str = "") -> str:
    return f'<pre class="{cls}">{html.escape(_cut(text, full))}</pre>'


def highlight(code: str) -> str:
    """``code`` as highlighted HTML (Python, pygments, inline styles)."""
    from pygments import highlight as pyg
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    return pyg(fmt.clean(code), PythonLexer(), HtmlFormatter(noclasses=True, style="default", nobackground=True))


class HtmlExport:
    """Builds the page for ``model``; ``full``: nothing cut."""

    def __init__(self, model: RunModel, full: bool = False, conversation: str | None = None) -> None:
        self.m, self.full, self.conversation = model, full, conversation
        self.r = Renderer(model, RenderOptions.show(full))
        self.out: list[str] = []

    def page(self) -> str:
        """The whole document."""
        m, w = self.m, self.out.append
        title = f"rlm run {m.run_id}: {fmt.one_line(m.question, 80)}"
        w(f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
          f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style>'
          f"<script>{JS}</script></head><body>")
        w(f"<h1>{_e(fmt.one_line(m.question, 300))}</h1>")
        w(f'<p class="meta">run {_e(m.run_id)} · started {_e(m.started_at)} · root {_e(m.root_model)} · '
          f"sub {_e(m.sub_model)}</p>")
        status_cls = "ok" if m.status == "answered" else ("fail" if m.status == "error" else "warn")
        footer = self.r.footer().plain
        head, _, rest = footer.partition(" · ")
        w(f'<p class="meta"><b class="{status_cls}">{_e(head)}</b> · {_e(rest)}</p>')
        if len(m.question) > 300:
            w(f"<details><summary>the whole question</summary>{_pre(m.question, self.full)}</details>")
        if self.conversation:
            w(f'<div class="box"><div class="label">conversation</div>{_pre(self.conversation, True)}</div>')
        if m.answer is not None:
            w(f'<div class="box"><div class="label ok">answer</div>{_pre(m.answer, True)}</div>')
            headline, problems = citation_summary(m.citations, 0)
            if headline:
                items = "".join(f"<li>{_e(p)}</li>" for p in problems)
                w(f'<p class="{"warn" if problems else "dim"}">citations: {_e(headline)}</p>'
                  + (f"<ul>{items}</ul>" if items else ""))
        if m.error and m.status != "answered":
            w(f'<div class="box fail">{_e(m.error.get("type"))}: {_e(m.error.get("message"))}</div>')
        for level, message in m.notices:
            w(f'<p class="{"dim" if level == "info" else "warn"}">{_e(level)}: {_e(message)}</p>')
        w('<p><button onclick="setAll(true)">expand all</button><button onclick="setAll(false)">'
          'collapse all</button></p>')
        if m.root is not None:
            self.rlm(m.root)
        w("</body></html>\n")
        return "".join(self.out)

    def _summary(self, text, cls: str = "") -> str:
        return f'<summary class="{cls}">{_e(text.plain)}</summary>'

    def rlm(self, rlm: RlmNode) -> None:
        """An RLM's iterations."""
        for it in rlm.iterations:
            self.iteration(it)

    def iteration(self, it: IterNode) -> None:
        """An iteration: the root reply, then its steps."""
        w = self.out.append
        failed = any(s.error for s in it.steps) or it.reply is None
        w(f"<details open>{self._summary(self.r.iteration_label(it), 'fail' if failed else '')}")
        if it.reply is not None:
            w(f'<details><summary class="dim">root reply ({len(it.reply):,} chars)</summary>'
              f"{_pre(it.reply, self.full)}</details>")
        elif it.streamed:
            w(f'<div class="label">partial reply</div>{_pre(it.streaming_text, self.full)}')
        for step in it.steps:
            self.step(step)
        w("</details>")

    def step(self, step: StepNode) -> None:
        """A code step: code, outputs, error, sub-calls (failed ones also listed up front)."""
        w = self.out.append
        w(f"<details open>{self._summary(self.r.step_label(step), 'fail' if step.error else '')}")
        if step.code:
            w(highlight(step.code))
        if step.error:
            w(f'<div class="label fail">error</div>{_pre(step.error, True, "fail")}')
        if step.stdout:
            w(f'<div class="label">output</div>{_pre(step.stdout, self.full)}')
        if step.stderr:
            w(f'<div class="label warn">stderr</div>{_pre(step.stderr, self.full)}')
        if step.calls:
            many = len(step.calls) > OPEN_CALLS
            if many and step.failed:
                w(f'<div class="label fail">{len(step.failed):,} failed sub-call(s)</div>')
                for call in step.failed:
                    self.call(call)
            recursive = [c for c in step.recursive if not c.error]
            if many and recursive:
                w(f'<div class="label">{len(recursive):,} recursive RLM call(s)</div>')
                for call in recursive:
                    self.call(call)
            summary = f"{len(step.calls):,} sub-call(s)" + (f", {len(step.failed):,} failed" if step.failed else "")
            w(f'<details{"" if many else " open"}><summary class="dim">{summary}</summary>')
            for call in step.calls:
                self.call(call)
            w("</details>")
        w("</details>")

    def call(self, call: CallNode) -> None:
        """A sub-call: prompt, response or error, and a recursive RLM's own iterations."""
        w = self.out.append
        w(f"<details>{self._summary(self.r.call_label(call), 'fail' if call.error else '')}")
        w(f'<div class="label">prompt</div>{_pre(call.prompt, self.full)}')
        if call.error:
            w(f'<div class="label fail">error</div>{_pre(call.error, True, "fail")}')
        if call.response is not None:
            w(f'<div class="label">response</div>{_pre(call.response, self.full)}')
        if call.child is not None:
            w(f'<div class="label">recursive RLM (depth {call.child.depth})</div>')
            self.rlm(call.child)
        w("</details>")


def to_html(model: RunModel, full: bool = False, conversation: str | None = None) -> str:
    """The self-contained HTML page of a run; ``conversation``: the questions of a conversation
    (plain text, :func:`rlm_cli.view.turns.turns_text`), shown above the answer."""
    return HtmlExport(model, full, conversation).page()
