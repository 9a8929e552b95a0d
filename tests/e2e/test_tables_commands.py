"""Issue 20, point 8: tables and commands people expect, through the installed ``rlm``.

``rlm logs`` has an id column (what ``rlm show`` takes) and never wraps at 80 or 120 columns (on a
pseudo-terminal of that size); ``rlm show ID --json``; ``rlm config get KEY``; ``rlm models
--api-base URL``; Tab completes run ids; one completion mechanism; ``rlm show --full | head -5``
exits 0; no colour on a pipe.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import RLM, Cli, drain_pty

from rlm_cli.trajectory.recorder import TrajectoryRecorder
from rlm_cli.view.demo import demo_run

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LONG_QUESTION = "Where exactly is the authentication handled, and which module " + "really " * 40 + "does it?"


def record(home: Path, stamp: str, run_id: str, question: str, n_calls: int = 20) -> Path:
    path = home / "logs" / f"{stamp}-{run_id}.json"
    recorder = TrajectoryRecorder(path)
    s = demo_run(n_calls, finish=False, run_id=run_id, question=question)
    s.finish()
    for ev in s.events:
        recorder(ev)
    recorder.write(force=True)
    return path


@pytest.fixture
def home(cli: Cli, tmp_path: Path) -> Path:
    record(cli.home, "20250101T100000Z", "aaa111bbb222", "Why does login fail?")
    record(cli.home, "20250102T100000Z", "ccc333ddd444", LONG_QUESTION, n_calls=400)
    return cli.home


def run_in_pty(args: list[str], env: dict[str, str], cols: int, rows: int = 50) -> str:
    """``rlm ARGS`` with stdin, stdout and stderr on a pseudo-terminal ``cols`` wide; its output with
    colour codes removed (``\\r\\n`` as ``\\n``)."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    proc = subprocess.Popen([RLM, *args], stdin=slave, stdout=slave, stderr=slave, env={**env, "TERM": "xterm"},
                            close_fds=True)
    os.close(slave)
    out = drain_pty(master)
    proc.wait(timeout=60)
    os.close(master)
    return ANSI.sub("", out.decode("utf-8", "replace")).replace("\r\n", "\n")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.parametrize("cols", [80, 120])
def test_logs_has_an_id_column_and_never_wraps(cli, home, cols):
    out = run_in_pty(["logs"], cli.env(), cols)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines[0].split()[:4] == ["id", "when", "status", "question"], out
    assert all(len(ln) <= cols for ln in lines), "\n".join(ln for ln in lines if len(ln) > cols)
    assert len(lines) == 4, out  # header, rule, two runs: one line each (nothing wrapped)
    assert lines[2].startswith("ccc333ddd444 ") and lines[3].startswith("aaa111bbb222 ")
    assert "…" in lines[2]  # the long question is cut, not wrapped
    shown = cli("show", lines[3].split()[0])  # the id column is what `rlm show` takes
    assert shown.returncode == 0 and "Why does login fail?" in shown.stdout


def test_logs_on_a_pipe_has_no_colour_and_keeps_the_path_in_json(cli, home):
    p = cli("logs", COLUMNS="100")
    assert p.returncode == 0 and "\x1b" not in p.stdout
    assert all(len(ln) <= 100 for ln in p.stdout.splitlines())
    rows = json.loads(cli("logs", "--json").stdout)
    assert rows[0]["id"] == "ccc333ddd444" and rows[0]["path"].endswith("ccc333ddd444.json")


