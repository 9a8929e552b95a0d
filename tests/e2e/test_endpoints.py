"""End-to-end (issue 20, point 3): root and sub-LM on different endpoints, through the installed ``rlm``.

Two scripted servers on loopback stand in for two providers: ``root_srv`` is OpenAI-shaped (an
``openai/`` model via its base URL), ``sub_srv`` is reached by litellm's ``hosted_vllm/`` route by
base URL. Each server must receive only its own model's requests, with its own key."""

from __future__ import annotations

import pytest
from helpers import Cli
from scripted_server import Reply, ScriptedServer

ROOT_KEY = "sk-root-key-0123456789"
WORKER_KEY = "sk-worker-key-9876543210"


def _repl(code: str) -> str:
    return f"```repl\n{code}\n```"


@pytest.fixture
def two_servers():
    with ScriptedServer() as root_srv, ScriptedServer() as sub_srv:
        yield root_srv, sub_srv


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("the answer is 42\n")
    return path


def _cli(tmp_path) -> Cli:
    """A runner with no RLM_API_BASE, RLM_MODEL or RLM_SUB_MODEL: each test names its endpoints."""
    return Cli(tmp_path / "home", None, RLM_MODEL=None, RLM_SUB_MODEL=None, OPENAI_API_KEY=ROOT_KEY,
               WORKER_KEY=WORKER_KEY)


def _auth(server) -> set[str]:
    return {r.headers.get("Authorization") for r in server.requests if r.is_chat}


def _models(server) -> set[str | None]:
    return {r.model for r in server.requests if r.is_chat}


def _assert_split(root_srv, sub_srv, root_model="root", sub_model="worker"):
    assert _models(root_srv) == {root_model}, _models(root_srv)
    assert _models(sub_srv) == {sub_model}, _models(sub_srv)
    assert _auth(root_srv) == {f"Bearer {ROOT_KEY}"}
    assert _auth(sub_srv) == {f"Bearer {WORKER_KEY}"}  # the worker's key, and only there


def test_sub_api_base_flag_sends_sub_calls_to_their_own_server(tmp_path, two_servers, src):
    root_srv, sub_srv = two_servers
    root_srv.script("root", _repl("print(llm_query('say hi'))"), "FINAL(done)")
    sub_srv.script("worker", "hi from the worker")
    cli = _cli(tmp_path)
    p = cli("ask", "-m", "openai/root", "--api-base", root_srv.base_url, "--sub-model", "hosted_vllm/worker",
            "--sub-api-base", sub_srv.base_url, src, "q?", HOSTED_VLLM_API_KEY=WORKER_KEY)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "done\n"
    _assert_split(root_srv, sub_srv)
    second_root = root_srv.requests_for("root")[1].body["messages"][-1]["content"]
    assert "hi from the worker" in second_root


def test_alias_tables_carry_endpoint_and_key_variable(tmp_path, two_servers, src):
    root_srv, sub_srv = two_servers
    root_srv.script("root", _repl("print(llm_query('a'))\nprint(llm_query('b', model='w2'))"), "FINAL(ok)")
    sub_srv.default("worker", "w-reply")
    cli = _cli(tmp_path)
    (cli.home).mkdir(parents=True, exist_ok=True)
    (cli.home / "config.toml").write_text(
        f'model = "openai/root"\napi_base = "{root_srv.base_url}"\nsub_model = "worker"\n\n'
        f'[aliases]\nw2 = "hosted_vllm/worker"\n\n'
        f'[aliases.worker]\nmodel = "hosted_vllm/worker"\napi_base = "{sub_srv.base_url}"\n'
        'api_key_env = "WORKER_KEY"\n')
    p = cli("ask", src, "q?")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "ok\n"
    _assert_split(root_srv, sub_srv)
    assert len(sub_srv.requests_for("worker")) == 2  # llm_query(model='w2') too: the model's own endpoint
    doc = cli.trajectory()
    assert WORKER_KEY not in str(doc) and ROOT_KEY not in str(doc)
    show = cli("config", "show", "--json", "--no-probe")
    assert WORKER_KEY not in show.stdout


def test_unset_key_variable_is_a_usage_error(tmp_path, two_servers, src):
    root_srv, sub_srv = two_servers
    cli = _cli(tmp_path)
    cli.home.mkdir(parents=True, exist_ok=True)
    (cli.home / "config.toml").write_text(
        f'[aliases.worker]\nmodel = "hosted_vllm/worker"\napi_base = "{sub_srv.base_url}"\napi_key_env = "NOPE_KEY"\n')
    p = cli("ask", "-m", "openai/root", "--api-base", root_srv.base_url, "--sub-model", "worker", src, "q?")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "rlm: error: aliases.worker: api_key_env NOPE_KEY is not set; export NOPE_KEY=KEY (or fix the name)"]
    assert not root_srv.requests and not sub_srv.requests


@pytest.mark.parametrize("table, message", [
    ('[aliases.w]\napi_base = "http://127.0.0.1:1/v1"\n', "needs a model"),
    ('[aliases.w]\nmodel = "x"\napi_key = "sk-inline"\n', "unknown field 'api_key'"),
    ('[aliases.w]\nmodel = "x"\napi_base = "ftp://h"\n', "must be an http:// or https:// URL"),
    ('[aliases.w]\nmodel = "x"\napi_key_env = "sk-0123 456"\n', "must name an environment variable"),
])
def test_bad_alias_tables_are_one_line_errors(tmp_path, src, table, message):
    cli = _cli(tmp_path)
    cli.home.mkdir(parents=True, exist_ok=True)
    (cli.home / "config.toml").write_text(table)
    p = cli("ask", "-m", "openai/root", "--api-base", "http://127.0.0.1:9/v1", src, "q?")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr
    assert "sk-0123" not in p.stderr or "api_key_env" in p.stderr


def test_serve_and_bench_use_the_endpoints_too(tmp_path, two_servers):
    root_srv, sub_srv = two_servers
    root_srv.default("root", "FINAL(42)")
    sub_srv.default("worker", "w")
    cli = _cli(tmp_path)
    p = cli("bench", "niah", "--n", "1", "--lengths", "2k", "--systems", "rlm,base", "--context-window", "8192",
            "-m", "openai/root", "--api-base", root_srv.base_url, "--sub-model", "hosted_vllm/worker",
            "--sub-api-base", sub_srv.base_url, "--json", "-q")
    assert p.returncode == 0, p.stderr
    assert _models(root_srv) == {"root"} and not {"root"} & _models(sub_srv)
    assert _auth(root_srv) == {f"Bearer {ROOT_KEY}"}


def test_max_retries_bounds_retries_of_server_errors(tmp_path, two_servers, src):
    root_srv, _ = two_servers
    root_srv.default("root", Reply("overloaded", status=503))
    cli = _cli(tmp_path)
    p = cli("ask", "-m", "openai/root", "--api-base", root_srv.base_url, "--max-retries", "1", src, "q?",
            timeout=60)
    assert p.returncode == 1, p.stderr
    assert len(root_srv.requests_for("root")) == 2  # the first attempt and one retry
    bad = cli("ask", "-m", "openai/root", "--api-base", root_srv.base_url, src, "q?", RLM_MAX_RETRIES="many")
    assert bad.returncode == 2 and "RLM_MAX_RETRIES" in bad.stderr
