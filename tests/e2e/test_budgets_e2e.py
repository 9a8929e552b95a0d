"""Budgets and interruption through the real CLI and HTTP path: exit codes, stdout, --json, SIGINT.

The budget rules themselves (sub-calls, cost, tokens, timeouts, concurrency, recursion, retries) are
tested in process in tests/unit/test_engine_budgets.py."""

from __future__ import annotations

import json
import os
import signal
import time

from helpers import assert_trajectory_shape, last_trajectory, repl_pids, source_file
from scripted_server import Reply


def test_max_sub_calls_through_the_cli_exits_3_with_the_best_answer(cli, scripted_server, tmp_path):
    """A thin sample over HTTP; the budget rules themselves: tests/unit/test_engine_budgets.py."""
    s = scripted_server
    s.script("root", "```repl\nres = llm_query_batched([f'item {i}' for i in range(200)])\n"
                     "print(len(res), sum(r.startswith('Error:') for r in res))\n```",
             "FINAL(best effort)")
    s.default("sub", "ok")
    home = tmp_path / "home"
    p = cli("ask", source_file(tmp_path), "q?", "--max-sub-calls", "50", "--concurrency", "16")
    assert p.returncode == 3, p.stderr
    assert p.stdout == "best effort\n"
    assert "rlm: stopped: sub-call budget (50 sub-calls) reached after " in p.stderr
    assert len(s.requests_for("sub")) == 50
    doc = last_trajectory(home)
    assert_trajectory_shape(doc)
    assert doc["status"] == "budget_exhausted" and doc["exhausted"] == "sub_calls"
    assert doc["iterations"][0]["steps"][0]["stdout"].strip() == "200 150"


def test_sigint_mid_batch(cli, scripted_server, tmp_path):
    s = scripted_server
    s.default("sub", Reply(text="slow", delay_s=20))
    s.script("root", "```repl\nr = llm_query_batched([f'q{i}' for i in range(8)])\n```", "FINAL(x)")
    home = tmp_path / "home"
    proc = cli.popen("ask", source_file(tmp_path), "q?", "--json", TMPDIR=str(tmp_path))
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


def test_json_reports_budget_exhaustion(cli, scripted_server, tmp_path):
    s = scripted_server
    s.script("root", "```repl\nprint(1)\n```", "FINAL(partial)")
    p = cli("ask", source_file(tmp_path), "q?", "--max-iterations", "1", "--json")
    out = json.loads(p.stdout)
    assert (p.returncode, out["status"], out["exit_code"], out["answer"]) == (3, "max_iterations", 3, "partial")
    assert os.path.exists(out["trajectory"])
