"""The REPL starts while the first root LM call is in flight (only a step needs it), and a REPL that
cannot start still ends the run as an error at its first step, with its REPL killed."""

from __future__ import annotations

import asyncio
import time

from engine_runner import run_engine

from rlm_cli.repl.process import ReplError, ReplProcess


def test_the_first_lm_call_does_not_wait_for_the_repl(fake_lm, monkeypatch):
    real_start = ReplProcess.start
    marks: dict[str, float] = {}

    async def slow_start(self):
        await asyncio.sleep(0.5)
        await real_start(self)
        marks["repl_ready"] = time.monotonic()

    def root(body):
        marks.setdefault("lm_asked", time.monotonic())
        return "```repl\nFINAL('n=' + str(len(context)))\n```"

    monkeypatch.setattr(ReplProcess, "start", slow_start)
    fake_lm.default("root", root)
    run = run_engine(fake_lm)
    assert run.status == "answered" and run.answer.startswith("n=")
    assert marks["lm_asked"] < marks["repl_ready"]


def test_a_repl_that_cannot_start_fails_the_run_at_its_first_step(fake_lm, monkeypatch):
    async def broken(self):
        raise ReplError("the REPL process failed to start: test")

    monkeypatch.setattr(ReplProcess, "start", broken)
    fake_lm.script("root", "```repl\nprint(1)\n```")
    run = run_engine(fake_lm)
    assert run.status == "error" and "failed to start" in run.doc["error"]["message"]