def test_show_json_is_the_trajectory(cli, home):
    p = cli("show", "aaa111", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    on_disk = json.loads((home / "logs" / "20250101T100000Z-aaa111bbb222.json").read_text())
    assert doc == on_disk and doc["schema"] == "rlm-trajectory/1"
    both = cli("show", "--json", "--html", str(home / "x.html"))
    assert both.returncode == 2 and both.stderr.startswith("rlm: error: ") and both.stdout == ""


@pytest.mark.parametrize("args", [["show", "--full"], ["show", "--json"], ["logs"]])
def test_a_reader_that_stops_early_is_not_an_error(cli, home, args):
    for i in range(40):  # enough runs for `rlm logs` to outgrow a pipe's buffer
        record(home, f"2024{i:04d}T000000Z", f"run{i:04d}", LONG_QUESTION, n_calls=2)
    head = "head -c 1000" if "--json" in args else "head -5"  # the JSON is one line
    cmd = " ".join([RLM, *args]) + " | " + head
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], env=cli.env(COLUMNS="120"), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert len(p.stdout) == 1000 if "--json" in args else len(p.stdout.splitlines()) == 5


def test_config_get(cli, tmp_path):
    assert cli("config", "set", "max_cost", "0.5").returncode == 0
    assert cli("config", "set", "aliases.fast", "openai/mini").returncode == 0
    assert cli("config", "get", "max_cost").stdout == "0.5\n"
    assert cli("config", "get", "aliases.fast").stdout == "openai/mini\n"
    assert cli("config", "get", "model").stdout == "openai/root\n"  # the environment beats the file
    assert cli("config", "get", "max_depth").stdout.strip().isdigit()  # a built-in default
    unset = cli("config", "get", "aliases.slow")
    assert unset.returncode == 0 and unset.stdout == "" and "not set" in unset.stderr
    bad = cli("config", "get", "max_costs")
    assert bad.returncode == 2 and "did you mean 'max_cost'" in bad.stderr and bad.stderr.count("\n") == 1


def test_models_lists_a_servers_models(cli, scripted_server):
    scripted_server.default("worker-7b", "x")
    p = cli("models", "--api-base", scripted_server.base_url)
    assert p.returncode == 0, p.stderr
    assert "openai/worker-7b" in p.stdout.split()
    doc = json.loads(cli("models", "--api-base", scripted_server.base_url, "--json").stdout)
    assert doc["schema"] == "rlm-server-models/1" and "openai/worker-7b" in doc["models"]
    assert cli("models", "--api-base", "file:///etc/passwd").returncode == 2


def test_models_api_base_unreachable_is_one_line_exit_1(cli):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = cli("models", "--api-base", f"http://127.0.0.1:{port}/v1")
    assert p.returncode == 1 and p.stderr.startswith("rlm: error: no models listed") and p.stderr.count("\n") == 1


def _complete_bash(cli: Cli, words: str) -> list[str]:
    env = cli.env(_RLM_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(len(words.split(" ")) - 1))
    p = subprocess.run([RLM], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def test_tab_completes_run_ids_for_show(cli, home):
    assert _complete_bash(cli, "rlm show ") == ["ccc333ddd444", "aaa111bbb222"]  # newest first
    assert _complete_bash(cli, "rlm show aa") == ["aaa111bbb222"]
    assert _complete_bash(cli, "rlm show zz") == []


def test_one_completion_mechanism(cli):
    """The completions/ scripts (README) are the one way; Typer's --install-completion is gone."""
    helptext = cli("--help").stdout
    assert "--install-completion" not in helptext and "--show-completion" not in helptext
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "completions/rlm.bash" in readme and "rlm --install-completion" not in readme


def test_ls_table_folds_long_paths_and_has_no_colour(cli, tmp_path):
    src = tmp_path / "proj"
    (src / "sub").mkdir(parents=True)
    (src / "a.py").write_text("print(1)\n")
    long_name = "very_long_file_name_" * 6 + ".txt"
    (src / "sub" / long_name).write_text("x\ny\n")
    p = cli("ls", str(src), COLUMNS="80")
    assert p.returncode == 0 and "\x1b" not in p.stdout
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["chars", "lines", "path"]
    assert all(len(ln) <= 80 and ln == ln.rstrip() for ln in lines)
    assert long_name in "".join(ln.strip() for ln in lines)  # folded onto the next lines, not cut
