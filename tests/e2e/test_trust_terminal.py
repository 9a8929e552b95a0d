"""Issue #10, class 4: escape sequences from models, REPL output, file names and saved runs never
reach a terminal raw.

Each output path is driven through the real command; where a terminal matters, stdout and/or
stderr are pseudo-terminals (``pty``) and the bytes read from the master side are checked: no OSC
(``ESC ]``: clipboard 52, title 0, link 8), no clear-screen or cursor-home that came from hostile
text, while the hostile text is still shown, made visible (``\\x1b``). On a pipe the answer stays
byte-exact (the contract).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest
from helpers import rlm_env
from scripted_server import Reply

from rlm_cli.view.safe import inline, rich_text, visible

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")

# Hostile payloads. Each carries a unique word so a leak is attributable.
OSC52 = "\x1b]52;c;SEVMTE8=\x07"  # write "HELLO" to the clipboard
TITLE = "\x1b]0;PWNED-TITLE\x07"
LINK = "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\"
CLEAR = "\x1b[2J\x1b[H"
BIDI = "\u202eevil\u202c"
HOSTILE_MODEL = "\x1b[2J\x1b[Hevil\x1b]0;MODEL-TITLE\x07"
ANSWER = (f"# Result\n\nclip {OSC52}\n\ntitle {TITLE}\n\nlink {LINK}\n\nclear {CLEAR}\n\nbidi {BIDI}\n\n"
          "[link=file:///etc/passwd]x[/link]\n\n[bold red]red[/bold red]\n\n[docs](http://evil.example/x)\n")
EVIL_FILE = "evil\x1b]0;FILE-TITLE\x07\x1b[2J.txt"

# What must never appear raw. rlm itself never writes OSC sequences, nor clears the screen.
RAW = (b"\x1b]", b"\x1b[2J", b"\x9d", b"\x07", "\u202e".encode())


def assert_no_raw(data: bytes, where: str) -> None:
    for seq in RAW:
        assert seq not in data, f"{where}: raw {seq!r} reached the terminal:\n{data[-3000:]!r}"


def _pty() -> tuple[int, int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 220, 0, 0))
    return master, slave


def _drain(fd: int, sink: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: every writer closed the slave side
            return
        if not chunk:
            return
        sink.extend(chunk)


def run_cli(args: list[str], env: dict[str, str], *, stdout_tty: bool, stderr_tty: bool,
            cwd: Path | None = None) -> tuple[int, bytes, bytes]:
    """``python -m rlm_cli ARGS`` with stdout/stderr on pseudo-terminals (or pipes); returns
    (exit code, stdout bytes, stderr bytes). A pty's bytes have ``\\n`` turned into ``\\r\\n``."""
    env = {**env, "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    env.pop("COLUMNS", None)
    outs = {"out": bytearray(), "err": bytearray()}
    masters, slaves, threads = [], [], []
    targets = {}
    for name, tty in (("out", stdout_tty), ("err", stderr_tty)):
        if tty:
            m, s = _pty()
            masters.append(m)
            slaves.append(s)
            targets[name] = s
            threads.append(threading.Thread(target=_drain, args=(m, outs[name]), daemon=True))
        else:
            targets[name] = subprocess.PIPE
    proc = subprocess.Popen([sys.executable, "-m", "rlm_cli", *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=targets["out"], stderr=targets["err"])
    for s in slaves:
        os.close(s)
    for t in threads:
        t.start()
    try:
        piped_out, piped_err = proc.communicate(timeout=180)  # a hang detector, not a timing assertion
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for t in threads:
            t.join(timeout=60)
        for m in masters:
            with contextlib.suppress(OSError):
                os.close(m)
    out = bytes(outs["out"]) if stdout_tty else piped_out
    err = bytes(outs["err"]) if stderr_tty else piped_err
    return proc.returncode, out, err


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "notes.txt").write_text("the launch code is 42\n")
    (src / EVIL_FILE).write_text("hostile name\n")
    return src


def _script_hostile_run(s, slow: bool = True) -> None:
    """Root: prose with a title escape (streamed to the live view), a sub-call whose reply writes
    the clipboard, the file names printed raw, a write to /dev/tty, a pause (so the live view draws
    them); then the answer."""
    wait = "import time\ntime.sleep(1.5)\n" if slow else "pass\n"
    s.script("root",
             f"Thinking {TITLE} hard {CLEAR}\n"
             "```repl\nprint(llm_query('say hi'))\n```\n"
             "```repl\nprint('\\n'.join(sorted(files)))\n```\n"
             # The REPL has no controlling terminal (its own session): /dev/tty is not a way round.
             f"```repl\ntry:\n    open('/dev/tty', 'w').write({TITLE!r})\nexcept OSError as e:\n"
             "    print('no terminal:', type(e).__name__)\n```\n"
             f"```repl\n{wait}```",
             f"```repl\nFINAL({ANSWER!r})\n```")
    s.default("sub", f"hi {OSC52} there {TITLE}")


# --- the sanitizer ---------------------------------------------------------------------------------

def test_sanitizer_makes_every_control_character_visible():
    text = "a\x1b[31mb\x07c\x7fd\x9be\x9d\rf\x00g\u202eh\u2066i\udcffj\r\nk\tl\n"
    out = visible(text)
    assert out == "a\\x1b[31mb\\x07c\\x7fd\\x9be\\x9d\\rf\\x00g\\u202eh\\u2066i\\udcffj\nk\tl\n"
    assert inline("a\nb\tc\r\nd") == "a\\nb\\tc\\r\\nd"
    assert inline("x" * 50, limit=10) == "x" * 9 + "…"
    assert visible(None) == "" and visible(42) == "42"
    plain = "nothing to do here: ünïcödé, 中文, emoji 🙂\n\ttab"
    assert visible(plain) is plain


def test_rich_markup_in_hostile_text_is_never_interpreted():
    import io

    from rich.console import Console

    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=200)
    console.print(rich_text("[link=file:///etc/passwd]x[/link] [bold red]red[/bold red]" + OSC52))
    out = console.file.getvalue()
    assert "[link=file:///etc/passwd]x[/link] [bold red]red[/bold red]" in out
    assert "\x1b]" not in out and "\\x1b]52" in out


