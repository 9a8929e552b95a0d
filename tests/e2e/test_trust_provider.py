"""Issue #10, class 6 and parts of 10: provider replies are hostile input.

A reply cut off, a 200 with an error body, no choices, null content or invalid JSON is a retryable
fault, then a clear error, on both request paths; a code block that never closed is not run; root
replies are bounded; a missing FINAL_VAR variable is never printed as the answer; a slow
final-variable lookup is not reported as the --timeout budget.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from helpers import last_trajectory, rlm_env, run_rlm, source_file
from scripted_server import MALFORMED, Reply

from rlm_cli.context import ContextWriter
from rlm_cli.errors import ProviderError
from rlm_cli.lm.client import LMClient
from rlm_cli.lm.replies import MAX_REPLY_CHARS
from rlm_cli.repl.process import ReplProcess
from rlm_cli.run import engine
from rlm_cli.run.budget import Limits
from rlm_cli.run.events import EventBus
from rlm_cli.run.parsing import parse_reply
from rlm_cli.trajectory.recorder import TrajectoryRecorder

BACKENDS = ["auto", "litellm"]

# What the final error must name, per fault (both paths, streamed or not).
NAMED = {
    "cut": ("cut off", "connection", "Connection error"),
    "drop": ("connection", "Connection error", "payload is not completed"),
    "error_body": ("upstream exploded",),
    "no_choices": ("no choices", "cut off", "'choices' that is not a list"),
    "null_content": ("content is null",),
    "invalid_json": ("not valid JSON",),
}


def _client(server, backend: str, **kw) -> LMClient:
    return LMClient(api_base=server.base_url, api_key="sk-test", backend=backend, backoff_base_s=0.001,
                    backoff_max_s=0.01, **kw)


def _ask(client: LMClient, model: str, stream: bool = False):
    async def go():
        async with client:
            return await client.complete(model, [{"role": "user", "content": "hi"}], role="root",
                                         on_delta=(lambda piece: None) if stream else None)
    return asyncio.run(go())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", MALFORMED)
def test_a_malformed_reply_is_retried_then_a_clear_error(scripted_server, backend, stream, kind):
    scripted_server.default("root", Reply("upstream exploded halfway", malformed=kind))
    with pytest.raises(ProviderError) as exc:
        _ask(_client(scripted_server, backend, max_retries=2), "openai/root", stream)
    message = str(exc.value)
    assert "gave up after 3 attempts" in message, message
    assert any(word in message for word in NAMED[kind]), message
    assert len(scripted_server.requests_for("root")) == 3


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", ["cut", "error_body", "no_choices", "null_content", "invalid_json"])
def test_a_malformed_reply_then_a_good_one_gives_the_good_one(scripted_server, backend, stream, kind):
    scripted_server.script("root", Reply("broken", malformed=kind), "the real answer")
    result = _ask(_client(scripted_server, backend), "openai/root", stream)
    assert (result.text, result.attempts) == ("the real answer", 2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_reply_cut_by_the_token_limit_is_a_real_reply(scripted_server, backend, stream):
    scripted_server.script("root", Reply("half an ans", finish_reason="length", send_usage=False))
    result = _ask(_client(scripted_server, backend), "openai/root", stream)
    assert (result.text, result.attempts) == ("half an ans", 1)
    assert result.usage.output_tokens > 0  # no usage from the server: still an estimate


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("reason", ["length", "content_filter"])
def test_null_content_cut_by_the_token_limit_or_a_filter_is_an_empty_reply(scripted_server, stream, reason):
    scripted_server.script("root", Reply("", malformed="null_content", finish_reason=reason))
    result = _ask(_client(scripted_server, "auto"), "openai/root", stream)
    assert (result.text, result.attempts) == ("", 1)


# --- through the whole run -----------------------------------------------------------------------



def _run_in_process(server, tmp_path: Path, limits: Limits | None = None, **lm_kw) -> tuple[engine.RunResult, dict]:
    """One run of the engine in this process against ``server`` (fast retries); (result, trajectory)."""
    writer = ContextWriter(tmp_path / "context.txt")
    writer.add("input.txt", "some data\n")
    loaded = writer.finish()
    recorder = TrajectoryRecorder(None)
    cfg = engine.RunConfig(question="q?", root_model="openai/root", sub_model="openai/sub",
                           limits=limits or Limits(), sub_chars=1000)
    lm = LMClient(api_base=server.base_url, api_key="sk-test", backoff_base_s=0.001, backoff_max_s=0.01,
                  **lm_kw)

    async def go():
        async with lm:
            return await engine.run(cfg, loaded, lm, EventBus([recorder]), tmp_path / "repl")
    return asyncio.run(go()), recorder.doc


def test_an_error_body_with_status_200_ends_the_run_clearly_not_after_20_iterations(scripted_server, tmp_path):
    scripted_server.default("root", Reply("The server is overloaded", malformed="error_body"))
    result, doc = _run_in_process(scripted_server, tmp_path, max_retries=2)
    assert result.status == "error" and result.answer is None
    assert "overloaded" in result.error["message"] and "gave up after 3 attempts" in result.error["message"]
    assert len(scripted_server.requests_for("root")) == 3
    assert doc["status"] == "error"


def test_a_null_reply_is_retried_not_spent_as_an_iteration(scripted_server, tmp_path):
    s = scripted_server
    s.script("root", Reply(malformed="null_content"), "FINAL(the answer)")
    home = tmp_path / "home"
    p = run_rlm(["ask", source_file(tmp_path), "q?"], rlm_env(s, home))
    assert (p.returncode, p.stdout) == (0, "the answer\n"), p.stderr
    doc = last_trajectory(home)
    assert len(doc["iterations"]) == 1 and len(s.requests_for("root")) == 2


def test_a_reply_that_is_not_json_is_retried(scripted_server, tmp_path):
    s = scripted_server
    s.script("root", Reply("FINAL(wrong)", malformed="invalid_json"), "FINAL(right)")
    p = run_rlm(["ask", source_file(tmp_path), "q?"], rlm_env(s, tmp_path / "home"))
    assert (p.returncode, p.stdout) == (0, "right\n"), p.stderr


# --- unclosed blocks ---------------------------------------------------------------------------

def test_an_unclosed_block_is_not_run():
    parsed = parse_reply("Let me look.\n```repl\nimport shutil\nshutil.rmtree('/')")
    assert parsed.blocks == [] and parsed.unclosed_block
    parsed = parse_reply("```repl\nx = 1\n```\nthen\n```repl\nprint(x)")  # the closed one runs
    assert parsed.blocks == ["x = 1"] and parsed.unclosed_block
    parsed = parse_reply("FINAL(guess)\n```repl\nprint(1)")  # no answer taken beside unrun code
    assert parsed.final_text is None and parsed.final_beside_code


def test_an_unclosed_block_in_a_run_is_not_run_and_the_root_is_told(scripted_server, tmp_path):
    s = scripted_server
    s.script("root", "```repl\nprint('RAN-' + 'UNCLOSED')", "FINAL(done)")
    p = run_rlm(["ask", source_file(tmp_path), "q?"], rlm_env(s, tmp_path / "home"))
    assert (p.returncode, p.stdout) == (0, "done\n"), p.stderr
    told = s.requests_for("root")[1].body["messages"][-1]["content"]
    assert "never closed" in told and "RAN-UNCLOSED" not in told
    assert not last_trajectory(tmp_path / "home")["iterations"][0]["steps"]


# --- bounds on root replies --------------------------------------------------------------------

def test_a_huge_root_reply_is_cut_before_history_trajectory_and_next_prompt(scripted_server, tmp_path):
    s = scripted_server
    huge = "```repl\nprint('x')\n```\n" + "blah " * (3 * MAX_REPLY_CHARS // 5)  # 3 x the bound
    s.script("root", huge, "FINAL(ok)")
    home = tmp_path / "home"
    p = run_rlm(["ask", source_file(tmp_path), "q?"], rlm_env(s, home))
    assert (p.returncode, p.stdout) == (0, "ok\n"), p.stderr
    sent = s.requests_for("root")[1].body["messages"]
    assistant = [m["content"] for m in sent if m["role"] == "assistant"]
    assert len(assistant[0]) < MAX_REPLY_CHARS + 200 and "were cut" in assistant[0]
    assert sum(len(m["content"]) for m in sent) < MAX_REPLY_CHARS + 20_000
    logged = last_trajectory(home)["iterations"][0]["response"]
    assert len(logged) < MAX_REPLY_CHARS + 200
    assert "x" in last_trajectory(home)["iterations"][0]["steps"][0]["stdout"]  # the block before the cut ran


# --- FINAL_VAR ---------------------------------------------------------------------------------

def test_final_var_of_a_missing_variable_on_the_last_call_is_not_the_answer(scripted_server, tmp_path):
    s = scripted_server
    s.default("root", "I am done.\nFINAL_VAR(result)")
    home = tmp_path / "home"
    p = run_rlm(["ask", source_file(tmp_path), "q?", "--max-iterations", "1", "--json"], rlm_env(s, home))
    assert p.returncode == 3, p.stderr
    out = json.loads(p.stdout)
    assert out["answer"] is None and out["status"] == "max_iterations"
    assert "FINAL_VAR" not in p.stdout
    assert last_trajectory(home)["answer"] is None
    told = s.requests_for("root")[1].body["messages"]
    assert any("no variable named 'result'" in (m["content"] or "") for m in told)


def test_final_var_of_a_missing_variable_after_code_is_not_the_answer(scripted_server, tmp_path):
    s = scripted_server
    s.script("root", "```repl\nprint(1)\n```", "FINAL_VAR(result)")
    p = run_rlm(["ask", source_file(tmp_path), "q?", "--max-iterations", "1"], rlm_env(s, tmp_path / "home"))
    assert p.returncode == 3, p.stderr
    assert p.stdout == ""


def test_a_slow_final_variable_lookup_is_not_a_timeout_budget(scripted_server, tmp_path, monkeypatch):
    """get_var gives up after its own timeout (30 s in production, shortened here); no --timeout was
    set, so the run must not report the timeout budget as exhausted."""
    original = ReplProcess.get_var

    async def short_get_var(self, name, *args, **kwargs):
        async with asyncio.timeout(1.0):
            return await original(self, name, *args, **kwargs)

    monkeypatch.setattr(ReplProcess, "get_var", short_get_var)
    s = scripted_server
    s.script("root",
             "```repl\nclass Slow:\n    def __str__(self):\n        import time\n        time.sleep(600)\n"
             "        return 'never'\nresult = Slow()\nprint('defined')\n```",
             "FINAL_VAR(result)",
             "FINAL(a plain answer)")
    result, doc = _run_in_process(s, tmp_path)
    assert result.exhausted != "timeout" and doc.get("exhausted") != "timeout"
    assert (result.status, result.answer) == ("answered", "a plain answer")
    told = s.requests_for("root")[2].body["messages"][-1]["content"]
    assert "timed out" in told and "result" in told


def test_an_inner_timeout_escaping_the_run_is_an_error_not_the_timeout_budget(scripted_server, tmp_path,
                                                                                monkeypatch):
    async def boom(self):
        raise TimeoutError("some inner wait")

    monkeypatch.setattr(engine.RlmInstance, "solve", boom)
    result, doc = _run_in_process(scripted_server, tmp_path)
    assert result.status == "error" and result.exhausted is None
    assert "timed out (some inner wait)" in result.error["message"]
    assert doc["status"] == "error"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_a_huge_sub_lm_reply_is_cut_before_it_reaches_the_code(scripted_server, tmp_path):
    s = scripted_server
    s.default("sub", Reply(text="y" * (MAX_REPLY_CHARS + 50_000)))
    s.script("root", "```repl\nr = llm_query('q')\nprint('cut:', len(r) < 200_200, r[200_000:200_005] != 'yyyyy', 'were cut' in r)\n```", "FINAL(done)")
    src = tmp_path / "in.txt"
    src.write_text("data\n")
    proc = run_rlm(["ask", str(src), "q?"], rlm_env(s, tmp_path / "home"))
    assert proc.returncode == 0, proc.stderr
    feedback = s.requests_for("root")[1].body["messages"][-1]["content"]
    assert "cut: True True True" in feedback
