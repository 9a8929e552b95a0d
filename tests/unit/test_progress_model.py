"""Honest progress (issue #15, part 5), in the view-model and the trajectory: queued and running
sub-calls counted apart (batches included), and the time a call waited kept beside its duration.
The engine-level tests are in ``tests/e2e/test_progress.py``."""

from __future__ import annotations

import io

from rich.console import Console

from rlm_cli.trajectory.recorder import TrajectoryRecorder
from rlm_cli.view.demo import EventScript
from rlm_cli.view.render import RenderOptions, render
from rlm_cli.view.tree import RunModel


def test_model_counts_batches_queued_and_running_calls():
    s = EventScript()
    s.reply("r0", 0, "```repl\nllm_query_batched(prompts)\n```")
    s.step_start("r0", 0, 0, "llm_query_batched(prompts)")
    s.batch_queued("r0", 0, 0, 10)
    a = s.call_start("r0", 0, 0, "a", batched=True)
    b = s.call_start("r0", 0, 0, "b", batched=True, queued=True)
    model = RunModel(clock=lambda: 5.0)
    for ev in s.events:
        model.apply(ev)
    assert (model.calls_running, model.calls_queued) == (1, 9)
    s.events.clear()
    s.call_end(a, "r0")
    s.call_end(b, "r0", error="refused before it was sent", queued_s=0.5)  # never sent
    s.batch_done("r0", 0, 0, not_started=8)
    for ev in s.events:
        model.apply(ev)
    assert (model.calls_running, model.calls_queued, model.calls_done) == (0, 0, 2)


def test_recorder_and_show_keep_queued_time():
    s = EventScript()
    recorder = TrajectoryRecorder(None)
    s.reply("r0", 0, "```repl\nllm_query('q')\n```")
    s.step_start("r0", 0, 0, "llm_query('q')")
    call = s.call_start("r0", 0, 0, "q", queued=True)
    s.call_sent(call, "r0", queued_s=1.25)
    s.call_end(call, "r0", duration=0.3, queued_s=1.25)
    s.step_end("r0", 0, 0)
    s.finish()
    for ev in s.events:
        recorder(ev)
    logged = recorder.doc["iterations"][0]["steps"][0]["sub_calls"][0]
    assert (logged["duration_s"], logged["queued_s"]) == (0.3, 1.25)
    console = Console(file=io.StringIO(), width=140, record=True)
    console.print(render(RunModel.from_trajectory(recorder.doc), RenderOptions.show()))
    assert "llm openai/sub · 0.30s (after 1.25s queued)" in console.export_text()