# --- rlm ask ---------------------------------------------------------------------------------------

def test_answer_on_a_terminal_and_the_live_view_show_hostile_text_made_visible(scripted_server, tmp_path):
    s = scripted_server
    _script_hostile_run(s)
    code, out, err = run_cli(["ask", str(_source(tmp_path)), "what is the code?"],
                             rlm_env(s, tmp_path / "home"), stdout_tty=True, stderr_tty=True)
    assert code == 0, err.decode(errors="replace")[-3000:]
    assert_no_raw(out, "answer on a terminal")
    assert_no_raw(err, "live view")
    text = out.decode()
    # Shown, made visible; Rich markup and Markdown links shown as text, not obeyed.
    assert "\\x1b]52;c;SEVMTE8=\\x07" in text and "\\x1b]0;PWNED-TITLE\\x07" in text
    assert "\\x1b[2J\\x1b[H" in text and "\\u202eevil" in text
    assert "[link=file:///etc/passwd]x[/link]" in text and "[bold red]red[/bold red]" in text
    assert "http://evil.example/x" in text  # a Markdown link's target is shown, not hidden in a link
    view = err.decode()
    assert "\\x1b]0;PWNED-TITLE" in view  # the streamed/collapsed root prose
    assert "\\x1b]52;c;SEVMTE8=\\x07" in view  # the sub-LM reply printed by the step (live frames)
    assert "\\x1b]0;FILE-TITLE" in view  # the file name printed by the step


