"""Plain (non-TTY) progress lines, choosing the view, and printing the answer."""

from __future__ import annotations

import io

import pytest

from rlm_cli.run.events import EventBus, Notice
from rlm_cli.view.demo import EventScript, demo_run
from rlm_cli.view.live import LiveView
from rlm_cli.view.plain import PlainView
from rlm_cli.view.select import ViewHandle, attach_view, print_answer, wants_live


class Tty(io.StringIO):
    """A StringIO that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def plain_lines(script_fn) -> list[str]:
    stream = io.StringIO()
    view = PlainView(stream)
    script_fn(view)
    return stream.getvalue().splitlines()


def test_plain_run_has_no_escape_codes_and_no_timestamps():
    def script(emit):
        s = EventScript(question="what \x1b[31mis\x1b[0m this?", emit=emit)
        s.reply("r0", 0, "\x1b[2J```repl\nprint(1)\n```")
        s.step_start("r0", 0, 0, "print(1)")
        call = s.call_start("r0", 0, 0, "\x1b]0;evil title\x07")
        s.call_end(call, "r0", error="\x1b[31mboom\x1b[0m")
        s.step_end("r0", 0, 0, stdout="\x1b[31mred\n", error="ValueError: \x1b[1mbad")
        emit(Notice("sandbox \x1b[33mweaker\x1b[0m"))
        s.finish()

    stream = io.StringIO()
    script(PlainView(stream))
    out = stream.getvalue()
    assert "\x1b" not in out and "\x07" not in out
    # Made visible, not obeyed (rlm_cli.view.safe), so the line still says what the model wrote.
    assert "sub-call failed: \\x1b[31mboom\\x1b[0m" in out and "error: ValueError: \\x1b[1mbad" in out
    assert "rlm: warning: sandbox \\x1b[33mweaker\\x1b[0m" in out
    assert not any(ch.isdigit() and ":" in line[:9] for line in out.splitlines() for ch in line[:2])


def test_plain_lines_fold_a_thousand_sub_calls_and_indent_recursion():
    lines = plain_lines(lambda v: demo_run(1000, failures=3, depth=2, emit=v))
    step = [ln for ln in lines if ln.startswith("[r0 iteration 2 step 1] ok")]
    assert len(step) == 1 and "1001 sub-call(s) (3 failed)" in step[0]
    assert sum("sub-call failed" in ln for ln in lines) == 3
    assert len(lines) < 30
    depth1 = next(ln for ln in lines if "recursive RLM at depth 1" in ln)
    depth2 = next(ln for ln in lines if "recursive RLM at depth 2" in ln)
    assert depth1.startswith("  [") and depth2.startswith("    [")
    assert sum("recursive RLM done" in ln for ln in lines) == 2
    assert lines[-1].startswith("rlm: answered in 12.5s; 3 iteration(s) (+4 nested), 1004 sub-call(s), ")


@pytest.mark.parametrize(("tty", "env", "live"), [
    (True, {}, True),
    (False, {}, False),
    (True, {"NO_COLOR": "1"}, False),
    (True, {"NO_COLOR": ""}, True),  # NO_COLOR counts only when non-empty
    (False, {"FORCE_COLOR": "1"}, True),
    (True, {"NO_COLOR": "1", "FORCE_COLOR": "1"}, False),
    (True, {"TERM": "dumb"}, False),
])
def test_wants_live(tty, env, live):
    assert wants_live(Tty() if tty else io.StringIO(), env) is live


def test_attach_view_quiet_plain_live(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    bus = EventBus()
    quiet = attach_view(bus, quiet=True, stream=Tty())
    assert quiet.kind == "quiet" and quiet.sink is None and not quiet.stream_root and bus._sinks == []
    quiet.close()
    plain = attach_view(bus, quiet=False, stream=io.StringIO())
    assert plain.kind == "plain" and isinstance(plain.sink, PlainView) and not plain.stream_root
    live = attach_view(EventBus(), quiet=False, stream=Tty())
    assert live.kind == "live" and isinstance(live.sink, LiveView) and live.stream_root
    live.close()
    live.close()


def test_quiet_prints_nothing():
    stream = Tty()
    bus = EventBus()
    handle = attach_view(bus, quiet=True, stream=stream)
    demo_run(50, emit=bus.emit)
    handle.close()
    assert stream.getvalue() == ""


def test_plain_view_from_attach_view_is_clean_for_ci(monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "")
    stream = io.StringIO()
    bus = EventBus()
    handle = attach_view(bus, quiet=False, stream=stream)
    demo_run(100, emit=bus.emit, stream=handle.stream_root)
    handle.close()
    out = stream.getvalue()
    assert out and "\x1b" not in out and "\r" not in out


@pytest.mark.parametrize("answer", ["42", "# Title\n\n* a\n* b\n", "tabs\tand  spaces  \n\n", "", "**x**"])
def test_answer_on_a_pipe_is_the_raw_text(answer):
    out = io.StringIO()
    print_answer(answer, out)
    assert out.getvalue() == (answer if answer.endswith("\n") else answer + "\n")
    out2 = io.StringIO()
    ViewHandle("plain").print_answer(answer, out2)
    assert out2.getvalue() == out.getvalue()


def test_answer_on_a_terminal_is_markdown(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = Tty()
    print_answer("# Findings\n\n* **auth** lives in `auth.py`\n", out)
    text = out.getvalue()
    assert "# Findings" not in text and "**auth**" not in text  # rendered, not raw
    assert "Findings" in text and "auth.py" in text and "•" in text
