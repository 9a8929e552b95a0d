"""End-to-end: answers that cite evidence. The installed ``rlm ask`` against the scripted server: root
code greps ``files`` in the real REPL, the answer cites ``path:line``; the references are checked
against the loaded files and bad ones flagged on stderr, in ``--json``, in the trajectory and in
``rlm show``."""

from __future__ import annotations

import json

from helpers import last_trajectory

APP = "import os\n\n\ndef login(user, password):\n    return check_token(user)\n"


def make_repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    (repo / "app" / "auth.py").write_text(APP)
    (repo / "README.md").write_text("# Demo\nSee app/auth.py.\n")
    return repo


GREP_STEP = "```repl\nfor hit in grep(r'def login'):\n    print(hit)\n```"


def test_an_answer_citing_real_lines_passes(cli, scripted_server, tmp_path):
    make_repo(tmp_path)
    scripted_server.script("root", GREP_STEP,
                           "FINAL(login() is defined at repo/app/auth.py:4 and documented in `repo/README.md:2`.)")
    p = cli("ask", "repo/", "where is login defined?", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    # the REPL's grep found the line the answer cites, numbered as the checker counts
    told = scripted_server.requests_for("root")[1].body["messages"][-1]["content"]
    assert "('repo/app/auth.py', 4, 'def login(user, password):')" in told
    out = json.loads(p.stdout)
    assert out["citations"] == {"checked": 2, "valid": ["repo/app/auth.py:4", "repo/README.md:2"], "invalid": [],
                                "truncated": False}
    assert "the answer cites" not in p.stderr
    assert last_trajectory(tmp_path / "home")["citations"] == out["citations"]


def test_an_answer_citing_a_missing_path_or_a_line_past_the_end_is_flagged(cli, scripted_server, tmp_path):
    make_repo(tmp_path)
    answer = ("login() is at repo/app/auth.py:4, its token check at repo/app/auth.py:9, "
              "and sessions at (repo/app/session.py:3-5); see http://localhost:8080.")
    scripted_server.script("root", GREP_STEP, f"FINAL({answer})")
    p = cli("ask", "repo/", "where is login defined?", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr  # a bad reference is a warning, not a failure
    out = json.loads(p.stdout)
    assert out["citations"]["valid"] == ["repo/app/auth.py:4"]
    assert out["citations"]["invalid"] == [
        {"ref": "repo/app/auth.py:9", "reason": "line 9 is past the end of the file, which has 5 line(s)"},
        {"ref": "repo/app/session.py:3-5", "reason": "no such file was loaded"},
    ]
    warnings = [line for line in p.stderr.splitlines() if line.startswith("rlm: warning:") and "sandbox" not in line]
    assert warnings == [
        "rlm: warning: the answer cites repo/app/auth.py:9: line 9 is past the end of the file, which has 5 line(s)",
        "rlm: warning: the answer cites repo/app/session.py:3-5: no such file was loaded",
    ]
    doc = last_trajectory(tmp_path / "home")
    assert doc["citations"] == out["citations"] and doc["status"] == "answered"
    # rlm show displays the check
    shown = cli("show", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "citations 3 reference(s) checked: 1 valid, 2 invalid" in shown.stdout
    assert "repo/app/auth.py:9: line 9 is past the end of the file" in shown.stdout
    page = tmp_path / "run.html"
    assert cli("show", "--html", str(page), cwd=tmp_path).returncode == 0
    assert "citations: 3 reference(s) checked: 1 valid, 2 invalid" in page.read_text()
    # -q: no warnings; the trajectory still records them
    scripted_server.script("root", GREP_STEP, f"FINAL({answer})")
    q = cli("ask", "repo/", "where?", "-q", cwd=tmp_path)
    assert (q.returncode, q.stderr) == (0, "")
    assert len(last_trajectory(tmp_path / "home")["citations"]["invalid"]) == 2


def test_warnings_are_bounded_and_escape_sequences_never_reach_the_terminal(cli, scripted_server, tmp_path):
    make_repo(tmp_path)
    refs = " ".join(f"`repo/gone{i}\x1b]52;c;AAAA\x07/x.py:{i + 1}`" for i in range(3)) + " " + " ".join(
        f"repo/missing{i}.py:1" for i in range(30))
    # (a first reply citing paths never read would be refused as a guess: some code runs first)
    scripted_server.script("root", "```repl\nprint(1)\n```", f"FINAL(see {refs})")
    p = cli("ask", "repo/", "q?", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    warnings = [line for line in p.stderr.splitlines() if line.startswith("rlm: warning:") and "sandbox" not in line]
    assert len(warnings) == 11 and warnings[-1] == "rlm: warning: ... and 23 more invalid reference(s)"
    assert "\x1b" not in p.stderr and "\x07" not in p.stderr
    assert warnings[0] == ("rlm: warning: the answer cites repo/gone0\\x1b]52;c;AAAA\\x07/x.py:1: "
                           "no such file was loaded")
    assert len(last_trajectory(tmp_path / "home")["citations"]["invalid"]) == 33