def test_answer_on_a_pipe_is_byte_exact_and_progress_lines_are_clean(scripted_server, tmp_path):
    s = scripted_server
    _script_hostile_run(s, slow=False)
    code, out, err = run_cli(["ask", str(_source(tmp_path)), "what is the code?"],
                             rlm_env(s, tmp_path / "home"), stdout_tty=False, stderr_tty=False)
    assert code == 0, err.decode(errors="replace")[-3000:]
    assert out == ANSWER.encode()  # the contract: byte-exact on a pipe (it already ends with a newline)
    assert_no_raw(err, "plain progress lines")


@pytest.mark.parametrize("tty", [True, False], ids=["live", "plain"])
def test_hostile_model_name_chosen_by_code_does_not_reach_the_terminal(scripted_server, tmp_path, tty):
    s = scripted_server
    pause = "import time\ntime.sleep(1.5)\n" if tty else ""  # a live frame draws the step's output
    s.script("root",
             f"```repl\ntry:\n    r = llm_query('x', model={HOSTILE_MODEL!r})\nexcept Exception as e:\n"
             f"    r = repr(e)\nprint(r)\n{pause}```",
             "FINAL(done)")
    s.default("sub", "ok")
    home = tmp_path / "home"
    code, out, err = run_cli(["ask", str(_source(tmp_path)), "q?"], rlm_env(s, home),
                             stdout_tty=tty, stderr_tty=tty)
    # The name may be tried (a failed call, or an error ending the run) or rejected by an allowlist
    # (an error string): every one of these paths shows it made visible.
    assert code in (0, 1), err.decode(errors="replace")[-3000:]
    assert_no_raw(err, "live view with a hostile model name")
    assert_no_raw(out, "answer")
    assert "\\x1b]0;MODEL-TITLE" in err.decode()


def test_error_lines_show_hostile_text_made_visible(scripted_server, tmp_path):
    s = scripted_server
    home = tmp_path / "home"
    for tty in (False, True):
        s.script("root", Reply(text=f"bad request {TITLE}{CLEAR}", status=400))  # provider text
        code, out, err = run_cli(["ask", str(_source(tmp_path)), "q?"], rlm_env(s, home),
                                 stdout_tty=tty, stderr_tty=tty)
        assert code == 1, err
        assert_no_raw(err, f"provider error line (tty={tty})")
        assert "rlm: error:" in err.decode()
        # A usage error naming a file (rlm_cli.cli's one-line error for every command).
        code, out, err = run_cli(["show", f"missing{TITLE}.json"], rlm_env(None, home),
                                 stdout_tty=tty, stderr_tty=tty)
        assert code == 2, err
        assert_no_raw(err, f"usage error line (tty={tty})")
        assert "missing\\x1b]0;PWNED-TITLE\\x07.json" in err.decode()


# --- rlm ls ----------------------------------------------------------------------------------------

def test_ls_shows_hostile_file_names_made_visible(tmp_path):
    src = _source(tmp_path)
    (src / "two\nlines.txt").write_text("x\n")
    env = rlm_env(None, tmp_path / "home")
    for tty in (True, False):
        code, out, err = run_cli(["ls", str(src)], env, stdout_tty=tty, stderr_tty=tty)
        assert code == 0, err
        assert_no_raw(out, f"rlm ls (tty={tty})")
        text = out.decode()
        assert "evil\\x1b]0;FILE-TITLE\\x07\\x1b[2J.txt" in text
        assert "two\\nlines.txt" in text  # one line per file, whatever its name
    code, out, _ = run_cli(["ls", str(src), "--json"], env, stdout_tty=False, stderr_tty=False)
    paths = [f["path"] for f in json.loads(out)["files"]]
    assert any(p.endswith(EVIL_FILE) for p in paths)  # the machine format keeps the exact name


# --- rlm show and rlm logs -------------------------------------------------------------------------

