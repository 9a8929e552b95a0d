"""Words instead of codes (rlm_cli/view/words.py), the footer's phrase layout (view/phrases.py) and
the model's count of cancelled sub-calls (view/tree.py)."""

from __future__ import annotations

from rlm_cli.run.events import RunFinished, RunStarted, SubCallSent, SubCallStarted
from rlm_cli.view.phrases import Phrases
from rlm_cli.view.tree import RunModel
from rlm_cli.view.words import outcome, sandbox_line, sandbox_warning_wanted


def test_outcomes_in_words():
    lim = {"max_iterations": 8, "max_cost": 0.5, "timeout": 30.0, "max_sub_calls": 1000}
    assert outcome("max_iterations", 0.75, limits=lim) == "stopped: iteration limit (8) reached after 0.75s"
    assert outcome("budget_exhausted", 6.78, exhausted="cost", limits=lim) == \
        "stopped: cost budget ($0.5) reached after 6.78s"
    assert outcome("budget_exhausted", 31, exhausted="timeout", limits=lim).startswith("stopped: time limit (30s)")
    assert outcome("budget_exhausted", 1.0, exhausted=None) == "stopped: a budget reached after 1.00s"
    assert outcome("interrupted", 5.45) == "interrupted after 5.45s"
    assert outcome("answered", 1.2) == "answered in 1.20s" and outcome("error", None) == "failed"
    assert outcome("weird\x1b[2J", 1.0).startswith("weird\\x1b[2J")  # a damaged log's status, made visible


def test_phrases_break_between_phrases_never_inside():
    p = Phrases()
    for phrase in ("stopped: iteration limit (8) reached after 0.75s", "iterations 9", "sub-calls 8 done",
                   "tokens 12.3k in / 456 out", "cost unknown"):
        p.add(phrase)
    p.add("left: sub-calls 992/1,000")
    p.add("iterations 0/8", sep=", ")
    for width in (40, 80, 120):
        lines = [ln.plain for ln in p.lines(width)]
        assert all(len(ln) <= width for ln in lines)
        joined = " · ".join(lines)
        for phrase in ("left: sub-calls 992/1,000", "tokens 12.3k in / 456 out", "iterations 0/8"):
            assert any(phrase in ln for ln in lines), (width, lines)
        assert "stopped: iteration limit (8)" in joined
    assert len(p.lines(1000)) == 1 and p.plain.endswith("left: sub-calls 992/1,000, iterations 0/8")
    assert p.lines(10)[0].plain.endswith("…")  # a phrase longer than the width is cropped


def test_sub_calls_cut_off_by_the_end_are_cancelled_not_running():
    m = RunModel(clock=lambda: 0.0)
    m.apply(RunStarted("r", "q", "root", "sub", {}, {}, ""))
    for i in range(8):
        m.apply(SubCallStarted(f"c{i}", "r0", 0, 0, "llm", "sub", "p"))
        if i < 5:
            m.apply(SubCallSent(f"c{i}", "r0", 0.0))
    assert (m.calls_running, m.calls_queued) == (5, 3)
    m.apply(RunFinished("interrupted", None, {"type": "interrupted", "message": "interrupted by the user"}, {}, "",
                        1.0))
    assert (m.calls_running, m.calls_queued, m.calls_cancelled) == (0, 0, 8)


def test_sandbox_line_says_what_to_do_and_can_be_acknowledged(monkeypatch, tmp_path):
    line = sandbox_line("REPL sandbox is weaker than asked on this system: rlm runs as root and ...\n\x1b[2J")
    assert "\n" not in line and "\x1b" not in line and "run rlm as a normal user" in line
    assert "rlm config set sandbox_warning off" in line
    monkeypatch.setenv("RLM_HOME", str(tmp_path))
    assert sandbox_warning_wanted({}) is True
    (tmp_path / "config.toml").write_text('sandbox_warning = "off"\n')
    assert sandbox_warning_wanted({}) is False
    assert sandbox_warning_wanted({"RLM_SANDBOX_WARNING": "on"}) is True
