"""End-to-end: ``rlm serve`` (the installed command, on a free loopback port, its own LM calls going to
the scripted server) driven by the official ``openai`` client: plain and streamed answers over a long
document, concurrent requests, a disconnect that cancels its run, the body bound, the bind and key
rules, unknown models, per-request budgets and a graceful SIGTERM."""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest
from helpers import repl_pids, trajectories, wait_until
from scripted_server import Reply
from serve_support import NEEDLE, free_port, last_status, root_reply


@pytest.fixture
def document(tmp_path) -> Path:
    """A 2 MB document holding three needles."""
    path = tmp_path / "doc.log"
    line = "2026-11-21 12:00:00 INFO worker heartbeat ok; nothing to report\n"
    n = 2_000_000 // len(line)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(line)
            if i in (n // 4, n // 2, 3 * n // 4):
                fh.write(f"{NEEDLE} found here\n")
    return path


def test_plain_answer_over_long_document(serve, document, cli):
    server = serve(str(document))
    client = server.client()
    models = [m.id for m in client.models.list().data]
    assert models == ["rlm"]
    raw = client.chat.completions.with_raw_response.create(
        model="rlm", messages=[{"role": "system", "content": f"Also count this one: {NEEDLE}"},
                               {"role": "user", "content": "How many needles? QID-1"}])
    resp = raw.parse()
    assert resp.choices[0].message.content == "answer-1: 4"  # three in the file, one in the system message
    assert resp.choices[0].finish_reason == "stop"
    run_id = raw.headers["x-rlm-run-id"]
    assert resp.id == f"chatcmpl-{run_id}"
    assert resp.usage.prompt_tokens > 0 and resp.usage.total_tokens >= resp.usage.prompt_tokens
    doc = json.loads(trajectories(cli.home)[-1].read_text())
    assert doc["id"] == run_id and doc["status"] == "answered" and doc["question"] == "How many needles? QID-1"
    assert doc["context"]["total_chars"] > 2_000_000
    assert server.stop() == 0
    log = [line for line in server.stderr_lines if "POST /v1/chat/completions" in line]
    assert len(log) == 1 and " 200 " in log[0] and f"run={run_id}" in log[0]


def test_streamed_answer(serve, document):
    server = serve(str(document))
    stream = server.client().chat.completions.create(
        model="rlm", messages=[{"role": "user", "content": "How many needles? QID-2"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "answer-2: 3"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")


def test_three_concurrent_requests(serve, document, cli):
    server = serve(str(document))
    client = server.client()
    results: dict[int, str] = {}

    def ask(i: int) -> None:
        r = client.chat.completions.create(model="rlm", messages=[{"role": "user", "content": f"Count QID-c{i}"}])
        results[i] = r.choices[0].message.content

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == {i: f"answer-c{i}: 3" for i in range(3)}
    assert len(trajectories(cli.home)) == 3


def test_disconnect_cancels_the_run(serve, cli):
    server = serve()
    client = server.client(timeout=openai.Timeout(4.0, connect=2.0))
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="rlm", messages=[{"role": "user", "content": "QID-slow1"}])
    assert wait_until(lambda: any("run=" in line and " 499 " in line for line in server.stderr_lines), 30)
    assert wait_until(lambda: not repl_pids(server.tmp), 30), "the run's REPL outlived the disconnect"
    assert wait_until(lambda: last_status(cli.home) == "interrupted", 30)
    assert server.proc.poll() is None  # the server keeps serving


def test_sigterm_cancels_running_requests(serve, cli):
    server = serve()
    errors: list[Exception] = []

    def ask() -> None:
        try:
            server.client().chat.completions.create(model="rlm", messages=[{"role": "user", "content": "QID-slow2"}])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=ask)
    t.start()
    assert wait_until(lambda: bool(repl_pids(server.tmp)), 60)
    assert server.stop() == 0
    t.join(timeout=30)
    assert errors  # the request did not answer
    assert not repl_pids(server.tmp)
    assert json.loads(trajectories(cli.home)[-1].read_text())["status"] == "interrupted"


def test_oversized_body_is_413(serve):
    server = serve("--max-body", "64KiB")
    with pytest.raises(openai.APIStatusError) as err:
        server.client().chat.completions.create(model="rlm", messages=[{"role": "user", "content": "x" * 100_000}])
    assert err.value.status_code == 413
    assert err.value.body["type"] == "invalid_request_error"


def test_non_loopback_bind_without_key_is_refused(cli):
    p = cli("serve", "--host", "0.0.0.0", "--port", str(free_port()), RLM_SERVE_API_KEY=None)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "API key" in lines[0], p.stderr


def test_wrong_key_is_401(serve):
    server = serve("--api-key", "correct-horse-battery")
    with pytest.raises(openai.AuthenticationError):
        server.client("wrong-key-value").models.list()
    with pytest.raises(openai.AuthenticationError):
        server.client("wrong-key-value").chat.completions.create(model="rlm", messages=[{"role": "user",
                                                                                         "content": "QID-k"}])
    assert [m.id for m in server.client("correct-horse-battery").models.list().data] == ["rlm"]


def test_unknown_model_is_404_and_bad_budgets_400(serve):
    server = serve()
    client = server.client()
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "QID-m"}])
    assert err.value.body["code"] == "model_not_found"
    for bad in ({"max_cost": "cheap"}, {"max_iterations": 0}, {"max_depth": True}, {"nope": 1}, [1]):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="rlm", messages=[{"role": "user", "content": "QID-b"}],
                                           extra_body={"rlm": bad})
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="rlm", messages=[{"role": "assistant", "content": "no question"}])