def hostile_trajectory(home: Path, name: str = "20250101T000000Z-evil01.json") -> Path:
    """A saved run with escapes in every string field a view shows."""
    call = {"kind": f"llm{TITLE}", "model": HOSTILE_MODEL, "prompt": f"prompt {OSC52}",
            "response": f"reply {LINK}", "input_tokens": 1, "output_tokens": 1, "cost_usd": None,
            "duration_s": 0.1, "error": f"boom {CLEAR}"}
    step = {"code": f"print('{TITLE}')", "stdout": f"out {OSC52}\n", "stderr": f"err {TITLE}",
            "duration_s": 0.2, "error": f"Error {CLEAR}", "sub_calls": [call]}
    doc = {"schema": "rlm-trajectory/1", "id": f"evil01{TITLE}", "started_at": f"x{TITLE}",
           "ended_at": f"y{TITLE}", "status": f"error{CLEAR}", "question": f"why {TITLE} {BIDI}?",
           "answer": f"ans {OSC52}", "models": {"root": f"root{CLEAR}", "sub": f"sub{TITLE}"},
           "context": {"total_chars": 1, "est_tokens": 1, "files": [{"path": EVIL_FILE, "chars": 1, "lines": 1}]},
           "limits": {}, "usage": {"root": {}, "sub": {}, "total_cost_usd": None,
                                   "by_model": {HOSTILE_MODEL: {"calls": 1, "input_tokens": 1, "output_tokens": 1,
                                                                "cost_usd": None}}},
           "iterations": [{"index": 0, "depth": 0, "response": f"reply {TITLE}\n```repl\nx\n```",
                           "duration_s": 1.0, "model": HOSTILE_MODEL, "steps": [step]}],
           "error": {"type": f"Err{TITLE}", "message": f"msg {OSC52}"},
           "notices": [{"level": f"warning{TITLE}", "message": f"notice {CLEAR}"}]}
    path = home / "logs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.mark.parametrize("full", [False, True])
def test_show_makes_escapes_visible_on_a_terminal_and_on_a_pipe(tmp_path, full):
    home = tmp_path / "home"
    path = hostile_trajectory(home)
    env = rlm_env(None, home)
    args = ["show", str(path)] + (["--full"] if full else [])
    for tty in (True, False):
        code, out, err = run_cli(args, env, stdout_tty=tty, stderr_tty=tty)
        assert code == 0, err
        assert_no_raw(out, f"rlm show (tty={tty}, full={full})")
        assert_no_raw(err, f"rlm show stderr (tty={tty})")
        text = out.decode()
        assert "\\x1b]0;PWNED-TITLE\\x07" in text and "\\x1b[2J" in text  # shown, made visible
        assert "MODEL-TITLE" in text or not full


def test_show_html_escapes_hostile_text(tmp_path):
    home = tmp_path / "home"
    path = hostile_trajectory(home)
    page_path = tmp_path / "run.html"
    code, _, err = run_cli(["show", str(path), "--full", "--html", str(page_path)], rlm_env(None, home),
                           stdout_tty=False, stderr_tty=True)
    assert code == 0, err
    page = page_path.read_text(encoding="utf-8")
    assert "\x1b" not in page and "\x07" not in page and "\u202e" not in page
    assert "\\x1b]0;PWNED-TITLE\\x07" in page and "MODEL-TITLE" in page


def test_logs_shows_hostile_questions_and_names_made_visible(tmp_path):
    home = tmp_path / "home"
    hostile_trajectory(home)
    hostile_trajectory(home, f"20250102T000000Z-evil02{TITLE}.json")
    (home / "logs" / f"20250103T000000Z-bad{TITLE}.json").write_text("{not json", encoding="utf-8")
    env = rlm_env(None, home)
    for tty in (True, False):
        code, out, err = run_cli(["logs"], env, stdout_tty=tty, stderr_tty=tty)
        assert code == 0, err
        assert_no_raw(out, f"rlm logs (tty={tty})")
        assert "\\x1b]0;PWNED-TITLE\\x07" in out.decode()
    code, out, _ = run_cli(["logs", "--json"], env, stdout_tty=False, stderr_tty=False)
    rows = json.loads(out)  # the machine format stays valid JSON, exact strings inside
    assert any(r["question"] == f"why {TITLE} {BIDI}?" for r in rows)


