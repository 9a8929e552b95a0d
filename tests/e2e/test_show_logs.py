"""``rlm show`` and ``rlm logs`` through the installed command, on trajectories written by the
trajectory recorder (from scripted event streams) and by a real ``rlm ask`` run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import Cli

from rlm_cli.run.events import RlmStarted
from rlm_cli.trajectory.recorder import TrajectoryRecorder
from rlm_cli.view.demo import demo_run


def record(home: Path, stamp: str, run_id: str, **kw) -> Path:
    """A trajectory file written by the recorder from a scripted run (``status="running"``: cut off
    in the middle of a step, as the log of a run still going or killed looks)."""
    path = home / "logs" / f"{stamp}-{run_id}.json"
    recorder = TrajectoryRecorder(path)
    status = kw.pop("status", "answered")
    s = demo_run(kw.pop("n_calls", 20), finish=False, run_id=run_id, **kw)
    if status == "answered":
        s.finish()
    elif status != "running":
        s.finish(status=status, answer=None, error={"type": "ProviderError", "message": "openai/root: auth failed"})
    events = s.events
    if status == "running":
        events = events[: max(i for i, ev in enumerate(events) if isinstance(ev, RlmStarted)) + 4]
    for ev in events:
        recorder(ev)
    recorder.write(force=True)
    return path


@pytest.fixture
def cli(cli: Cli) -> Cli:
    """The shared CLI runner, 160 columns wide, colour left to rlm (no NO_COLOR)."""
    cli.extra.update(COLUMNS="160", NO_COLOR=None)
    return cli


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    record(home, "20250101T100000Z", "aaa111", question="Where is auth handled?")
    record(home, "20250102T100000Z", "bbb222", question="Why does login fail?", status="error")
    record(home, "20250103T100000Z", "ccc333", question="Which [red]module[/red] is slow?", n_calls=300)
    return home


def test_show_latest_run_as_a_tree(cli, home):
    p = cli("show")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.startswith("◆ Which [red]module[/red] is slow?")  # markup-looking text shown verbatim
    assert "\x1b" not in out  # stdout is a pipe: no colour
    assert "300 sub-calls finished" not in out and "297 sub-calls finished" in out  # folded, even in show
    assert out.count("✓ rlm openai/root") == 2 and "RateLimitError" in out
    assert "answered in 12.5s" in out and "ccc333.json" in out.splitlines()[-1]


def test_show_by_path_or_run_id_and_full(cli, home):
    p = cli("show", str(home / "logs" / "20250102T100000Z-bbb222.json"))
    assert p.returncode == 0, p.stderr
    assert "Why does login fail?" in p.stdout and "✗ ProviderError: openai/root: auth failed" in p.stdout
    by_id = cli("show", "aaa1")
    assert by_id.returncode == 0 and "Where is auth handled?" in by_id.stdout
    full = cli("show", "aaa111", "--full")
    assert full.returncode == 0, full.stderr
    assert "prompt" in full.stdout and "response" in full.stdout and "chunk 19: none" in full.stdout
    assert "20 sub-calls finished" not in full.stdout and full.stdout.count("✓ llm openai/sub") >= 17


def test_show_unfinished_run(cli, home):
    record(home, "20250104T100000Z", "ddd444", status="running")
    p = cli("show")
    assert p.returncode == 0, p.stderr
    assert "unfinished log" in p.stdout and "not finished" in p.stdout


@pytest.mark.parametrize("content", [None, "{not json", '{"schema": "something-else"}', "[1, 2]", ""])
def test_show_missing_or_invalid_file_is_a_one_line_usage_error(cli, home, tmp_path, content):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    p = cli("show", str(path))
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr.startswith("rlm: error: ") and p.stderr.count("\n") == 1, p.stderr


def test_show_without_any_run(cli, tmp_path):
    cli.home = tmp_path / "empty"
    p = cli("show")
    assert p.returncode == 2 and "no saved runs" in p.stderr and p.stderr.count("\n") == 1


def test_show_skips_a_damaged_latest_file(cli, home):
    (home / "logs" / "20250105T000000Z-eee555.json").write_text("{truncated")
    p = cli("show")
    assert p.returncode == 0 and "Which [red]module[/red] is slow?" in p.stdout


def test_show_html_export(cli, home, tmp_path):
    out = tmp_path / "run.html"
    p = cli("show", "ccc333", "--html", str(out))
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and str(out) in p.stderr
    page = out.read_text(encoding="utf-8")
    assert "<details" in page and "https://" not in page and "Which [red]module[/red] is slow?" in page


def test_logs_lists_recent_runs_newest_first(cli, home):
    p = cli("logs")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["id", "when", "status", "question", "iter", "calls", "cost"]
    assert lines[1].startswith("ccc333 ") and lines[2].startswith("bbb222 ") and lines[3].startswith("aaa111 ")
    assert "answered" in lines[1] and "error" in lines[2] and "Which [red]module[/red] is slow?" in lines[1]
    assert " 304 " in lines[1] and "$0." in lines[1]
    assert "\x1b" not in p.stdout
    one = cli("logs", "-n", "1")
    assert "ccc333" in one.stdout and "bbb222" not in one.stdout


def test_logs_json(cli, home):
    (home / "logs" / "20241231T000000Z-old.json").write_text("garbage")
    p = cli("logs", "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [r["id"] for r in rows] == ["ccc333", "bbb222", "aaa111", None]
    first = rows[0]
    assert first["status"] == "answered" and first["question"] == "Which [red]module[/red] is slow?"
    assert first["iterations"] == 3 and first["iterations_all_depths"] == 7 and first["sub_calls"] == 304
    assert first["cost_usd"] > 0 and first["path"].endswith("20250103T100000Z-ccc333.json")
    assert rows[-1]["status"] == "unreadable" and "not valid JSON" in rows[-1]["error"]


def test_logs_without_runs(cli, tmp_path):
    cli.home = tmp_path / "none"
    p = cli("logs")
    assert p.returncode == 0 and p.stdout == "" and "no runs" in p.stderr
    p = cli("logs", "--json")
    assert p.returncode == 0 and json.loads(p.stdout) == []


@pytest.mark.slow
def test_show_and_logs_on_a_real_run(cli, scripted_server, tmp_path):
    """A real ``rlm ask`` (scripted model server, REPL subprocess, recursion) then show and logs."""
    s = scripted_server
    s.script("root",
             "Fan out.\n```repl\nr = llm_query_batched([f'part {i}' for i in range(12)])\n"
             "d = rlm_query('dig deeper')\nprint(len(r), d)\n```",
             "Child.\n```repl\nprint(llm_query('inner'))\n```", "FINAL(child answer)",
             "FINAL(all done)")
    s.default("sub", "ok")
    src = tmp_path / "input.txt"
    src.write_text("some data\n" * 100)
    ask = cli("ask", str(src), "what is it?", "--max-depth", "1")
    assert ask.returncode == 0, ask.stderr
    assert ask.stdout == "all done\n"
    show = cli("show")
    assert show.returncode == 0, show.stderr
    out = show.stdout
    assert out.startswith("◆ what is it?") and "✓ rlm openai/root" in out and "FINAL(child answer)" in out
    assert "13 sub-calls" in out or "14 sub-calls" in out
    assert "answered in" in out
    logs = json.loads(cli("logs", "--json").stdout)
    assert len(logs) == 1 and logs[0]["status"] == "answered" and logs[0]["sub_calls"] >= 13
    html = tmp_path / "real.html"
    assert cli("show", "--html", str(html)).returncode == 0
    assert "dig deeper" in html.read_text(encoding="utf-8")
