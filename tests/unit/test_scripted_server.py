"""Tests of the scripted OpenAI-compatible server itself (through litellm and raw urllib)."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from scripted_server import Reply, ScriptedServer

from rlm_cli.lm.backend_litellm import load_litellm

litellm = load_litellm()  # offline cost map, no banners

KEY = "sk-test"


def _kw(server: ScriptedServer, content: str = "hi", model: str = "openai/root", **extra) -> dict:
    return {
        "model": model,
        "api_base": server.base_url,
        "api_key": KEY,
        "messages": [{"role": "user", "content": content}],
        "max_retries": 0,  # the OpenAI SDK retries 429/5xx twice by default
        **extra,
    }


def _post(server: ScriptedServer, body: dict, path: str = "/v1/chat/completions", timeout: float = 10):
    """POST JSON with urllib; returns (status, headers, raw bytes) also for HTTP errors."""
    req = urllib.request.Request(
        server.base_url.removesuffix("/v1") + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers, err.read()


def _sse_events(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body, checking the framing (one data line per event)."""
    text = raw.decode()
    assert text.endswith("\n\n")
    events = []
    for block in text.split("\n\n")[:-1]:
        lines = block.split("\n")
        assert len(lines) == 1 and lines[0].startswith("data: "), block
        events.append(lines[0][len("data: ") :])
    return events


def test_non_streaming_text_and_usage(scripted_server):
    scripted_server.script(
        "root", "hello world, this is a reply", Reply("cached", cached_tokens=3, prompt_tokens=40)
    )
    prompt = "x" * 37
    resp = litellm.completion(**_kw(scripted_server, prompt))
    assert resp.choices[0].message.content == "hello world, this is a reply"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens == math.ceil(37 / 4)
    assert resp.usage.completion_tokens == math.ceil(len("hello world, this is a reply") / 4)
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens

    resp = litellm.completion(**_kw(scripted_server, prompt))
    assert resp.choices[0].message.content == "cached"
    assert resp.usage.prompt_tokens == 40
    assert resp.usage.prompt_tokens_details.cached_tokens == 3
    assert scripted_server.pending("root") == 0


def test_streaming_through_litellm_reassembles_text_and_usage(scripted_server):
    text = "The answer is forty-two, as computed by the scripted server."
    scripted_server.script("root", Reply(text, completion_tokens=11))
    stream = litellm.completion(
        **_kw(scripted_server, "q" * 8, stream=True, stream_options={"include_usage": True})
    )
    pieces, usage, finish = [], None, None
    for chunk in stream:
        if chunk.choices:
            if chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            finish = chunk.choices[0].finish_reason or finish
        if getattr(chunk, "usage", None):
            usage = chunk.usage
    assert "".join(pieces) == text
    assert len(pieces) > 1
    assert finish == "stop"
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (2, 11)
    assert scripted_server.requests[0].stream


