"""Issue #10, class 7 (the parent's side): a batch the budgets cannot pay is refused before it is
materialised, batches have a documented maximum length, non-string prompts are error items, and the
number of live REPL processes stays bounded under ``rlm_query_batched``; class 10: float options
must be finite, ``--log`` with ``--no-log`` is a usage error."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers import RLM, echo_reply, last_trajectory, rlm_env, run_rlm, source_file, step_stdout
from scripted_server import Reply

from rlm_cli.run.budget import Limits
from rlm_cli.run.subcalls import MAX_BATCH


# -- batches --------------------------------------------------------------------------------------
def test_batch_over_the_maximum_is_refused_whole(scripted_server, tmp_path):
    s = scripted_server
    s.script("root",
             "```repl\ntry:\n    r = llm_query_batched(['x'] * 300000)\n    print('returned', type(r).__name__, len(r))\n"
             "except Exception as e:\n    print('raised', type(e).__name__, str(e)[:300])\n"
             "raw = llm_query_batched.__self__.channel.request('llm_query_batched', {'prompts': ['x'] * 300000})\n"
             "print('raw', type(raw).__name__, len(raw), raw[:200])\n"
             "raw = llm_query_batched.__self__.channel.request('rlm_query_batched', {'prompts': ['x'] * 300000})\n"
             "print('raw', type(raw).__name__, len(raw), raw[:200])\n```",
             "FINAL(done)")
    s.default("sub", "ok")
    home = tmp_path / "home"
    p = run_rlm(["ask", source_file(tmp_path), "q?", "--max-sub-calls", "10"], rlm_env(s, home))
    assert p.returncode == 0, p.stderr
    assert s.requests_for("sub") == []
    lines = step_stdout(last_trajectory(home)).splitlines()
    assert lines[0].startswith("raised ValueError") and f"{MAX_BATCH:,}" in lines[0], lines
    for line in lines[1:]:
        assert line.startswith("raw str ") and f"{MAX_BATCH:,}" in line and "Error:" in line, line
    doc = last_trajectory(home)
    assert doc["usage"]["sub_calls"] == 0


def test_batch_beyond_the_budget_runs_what_it_can_pay(scripted_server, tmp_path):
    s = scripted_server
    s.script("root",
             "```repl\nr = llm_query_batched([f'p{i}' for i in range(5000)])\n"
             "print(len(r), sum(x.startswith('Error:') for x in r))\nprint(r[:10] == [f'echo p{i}' for i in range(10)])\n"
             "print(r[10])\nr2 = llm_query_batched(['again'] * 3)\nprint(r2[0])\n```",
             "FINAL(done)")
    s.default("sub", echo_reply)
    home = tmp_path / "home"
    p = run_rlm(["ask", source_file(tmp_path), "q?", "--max-sub-calls", "10"], rlm_env(s, home))
    assert p.returncode == 3, p.stderr
    assert len(s.requests_for("sub")) == 10
    doc = last_trajectory(home)
    out = step_stdout(doc).splitlines()
    assert out[0] == "5000 4990" and out[1] == "True"
    assert out[2].startswith("Error: budget exhausted (sub_calls)") and out[3].startswith("Error: budget")
    assert doc["usage"]["sub_calls"] == 10 and doc["usage"]["refused_sub_calls"] == 4993


def test_non_string_prompts_are_error_items(scripted_server, tmp_path):
    s = scripted_server
    s.script("root",
             "```repl\nreq = llm_query_batched.__self__.channel.request\n"
             "r = req('llm_query_batched', {'prompts': [1, None, 'ok', ['x']]})\nprint(len(r))\n"
             "for x in r:\n    print(x[:80])\n"
             "print(req('llm_query_batched', {'prompts': 'abc'})[:80])\n"
             "print(req('llm_query_batched', {'prompts': {'a': 1}})[:80])\n"
             "print(req('llm_query', {'prompt': 5})[:80])\n"
             "print(req('rlm_query_batched', {'prompts': ['a'], 'contexts': [1]})[0][:80])\n"
             "print(req('rlm_query_batched', {'prompts': ['a', 'b'], 'contexts': ['c']})[:80])\n```",
             "FINAL(done)")
    s.default("sub", echo_reply)
    home = tmp_path / "home"
    p = run_rlm(["ask", source_file(tmp_path), "q?", "--max-depth", "0"], rlm_env(s, home))
    assert p.returncode == 0, p.stderr
    out = step_stdout(last_trajectory(home)).splitlines()
    assert out[0] == "4"
    assert out[1].startswith("Error:") and out[2].startswith("Error:") and out[4].startswith("Error:")
    assert out[3] == "echo ok"
    assert all(line.startswith("Error:") for line in out[5:]), out
    assert len(s.requests_for("sub")) == 1


def test_batched_tasks_stay_bounded_by_concurrency():
    """The router never creates one task per prompt: at most ``--concurrency`` workers."""
    from rlm_cli.lm.client import LMResult
    from rlm_cli.run.budget import Budget
    from rlm_cli.run.events import EventBus, Usage
    from rlm_cli.run.subcalls import StepRef, SubCallRouter

    peak = 0

    class FakeLM:
        prices: dict = {}

        async def complete(self, model, messages, role="sub", on_sent=None):
            nonlocal peak
            peak = max(peak, len(asyncio.all_tasks()))
            await asyncio.sleep(0)
            return LMResult(messages[-1]["content"], Usage(1, 1), 0.0, model)

    class Cfg:
        root_model, sub_model, model_aliases, allowed_models = "openai/root", "openai/sub", {}, ()

    class State:
        cfg, lm, bus = Cfg(), FakeLM(), EventBus([])
        budget = Budget(Limits(max_sub_calls=MAX_BATCH, concurrency=4))
        limits = budget.limits
        root_model, sub_model = "openai/root", "openai/sub"
        child_slots: dict = {}

    async def go():
        router = SubCallRouter(State(), StepRef("r0", 0, 0, 0), None)
        return await router("llm_query_batched", {"prompts": [str(i) for i in range(MAX_BATCH)]})

    out = asyncio.run(go())
    assert out == [str(i) for i in range(MAX_BATCH)]
    assert peak <= 4 + 2


# -- live REPLs -----------------------------------------------------------------------------------
def _live_repls(scope: Path) -> int:
    """REPLs alive for runs whose TMPDIR is ``scope``: distinct working directories (one per REPL)
    of processes running the REPL child script (a sandbox wrapper shares its child's directory)."""
    found = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
                cwd = os.readlink(d / "cwd")
            except OSError:
                continue
            if b"rlm_cli/repl/child.py" in cmd and cwd.startswith(str(scope)):
                found.add(cwd)
    return len(found)


def _root_script(body: dict) -> str | Reply:
    """Root LM replies by who asks: the top-level question fans out, children fan out once more
    (at --max-depth 2), grandchildren answer; every child's first reply is held a little."""
    msgs = body["messages"]
    first = msgs[1]["content"] if len(msgs) > 1 else ""
    if len(msgs) > 2:
        return "FINAL(done)"
    if "Question: TOP" in first:
        n = 30 if "You are at depth 0; recursive RLMs are allowed down to depth 1." in msgs[0]["content"] else 10
        return (f"```repl\nr = rlm_query_batched([f'CHILD {{i}}' for i in range({n})])\n"
                "print('answers', sum(not x.startswith('Error') for x in r), len(r))\n```")
    if "Question: CHILD" in first and "You are at depth 1;" in msgs[0]["content"]:
        return Reply("```repl\nr = rlm_query_batched([f'GRAND {i}' for i in range(3)])\nprint(r)\n```",
                     delay_s=0.05)
    return Reply("FINAL(ok)", delay_s=0.2)


@pytest.mark.parametrize("depth", [1, 2])
def test_rlm_query_batched_bounds_live_repls(scripted_server, tmp_path, depth):
    s = scripted_server
    s.default("root", _root_script)
    s.default("sub", "ok")
    home = tmp_path / "home"
    scope = tmp_path / "tmp"
    scope.mkdir()
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _live_repls(scope))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        p = subprocess.run([RLM, "ask", source_file(tmp_path), "TOP", "--concurrency", "4", "--max-depth", str(depth),
                            "--max-sub-calls", "1000", "--max-iterations", "3"],
                           env=rlm_env(s, home, TMPDIR=str(scope)), capture_output=True, text=True,
                           timeout=300, stdin=subprocess.DEVNULL)
    finally:
        stop.set()
        watcher.join()
    assert p.returncode == 0, p.stderr
    doc = last_trajectory(home)
    n = 30 if depth == 1 else 10
    assert f"answers {n} {n}" in step_stdout(doc)
    assert peak >= 2  # the watcher did see child REPLs
    assert peak <= 1 + 4 * depth, peak  # the root's, and at most --concurrency per depth


