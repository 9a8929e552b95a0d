"""End-to-end: ``rlm serve`` honours OpenAI's API or says what it cannot (issue 21, point 6), driven by
the official ``openai`` client and raw HTTP: ``max_tokens`` and ``stop`` cut the answer
(``finish_reason: length``), ``n>1``/``tools``/``logprobs``/unknown parameters are 400s naming the
parameter, ``response_format`` json_object / json_schema is checked with one repair turn, and a
streamed run sends progress comments while it works. Also: the EMFILE accept loop stays quiet."""

from __future__ import annotations

import http.client
import json
import re
import resource
import socket
import subprocess
import threading
import time

import openai
import pytest
from helpers import RLM, wait_until
from serve_support import Server, free_port

REPAIR_PROMPT = "You rewrite answers into the exact JSON format"


def root_reply(body: dict) -> str:
    first = str(body["messages"][0].get("content") or "")
    if first.startswith(REPAIR_PROMPT):  # the repair turn
        return '{"count": 3, "unit": "needles"}' if "fixable" in str(body["messages"][-1]["content"]) \
            else "still not json"
    text = "\n".join(str(m.get("content") or "") for m in body["messages"])
    qid = re.search(r"QID-(\w+)", text)
    qid = qid.group(1) if qid else "none"
    if qid == "long":
        return '```repl\nFINAL(" ".join(f"word{i}" for i in range(300)))\n```'
    if qid == "fence":
        return '```repl\nFINAL("```json\\n{\\"count\\": 2, \\"unit\\": \\"x\\"}\\n```")\n```'
    if qid == "work":
        return ('```repl\nimport time\nfor i in range(3):\n    llm_query(f"part {i}")\n'
                'time.sleep(2.5)\nFINAL("worked")\n```')
    if qid.startswith("fixable") or qid.startswith("broken"):
        return f'```repl\nFINAL("three needles, I think ({qid})")\n```'
    return f'```repl\nFINAL("answer-{qid}")\n```'


@pytest.fixture
def server(cli, scripted_server, tmp_path):
    scripted_server.default("root", root_reply)
    scripted_server.default("sub", "sub-answer")
    s = Server(cli, tmp_path)
    yield s
    s.stop()


def ask(server: Server, qid: str, **kw):
    return server.client().chat.completions.create(model="rlm", messages=[{"role": "user", "content": f"Q QID-{qid}"}],
                                                   **kw)


def test_max_tokens_and_stop_cut_the_answer(server):
    r = ask(server, "long", max_tokens=5)
    assert r.choices[0].finish_reason == "length"
    assert r.choices[0].message.content.startswith("word0") and len(r.choices[0].message.content) < 40
    r = ask(server, "long", max_completion_tokens=2000)
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.content.endswith("word299")
    r = ask(server, "long", stop=[" word3 "])
    assert r.choices[0].message.content == "word0 word1 word2" and r.choices[0].finish_reason == "stop"
    chunks = list(ask(server, "long", max_tokens=5, stream=True))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content.startswith("word0") and len(content) < 40
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


@pytest.mark.parametrize("kw, param", [
    ({"n": 2}, "n"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"extra_body": {"frobnicate": 1}}, "frobnicate"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"response_format": {"type": "yaml"}}, "response_format.type"),
    ({"extra_body": {"messages": [{"role": "user", "content": "QID-x", "audio": 1}]}}, "messages[0].audio"),
])
def test_what_cannot_be_honoured_is_a_400_naming_it(server, kw, param):
    with pytest.raises(openai.BadRequestError) as err:
        ask(server, "x", **kw)
    assert err.value.body["param"] == param, err.value.body
    assert param.split(".")[0].split("[")[0] in err.value.body["message"]


def test_harmless_parameters_are_accepted(server):
    r = ask(server, "ok", temperature=0.2, top_p=0.9, user="u-1", seed=3, n=1, logprobs=False,
            metadata={"k": "v"}, stream_options=None)
    assert r.choices[0].message.content == "answer-ok"


def test_response_format_json_is_checked_and_repaired(server, scripted_server):
    schema = {"type": "object", "properties": {"count": {"type": "integer"}, "unit": {"type": "string"}},
              "required": ["count", "unit"], "additionalProperties": False}
    rf = {"type": "json_schema", "json_schema": {"name": "count", "schema": schema}}
    r = ask(server, "fixable1", response_format=rf)
    assert json.loads(r.choices[0].message.content) == {"count": 3, "unit": "needles"}
    root_calls = scripted_server.requests_for("root")
    assert any("JSON Schema" in json.dumps(c.body["messages"]) for c in root_calls)  # told before the run
    assert sum(REPAIR_PROMPT in json.dumps(c.body["messages"]) for c in root_calls) == 1  # one repair turn
    r = ask(server, "fence", response_format=rf)  # a fenced JSON answer is unwrapped, no repair needed
    assert json.loads(r.choices[0].message.content) == {"count": 2, "unit": "x"}
    r = ask(server, "fixable2", response_format={"type": "json_object"})
    assert json.loads(r.choices[0].message.content)["count"] == 3
    with pytest.raises(openai.InternalServerError) as err:
        ask(server, "broken", response_format={"type": "json_object"})
    assert err.value.body["code"] == "response_format_failed"
    assert sum(REPAIR_PROMPT in json.dumps(c.body["messages"]) for c in scripted_server.requests_for("root")) == 3


def test_a_streamed_run_shows_progress_comments(server):
    body = json.dumps({"model": "rlm", "stream": True,
                       "messages": [{"role": "user", "content": "Q QID-work"}]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    text = resp.read().decode()
    conn.close()
    comments = [line for line in text.splitlines() if line.startswith(": rlm iteration")]
    assert comments, text
    assert any(re.fullmatch(r": rlm iteration 1, 3 sub-calls", c) for c in comments), comments
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]) == "worked"


def test_running_out_of_file_descriptors_is_logged_once(cli, scripted_server):
    """With the open-files limit at 90 and a cap above it, 150 connections make accept() fail with
    EMFILE: the server says so once (no traceback per attempt), and answers again once they close."""
    scripted_server.default("root", root_reply)
    port = free_port()

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (90, 90))

    proc = subprocess.Popen([RLM, "serve", "--port", str(port), "--max-connections", "1000"], env=cli.env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=low_fd_limit)
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.extend(iter(lambda: proc.stderr.read1(4096), b"")), daemon=True)
    reader.start()
    socks: list[socket.socket] = []
    try:
        assert wait_until(lambda: b"listening on" in b"".join(err), 60), b"".join(err)
        for _ in range(150):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        assert wait_until(lambda: b"cannot accept" in b"".join(err), 20), b"".join(err)
        time.sleep(3)  # the accept loop backs off meanwhile
        for s in socks:
            s.close()
        socks.clear()
        assert wait_until(lambda: _models_ok(port), 30)
        log = b"".join(err).decode()
        assert log.count("cannot accept connections") == 1 and "Traceback" not in log, log[-2000:]
        assert len(log) < 20_000
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        proc.wait(timeout=30)


def _models_ok(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        conn.request("GET", "/v1/models")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False