def test_sse_framing_raw(scripted_server):
    scripted_server.script("root", "abcdefghij", "abcdefghij")
    base = {"model": "root", "messages": [{"role": "user", "content": "hi"}], "stream": True}

    status, headers, raw = _post(scripted_server, {**base, "stream_options": {"include_usage": True}})
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    events = _sse_events(raw)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:] if c["choices"])
    content = [c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]]
    assert "".join(content) == "abcdefghij" and len([p for p in content if p]) > 1
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}

    # Without include_usage: no usage chunk at all.
    status, _, raw = _post(scripted_server, base)
    chunks = [json.loads(e) for e in _sse_events(raw)[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"] and "usage" not in c for c in chunks)


def test_callable_reply_sees_request_body(scripted_server):
    seen = []

    def echo(body: dict) -> str:
        seen.append(body)
        return "echo: " + body["messages"][-1]["content"].upper()

    scripted_server.script(
        "root", echo, lambda body: Reply(f"n={len(body['messages'])}", completion_tokens=5)
    )
    assert litellm.completion(**_kw(scripted_server, "ping")).choices[0].message.content == "echo: PING"
    assert seen[0]["model"] == "root"
    resp = litellm.completion(**_kw(scripted_server, "again"))
    assert resp.choices[0].message.content == "n=1"
    assert resp.usage.completion_tokens == 5


def test_queue_exhaustion_and_default(scripted_server):
    scripted_server.script("root", "only one")
    assert litellm.completion(**_kw(scripted_server)).choices[0].message.content == "only one"
    with pytest.raises(litellm.InternalServerError, match="scripted server: no reply left for model root"):
        litellm.completion(**_kw(scripted_server))
    assert scripted_server.requests[-1].status == 500

    status, _, raw = _post(scripted_server, {"model": "nobody", "messages": []})
    assert status == 500
    assert json.loads(raw)["error"]["message"] == "scripted server: no reply left for model nobody"

    scripted_server.default("root", "fallback")
    scripted_server.default("*", lambda body: f"wildcard for {body['model']}")
    scripted_server.script("root", "queued")
    assert litellm.completion(**_kw(scripted_server)).choices[0].message.content == "queued"
    assert litellm.completion(**_kw(scripted_server)).choices[0].message.content == "fallback"
    assert litellm.completion(**_kw(scripted_server, model="openai/sub")).choices[0].message.content == (
        "wildcard for sub"
    )


def test_error_status_carries_headers_and_openai_body(scripted_server):
    scripted_server.script("root", Reply("slow down", status=429, headers={"Retry-After": "1"}))
    status, headers, raw = _post(
        scripted_server, {"model": "root", "messages": [{"role": "user", "content": "x"}]}
    )
    assert status == 429
    assert headers["Retry-After"] == "1"
    assert json.loads(raw) == {
        "error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}
    }
    scripted_server.script("root", Reply(status=429), "ok")
    with pytest.raises(litellm.RateLimitError):
        litellm.completion(**_kw(scripted_server))
    status, _, raw = _post(scripted_server, {"model": "root", "messages": []}, path="/chat/completions")
    assert (status, json.loads(raw)["choices"][0]["message"]["content"]) == (200, "ok")


def test_fail_randomly_is_seeded_and_does_not_consume(scripted_server):
    replies = [f"r{i}" for i in range(30)]
    scripted_server.script("root", *replies)
    scripted_server.fail_randomly(0.4, statuses=(429, 503), seed=7, retry_after="2")
    outcomes = []
    for _ in range(30):
        status, headers, raw = _post(scripted_server, {"model": "root", "messages": []})
        outcomes.append(status)
        if status != 200:
            assert headers["Retry-After"] == "2"
            assert status in (429, 503)
    ok = outcomes.count(200)
    assert 0 < ok < 30
    assert scripted_server.pending("root") == 30 - ok  # failures consumed nothing
    got = [r.reply_text for r in scripted_server.requests if r.status == 200]
    assert got == replies[:ok]

    with ScriptedServer() as other:  # same seed, same failure pattern
        other.default("root", "x")
        other.fail_randomly(0.4, statuses=(429, 503), seed=7, retry_after="2")
        assert [_post(other, {"model": "root", "messages": []})[0] for _ in range(30)] == outcomes
        other.fail_randomly(0)
        assert _post(other, {"model": "root", "messages": []})[0] == 200


def test_max_in_flight_with_concurrent_async_calls(scripted_server):
    scripted_server.default("root", Reply("slow", delay_s=0.3))

    async def fan_out():
        return await asyncio.gather(
            *(litellm.acompletion(**_kw(scripted_server, f"p{i}")) for i in range(20))
        )

    results = asyncio.run(fan_out())
    assert [r.choices[0].message.content for r in results] == ["slow"] * 20
    assert scripted_server.max_in_flight > 1  # concurrency is observed by the server, not by a clock
    assert scripted_server.in_flight == 0


def test_many_concurrent_raw_requests(scripted_server):
    scripted_server.default("root", Reply("ok", delay_s=0.2))
    statuses: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: statuses.append(_post(scripted_server, {"model": "root", "messages": []})[0])
        )
        for _ in range(120)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert statuses == [200] * 120
    assert scripted_server.max_in_flight > 10


def test_requests_are_recorded(scripted_server):
    scripted_server.script("root", "a").script("sub", "b")
    litellm.completion(**_kw(scripted_server, "first"))
    litellm.completion(**_kw(scripted_server, "second", model="openai/sub"))
    reqs = scripted_server.requests
    assert [r.model for r in reqs] == ["root", "sub"]
    assert [r.status for r in reqs] == [200, 200]
    r0 = reqs[0]
    assert r0.path.endswith("/chat/completions")
    assert r0.body["messages"] == [{"role": "user", "content": "first"}]
    assert r0.prompt_text == "first"
    assert r0.headers.get("Authorization") == f"Bearer {KEY}"
    assert r0.t_start <= r0.t_end <= reqs[1].t_start
    assert [r.reply_text for r in scripted_server.requests_for("sub")] == ["b"]
    assert len(scripted_server.chat_requests()) == 2


def test_models_endpoint_and_unknown_route(scripted_server):
    scripted_server.script("root", "a")
    scripted_server.default("sub", "b")
    with urllib.request.urlopen(scripted_server.base_url + "/models", timeout=5) as resp:
        listing = json.loads(resp.read())
    assert [m["id"] for m in listing["data"]] == ["root", "sub"]
    status, _, raw = _post(scripted_server, {"model": "root"}, path="/v1/embeddings")
    assert status == 404 and "error" in json.loads(raw)


def test_stop_does_not_wait_for_delayed_requests_or_idle_connections():
    server = ScriptedServer().start()
    server.script("root", "quick", Reply("never", delay_s=30))
    errors: list[BaseException] = []

    def slow():
        try:
            _post(server, {"model": "root", "messages": []}, timeout=20)
        except Exception as exc:
            errors.append(exc)

    litellm.completion(**_kw(server))  # leaves an idle pooled keep-alive connection behind
    t = threading.Thread(target=slow)
    t.start()
    while server.in_flight == 0:
        time.sleep(0.01)
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 10  # a hang would wait out the 20 s request; a bound, not a speed target
    t.join(timeout=5)
    assert not t.is_alive() and errors  # the cut request failed instead of hanging
    server.stop()  # idempotent


def test_standalone_mode(tmp_path: Path):
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps({"root": ["one", {"text": "two", "completion_tokens": 9}], "defaults": {"sub": "d"}})
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve().parents[1] / "scripted_server.py"),
            "--port",
            "0",
            "--script",
            str(script),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        server = ScriptedServer()
        server.port = int(base_url.rsplit(":", 1)[1].split("/")[0])  # only to build URLs for _post
        answers = [
            json.loads(_post(server, {"model": m, "messages": []})[2]) for m in ("root", "root", "sub")
        ]
        assert [a["choices"][0]["message"]["content"] for a in answers] == ["one", "two", "d"]
        assert answers[1]["usage"]["completion_tokens"] == 9
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