# --- rlm models and rlm config ---------------------------------------------------------------------

def test_models_and_config_show_hostile_names_made_visible(scripted_server, tmp_path):
    s = scripted_server
    s.default(f"served{TITLE}", "ok")  # a local server that lists a hostile model name
    home = tmp_path / "home"
    env = rlm_env(s, home)
    env.pop("RLM_MODEL")
    env.pop("RLM_SUB_MODEL")
    env.pop("OPENAI_API_KEY")
    code, out, err = run_cli(["config", "set", "aliases.fast", f"openai/x{TITLE}"], env,
                             stdout_tty=True, stderr_tty=True)
    assert code == 0, err
    assert_no_raw(err, "config set")
    for args in (["config", "show"], ["models"]):
        for tty in (True, False):
            code, out, err = run_cli(args, env, stdout_tty=tty, stderr_tty=tty)
            assert code == 0, err
            assert_no_raw(out, f"{args} (tty={tty})")
            assert_no_raw(err, f"{args} stderr (tty={tty})")
            assert "\\x1b]0;PWNED-TITLE\\x07" in out.decode()


# --- the live view's stderr redirection ------------------------------------------------------------

def test_stderr_written_during_the_live_view_is_made_visible():
    """While the live tree is drawn, writes to sys.stderr are printed above it; an escape sequence in
    them (a library's warning quoting provider text) is shown, never decoded into a link or sent."""
    import io

    from rich.console import Console

    from rlm_cli.view.demo import EventScript
    from rlm_cli.view.live import LiveView

    console = Console(file=io.StringIO(), force_terminal=True, width=160, height=40, color_system="truecolor")
    view = LiveView(console, refresh_per_second=50)
    stderr = sys.stderr
    s = EventScript(emit=view)
    try:
        assert sys.stderr is not stderr  # redirected above the live display
        sys.stderr.write(f"warning: {LINK} {OSC52} {TITLE}\npartial line {CLEAR}")
        sys.stderr.flush()
    finally:
        s.finish()
        view.close()
    assert sys.stderr is stderr
    out = console.file.getvalue()
    assert "\x1b]" not in out and "\x1b[2J" not in out
    assert "\\x1b]52;c;SEVMTE8=\\x07" in out and "partial line \\x1b[2J" in out


# --- machine formats -------------------------------------------------------------------------------

C1_NAME = "c1\x9b2J\x7f\u202eevil.txt"  # JSON leaves DEL, C1 and bidi raw unless asked not to


def test_json_outputs_escape_what_a_terminal_would_act_on_and_keep_the_value(scripted_server, tmp_path):
    src = _source(tmp_path)
    (src / C1_NAME).write_text("c1\n")
    s = scripted_server
    answer = f"a\x9b2J b\x7f c{BIDI} {OSC52}"
    s.script("root", f"```repl\nFINAL({answer!r})\n```")
    home = tmp_path / "home"
    code, out, err = run_cli(["ask", str(src), "q?", "--json"], rlm_env(s, home), stdout_tty=True, stderr_tty=False)
    assert code == 0, err
    assert_no_raw(out, "ask --json")
    assert b"\xc2\x9b" not in out and b"\x7f" not in out
    assert json.loads(out.decode())["answer"] == answer  # the same value
    for args in (["ls", str(src), "--json"], ["logs", "--json"]):
        code, out, err = run_cli(args, rlm_env(None, home), stdout_tty=True, stderr_tty=False)
        assert code == 0, err
        assert_no_raw(out, " ".join(args))
        assert b"\xc2\x9b" not in out and b"\x7f" not in out
    paths = [f["path"] for f in json.loads(run_cli(["ls", str(src), "--json"], rlm_env(None, home),
                                                   stdout_tty=False, stderr_tty=False)[1])["files"]]
    assert any(p.endswith(C1_NAME) for p in paths)
