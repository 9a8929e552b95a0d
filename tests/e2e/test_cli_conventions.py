"""Shell conventions: -h/--help, --version, exit codes in --help, NO_COLOR/FORCE_COLOR, --debug,
the documented --json schema."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import RLM, Cli, drain_pty

from rlm_cli import __version__

ROOT = Path(__file__).resolve().parents[2]
COLOUR_SGR = re.compile(r"\x1b\[([0-9;]*)m")
EXIT_CODE_PHRASES = ("0 answered", "1 runtime or provider error", "2 usage error or unusable input",
                     "3 a budget or the iteration limit ran out", "130 interrupted")


@pytest.fixture
def cli(cli: Cli, tmp_path: Path) -> Cli:
    """The shared CLI runner with ``RLM_HOME`` at ``tmp_path`` and colour left to each test (no
    ``NO_COLOR`` unless a call sets it)."""
    cli.home = tmp_path
    cli.extra["NO_COLOR"] = None
    return cli


def flat(text: str) -> str:
    """Help text with box-drawing characters and line breaks collapsed to single spaces."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def has_colour(text: str) -> bool:
    """Whether any SGR sequence sets a foreground/background colour (bold and dim are not colour)."""
    for match in COLOUR_SGR.finditer(text):
        for part in match.group(1).split(";"):
            if part.isdigit() and (30 <= int(part) <= 49 or 90 <= int(part) <= 107):
                return True
    return False


@pytest.mark.parametrize("args", [["--help"], ["ask", "--help"]])
def test_help_lists_exit_codes(cli, args):
    proc = cli(*args, NO_COLOR="1")
    assert proc.returncode == 0, proc.stderr
    text = flat(proc.stdout)
    assert "Exit codes:" in text
    for phrase in EXIT_CODE_PHRASES:
        assert phrase in text, phrase


@pytest.mark.parametrize("args", [[], ["ask"], ["config"], ["models"]])
def test_dash_h_is_help(cli, args):
    short, long = cli(*args, "-h", NO_COLOR="1"), cli(*args, "--help", NO_COLOR="1")
    assert short.returncode == long.returncode == 0
    assert short.stdout == long.stdout and "Usage:" in short.stdout


def test_version(cli):
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"rlm {__version__}"


def test_debug_and_json_are_documented(cli):
    assert "--debug" in cli("--help", NO_COLOR="1").stdout
    ask_help = flat(cli("ask", "--help", NO_COLOR="1").stdout)
    for flag in ("--json", "--quiet", "--max-cost", "--model", "--api-base", "--system"):
        assert flag in ask_help


@pytest.mark.parametrize("args", [["--help"], ["ask", "--help"], ["config", "--help"], ["config", "show"]])
def test_no_color_means_no_escape_sequences(cli, args):
    proc = cli(*args, NO_COLOR="1")
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x1b" not in proc.stderr


def _saved_run(tmp_path: Path) -> None:
    """A trajectory in RLM_HOME/logs (``--help`` is plain text; ``rlm show`` renders with colour)."""
    from rlm_cli.trajectory.recorder import TrajectoryRecorder
    from rlm_cli.view.demo import demo_run

    recorder = TrajectoryRecorder(tmp_path / "logs" / "20260101T000000Z-demo.json", interval_s=0)
    demo_run(n_calls=5, failures=1, depth=1, emit=recorder)


def test_force_color_colours_a_pipe(cli, tmp_path):
    _saved_run(tmp_path)
    assert not has_colour(cli("show").stdout)
    assert has_colour(cli("show", FORCE_COLOR="1").stdout)


def test_no_color_beats_force_color_for_colour(cli, tmp_path):
    _saved_run(tmp_path)
    assert not has_colour(cli("show", FORCE_COLOR="1", NO_COLOR="1").stdout)
    assert not has_colour(cli("--help", FORCE_COLOR="1").stdout)  # plain help, always


def _run_in_pty(args: list[str], env: dict[str, str]) -> str:
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([RLM, *args], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    out = drain_pty(master)
    proc.wait(timeout=60)
    os.close(master)
    return out.decode("utf-8", "replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_terminal_gets_colour_unless_no_color(cli, tmp_path):
    _saved_run(tmp_path)
    assert has_colour(_run_in_pty(["show"], cli.env()))
    assert not has_colour(_run_in_pty(["show"], cli.env(NO_COLOR="1")))


@pytest.mark.parametrize("args", [["no-such-command"], ["ask", "--max-iterations", "0", "src", "q"],
                                  ["config", "set"]])
def test_usage_errors_exit_2(cli, args):
    proc = cli(*args, NO_COLOR="1")
    assert proc.returncode == 2, proc.stderr


def test_invalid_config_error_is_one_line_exit_2(cli, tmp_path):
    (tmp_path / "config.toml").write_text("max_depth = 'deep'\n")
    proc = cli("config", "show", NO_COLOR="1")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "max_depth" in proc.stderr and "config.toml" in proc.stderr
    assert proc.stdout == ""


def test_json_output_schema_is_documented():
    from rlm_cli.commands import ask

    doc = (ROOT / "docs" / "json-output.md").read_text()
    assert f'"{ask.JSON_SCHEMA}"' in doc
    for field in ("schema", "status", "exit_code", "answer", "error", "exhausted", "run_id", "trajectory",
                  "models", "usage", "duration_s"):
        assert f"`{field}`" in doc, field
    for status in ask.STATUS_EXIT:
        assert f"`{status}`" in doc, status