def test_request_budget_lowers_never_raises(serve, cli):
    server = serve("--max-iterations", "5")
    client = server.client()
    r = client.chat.completions.create(model="rlm", messages=[{"role": "user", "content": "QID-l"}],
                                       extra_body={"rlm": {"max_iterations": 50, "max_sub_calls": 3}})
    assert r.choices[0].message.content == "answer-l: 0"
    doc = json.loads(trajectories(cli.home)[-1].read_text())
    assert doc["limits"]["max_iterations"] == 5 and doc["limits"]["max_sub_calls"] == 3


def test_full_queue_is_429(serve):
    server = serve("--max-running", "1", "--max-queue", "0")
    t = threading.Thread(target=lambda: _swallow(lambda: server.client().chat.completions.create(
        model="rlm", messages=[{"role": "user", "content": "QID-slow3"}])), daemon=True)
    t.start()
    assert wait_until(lambda: bool(repl_pids(server.tmp)), 60)
    with pytest.raises(openai.RateLimitError) as err:
        server.client().chat.completions.create(model="rlm", messages=[{"role": "user", "content": "QID-q"}])
    assert err.value.body["type"] == "rate_limit_error"


def _swallow(fn) -> None:
    with contextlib.suppress(Exception):  # the request is cancelled when the server stops
        fn()


def test_alias_models_unknown_path_and_run_errors(serve, cli, scripted_server):
    assert cli("config", "set", "aliases.fast", "openai/fastroot").returncode == 0
    scripted_server.default("fastroot", root_reply)
    server = serve()
    client = server.client()
    assert [m.id for m in client.models.list().data] == ["rlm", "rlm/fast"]
    r = client.chat.completions.create(model="rlm/fast", messages=[{"role": "user", "content": "QID-a"}])
    assert r.choices[0].message.content == "answer-a: 0"
    assert scripted_server.requests_for("fastroot")
    try:
        urllib.request.urlopen(server.url + "/nowhere", timeout=10)
        raise AssertionError("no 404")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404 and json.loads(exc.read())["error"]["type"] == "not_found_error"
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(server.url + "/%1b%5d52%3bc%3bZm9v%07", timeout=10)
    assert wait_until(lambda: any("GET /v1/%1b%5d52" in line and " 404 " in line for line in server.stderr_lines), 10)
    assert not any("\x1b" in line or "\x07" in line for line in server.stderr_lines)
    scripted_server.default("root", Reply("provider says no", status=401))
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="rlm", messages=[{"role": "user", "content": "QID-e"}])
    assert err.value.body["code"] == "run_error"
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="rlm", messages=[{"role": "user", "content": "QID-e2"}],
                                            stream=True))


def test_streamed_disconnect_cancels_the_run(serve, cli):
    server = serve()
    stream = server.client().chat.completions.create(
        model="rlm", messages=[{"role": "user", "content": "QID-slow4"}], stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    assert wait_until(lambda: bool(repl_pids(server.tmp)), 60)
    stream.close()
    assert wait_until(lambda: not repl_pids(server.tmp), 30), "the run's REPL outlived the disconnect"
    assert wait_until(lambda: last_status(cli.home) == "interrupted", 30)


def test_lone_surrogates_in_messages_are_answered_not_a_crash(serve):
    """JSON may carry lone surrogates ("\\ud800"), which UTF-8 cannot encode: the conversation text
    is still loaded (the character replaced), never a 500."""
    server = serve()
    body = json.dumps({"model": "rlm", "messages": [
        {"role": "system", "content": "broken \ud800 text " + NEEDLE},
        {"role": "user", "content": "How many needles? QID-sur\udfff"}]}, ensure_ascii=True).encode()
    req = urllib.request.Request(server.url + "/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        doc = json.loads(resp.read())
    assert doc["choices"][0]["message"]["content"].startswith("answer-sur")
