"""Concurrent continuations and leftovers (issue 21, point 10), through the installed ``rlm`` and the
scripted server on 127.0.0.1: two ``rlm ask -c`` of one conversation at once keep both turns (the
second waits for the first) or the second stops with one line, exit 1; the run directory of a
SIGKILLed ``rlm ask`` (a copy of its input) is removed by the next run, a live run's is kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from helpers import last_trajectory, wait_until
from scripted_server import Reply

SAFETY_S = 120  # outer bounds for a hung rlm only


def _session_record(home: Path, sid: str) -> dict:
    return json.loads((home / "data" / "sessions" / sid / "session.json").read_text())


def test_two_continuations_at_once_keep_both_turns(cli, scripted_server, tmp_path):
    src = tmp_path / "notes.txt"
    src.write_text("alpha beta\n")
    s = scripted_server
    s.script("root", "FINAL(one)", Reply("FINAL(two)", delay_s=1.5), Reply("FINAL(three)", delay_s=1.5))
    assert cli("ask", src, "q1").returncode == 0
    sid = last_trajectory(cli.home)["id"]
    procs = [cli.popen("ask", "-c", q, RLM_SESSION_WAIT="60") for q in ("q2", "q3")]
    outs = [p.communicate(timeout=SAFETY_S) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sorted(o[0] for o in outs) == ["three\n", "two\n"]
    doc = last_trajectory(cli.home)
    assert doc["id"] == sid
    questions = [t["question"] for t in doc["session"]["turns"]]
    assert questions[0] == "q1" and sorted(questions[1:]) == ["q2", "q3"]  # no turn lost
    assert len(cli.trajectories()) == 1  # the conversation's one trajectory, none deleted
    assert _session_record(cli.home, sid)["turns"] == 3
    # the third question's opening carried the second's answer: it started from that turn
    last_root = s.requests_for("root")[-1].body["messages"]
    assert "Follow-up question 3" in last_root[-1]["content"]


def test_a_continuation_of_a_busy_conversation_stops_with_one_line(cli, scripted_server, tmp_path):
    src = tmp_path / "notes.txt"
    src.write_text("alpha beta\n")
    s = scripted_server
    s.script("root", "FINAL(one)", Reply("FINAL(two)", delay_s=4))
    assert cli("ask", src, "q1").returncode == 0
    sid = last_trajectory(cli.home)["id"]
    first = cli.popen("ask", "-c", "q2")
    try:
        assert wait_until(lambda: len(s.requests_for("root")) == 2, 60)  # the first holds the conversation
        second = cli("ask", "-c", "q3", RLM_SESSION_WAIT="0.5", timeout=SAFETY_S)
        assert second.returncode == 1, (second.returncode, second.stdout, second.stderr)
        assert second.stderr.startswith("rlm: error: ") and second.stderr.count("\n") == 1, second.stderr
        assert f"conversation {sid} is in use by another run" in second.stderr
        assert second.stdout == ""
    finally:
        out, err = first.communicate(timeout=SAFETY_S)
    assert first.returncode == 0, err
    assert _session_record(cli.home, sid)["turns"] == 2
    assert len(s.requests_for("root")) == 2  # the refused one never called the model


def _run_dirs(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("rlm-run-*"))


def test_a_killed_runs_directory_is_removed_by_the_next_run_a_live_one_kept(cli, scripted_server, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    src = tmp_path / "secret.txt"
    src.write_text("PRIVATE-INPUT-4711\n")
    s = scripted_server
    s.script("root", Reply("FINAL(killed)", delay_s=60), Reply("FINAL(live)", delay_s=60), "FINAL(next)")
    killed = cli.popen("ask", src, "q1", "--no-log", TMPDIR=str(tmp))
    live = None
    try:
        assert wait_until(lambda: len(s.requests_for("root")) == 1, 60)
        (killed_dir,) = _run_dirs(tmp)
        assert "PRIVATE-INPUT-4711" in (killed_dir / "context.txt").read_text()
        killed.send_signal(signal.SIGKILL)
        killed.wait(SAFETY_S)
        assert killed_dir.is_dir()  # nobody could remove it
        live = cli.popen("ask", src, "q2", "--no-log", TMPDIR=str(tmp))
        assert wait_until(lambda: len(s.requests_for("root")) == 2, 60)
        assert not killed_dir.exists()  # the live run's start removed it
        (live_dir,) = _run_dirs(tmp)
        # a symlink named like a run directory is never followed, a foreign marker's dir is kept
        target = tmp_path / "elsewhere"
        target.mkdir()
        (target / "keep.txt").write_text("x")
        (tmp / "rlm-run-link").symlink_to(target)
        done = cli("ask", src, "q3", "--no-log", TMPDIR=str(tmp), timeout=SAFETY_S)
        assert done.returncode == 0 and done.stdout == "next\n", done.stderr
        assert live_dir.is_dir() and (live_dir / "context.txt").is_file()  # its owner still runs
        assert (target / "keep.txt").is_file() and (tmp / "rlm-run-link").is_symlink()
    finally:
        for proc in (killed, live):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(SAFETY_S)
    assert {p.name for p in _run_dirs(tmp)} == {live_dir.name, "rlm-run-link"}


def test_a_run_directory_records_its_owner(tmp_path, monkeypatch):
    from rlm_cli.run import rundirs

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    made = rundirs.make_run_dir()
    pid, started = (made / rundirs.MARKER).read_text().split()
    assert int(pid) == os.getpid() and started
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = tmp_path / "rlm-run-stale"
    stale.mkdir()
    (stale / rundirs.MARKER).write_text(f"{gone.pid} 1\n")
    reused = tmp_path / "rlm-run-reused"  # a live pid that started at another time: not the owner
    reused.mkdir()
    (reused / rundirs.MARKER).write_text(f"{os.getppid()} 1\n")
    assert sorted(rundirs.sweep_stale()) == sorted([str(stale), str(reused)])
    assert made.is_dir()
