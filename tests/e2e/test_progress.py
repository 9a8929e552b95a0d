"""Honest progress (issue #15, part 5): queued and in-flight sub-calls shown apart, each timed from
when it is sent.

The engine runs in process (a background thread) against the scripted server, with the live view,
the plain view and the trajectory recorder on its bus. Sub-LM replies are *held* (the server's
handler blocks until the test releases it), so the test can look at the view while ``--concurrency``
requests are in flight and the rest wait. Durations are checked against the server's own
timestamps of each request (``t_start``/``t_end``, the same monotonic clock), never against a
wall-clock limit: the hold is made long (``HOLD_S`` after the test saw every call asked for, reached
by polling) so that what a queued call waited is far larger than any per-call overhead.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from pathlib import Path

from rich.console import Console

from rlm_cli.context import ContextWriter
from rlm_cli.lm.client import LMClient
from rlm_cli.run import config, engine
from rlm_cli.run.budget import Limits
from rlm_cli.run.events import EventBus
from rlm_cli.trajectory.recorder import TrajectoryRecorder
from rlm_cli.view.live import LiveView
from rlm_cli.view.plain import PlainView
from rlm_cli.view.tree import RunModel

HOLD_S = 1.0  # how long (server clock) held requests stay unanswered before the test releases them
GUARD_S = 60.0  # a hang guard for polling, never an assertion about speed
EPS = 0.002  # durations are logged rounded to 0.1 ms


def poll(condition, what: str, run: Run | None = None) -> None:
    """Wait until ``condition()`` is true (checked every 10 ms); fail naming ``what`` if it never is
    (or if ``run`` ended first)."""
    deadline = time.monotonic() + GUARD_S
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        assert run is None or run.thread.is_alive(), f"the run ended before: {what}: {run.result}"
        time.sleep(0.01)


class Run:
    """One engine run in a background thread, watched by the live and plain views and a recorder."""

    def __init__(self, server, tmp_path: Path, code: str, concurrency: int, then: tuple = ("FINAL(done)",),
                 max_depth: int = 1) -> None:
        writer = ContextWriter(tmp_path / "context.txt")
        writer.add("doc.txt", "lorem ipsum\n" * 10)
        self.loaded = writer.finish()
        limits = Limits(max_sub_calls=500, concurrency=concurrency, max_iterations=4, max_depth=max_depth)
        self.cfg = config.RunConfig(question="progress?", root_model="openai/root", sub_model="openai/sub",
                                    limits=limits, sub_chars=32_000)
        self.recorder = TrajectoryRecorder(None)
        self.plain = io.StringIO()
        self.view = LiveView(Console(file=io.StringIO(), force_terminal=True, width=140, height=60),
                             refresh_per_second=4, summary=False)
        self.bus = EventBus([self.recorder, PlainView(self.plain), self.view])
        self.server, self.workdir = server, tmp_path / "run"
        self.result = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        server.script("root", f"Go.\n```repl\n{code}\n```", *then)  # then the root replies after the step

    def _run(self) -> None:
        async def go():
            async with LMClient(api_base=self.server.base_url, api_key="sk-test", timeout_s=120) as lm:
                return await engine.run(self.cfg, self.loaded, lm, self.bus, self.workdir)

        try:
            self.result = asyncio.run(go())
        finally:
            self.view.close()

    def start(self) -> Run:
        self.thread.start()
        return self

    def join(self) -> None:
        self.thread.join(GUARD_S)
        assert not self.thread.is_alive(), "the run did not end"

    @property
    def model(self) -> RunModel:
        return self.view.model

    def frame(self) -> tuple[str, str]:
        """(tree text, footer text) of the live view's current frame."""
        tree, footer = self.view.frame(140)
        out = []
        for part in (tree, footer):
            console = Console(file=io.StringIO(), width=140, record=True)
            console.print(part)
            out.append(console.export_text())
        return out[0], " ".join(out[1].split())

    def sub_calls(self, iteration: int = 0) -> list[dict]:
        return self.recorder.doc["iterations"][iteration]["steps"][0]["sub_calls"]


def held(release: threading.Event, text: str = "ok"):
    """A scripted reply that blocks the server's handler until ``release`` is set."""
    def reply(body: dict) -> str:
        release.wait(GUARD_S)
        return text
    return reply


def hold_long_enough() -> float:
    """Called once the test has seen every call asked for and the held ones in flight: returns that
    moment (``time.monotonic()``, the server's clock too), after polling until ``HOLD_S`` has passed
    since. So every held request is held at least ``HOLD_S``, and every queued call was asked for
    before the returned moment and sent after a held reply."""
    seen = time.monotonic()
    poll(lambda: time.monotonic() - seen >= HOLD_S, "a long enough hold")
    return seen


def server_s(rec) -> float:
    return rec.t_end - rec.t_start


def by_prompt(server, model: str) -> dict:
    return {r.messages[-1]["content"]: r for r in server.requests_for(model)}


