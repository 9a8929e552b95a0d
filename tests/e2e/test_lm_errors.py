"""Provider errors name the right fix and fail fast (issue 20, point 5), through the installed CLI."""

from __future__ import annotations

import socket
import time

from conftest import Reply

from rlm_cli.lm.errors import cut_words, short_message


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: connections are refused


def test_refused_connection_is_tried_twice_at_most(cli, tmp_path):
    (tmp_path / "a.txt").write_text("hello\n")
    port = _closed_port()
    t0 = time.monotonic()
    p = cli("ask", "-q", "--no-log", "-m", "openai/root", "--api-base", f"http://127.0.0.1:{port}/v1",
            tmp_path / "a.txt", "q?")
    print(f"refused: failed in {time.monotonic() - t0:.1f}s")  # a number to read, not an assertion
    assert p.returncode == 1
    assert "gave up after 2 attempts" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_server_errors_are_retried_three_times_through_litellm(cli, scripted_server, tmp_path):
    """litellm's ``hosted_vllm/`` route reaching the scripted
    server by api_base; a 503 is retried ``max_retries`` (3) times: four attempts."""
    (tmp_path / "a.txt").write_text("hello\n")
    scripted_server.default("worker", lambda body: Reply(status=503, text="overloaded"))
    p = cli("ask", "-q", "--no-log", "-m", "hosted_vllm/worker", tmp_path / "a.txt", "q?",
            HOSTED_VLLM_API_KEY="x")
    assert p.returncode == 1
    assert len(scripted_server.requests_for("worker")) == 4, p.stderr
    assert "gave up after 4 attempts" in p.stderr


def test_missing_anthropic_key_names_its_variable(cli, tmp_path):
    (tmp_path / "a.txt").write_text("hello\n")
    port = _closed_port()
    p = cli("ask", "-q", "--no-log", "-m", "anthropic/claude-sonnet-4-5", "--api-base", f"http://127.0.0.1:{port}",
            tmp_path / "a.txt", "q?", ANTHROPIC_API_KEY=None, OPENAI_API_KEY=None)
    assert p.returncode == 1
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("rlm: error:")]
    assert len(errors) == 1, p.stderr
    assert "ANTHROPIC_API_KEY" in errors[0] and "OPENAI_API_KEY" not in errors[0]
    assert "…)" in errors[0] or errors[0].endswith(")")


def test_a_quoted_traceback_becomes_its_last_line():
    exc = Exception("litellm.APIConnectionError: 'content'\nTraceback (most recent call last):\n"
                    '  File ".../litellm/main.py", line 1, in acompletion\n    x = y["content"]\n'
                    "KeyError: 'content'\n")
    text = short_message(exc)
    assert "Traceback" not in text and "File" not in text
    assert "KeyError: 'content'" in text


def test_messages_are_cut_between_words():
    text = cut_words("alpha beta gamma delta " * 30, 50)
    assert len(text) <= 50 and text.endswith("…")
    assert text[:-1].split()[-1] in ("alpha", "beta", "gamma", "delta")
