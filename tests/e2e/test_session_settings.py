"""End-to-end (issue 20, points 4, 9, 11): a continued conversation keeps its models, endpoints and
limits; ``--help`` is grouped in panels; ``rlm serve`` checks its SOURCEs at start-up."""

from __future__ import annotations

import json

import pytest
from helpers import Cli, last_trajectory
from scripted_server import ScriptedServer

KEY = "sk-local-conversation-key-000"


@pytest.fixture
def servers():
    with ScriptedServer() as local, ScriptedServer() as elsewhere:
        yield local, elsewhere


def test_a_local_conversation_stays_local(tmp_path, servers):
    local, elsewhere = servers
    src = tmp_path / "notes.txt"
    src.write_text("decoys: none\n")
    local.script("root", "FINAL(first)", "FINAL(second)")
    local.script("other", "FINAL(third)")
    elsewhere.default("*", "FINAL(wrong server)")
    # env and config defaults point somewhere else: only explicit flags may move the conversation
    cli = Cli(tmp_path / "home", None, RLM_MODEL="openai/gpt-5", RLM_SUB_MODEL=None,
              RLM_API_BASE=elsewhere.base_url, RLM_MAX_ITERATIONS="9", OPENAI_API_KEY=None)
    cli.home.mkdir(parents=True)
    (cli.home / "config.toml").write_text(f'sub_api_base = "{elsewhere.base_url}"\nmax_depth = 0\n')
    p1 = cli("ask", "-m", "openai/root", "--api-base", local.base_url, "--max-iterations", "4", src, "q1")
    assert p1.returncode == 0, p1.stderr
    p2 = cli("ask", "-c", "q2")
    assert p2.returncode == 0, p2.stderr
    assert p2.stdout == "second\n"
    assert "rlm: note:" not in p2.stderr
    assert not elsewhere.requests
    assert [r.model for r in local.requests if r.is_chat] == ["root", "root"]
    doc = last_trajectory(cli.home)
    assert doc["models"] == {"root": "openai/root", "sub": "openai/root"}
    assert doc["limits"]["max_iterations"] == 4 and doc["limits"]["max_depth"] == 0
    # the stored record names no key, only where the requests went
    record = json.loads((cli.home / "data" / "sessions" / doc["id"] / "session.json").read_text())
    assert record["settings"]["api_base"] == local.base_url and record["settings"]["model"] == "openai/root"
    assert "sk-local" not in json.dumps(record["settings"])
    # a flag changes one thing, and one notice line says what
    p3 = cli("ask", "-c", "-m", "openai/other", "--max-iterations", "5", "q3")
    assert p3.returncode == 0, p3.stderr
    notes = [line for line in p3.stderr.splitlines() if line.startswith("rlm: note:")]
    assert notes == ["rlm: note: model openai/root -> openai/other (given with -m); "
                     "max_iterations 4 -> 5 (given with --max-iterations)"]
    assert local.requests[-1].model == "other" and not elsewhere.requests


def test_resume_keeps_a_two_endpoint_conversation(tmp_path, servers):
    root_srv, sub_srv = servers
    src = tmp_path / "a.txt"
    src.write_text("x\n")
    root_srv.script("root", "```repl\nprint(llm_query('w'))\n```", "FINAL(one)",
                    "```repl\nprint(llm_query('w'))\n```", "FINAL(two)")
    sub_srv.default("worker", "ok")
    cli = Cli(tmp_path / "home", None, RLM_MODEL=None, RLM_SUB_MODEL=None, WORKER_KEY=KEY)
    cli.home.mkdir(parents=True)
    (cli.home / "config.toml").write_text(
        f'[aliases.worker]\nmodel = "hosted_vllm/worker"\napi_base = "{sub_srv.base_url}"\napi_key_env = "WORKER_KEY"\n')
    p1 = cli("ask", "-m", "openai/root", "--api-base", root_srv.base_url, "--sub-model", "worker", src, "q1")
    assert p1.returncode == 0, p1.stderr
    run_id = last_trajectory(cli.home)["id"]
    p2 = cli("ask", "--resume", run_id, "q2", RLM_SUB_MODEL="openai/elsewhere")
    assert p2.returncode == 0, p2.stderr
    assert {r.model for r in root_srv.requests if r.is_chat} == {"root"}
    assert [r.model for r in sub_srv.requests if r.is_chat] == ["worker", "worker"]
    assert {r.headers.get("Authorization") for r in sub_srv.requests} == {f"Bearer {KEY}"}
    record = (cli.home / "data" / "sessions" / run_id / "session.json").read_text()
    assert KEY not in record and '"WORKER_KEY"' in record


@pytest.mark.parametrize("command", ["ask", "chat", "serve", "bench"])
def test_help_is_grouped_in_panels(cli, command):
    p = cli(command, "--help", COLUMNS="100")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    panels = ["Model:", "Budget:"] + (["Loading:"] if command != "bench" else [])
    panels += ["Session:"] if command in ("ask", "chat") else []
    panels += ["Output:"] if command in ("ask", "bench") else []
    positions = [out.index(f"\n{panel}\n") for panel in panels]
    assert positions == sorted(positions)
    assert "--sub-api-base URL" in out and "--max-retries N" in out
    assert "package-lock.json" not in out and "pnpm-lock" not in out  # the default excludes are not listed
    assert out.count("--model") == 1
    if command == "ask":
        assert len(out.splitlines()) < 90


def test_serve_refuses_a_missing_source_at_start_up(cli, tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("x\n")
    p = cli("serve", str(real), str(tmp_path / "missing.txt"), "--port", "0", "-m", "openai/root", timeout=30)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [f"rlm: error: no such file or directory: {tmp_path / 'missing.txt'}"]
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    p = cli("serve", str(tmp_path / "dangling"), "--port", "0", "-m", "openai/root", timeout=30)
    assert p.returncode == 2 and "no such file or directory" in p.stderr