def test_batch_of_64_at_concurrency_4_shows_4_running_and_60_queued(scripted_server, tmp_path):
    release = threading.Event()
    scripted_server.default("sub", held(release))
    code = 'answers = llm_query_batched([f"part {i}" for i in range(64)])\nprint(len(answers), set(answers))'
    run = Run(scripted_server, tmp_path, code, concurrency=4).start()
    try:
        poll(lambda: scripted_server.in_flight == 4 and run.model.calls_queued == 60, "4 in flight, 60 queued", run)
        first = scripted_server.requests_for("sub")
        seen = hold_long_enough()
        tree, footer = run.frame()
        assert scripted_server.in_flight == 4 and len(scripted_server.requests_for("sub")) == 4
    finally:
        release.set()
    run.join()
    assert run.result.status == "answered", run.result
    assert "sub-calls 0 done, 4 running, 60 queued" in footer, footer
    assert "0/64 sub-calls done · 60 queued" in tree, tree
    assert "◦ 60 queued (waiting for a free slot)" in tree, tree
    running = [ln for ln in tree.splitlines() if "llm openai/sub" in ln]
    assert len(running) == 4 and all("queued" not in ln for ln in running), tree
    assert scripted_server.max_in_flight == 4

    calls, recs = run.sub_calls(), by_prompt(scripted_server, "sub")
    assert len(calls) == 64 and len(recs) == 64
    held_recs = [recs[c["prompt"]] for c in calls[:4]]
    assert {id(r) for r in held_recs} == {id(r) for r in first}
    hold = min(r.t_end for r in held_recs) - seen  # a lower bound of what a queued call waited
    assert hold >= HOLD_S
    for call in calls:
        rec = recs[call["prompt"]]
        # timed from sending: at least what the server took, and nowhere near the time spent queued
        assert server_s(rec) - EPS <= call["duration_s"] <= server_s(rec) + hold / 2, (call, server_s(rec))
    for call in calls[:4]:
        assert call["queued_s"] < hold / 2, call
    for call in calls[4:]:  # asked with the batch, sent only once a held call had its reply
        assert call["queued_s"] >= hold - EPS, call
    step = [ln for ln in run.plain.getvalue().splitlines() if "step 1] ok" in ln]
    assert step and "64 sub-call(s), up to 4 in flight" in step[0], run.plain.getvalue()


THREADS = """import threading
out = [None] * 6
def work(i):
    out[i] = llm_query(f"thread {i}")
threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(out)"""


def test_calls_waiting_for_an_lm_slot_are_queued_not_running(scripted_server, tmp_path):
    """Six threads each call ``llm_query`` at --concurrency 2: four wait for the LM semaphore."""
    release = threading.Event()
    scripted_server.default("sub", held(release))
    run = Run(scripted_server, tmp_path, THREADS, concurrency=2).start()
    try:
        poll(lambda: run.model.calls_started == 6 and scripted_server.in_flight == 2, "6 asked, 2 in flight", run)
        first = scripted_server.requests_for("sub")
        seen = hold_long_enough()
        tree, footer = run.frame()
        assert scripted_server.in_flight == 2 and len(scripted_server.requests_for("sub")) == 2
    finally:
        release.set()
    run.join()
    assert run.result.status == "answered", run.result
    assert "sub-calls 0 done, 2 running, 4 queued" in footer, footer
    assert tree.count("◦ llm openai/sub · queued") == 4, tree
    assert sum("llm openai/sub · " in ln and "queued" not in ln for ln in tree.splitlines()) == 2, tree

    calls, recs = run.sub_calls(), by_prompt(scripted_server, "sub")
    assert len(calls) == 6
    hold = min(r.t_end for r in first) - seen
    firsts = {r.messages[-1]["content"] for r in first}
    for call in calls:
        rec = recs[call["prompt"]]
        assert server_s(rec) - EPS <= call["duration_s"] <= server_s(rec) + hold / 2, (call, server_s(rec))
        if call["prompt"] not in firsts:
            assert call["queued_s"] >= hold - EPS, call


RLM_THREADS = """import threading
out = [None] * 2
def work(i):
    out[i] = rlm_query(f"child {i}")
threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(out)"""


def test_child_rlm_waiting_for_a_repl_slot_is_queued(scripted_server, tmp_path):
    """Two ``rlm_query`` threads at --concurrency 1: the second child waits for the first's slot."""
    release = threading.Event()
    then = (held(release, "FINAL(first)"), "FINAL(second)", "FINAL(done)")  # two children, then the root
    run = Run(scripted_server, tmp_path, RLM_THREADS, concurrency=1, then=then).start()
    try:
        poll(lambda: run.model.calls_started == 2 and scripted_server.in_flight == 1
             and len(scripted_server.requests_for("root")) == 2, "one child asking its root LM, one queued", run)
        child_root = scripted_server.requests_for("root")[1]
        seen = hold_long_enough()
        tree, footer = run.frame()
    finally:
        release.set()
    run.join()
    assert run.result.status == "answered", run.result
    assert "sub-calls 0 done, 1 running, 1 queued" in footer, footer
    assert tree.count("◦ rlm openai/root · queued") == 1, tree

    roots = scripted_server.requests_for("root")
    assert len(roots) == 4
    calls = run.sub_calls()
    second = next(c for c in calls if c["response"] == "second")
    assert second["queued_s"] >= child_root.t_end - seen - EPS, second
    # timed from getting its slot (after the first child's reply) to its answer (before the parent's
    # next root request): none of the wait
    assert second["duration_s"] <= roots[3].t_start - child_root.t_end + EPS, second
