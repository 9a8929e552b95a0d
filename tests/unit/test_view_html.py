"""HTML export: one self-contained page with collapsible nodes and highlighted code."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from rlm_cli.view.demo import EventScript, demo_run
from rlm_cli.view.html import CUT, to_html
from rlm_cli.view.tree import RunModel

CHROMIUM = Path("/usr/bin/chromium")


def model_of(events) -> RunModel:
    model = RunModel(clock=lambda: 1.0)
    for ev in events:
        model.apply(ev)
    return model


def test_page_is_self_contained_and_collapsible():
    page = to_html(model_of(demo_run(30, failures=3, depth=2).events))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for remote in ("http://", "https://", "src=", "<link", "@import", "url("):
        assert remote not in page, remote
    assert page.count("<details") == page.count("</details>") > 30
    assert "<style>" in page and "<script>" in page
    # pygments, inline styles: `print` and `llm_query_batched(...)` line highlighted
    assert re.search(r'<span style="color: #[0-9A-Fa-f]{6}">print</span>', page)
    assert "3 failed sub-call(s)" in page and "RateLimitError (chunk 9)" in page
    assert "recursive RLM (depth 2)" in page  # nesting kept
    assert "Authentication lives in auth/login.py" in page


def test_model_text_is_escaped_and_cleaned():
    s = EventScript(question="<script>alert(1)</script> \x1b[31mred")
    s.reply("r0", 0, "```repl\nprint('<b>')\n```")
    s.step_start("r0", 0, 0, "print('<b>')")
    s.step_end("r0", 0, 0, stdout="<img src=x onerror=alert(1)>\n")
    s.finish(answer="</pre><h1>x</h1>")
    page = to_html(model_of(s.events))
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page and "</pre><h1>" not in page and "\x1b" not in page


def test_long_texts_are_cut_unless_full():
    s = EventScript()
    s.reply("r0", 0, "```repl\nllm_query(p)\n```")
    s.step_start("r0", 0, 0, "llm_query(p)")
    call = s.call_start("r0", 0, 0, "P" * (CUT * 3))
    s.call_end(call, "r0", "R" * (CUT * 2))
    s.step_end("r0", 0, 0)
    s.finish()
    model = model_of(s.events)
    short, full = to_html(model), to_html(model, full=True)
    assert "P" * (CUT * 3) not in short and "use rlm show --full --html" in short
    assert "P" * (CUT * 3) in full and "R" * (CUT * 2) in full


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)")
def test_page_loads_in_headless_chromium(tmp_path):
    page = tmp_path / "run.html"
    page.write_text(to_html(model_of(demo_run(50, failures=3, depth=2).events)), encoding="utf-8")
    base = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom"]
    dom = subprocess.run([*base, page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert 'data-ready="1"' in dom  # the inline script ran
    closed = dom.count("<details>")
    assert closed > 0 and "RateLimitError" in dom
    dom = subprocess.run([*base, page.as_uri() + "#expand-all"], capture_output=True, text=True,
                         timeout=120).stdout
    assert 'data-ready="1"' in dom and dom.count("<details>") == 0  # expand all opened every node
    assert dom.count("<details open") >= closed
