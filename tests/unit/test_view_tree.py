"""The run tree (view-model and renderer), rendered through recording Rich consoles."""

from __future__ import annotations

import io
import json

from rich.console import Console

from rlm_cli.run.events import RlmStarted, RootDelta
from rlm_cli.trajectory.recorder import TrajectoryRecorder
from rlm_cli.view.demo import EventScript, demo_run
from rlm_cli.view.render import RenderOptions, render
from rlm_cli.view.tree import RunModel


def model_of(events, now: float = 5.0) -> RunModel:
    model = RunModel(clock=lambda: now)
    for ev in events:
        model.apply(ev)
    return model


def text_of(renderable, width: int = 140, terminal: bool = False) -> str:
    console = Console(record=True, width=width, force_terminal=terminal, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def until_deepest(events) -> list:
    """The events up to just after the deepest recursive RLM started working (depth 2 running)."""
    last = max(i for i, ev in enumerate(events) if isinstance(ev, RlmStarted))
    return events[: last + 4]


def test_depth_two_recursion_nests_live():
    model = model_of(until_deepest(demo_run(20).events))
    out = text_of(render(model, RenderOptions.live()))
    lines = out.splitlines()
    rlm_lines = [ln for ln in lines if "rlm openai/root" in ln]
    assert len(rlm_lines) == 2, out  # depth 1 and depth 2, both running and listed
    indent = [len(ln) - len(ln.lstrip("│ ├└─")) for ln in rlm_lines]
    assert indent[1] > indent[0]  # the depth-2 call sits inside the depth-1 RLM
    assert "step 1 · running" in out and "⠋" in out
    assert "iterations 2 (+2 nested)" in out  # footer: root iterations and nested ones
    assert "2 running" in out


def test_depth_two_recursion_nests_in_show():
    model = model_of(demo_run(5).events)
    out = text_of(render(model, RenderOptions.show()))
    assert out.count("✓ rlm openai/root") == 2
    # each child RLM's iterations are nested under its call, deeper and deeper
    answers = [ln for ln in out.splitlines() if "FINAL(login() checks the token" in ln]
    assert len(answers) == 2
    assert len(answers[0]) - len(answers[0].lstrip("│ ├└─")) > len(answers[1]) - len(answers[1].lstrip("│ ├└─"))
    assert "answer" in out and "Authentication lives in" in out


def test_sub_call_counts_in_labels_and_footer():
    model = model_of(demo_run(20, failures=4, depth=0).events)
    assert (model.calls_started, model.calls_done, model.calls_failed) == (20, 20, 4)
    out = text_of(render(model, RenderOptions.show()))
    assert "20 sub-calls (4 failed)" in out
    assert "sub-calls 20 done (4 failed)" in out
    assert "left: sub-calls 1,980/2,000" in out


def test_thousand_sub_calls_fold_into_one_line_and_errors_stay_visible():
    s = demo_run(1000, failures=3, depth=0, finish=False)
    events = s.events[:-3]  # the fan-out step is still running
    model = model_of(events)
    out = text_of(render(model, RenderOptions.live()), width=120)
    assert "997 sub-calls finished" in out
    assert out.count("RateLimitError") == 3  # every failure listed
    assert "chunk 5 " not in out  # successful calls are not listed one by one
    assert len(out.splitlines()) < 25, out
    assert "sub-calls 1,000 done (3 failed)" in out


def test_folding_caps_failures_and_running_calls():
    s = EventScript()
    s.reply("r0", 0, "```repl\nllm_query_batched(prompts)\n```")
    s.step_start("r0", 0, 0, "llm_query_batched(prompts)")
    running = [s.call_start("r0", 0, 0, f"prompt {i}") for i in range(1000)]
    for call in running[:900]:
        s.call_end(call, "r0", "fine")
    for call in running[900:960]:
        s.call_end(call, "r0", error="boom")
    out = text_of(render(model_of(s.events), RenderOptions.live()), width=120)
    assert "900 sub-calls finished" in out
    assert out.count("✗ llm") == 4 and "… 56 more failed" in out
    assert out.count("⠋ llm") == 5 and "… 35 more running" in out
    assert "960/1,000 sub-calls done" in out


def test_step_error_and_run_error_are_displayed():
    s = EventScript()
    s.reply("r0", 0, "```repl\n1/0\n```")
    s.step_start("r0", 0, 0, "1/0")
    s.step_end("r0", 0, 0, stderr="Traceback ...\nZeroDivisionError: division by zero",
               error="ZeroDivisionError: division by zero")
    s.reply("r0", 1, "```repl\nwhile True: pass\n```")
    s.step_start("r0", 1, 0, "while True: pass")
    s.step_end("r0", 1, 0, error="step timed out after 120s (the REPL was restarted)")
    s.finish(status="error", answer=None, error={"type": "ProviderError", "message": "openai/root: auth failed"})
    model = model_of(s.events)
    live_done = text_of(render(model, RenderOptions.summary()))
    assert "✗ step 1: ZeroDivisionError: division by zero" in live_done  # collapsed iterations keep errors
    assert "✗ ProviderError: openai/root: auth failed" in live_done
    assert live_done.rstrip().splitlines()[-2].startswith("failed after 12.5s")
    show = text_of(render(model, RenderOptions.show()))
    assert "error: step timed out after 120s" in show


def test_streaming_reply_then_collapse():
    s = EventScript()
    text = "Let me look at the context first.\nI will count lines.\n```repl\nprint(1)\n```"
    from rlm_cli.run.events import IterationStarted

    s.emit(IterationStarted("r0", 0, 0))
    for i in range(0, 40, 8):
        s.emit(RootDelta("r0", 0, text[i:i + 8]))
    model = model_of(s.events)
    live = text_of(render(model, RenderOptions.live()))
    assert "root LM thinking" in live and "40 chars" in live
    assert "Let me look at the context first." in live
    s.events.clear()
    s.reply("r0", 0, text)  # the whole reply arrives: the iteration collapses to a summary
    for ev in s.events[1:]:
        model.apply(ev)
    live = text_of(render(model, RenderOptions.live()))
    assert "iteration 1 · 1 code block" in live and "thinking" not in live
    assert "Let me look at the context first. I will count lines." in live


def test_escape_codes_from_the_model_never_reach_the_output():
    s = EventScript(question="q\x1b[31m red?")
    s.reply("r0", 0, "\x1b[2J```repl\nprint('\\x1b[31m')\n```")
    s.step_start("r0", 0, 0, "print('\x1b[31mx')")
    call = s.call_start("r0", 0, 0, "evil \x1b]0;title\x07 prompt")
    s.call_end(call, "r0", "resp \x1b[5m blink")
    s.step_end("r0", 0, 0, stdout="\x1b[31mred\x1b[0m\n")
    s.finish()
    for opts in (RenderOptions.live(), RenderOptions.summary(), RenderOptions.show(), RenderOptions.show(True)):
        out = text_of(render(model_of(s.events), opts), terminal=False)
        assert "\x1b" not in out and "\x07" not in out


def test_footer_shows_budgets_left():
    s = EventScript(limits={"max_iterations": 10, "max_sub_calls": 50, "max_cost": 1.0, "max_tokens": 100_000,
                            "timeout": 60.0})
    s.reply("r0", 0, "```repl\nx\n```", tokens=(1000, 100), cost=0.25)
    model = model_of(s.events, now=20.0)
    model.t0 = 0.0
    footer = text_of(render(model, RenderOptions.live()), width=300).splitlines()[-1]
    for part in ("⏱ 20.0s", "iterations 1", "tokens 1,000 in / 100 out", "$0.2500", "sub-calls 50/50",
                 "iterations 9/10", "cost $0.7500/$1", "tokens 98,900/100,000", "time 40s/60s"):
        assert part in footer, (part, footer)


def test_trajectory_replay_matches_the_live_model():
    recorder = TrajectoryRecorder(None)
    events: list = []

    def both(ev) -> None:
        events.append(ev)
        recorder(ev)

    demo_run(50, failures=5, depth=2, emit=both)
    live = model_of(events)
    replayed = RunModel.from_trajectory(json.loads(recorder.render()))
    for attr in ("iterations", "root_iterations", "calls_started", "calls_done", "calls_failed", "tokens_in",
                 "tokens_out", "status", "answer", "question", "root_model", "sub_model"):
        assert getattr(replayed, attr) == getattr(live, attr), attr
    assert text_of(render(replayed, RenderOptions.show())) == text_of(render(live, RenderOptions.show()))


def test_unfinished_trajectory_renders_without_spinners():
    recorder = TrajectoryRecorder(None)
    s = demo_run(10, emit=recorder, finish=False)
    assert s.events == []  # everything went to the recorder
    model = RunModel.from_trajectory(recorder.doc)
    assert model.status == "running"
    out = text_of(render(model, RenderOptions.show()))
    assert "unfinished log" in out and "⠋" not in out