# -- class 10: option validation ------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["--request-timeout", "--timeout", "--step-timeout", "--max-cost"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1"])
def test_float_options_must_be_finite(tmp_path, flag, value):
    p = run_rlm(["ask", source_file(tmp_path), "q?", "-m", "openai/root", flag, value], rlm_env(None, tmp_path / "h"))
    assert p.returncode == 2, p.stderr
    assert flag in p.stderr and "Traceback" not in p.stderr, p.stderr  # rlm's one line, or click's usage


def test_request_timeout_zero_refused(tmp_path):
    p = run_rlm(["ask", source_file(tmp_path), "q?", "-m", "openai/root", "--request-timeout", "0"],
                rlm_env(None, tmp_path / "h"))
    assert p.returncode == 2 and "--request-timeout" in p.stderr


@pytest.mark.parametrize("env_name", ["RLM_TIMEOUT", "RLM_MAX_COST", "RLM_STEP_TIMEOUT"])
def test_float_settings_from_env_must_be_finite(tmp_path, env_name):
    p = run_rlm(["ask", source_file(tmp_path), "q?", "-m", "openai/root"],
                rlm_env(None, tmp_path / "h", **{env_name: "inf"}))
    assert p.returncode == 2 and env_name in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_log_with_no_log_is_a_usage_error(scripted_server, tmp_path):
    s = scripted_server
    s.default("root", "FINAL(x)")
    log = tmp_path / "t.json"
    p = run_rlm(["ask", source_file(tmp_path), "q?", "--log", str(log), "--no-log"], rlm_env(s, tmp_path / "h"))
    assert p.returncode == 2
    assert "--log" in p.stderr and "--no-log" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert s.chat_requests() == [] and not log.exists()
