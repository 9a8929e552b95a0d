"""End-to-end: ``rlm mcp`` on stdio, driven by the MCP SDK's own client against the scripted LM
server: tool schemas, answers over a directory, a file and a PDF, progress during a run with
sub-calls, cancellation (REPL killed, trajectory written, server alive), the roots scope, ``continue``
and a stdout that carries nothing but JSON-RPC."""

from __future__ import annotations

import json
import subprocess

import anyio
import pytest
from convert_support import make_pdf
from helpers import RLM, repl_pids, trajectories, wait_until
from mcp_support import NEEDLE, root_reply, stdio_session
from scripted_server import Reply


@pytest.fixture
def ws(tmp_path, scripted_server):
    """A workspace root holding a directory of logs, a file and a PDF (each with needles)."""
    scripted_server.default("root", root_reply)
    scripted_server.default("sub", Reply("sub ok", delay_s=0.3))
    root = tmp_path / "ws"
    (root / "logs").mkdir(parents=True)
    for i in range(3):
        (root / "logs" / f"{i}.log").write_text(f"line\n{NEEDLE}\nline\n")
    (root / "one.txt").write_text(f"{NEEDLE} {NEEDLE}\n")
    make_pdf(root / "report.pdf", [f"page one {NEEDLE}", "page two", f"page three {NEEDLE} {NEEDLE} {NEEDLE}"])
    return root


def run(fn):
    return anyio.run(fn)


def test_tools_are_listed_with_schemas(cli, ws):
    async def main():
        async with stdio_session(cli, roots=[ws]) as s:
            return (await s.list_tools()).tools

    tools = {t.name: t for t in run(main)}
    assert set(tools) == {"ask", "ls", "show"}
    ask = tools["ask"]
    props = ask.input_schema["properties"]
    assert ask.input_schema["required"] == ["question"]
    assert {"question", "sources", "model", "sub_model", "max_cost", "max_sub_calls", "timeout", "continue"} <= set(props)
    assert props["sources"]["description"] and "too large" in ask.description
    assert set(ask.output_schema["properties"]) >= {"run_id", "status", "usage", "cost_usd", "citations", "trajectory"}
    assert tools["show"].input_schema["required"] == ["run_id"]


def test_ask_answers_over_a_directory_a_file_and_a_pdf(cli, ws, scripted_server):
    async def main():
        async with stdio_session(cli, roots=[ws]) as s:
            out = []
            for src, q in ((ws / "logs", "QID-count a"), (ws / "one.txt", "QID-count b"), (ws / "report.pdf", "QID-count c")):
                out.append(await s.call_tool("ask", {"question": q, "sources": [str(src)]}))
            out.append(await s.call_tool("ls", {"sources": [str(ws)]}))
            out.append(await s.call_tool("show", {"run_id": out[0].structured_content["run_id"]}))
            return out

    d, f, p, ls, show = run(main)
    assert [r.content[0].text for r in (d, f, p)] == ["n=3", "n=2", "n=4"]
    assert not d.is_error and d.structured_content["status"] == "answered"
    assert d.structured_content["trajectory"] and d.structured_content["usage"]["root"]["calls"] == 1
    assert "citations" in d.structured_content and "cost_usd" in d.structured_content
    assert len(trajectories(cli.home)) == 3
    listed = {e["path"].rsplit("/", 1)[-1] for e in ls.structured_content["files"]}
    assert listed == {"0.log", "1.log", "2.log", "one.txt", "report.pdf"}
    assert not show.is_error and "QID-count a" in show.content[0].text and "\x1b[" not in show.content[0].text


def test_progress_arrives_during_a_run_with_sub_calls(cli, ws):
    messages: list[tuple[float, str]] = []

    async def progress(value, total, message):
        messages.append((value, message))

    async def main():
        async with stdio_session(cli, "--concurrency", "2", roots=[ws]) as s:
            return await s.call_tool("ask", {"question": "QID-fan", "sources": [str(ws / "one.txt")]},
                                     progress_callback=progress)

    result = run(main)
    assert result.content[0].text == "fanned 6"
    assert len(messages) >= 3, messages
    values = [v for v, _ in messages]
    assert values == sorted(set(values))  # strictly increasing
    assert all(m.startswith("iteration 1; sub-calls") for _, m in messages)
    assert any(" running" in m and not m.startswith("iteration 1; sub-calls 0 done, 0 running") for _, m in messages)
    assert any("done" in m and "sub-calls 0 done" not in m for _, m in messages)


