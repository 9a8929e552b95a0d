"""Budgets that hold, provider faults, recursion and interruption, through the real CLI and HTTP path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from helpers import RLM, assert_trajectory_shape, last_trajectory, repl_pids, rlm_env, run_rlm, source_file
from scripted_server import Reply


def test_ten_thousand_sub_calls_capped_by_max_sub_calls(scripted_server, tmp_path):
    s = scripted_server
    s.script("root",
             "```repl\nres = []\nfor b in range(100):\n"
             "    res += llm_query_batched([f'item {b}-{i}' for i in range(100)])\n"
             "errors = sum(r.startswith('Error:') for r in res)\nprint(len(res), errors)\n```",
             "FINAL(best effort)")
    s.default("sub", "ok")
    home = tmp_path / "home"
    p = run_rlm(["ask", source_file(tmp_path), "q?", "--max-sub-calls", "50", "--concurrency", "16"], rlm_env(s, home))
    assert p.returncode == 3, p.stderr
    assert p.stdout == "best effort\n"
    assert len(s.requests_for("sub")) == 50
    doc = last_trajectory(home)
    assert_trajectory_shape(doc)
    assert doc["status"] == "budget_exhausted" and doc["exhausted"] == "sub_calls"
    assert doc["iterations"][0]["steps"][0]["stdout"].strip() == "10000 9950"  # the code kept running
    assert doc["usage"]["sub_calls"] == 50 and doc["usage"]["refused_sub_calls"] == 9950
    logged = [c for it in doc["iterations"] for st in it["steps"] for c in st["sub_calls"]]
    assert len(logged) == 50  # refusals are counted, not logged one by one
    assert any("sub-call budget" in n["message"] for n in doc["notices"])
    last_prompt = s.requests_for("root")[-1].body["messages"][-1]["content"]
    assert "sub_calls" in last_prompt and "Do not write any more code" in last_prompt


def test_max_cost_no_call_starts_after_the_limit(scripted_server, tmp_path):
    s = scripted_server
    # gpt-4o-mini is priced by litellm ($0.15 per million input tokens): each sub-call costs $0.15.
    s.default("gpt-4o-mini", Reply(text="fine", prompt_tokens=1_000_000, completion_tokens=1))
    s.script("root", "```repl\nout = [llm_query(f'chunk {i}') for i in range(20)]\nprint(out.count('fine'))\n```",
             "FINAL(never asked)")
    home = tmp_path / "home"
    # The root model is free here: under --max-cost every model called needs a price.
    p = run_rlm(["ask", source_file(tmp_path), "q?", "--sub-model", "openai/gpt-4o-mini", "--max-cost", "0.5",
                 "--price", "openai/root=0/0"], rlm_env(s, home))
    assert p.returncode == 3, p.stderr
    assert len(s.requests_for("gpt-4o-mini")) == 4  # $0.60 spent after 4; the 5th never starts
    doc = last_trajectory(home)
    assert doc["status"] == "budget_exhausted" and doc["exhausted"] == "cost"
    assert abs(doc["usage"]["total_cost_usd"] - 0.6) < 0.01
    assert len(s.requests_for("root")) == 1  # no best-answer call: the cost budget is spent


def test_flaky_provider_30_percent_errors_still_answers(scripted_server, tmp_path):
    s = scripted_server
    s.fail_randomly(0.3, statuses=(429, 500, 503), seed=7, retry_after="0")
    s.script("root", "```repl\nr = llm_query_batched([f'q{i}' for i in range(30)])\n"
                     "print(sum(x == 'ok' for x in r))\n```", "FINAL(done)")
    s.default("sub", "ok")
    home = tmp_path / "home"
    p = run_rlm(["ask", source_file(tmp_path), "q?"], rlm_env(s, home))
    assert (p.returncode, p.stdout) == (0, "done\n"), p.stderr
    doc = last_trajectory(home)
    assert doc["iterations"][0]["steps"][0]["stdout"].strip() == "30"
    failed = [r for r in s.chat_requests() if r.status != 200]
    assert failed, "the fault injection did not fire"


def _depth_router(body: dict) -> str:
    """Root replies chosen by the RLM's depth (read from the system prompt) and its turn."""
    system = body["messages"][0]["content"]
    turn = sum(m["role"] == "assistant" for m in body["messages"])
    if "You are at depth 0" in system:
        return ("```repl\nans = rlm_query('find the colour', context=context[-200:])\nprint(ans)\n```"
                if turn == 0 else "FINAL(depth0 got it)")
    if "You are at depth 1" in system:
        return ("```repl\nprint(rlm_query('look closer', context=context))\n```" if turn == 0
                else "FINAL(depth1: blue)")
    # depth 2: the recursion limit; rlm_query degrades to llm_query here
    return ("```repl\nprint(rlm_query('final check'))\n```" if turn == 0 else "FINAL(depth2: blue)")


