"""End-to-end: ``rlm chat`` driven through a pseudo-terminal (issue #11): several questions as turns of
one conversation (a variable set in one is read in the next), Ctrl-C stops the question in flight
without leaving, ``/exit`` and Ctrl-D leave with 0, the history file is private."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import stat
import subprocess
import termios
import time

from helpers import RLM, last_trajectory
from scripted_server import Reply

WAIT_S = 60.0  # a guard against hanging, never a measured duration


class Pty:
    """``rlm ARGS`` on a fresh pseudo-terminal (its controlling terminal: Ctrl-C sends SIGINT)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()

        def controlling_tty() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen([RLM, *args], stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True, preexec_fn=controlling_tty)
        os.close(slave)
        self.out = b""

    def expect(self, text: str, count: int = 1) -> str:
        """Read until ``text`` appeared ``count`` times in all output so far; returns the output."""
        deadline = time.monotonic() + WAIT_S
        while self.out.decode("utf-8", "replace").count(text) < count:
            assert time.monotonic() < deadline, f"{text!r} not seen; output:\n{self.out.decode('utf-8', 'replace')}"
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    chunk = b""
                assert chunk, f"rlm exited before {text!r}; output:\n{self.out.decode('utf-8', 'replace')}"
                self.out += chunk
        return self.out.decode("utf-8", "replace")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self) -> int:
        deadline = time.monotonic() + WAIT_S
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, "rlm chat did not exit"
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                with contextlib.suppress(OSError):
                    self.out += os.read(self.master, 65536)
        while select.select([self.master], [], [], 0.2)[0]:  # what it wrote just before it exited
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.out += chunk
        os.close(self.master)
        return self.proc.returncode


def _repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def test_chat_over_several_questions_with_ctrl_c(cli, scripted_server, tmp_path):
    src = tmp_path / "notes.txt"
    src.write_text("auth lives in auth.py\n")
    s = scripted_server
    s.script("root", _repl("where = 'auth.py'\nprint('noted')"), "FINAL(in auth.py)",
             _repl("print('still', where)"), "FINAL(ANSWER-TWO)",
             Reply("FINAL(never shown)", delay_s=40), "FINAL(ANSWER-FOUR)")
    chat = Pty(["chat", str(src)], cli.env(COLUMNS="100", NO_COLOR=None, TERM="xterm"))
    chat.expect("rlm> ")
    chat.send("where is auth handled?\r")
    chat.expect("in auth.py")
    chat.expect("rlm> ", 2)
    chat.send("and which variable did you keep?\r")
    chat.expect("ANSWER-TWO")
    chat.expect("rlm> ", 3)
    chat.send("a slow one\r")
    deadline = time.monotonic() + WAIT_S
    while len(s.requests_for("root")) < 5:  # the slow request is in flight
        assert time.monotonic() < deadline
        time.sleep(0.05)
    chat.send("\x03")  # Ctrl-C: stops this question only
    chat.expect("interrupted")
    chat.expect("rlm> ", 4)
    chat.send("\x1b[A\x15last one\r")  # arrow up (history), Ctrl-U (kill line): readline's editing
    chat.expect("ANSWER-FOUR")
    chat.expect("rlm> ", 5)
    chat.send("/exit\r")
    assert chat.wait() == 0, chat.out.decode("utf-8", "replace")
    doc = last_trajectory(cli.home)
    turns = doc["session"]["turns"]
    assert [t["status"] for t in turns] == ["answered", "answered", "interrupted", "answered"]
    assert [t["question"] for t in turns] == ["where is auth handled?", "and which variable did you keep?",
                                              "a slow one", "last one"]
    assert "still auth.py" in doc["iterations"][2]["steps"][0]["stdout"]
    last = s.requests_for("root")[-1].body["messages"]
    assert "where is auth handled?" in last[1]["content"] and "last one" in last[-1]["content"]
    assert len(cli.trajectories()) == 1
    history = cli.home / "data" / "chat_history"
    assert "a slow one" in history.read_text()
    assert stat.S_IMODE(os.stat(history).st_mode) == 0o600


def test_chat_leaves_on_ctrl_d(cli, scripted_server, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("x\n")
    chat = Pty(["chat", str(src)], cli.env())
    chat.expect("rlm> ")
    chat.send("\x04")
    assert chat.wait() == 0
    assert cli.trajectories() == []


def test_chat_banner_local_commands_kept_paths_and_how_to_continue(cli, scripted_server, tmp_path):
    """Issue 20, point 7: a banner; /help and unknown /commands answered here (no model call); the
    trajectory path printed after a turn still opens the conversation after the next turn; leaving
    says how to continue."""
    import re

    src = tmp_path / "a.txt"
    src.write_text("x\n")
    scripted_server.script("root", "FINAL(one)", "FINAL(two)")
    chat = Pty(["chat", str(src), "-m", "openai/root", "--sub-model", "openai/sub"], cli.env())
    out = chat.expect("rlm> ")
    assert "asking about" in out and "a.txt" in out and "root openai/root, sub-LM openai/sub" in out
    assert "/help lists commands, /exit leaves" in out
    chat.send("/help\r")
    chat.expect("Commands (answered here, never sent to the model)")
    chat.send("/frobnicate now\r")
    chat.expect("unknown command /frobnicate")
    assert scripted_server.requests_for("root") == []
    chat.send("first?\r")
    out = chat.expect("rlm: trajectory: ")
    first_path = re.findall(r"rlm: trajectory: (\S+\.json)", out)[-1]
    chat.expect("rlm> ", 4)
    chat.send("second?\r")
    chat.expect("rlm: trajectory: ", 2)
    chat.expect("rlm> ", 5)
    doc = json.loads(open(first_path, encoding="utf-8").read())  # the first turn's path: both turns
    assert [t["question"] for t in doc["session"]["turns"]] == ["first?", "second?"]
    chat.send("/exit\r")
    assert chat.wait() == 0
    assert "continue it with `rlm chat -c` or `rlm ask -c QUESTION`" in chat.out.decode("utf-8", "replace")
    assert len(scripted_server.requests_for("root")) == 2
    logs = cli("logs", "--json")
    assert len(json.loads(logs.stdout)) == 1  # one conversation listed once, links skipped
