"""End-to-end: conversations (issue #11) through the installed ``rlm`` and the scripted server:
``rlm ask -c`` and ``--resume`` carry the root LM's history and the REPL's variables into the next
question, reload changed sources and add new ones; unknown ids and a missing previous run are exit 2
with one line; the session's trajectory holds every turn; ``rlm logs`` and ``rlm show`` show it."""

from __future__ import annotations

import json
import os
import stat

from helpers import assert_trajectory_shape, last_trajectory


def _repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def test_continue_carries_the_history_and_the_variables(cli, scripted_server, tmp_path):
    src = tmp_path / "notes.txt"
    src.write_text("auth is handled in auth.py\nsessions expire after 30 minutes\n")
    s = scripted_server
    s.script("root", _repl("found = context.count('auth')\nimport re\nprint('count', found)"), "FINAL(in auth.py)",
             _repl("print('found was', found, re.escape('a.b'))"), "FINAL(after 30 minutes)")
    p1 = cli("ask", src, "where is auth handled?")
    assert p1.returncode == 0, p1.stderr
    assert p1.stdout == "in auth.py\n"
    first = last_trajectory(cli.home)
    p2 = cli("ask", "-c", "and where do sessions expire?")
    assert p2.returncode == 0, p2.stderr
    assert p2.stdout == "after 30 minutes\n"
    reqs = s.requests_for("root")
    assert len(reqs) == 4
    run1 = reqs[1].body["messages"] + [{"role": "assistant", "content": "FINAL(in auth.py)"}]
    opening = reqs[2].body["messages"]
    assert [(m["role"], m["content"]) for m in opening[:len(run1)]] == [(m["role"], m["content"]) for m in run1]
    follow = opening[len(run1)]["content"]
    assert opening[-1]["role"] == "user" and "and where do sessions expire?" in follow
    assert "in auth.py" in follow and "No file changed" in follow
    assert "found" in follow and "re" in follow  # variables restored, named
    doc = last_trajectory(cli.home)
    assert_trajectory_shape(doc)
    assert "found was 2 a\\.b" in doc["iterations"][2]["steps"][0]["stdout"]
    assert doc["id"] == first["id"] and doc["question"] == "and where do sessions expire?"
    assert doc["answer"] == "after 30 minutes" and doc["status"] == "answered"
    turns = doc["session"]["turns"]
    assert [t["question"] for t in turns] == ["where is auth handled?", "and where do sessions expire?"]
    assert [t["iterations"] for t in turns] == [[0, 2], [2, 4]]
    assert [it["index"] for it in doc["iterations"]] == [0, 1, 2, 3]
    assert len(cli.trajectories()) == 1  # the session's one trajectory, moved to its new name
    # Saved state is private to the user.
    sessions = cli.home / "data" / "sessions" / doc["id"]
    for path in (sessions, sessions / "session.json", sessions / "repl.pickle"):
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, path
    logs = cli("logs", "--json")
    rows = json.loads(logs.stdout)
    assert len(rows) == 1 and rows[0]["turns"] == 2
    show = cli("show")
    assert show.returncode == 0
    assert "where is auth handled?" in show.stdout and "and where do sessions expire?" in show.stdout
    assert "conversation" in show.stdout and "iterations 3-4" in show.stdout
    page = tmp_path / "run.html"
    assert cli("show", "--html", page).returncode == 0
    assert "where is auth handled?" in page.read_text() and "iterations 1-2" in page.read_text()


def test_resume_by_id_and_unknown_ids(cli, scripted_server, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("alpha\n")
    p = cli("ask", "-c", "anything?")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "rlm: error:" in p.stderr
    s = scripted_server
    s.script("root", "FINAL(one)", "FINAL(two)", "FINAL(three)")
    assert cli("ask", src, "q1").returncode == 0
    run_id = last_trajectory(cli.home)["id"]
    assert cli("ask", src, "q2").returncode == 0
    p = cli("ask", "--resume", "ffffffffffff", "q?")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "ffffffffffff" in p.stderr
    p = cli("ask", "--resume", run_id[:6], "q3")
    assert p.returncode == 0, p.stderr
    follow = s.requests_for("root")[2].body["messages"]
    assert [m["content"] for m in follow if m["role"] == "assistant"] == ["FINAL(one)"]
    assert "q1" in follow[1]["content"] and "q3" in follow[-1]["content"]
    assert last_trajectory(cli.home)["id"] == run_id  # resumed: now the latest
    p = cli("ask", "-c", "--resume", run_id, "q?")
    assert p.returncode == 2


def test_changed_sources_are_reloaded_and_new_ones_added(cli, scripted_server, tmp_path):
    d = tmp_path / "proj"
    d.mkdir()
    (d / "a.txt").write_text("version one\n")
    (d / "b.txt").write_text("unchanged\n")
    extra = tmp_path / "extra.txt"
    extra.write_text("an added file\n")
    s = scripted_server
    s.script("root", "FINAL(first)", _repl("print(sorted(files), files[[p for p in files if p.endswith('a.txt')][0]])"),
             "FINAL(second)")
    assert cli("ask", d, "what version?").returncode == 0
    (d / "a.txt").write_text("version two\n")
    p = cli("ask", "-c", extra, "and now?")
    assert p.returncode == 0, p.stderr
    follow = s.requests_for("root")[1].body["messages"][-1]["content"]
    assert "Changed since your last question: " in follow and "a.txt" in follow.split("Changed")[1].split("\n")[0]
    assert "b.txt" not in follow.split("Changed")[1].split("\n")[0]
    assert "Added: " in follow and "extra.txt" in follow
    out = last_trajectory(cli.home)["iterations"][1]["steps"][0]["stdout"]
    assert "version two" in out and "extra.txt" in out
    turn = last_trajectory(cli.home)["session"]["turns"][1]
    assert [p.endswith("a.txt") for p in turn["files_changed"]] == [True]