def test_depth_two_recursion_nests_trajectories(scripted_server, tmp_path):
    s = scripted_server
    s.default("root", _depth_router)
    s.default("sub", "blue")
    home = tmp_path / "home"
    p = run_rlm(["ask", source_file(tmp_path, "the sky is blue\n"), "what colour?", "--max-depth", "2"],
                rlm_env(s, home))
    assert (p.returncode, p.stdout) == (0, "depth0 got it\n"), p.stderr
    doc = last_trajectory(home)
    assert_trajectory_shape(doc)
    call1 = doc["iterations"][0]["steps"][0]["sub_calls"][0]
    assert call1["kind"] == "rlm" and call1["response"] == "depth1: blue"
    assert call1["iterations"][0]["depth"] == 1
    call2 = call1["iterations"][0]["steps"][0]["sub_calls"][0]
    assert call2["kind"] == "rlm" and call2["response"] == "depth2: blue"
    call3 = call2["iterations"][0]["steps"][0]["sub_calls"][0]
    assert call3["kind"] == "llm" and call3["response"] == "blue"  # degraded at max depth
    assert call2["iterations"][0]["depth"] == 2
    assert len(s.requests_for("sub")) == 1


def test_concurrency_bounds_requests_in_flight(scripted_server, tmp_path):
    s = scripted_server
    s.default("sub", Reply(text="ok", delay_s=0.2))
    s.script("root", "```repl\nprint(len(llm_query_batched([str(i) for i in range(24)])))\n```", "FINAL(ok)")
    p = run_rlm(["ask", source_file(tmp_path), "q?", "--concurrency", "4"], rlm_env(s, tmp_path / "home"))
    assert p.returncode == 0, p.stderr
    assert s.max_in_flight == 4


def test_timeout_ends_run_mid_step(scripted_server, tmp_path):
    s = scripted_server
    s.script("root", "```repl\nimport time\ntime.sleep(60)\n```", "FINAL(unreachable)")
    home = tmp_path / "home"
    t0 = time.monotonic()
    p = run_rlm(["ask", source_file(tmp_path), "q?", "--timeout", "2", "--step-timeout", "100"],
                rlm_env(s, home, TMPDIR=str(tmp_path)))
    elapsed = time.monotonic() - t0
    assert p.returncode == 3, p.stderr
    doc = last_trajectory(home)
    assert doc["status"] == "budget_exhausted" and doc["exhausted"] == "timeout"
    assert elapsed < 45  # the step would sleep 60 s: it was cut, not waited out
    assert doc["duration_s"] < 2 + 5  # "within a few seconds" of --timeout, with room for a loaded CI box
    assert not repl_pids(tmp_path)


def test_timeout_ends_run_during_slow_lm_call(scripted_server, tmp_path):
    s = scripted_server
    s.script("root", Reply(text="FINAL(too late)", delay_s=30))
    home = tmp_path / "home"
    p = run_rlm(["ask", source_file(tmp_path), "q?", "--timeout", "1.5"], rlm_env(s, home))
    assert p.returncode == 3, p.stderr
    assert last_trajectory(home)["duration_s"] < 1.5 + 5  # the LM call would take 30 s


def test_sigint_mid_batch(scripted_server, tmp_path):
    s = scripted_server
    s.default("sub", Reply(text="slow", delay_s=20))
    s.script("root", "```repl\nr = llm_query_batched([f'q{i}' for i in range(8)])\n```", "FINAL(x)")
    home = tmp_path / "home"
    proc = subprocess.Popen([RLM, "ask", source_file(tmp_path), "q?", "--json"], env=rlm_env(s, home, TMPDIR=str(tmp_path)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 30
    while len(s.requests_for("sub")) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(s.requests_for("sub")) >= 4, "the batch never started"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    out = json.loads(out)  # --json still describes the run
    assert (out["status"], out["exit_code"], out["answer"]) == ("interrupted", 130, None)
    doc = last_trajectory(home)
    assert doc["status"] == "interrupted" and doc["ended_at"]
    assert_trajectory_shape(doc)
    assert not repl_pids(tmp_path)


def test_retry_after_is_honoured(scripted_server, tmp_path):
    s = scripted_server
    s.script("root", Reply(status=429, text="slow down", headers={"Retry-After": "1"}), "FINAL(after wait)")
    t0 = time.monotonic()
    p = run_rlm(["ask", source_file(tmp_path), "q?"], rlm_env(s, tmp_path / "home"))
    assert (p.returncode, p.stdout) == (0, "after wait\n"), p.stderr
    reqs = s.requests_for("root")
    assert len(reqs) == 2 and reqs[1].t_start - reqs[0].t_end >= 0.95
    assert time.monotonic() - t0 > 1


def test_json_reports_budget_exhaustion(scripted_server, tmp_path):
    s = scripted_server
    s.script("root", "```repl\nprint(1)\n```", "FINAL(partial)")
    p = run_rlm(["ask", source_file(tmp_path), "q?", "--max-iterations", "1", "--json"], rlm_env(s, tmp_path / "home"))
    out = json.loads(p.stdout)
    assert (p.returncode, out["status"], out["exit_code"], out["answer"]) == (3, "max_iterations", 3, "partial")
    assert os.path.exists(out["trajectory"])
