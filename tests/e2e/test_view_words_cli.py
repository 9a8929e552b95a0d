"""Issue 20, point 10: the view speaks in words, not status codes, through the installed ``rlm`` on a
pseudo-terminal (the live view) and on a pipe (plain lines); the codes stay in ``--json`` and the
trajectory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from helpers import RLM, drain_pty, source_file, wait_until
from scripted_server import Reply
from test_tables_commands import ANSI, run_in_pty

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")


def final_screen(out: str) -> str:
    """What the view leaves on the terminal: the summary printed after the live display was erased
    (up to the lines `rlm ask` itself prints after it: commands/ask.py is not the view)."""
    screen = out[out.rfind("◆ "):]
    for end in ("\nrlm: stopped", "\nrlm: interrupted", "\nrlm: trajectory"):
        if end in screen:
            screen = screen[:screen.index(end)]
    return screen


@pytest.mark.parametrize("cols", [80, 120])
def test_iteration_limit_in_words_and_footer_broken_between_phrases(cli, scripted_server, tmp_path, cols):
    scripted_server.default("root", "```repl\nx = 1\nprint(x)\n```")
    out = run_in_pty(["ask", source_file(tmp_path), "what?", "--max-iterations", "2"], cli.env(), cols)
    screen = final_screen(out)
    assert "stopped: iteration limit (2) reached after " in screen, screen
    assert "max_iterations" not in screen and "$?" not in screen and "cost unknown" in screen
    lines = screen.splitlines()
    assert all(len(ln) <= cols for ln in lines), [ln for ln in lines if len(ln) > cols]
    for phrase in ("left: sub-calls 1,000/1,000", "iterations 0/2", "tokens "):  # each phrase on one line
        assert any(phrase in ln for ln in lines), (phrase, screen)
    assert cli.trajectory()["status"] == "max_iterations"  # the code stays in the trajectory


def test_plain_lines_say_it_in_words_too(cli, scripted_server, tmp_path):
    scripted_server.default("root", "```repl\nprint(1)\n```")
    p = cli("ask", source_file(tmp_path), "what?", "--max-iterations", "1")
    assert p.returncode == 3
    assert "rlm: stopped: iteration limit (1) reached after " in p.stderr and "cost unknown" in p.stderr
    assert "max_iterations in" not in p.stderr


def test_failed_final_var_is_not_shown_as_an_answer(cli, scripted_server, tmp_path):
    scripted_server.script("root", "FINAL_VAR(nope)", "```repl\nanswer = 'forty-two'\n```", "FINAL_VAR(answer)")
    out = run_in_pty(["ask", source_file(tmp_path), "what?"], cli.env(), 120)
    screen = final_screen(out)
    assert "✗ iteration 1 · FINAL_VAR(nope) gave no answer" in screen, screen
    assert "✓ iteration 3 · answer" in screen and "forty-two" in out


def test_interrupted_sub_calls_are_cancelled_not_running(cli, scripted_server, tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    scripted_server.default("root", "```repl\nprint(llm_query_batched(['a'] * 16))\n```")
    scripted_server.default("sub", Reply("ok", delay_s=60))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
    env = {k: v for k, v in cli.env().items() if k not in ("COLUMNS", "NO_COLOR")}
    proc = subprocess.Popen([RLM, "ask", source_file(tmp_path), "what?", "--concurrency", "4"], stdin=slave,
                            stdout=slave, stderr=slave, env={**env, "TERM": "xterm"}, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    import threading

    reader = threading.Thread(target=lambda: chunks.append(drain_pty(master)), daemon=True)
    reader.start()
    try:
        assert wait_until(lambda: len(scripted_server.requests_for("sub")) >= 4, 60)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=30)
        os.close(master)
    screen = final_screen(ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r\n", "\n"))
    assert "interrupted after " in screen and "4 cancelled" in screen, screen
    assert "running" not in screen and "interrupted: interrupted" not in screen
    assert "✗ interrupted by the user" in screen


def _sandbox_is_weaker(cli, tmp_path) -> bool:
    notices = cli.trajectory().get("notices") or []
    return any(n.get("message", "").startswith("REPL sandbox") for n in notices)


def test_weaker_sandbox_warning_once_on_one_line_and_acknowledged(cli, scripted_server, tmp_path):
    scripted_server.default("root", "FINAL(ok)")
    out = run_in_pty(["ask", source_file(tmp_path), "what?"], cli.env(), 80)
    if not _sandbox_is_weaker(cli, tmp_path):
        pytest.skip("the sandbox is complete on this machine: no warning to show")
    logical = out.replace("\n", "")  # a long line wraps on the terminal; it is still one line
    assert logical.count("rlm: warning: REPL sandbox") == 1, out
    assert "rlm config set sandbox_warning off" in logical and "To fix:" in logical
    assert "⚠ REPL sandbox" not in out  # not pinned in the tree
    assert cli("config", "set", "sandbox_warning", "off").returncode == 0
    quiet = run_in_pty(["ask", source_file(tmp_path), "what?"], cli.env(), 80)
    assert "REPL sandbox" not in quiet and "ok" in quiet
    assert _sandbox_is_weaker(cli, tmp_path)  # the trajectory keeps it
    plain = cli("ask", source_file(tmp_path), "what?", RLM_SANDBOX_WARNING="on")  # the environment wins
    assert plain.stderr.count("rlm: warning: REPL sandbox") == 1
