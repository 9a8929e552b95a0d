"""Budget accounting and the trajectory document (unit level)."""

from __future__ import annotations

import json

import pytest

from rlm_cli.errors import BudgetExceeded
from rlm_cli.run.budget import Budget, Limits
from rlm_cli.run.events import (
    RlmStarted,
    RootReply,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    SubCallFinished,
    SubCallStarted,
    Usage,
)
from rlm_cli.trajectory.recorder import TrajectoryRecorder


def test_sub_call_budget_counts_in_flight_calls():
    b = Budget(Limits(max_sub_calls=2))
    b.reserve_sub_call()
    b.reserve_sub_call()  # both still in flight: nothing recorded yet
    with pytest.raises(BudgetExceeded) as exc:
        b.reserve_sub_call()
    assert exc.value.budget == "sub_calls" and b.exhausted == "sub_calls"


def test_cost_and_tokens_budgets():
    b = Budget(Limits(max_cost=0.10, max_tokens=None))
    b.record("m", Usage(1000, 10, 0, 0.06), "sub")
    b.check_call()
    b.record("m", Usage(1000, 10, 0, 0.05), "root")
    with pytest.raises(BudgetExceeded):
        b.check_call()
    assert b.exhausted == "cost"
    t = Budget(Limits(max_tokens=100))
    t.record("m", Usage(90, 10, 0, None), "root")
    with pytest.raises(BudgetExceeded):
        t.check_call()
    u = t.usage_dict()
    assert u["total_cost_usd"] is None and u["root"]["unpriced_calls"] == 1


def test_timeout_budget():
    b = Budget(Limits(timeout=0.5))
    b.started -= 1
    with pytest.raises(BudgetExceeded) as exc:
        b.check_call()
    assert exc.value.budget == "timeout"


def _events():
    yield RunStarted("id1", "q?", "openai/root", "openai/sub", {"total_chars": 1, "est_tokens": 1, "files": []},
                     Limits().as_dict(), "2026-01-01T00:00:00Z")
    yield RlmStarted("r0", 0, None, "q?")
    yield RootReply("r0", 0, "```repl\nx\n```", Usage(10, 5), 0.1, "openai/root")
    yield StepStarted("r0", 0, 0, "x")
    yield SubCallStarted("c1", "r0", 0, 0, "rlm", "openai/root", "child?")
    yield RlmStarted("r0.1", 1, "c1", "child?")
    yield RootReply("r0.1", 0, "FINAL(c)", Usage(3, 1), 0.1, "openai/root")
    yield SubCallFinished("c1", "r0", "c", Usage(), 0.2)
    yield StepFinished("r0", 0, 0, "out sk-live-SECRET-abcdef123456\n", "", 0.3)
    yield RunFinished("answered", "a", None, Budget(Limits()).usage_dict(), "2026-01-01T00:00:01Z", 1.0)


def test_trajectory_nests_children_and_redacts_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "sk-live-SECRET-abcdef123456")
    path = tmp_path / "t.json"
    rec = TrajectoryRecorder(path, interval_s=0)
    for ev in _events():
        rec(ev)
    text = path.read_text()
    assert "sk-live-SECRET" not in text and "[REDACTED]" in text
    doc = json.loads(text)
    call = doc["iterations"][0]["steps"][0]["sub_calls"][0]
    assert call["kind"] == "rlm" and call["iterations"][0]["response"] == "FINAL(c)"
    assert call["iterations"][0]["depth"] == 1
    assert doc["status"] == "answered" and doc["ended_at"]
    assert not list(tmp_path.glob(".t.json.*"))  # no temporary files left behind


def test_cli_default_output_limit_matches_limits():
    from rlm_cli.commands.ask import DEFAULT_MAX_OUTPUT_CHARS

    assert Limits().max_output_chars == DEFAULT_MAX_OUTPUT_CHARS