def test_cancellation_kills_the_repl_and_writes_the_trajectory(cli, ws, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()

    async def main():
        async with stdio_session(cli, roots=[ws], TMPDIR=str(tmp)) as s:
            with anyio.move_on_after(60):
                async with anyio.create_task_group() as tg:
                    async def call():
                        await s.call_tool("ask", {"question": "QID-slow", "sources": [str(ws / "one.txt")]})

                    tg.start_soon(call)
                    await anyio.to_thread.run_sync(lambda: wait_until(lambda: bool(repl_pids(tmp)), 60))
                    assert repl_pids(tmp)
                    tg.cancel_scope.cancel()  # the client abandons the call: notifications/cancelled
            gone = await anyio.to_thread.run_sync(lambda: wait_until(lambda: not repl_pids(tmp), 30))
            status = await anyio.to_thread.run_sync(
                lambda: wait_until(lambda: bool(trajectories(cli.home))
                                   and json.loads(trajectories(cli.home)[-1].read_text())["status"] == "interrupted", 30))
            again = await s.call_tool("ask", {"question": "QID-count", "sources": [str(ws / "one.txt")]})
            return gone, status, again

    gone, status, again = run(main)
    assert gone, "the REPL outlived the cancellation"
    assert status
    assert again.content[0].text == "n=2"  # the server goes on serving


def test_sources_outside_the_roots_are_refused_and_not_read(cli, ws, tmp_path, scripted_server):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("SECRET\n")
    (ws / "link.txt").symlink_to(outside / "secret.txt")

    async def main():
        async with stdio_session(cli, roots=[ws]) as s:
            return [await s.call_tool(tool, {"question": "QID-count", "sources": [src]} if tool == "ask" else {"sources": [src]})
                    for tool, src in (("ask", str(outside / "secret.txt")), ("ask", str(ws / "link.txt")),
                                      ("ask", str(ws / ".." / "outside")), ("ls", str(outside)), ("ask", "-"),
                                      ("ask", "https://example.com/x"), ("ask", f"file://{outside}/secret.txt"))]

    results = run(main)
    for r in results:
        assert r.is_error, r
        assert "\n" not in r.content[0].text
    assert "outside the client's roots" in results[0].content[0].text
    assert "--allow-remote" in results[5].content[0].text
    assert not scripted_server.requests_for("root")
    assert not trajectories(cli.home)


def test_roots_list_changed_is_honoured(cli, ws, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "n.txt").write_text(f"{NEEDLE}\n")
    roots = [ws]

    async def main():
        async with stdio_session(cli, roots=roots) as s:
            before = await s.call_tool("ask", {"question": "QID-count", "sources": [str(other / "n.txt")]})
            roots.append(other)
            await s.send_roots_list_changed()
            await anyio.sleep(0.2)
            after = await s.call_tool("ask", {"question": "QID-count", "sources": [str(other / "n.txt")]})
            return before, after

    before, after = run(main)
    assert before.is_error and not after.is_error and after.content[0].text == "n=1"


def test_server_sources_are_the_default_and_in_scope(cli, ws):
    async def main():
        async with stdio_session(cli, str(ws / "one.txt"), roots=[]) as s:
            return (await s.call_tool("ask", {"question": "QID-count"}),
                    await s.call_tool("ask", {"question": "QID-count", "sources": [str(ws / "logs")]}))

    default, other = run(main)
    assert default.content[0].text == "n=2"
    assert other.is_error


def test_continue_sees_the_previous_turns_variables(cli, ws):
    async def main():
        async with stdio_session(cli, roots=[ws]) as s:
            first = await s.call_tool("ask", {"question": "QID-keep", "sources": [str(ws / "one.txt")]})
            second = await s.call_tool("ask", {"question": "QID-recall", "continue": True})
            return first, second

    first, second = run(main)
    assert first.content[0].text == "kept"
    assert second.content[0].text == "recalled 42", second
    assert second.structured_content["run_id"] == first.structured_content["run_id"]


def test_errors_are_tool_results_with_one_line(cli, ws):
    async def main():
        async with stdio_session(cli, "--max-input-size", "30", roots=[ws]) as s:
            big = await s.call_tool("ask", {"question": "QID-count", "sources": [str(ws / "logs")]})
            model = await s.call_tool("ask", {"question": "QID-count", "sources": [str(ws / "one.txt")],
                                              "model": "openai/expensive"})
            cont = await s.call_tool("ask", {"question": "QID-count", "continue": True})
            budget = await s.call_tool("ask", {"question": "QID-slow", "sources": [str(ws / "one.txt")], "timeout": 1})
            return big, model, cont, budget

    big, model, cont, budget = run(main)
    for r in (big, model, cont, budget):
        assert r.is_error and "\n" not in r.content[0].text, r
    assert "max-input-size" in big.content[0].text
    assert "not one this server may use" in model.content[0].text
    assert "nothing to continue" in cont.content[0].text
    assert "stopped: " in budget.content[0].text and "reached" in budget.content[0].text


def test_no_model_is_a_tool_error_not_a_crash(cli, ws):
    async def main():
        async with stdio_session(cli, roots=[ws], RLM_MODEL=None, RLM_SUB_MODEL=None, OPENAI_API_KEY=None,
                                 RLM_API_BASE=None) as s:
            return await s.call_tool("ask", {"question": "QID-count", "sources": [str(ws / "one.txt")]})

    r = run(main)
    assert r.is_error and "no model" in r.content[0].text


def test_stdout_carries_only_json_rpc(cli, ws):
    """A raw client: every line on stdout parses as JSON-RPC even when REPL code writes to fd 1 and a
    run shows progress."""
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "ask", "arguments": {"question": "QID-noisy"}, "_meta": {"progressToken": "p1"}}},
    ]
    proc = subprocess.Popen([RLM, "mcp", str(ws / "one.txt")], env=cli.env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for msg in lines:
            proc.stdin.write((json.dumps(msg) + "\n").encode())
        proc.stdin.flush()
        got = []
        while True:
            line = proc.stdout.readline()
            assert line, proc.stderr.read().decode()
            got.append(line)
            doc = json.loads(line)
            if doc.get("id") == 2:
                break
        proc.stdin.close()
        proc.wait(timeout=30)
        stderr = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    docs = [json.loads(x) for x in got]
    assert all(d.get("jsonrpc") == "2.0" for d in docs)
    assert docs[-1]["result"]["content"][0]["text"] == "n=2"
    assert b"NOISE-ON-FD1" not in b"".join(got) and b"printed" not in b"".join(got)
    assert proc.returncode == 0, stderr
