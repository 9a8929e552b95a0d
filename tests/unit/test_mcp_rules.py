"""Unit: the MCP server's rules without a client: the roots scope (symlinks, .., remotes, stdin,
file: URLs), budgets that only lower, model choice, per-client state, progress counts, and that no
other command imports the SDK."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rlm_cli.errors import UsageError
from rlm_cli.mcp.config import lowered_limits
from rlm_cli.mcp.progress import ProgressTracker
from rlm_cli.mcp.scope import Clients, Scope, client_key, root_paths
from rlm_cli.run import events as ev
from rlm_cli.run.budget import Limits


def test_scope_admits_inside_roots_and_sources_only(tmp_path):
    root, out = tmp_path / "root", tmp_path / "out"
    root.mkdir()
    out.mkdir()
    (out / "f.txt").write_text("x")
    (tmp_path / "given.txt").write_text("x")
    (root / "in.txt").write_text("x")
    (root / "link").symlink_to(out / "f.txt")
    scope = Scope(roots=root_paths([root.as_uri()]), sources=[tmp_path / "given.txt"])
    assert scope.check(str(root / "in.txt")) == str(root / "in.txt")
    assert scope.check(str(tmp_path / "given.txt")) == str(tmp_path / "given.txt")  # a server SOURCE
    for bad in (str(root / "link"), str(root / ".." / "out"), str(out), "-", f"file://{out}/f.txt",
                "https://example.com/x", "gh:org/repo", "", str(tmp_path / "rootx")):
        with pytest.raises(UsageError):
            scope.check(bad)
    assert Scope(roots=[], sources=[], allow_remote=True).check("https://example.com/x") == "https://example.com/x"


def test_root_uris_other_than_local_files_are_ignored(tmp_path):
    assert root_paths(["https://x/y", "file://otherhost/etc", tmp_path.as_uri()]) == [tmp_path.resolve()]


def test_budgets_only_lower():
    base = Limits(max_cost=1.0, max_sub_calls=10, timeout=None)
    low = lowered_limits(base, max_cost=5, max_sub_calls=3, timeout=9)
    assert (low.max_cost, low.max_sub_calls, low.timeout) == (1.0, 3, 9)
    for bad in ({"max_cost": -1}, {"max_sub_calls": 1.5}, {"timeout": float("nan")}, {"max_cost": True}):
        with pytest.raises(UsageError):
            lowered_limits(base, **bad)


def test_clients_are_kept_apart_and_bounded():
    clients = Clients()
    assert client_key(None) == "stdio" and client_key({"mcp-session-id": "abc"}) == "http:abc"
    assert client_key({}) is None
    a = clients.get("http:a")
    a.last_run = "r1"
    assert clients.get("http:b").last_run is None and clients.get("http:a").last_run == "r1"
    assert clients.get(None) is not clients.get(None)
    for i in range(300):
        clients.get(f"k{i}")
    assert clients.get("http:a").last_run is None  # forgotten


def test_progress_counts_queued_running_done_and_cost():
    t = ProgressTracker()
    t(ev.IterationStarted("r", 0, 0))
    t(ev.BatchQueued("r", 0, 0, 3))
    t(ev.SubCallStarted("c1", "r", 0, 0, "llm", "m", "p", batched=True))
    t(ev.SubCallSent("c1", "r", 0.0))
    assert (t.iteration, t.queued, t.running, t.done) == (1, 2, 1, 0)
    t(ev.SubCallFinished("c1", "r", "ok", ev.Usage(cost_usd=0.5), 0.1))
    t(ev.BatchDone("r", 0, 0, 2))
    assert (t.queued, t.running, t.done, t.cost_usd) == (0, 0, 1, 0.5)
    assert t.message() == "iteration 1; sub-calls 1 done, 0 running, 0 queued; $0.5000"


def test_other_commands_do_not_import_the_sdk():
    code = ("import sys; from rlm_cli.commands.app import app; "
            "print(any(m == 'mcp' or m.startswith(('mcp.', 'mcp_types')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
