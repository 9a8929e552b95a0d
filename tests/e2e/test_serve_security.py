"""End-to-end attacks on ``rlm serve`` over real loopback HTTP (issue 21): a web page driving it
(foreign ``Origin``, forged ``Host`` as DNS rebinding gives, ``text/plain`` "simple" requests),
idle and dripping connections (slowloris) and the connection cap, a nested JSON body, the
server-wide spending limit, and replies that name no server path."""

from __future__ import annotations

import json
import socket
import threading
import time

import openai
import pytest
from helpers import wait_until
from serve_support import NEEDLE, Server, raw_request

BODY = json.dumps({"model": "rlm", "messages": [{"role": "user", "content": "How many? QID-sec"}]}).encode()


@pytest.fixture
def secret_doc(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text(f"private notes {NEEDLE}\n", encoding="utf-8")
    return path


def post(server: Server, headers: dict, body: bytes = BODY) -> tuple[int, dict, bytes]:
    return raw_request(server.port, "POST", "/v1/chat/completions", body, headers)


def test_a_web_page_cannot_drive_the_server(serve, secret_doc, scripted_server):
    server = serve(str(secret_doc))
    local = f"127.0.0.1:{server.port}"
    # a cross-site "simple" request: text/plain, no preflight in a browser
    status, _, body = post(server, {"Host": local, "Origin": "http://evil.example",
                                    "Content-Type": "text/plain"})
    assert status == 403 and NEEDLE not in body.decode()
    # the same from a page whose own origin is evil.example re-pointed at 127.0.0.1 (DNS rebinding)
    status, _, body = post(server, {"Host": f"evil.example:{server.port}", "Content-Type": "application/json"})
    assert status == 403 and json.loads(body)["error"]["code"] == "host_not_allowed"
    status, _, _ = raw_request(server.port, "GET", "/v1/models", headers={"Host": "evil.example"})
    assert status == 403
    # a foreign Origin, even with JSON, is refused; so is Origin: null (sandboxed frames, file://)
    for origin in ("http://evil.example", "null", f"http://localhost:{server.port + 1}"):
        status, _, body = post(server, {"Host": local, "Origin": origin, "Content-Type": "application/json"})
        assert status == 403 and json.loads(body)["error"]["code"] == "origin_not_allowed", origin
    # JSON only, whatever the origin
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {"Host": local} | ({"Content-Type": ctype} if ctype else {})
        status, _, body = post(server, headers)
        assert status == 415 and json.loads(body)["error"]["param"] is None, ctype
    # a CORS preflight for a foreign origin gets no permission
    status, headers, _ = raw_request(server.port, "OPTIONS", "/v1/chat/completions", headers={
        "Host": local, "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert status == 403 and "access-control-allow-origin" not in headers
    assert not scripted_server.requests_for("root"), "a refused request reached the LM"
    # what stays allowed: the bound address, localhost in any port form, a same-origin page
    for host in (local, "localhost", f"localhost:{server.port}", "LOCALHOST."):
        status, _, body = post(server, {"Host": host, "Content-Type": "application/json; charset=utf-8"})
        assert status == 200 and json.loads(body)["choices"][0]["message"]["content"] == "answer-sec: 1", host
    status, _, _ = post(server, {"Host": local, "Origin": f"http://{local}", "Content-Type": "application/json"})
    assert status == 200


def test_allowed_host_and_cors_origin(serve):
    server = serve("--allow-host", "rlm.internal", "--cors-origin", "http://app.example:3000")
    status, _, _ = raw_request(server.port, "GET", "/v1/models", headers={"Host": "rlm.internal:8080"})
    assert status == 200
    status, headers, _ = raw_request(server.port, "OPTIONS", "/v1/chat/completions", headers={
        "Host": f"127.0.0.1:{server.port}", "Origin": "http://app.example:3000",
        "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type, authorization"})
    assert status == 204
    assert headers["access-control-allow-origin"] == "http://app.example:3000"
    assert "POST" in headers["access-control-allow-methods"]
    assert "content-type" in headers["access-control-allow-headers"].lower()
    status, headers, body = post(server, {"Host": f"127.0.0.1:{server.port}", "Origin": "http://app.example:3000",
                                          "Content-Type": "application/json"})
    assert status == 200 and headers["access-control-allow-origin"] == "http://app.example:3000"
    assert headers.get("vary", "").lower().count("origin") == 1
    status, _, _ = post(server, {"Host": f"127.0.0.1:{server.port}", "Origin": "http://app.example:3001",
                                 "Content-Type": "application/json"})
    assert status == 403


def test_replies_name_the_run_not_server_paths(serve, cli, tmp_path):
    server = serve()
    raw = server.client().chat.completions.with_raw_response.create(
        model="rlm", messages=[{"role": "user", "content": "QID-p"}])
    text = raw.http_response.text + json.dumps(dict(raw.headers))
    assert str(cli.home) not in text and str(tmp_path) not in text and "/logs/" not in text
    assert raw.parse().model_extra["rlm"]["run_id"] == raw.headers["x-rlm-run-id"]


def test_deeply_nested_json_is_400(serve):
    server = serve()
    nested = b'{"model": "rlm", "messages": [{"role": "user", "content": "QID-n"}], "rlm": ' + \
        b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, _, body = post(server, {"Content-Type": "application/json"}, nested)
    assert status == 400, body[:300]
    assert json.loads(body)["error"]["code"] == "invalid_json"
    shallow_deep = b'{"model": "rlm", "messages": [{"role": "user", "content": "QID-n"}], "metadata": ' + \
        b'{"a":' * 500 + b"1" + b"}" * 500 + b"}"
    status, _, body = post(server, {"Content-Type": "application/json"}, shallow_deep)
    assert status == 400, body[:300]


def _drip(port: int, kind: str, stop: threading.Event, closed: list[str]) -> None:
    """One slowloris connection: ``idle`` sends nothing, ``head`` drips header bytes, ``body`` sends a
    head announcing a body and drips it. Appends ``kind`` to ``closed`` when the server drops it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        if kind == "head":
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n")
        if kind == "body":
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
        while not stop.is_set():
            try:
                if kind != "idle":
                    s.sendall(b"X-a: b\r\n" if kind == "head" else b" ")
                data = s.recv(4096)
                if data == b"" or data.startswith(b"HTTP/1.1 408"):
                    closed.append(kind)
                    return
            except TimeoutError:
                continue
            except OSError:
                closed.append(kind)
                return
    finally:
        s.close()


def test_slowloris_connections_are_dropped_and_capped(serve):
    server = serve("--headers-timeout", "2", "--body-timeout", "3", "--keepalive-timeout", "2",
                   "--max-connections", "40")
    stop = threading.Event()
    closed: list[str] = []
    kinds = ["idle", "head", "body"] * 10  # 30 connections, under the cap
    threads = [threading.Thread(target=_drip, args=(server.port, k, stop, closed), daemon=True) for k in kinds]
    try:
        for t in threads:
            t.start()
        time.sleep(0.5)
        # a real request still succeeds meanwhile
        with server.client() as client:  # closed after: its kept-alive connection would hold a slot below
            r = client.chat.completions.create(model="rlm", messages=[{"role": "user", "content": "QID-r"}])
        assert r.choices[0].message.content == "answer-r: 0"
        assert wait_until(lambda: len(closed) == len(kinds), 20), sorted(closed)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    # the cap: beyond 40 open connections, the next is answered 503 and closed before any read
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(40)]
    try:
        time.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        reply = extra.recv(4096)
        assert reply.startswith(b"HTTP/1.1 503"), reply
        extra.close()
    finally:
        for s in held:
            s.close()
    assert wait_until(lambda: raw_request(server.port, "GET", "/v1/models", timeout=5)[0] == 200, 10)
    assert not any("Traceback" in line for line in server.stderr_lines)


def test_max_total_cost_refuses_with_429(serve, scripted_server):
    server = serve("--price", "openai/root=1000000/1000000", "--price", "openai/sub=1/1",
                   "--max-total-cost", "0.000001")
    client = server.client()
    r = client.chat.completions.create(model="rlm", messages=[{"role": "user", "content": "QID-c1"}])
    assert r.choices[0].message.content  # the first run spends past the tiny limit
    calls = len(scripted_server.requests_for("root"))
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="rlm", messages=[{"role": "user", "content": "QID-c2"}])
    assert "--max-total-cost" in err.value.body["message"] and err.value.body["code"] == "spending_limit"
    assert len(scripted_server.requests_for("root")) == calls


def test_max_total_cost_per_hour_is_parsed_and_unpriced_refused(cli, serve):
    p = cli("serve", "--max-total-cost", "5/h", "--port", "0")
    assert p.returncode == 2 and "price" in p.stderr and "Traceback" not in p.stderr
    p = cli("serve", "--max-total-cost", "five", "--port", "0")
    assert p.returncode == 2 and "--max-total-cost" in p.stderr
    server = serve("--price", "openai/root=1/1", "--price", "openai/sub=1/1", "--max-total-cost", "5/h")
    assert server.client().chat.completions.create(
        model="rlm", messages=[{"role": "user", "content": "QID-h"}]).choices[0].message.content


def test_request_max_cost_on_an_unpriced_model_is_400(serve):
    server = serve()
    with pytest.raises(openai.BadRequestError) as err:
        server.client().chat.completions.create(model="rlm", messages=[{"role": "user", "content": "QID-u"}],
                                                extra_body={"rlm": {"max_cost": 0.5}})
    assert err.value.body["param"] == "rlm.max_cost" and "price" in err.value.body["message"]
