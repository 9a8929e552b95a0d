"""``rlm ask`` says what it does with surprising arguments (issue 20, point 6), and ``--mode``
(issue 22, point 4), through the installed CLI against the scripted server."""

from __future__ import annotations

import json

from helpers import last_trajectory


def make_proj(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "a.txt").write_text("The magic number is 4242.\n")
    (proj / "big.log").write_text("x" * 2_000_000)  # over --max-file-size: skipped by the walk
    return proj


def test_a_pipe_without_dash_is_named_and_the_skipped_files_counted(cli, scripted_server, tmp_path):
    scripted_server.default("root", 'FINAL("done")')
    proj = make_proj(tmp_path)
    p = cli("ask", proj, "what is the magic number?", input="piped text nobody reads")
    assert p.returncode == 0, p.stderr
    assert "rlm: note: standard input is a pipe but no SOURCE is -: it is ignored (add - to read it)" in p.stderr
    assert "1 file(s), " in p.stderr and "; 1 skipped (rlm ls on the same sources says why)" in p.stderr
    p = cli("ask", proj, "-", "what is the magic number?", input="piped text")
    assert "standard input is a pipe" not in p.stderr


def test_question_first_and_a_lone_question_on_a_pipe_are_usage_errors(cli, scripted_server, tmp_path):
    proj = make_proj(tmp_path)
    p = cli("ask", "where is auth?", proj)
    assert p.returncode == 2 and "rlm: error: the QUESTION goes last: rlm ask" in p.stderr
    assert "Traceback" not in p.stderr
    p = cli("ask", "summarise this", input="some log lines")
    assert p.returncode == 2 and 'give - as the SOURCE: rlm ask - "summarise this"' in p.stderr
    assert scripted_server.requests_for("root") == []


def test_a_question_that_names_a_file_gets_a_note(cli, scripted_server, tmp_path):
    scripted_server.default("root", 'FINAL("done")')
    proj = make_proj(tmp_path)
    p = cli("ask", proj, "a.txt", cwd=proj)
    assert p.returncode == 0 and 'the question "a.txt" is also a file name' in p.stderr


def test_mode_auto_answers_a_small_input_with_one_direct_call(cli, scripted_server, tmp_path):
    scripted_server.default("gpt-4o-mini", "4242")
    proj = make_proj(tmp_path)
    p = cli("ask", proj / "a.txt", "What is the magic number?", "--mode", "auto", "--json",
            "-m", "openai/gpt-4o-mini")  # a model the catalogue knows: its window is known
    doc = json.loads(p.stdout)
    assert (doc["status"], doc["answer"], doc["mode"]) == ("answered", "4242", "direct"), p.stderr
    sent = scripted_server.requests_for("gpt-4o-mini")
    assert len(sent) == 1 and "The magic number is 4242." in sent[0].body["messages"][0]["content"]
    assert last_trajectory(tmp_path / "home")["mode"] == "direct"


def test_mode_is_checked_and_defaults_to_the_loop(cli, scripted_server, tmp_path):
    proj = make_proj(tmp_path)
    p = cli("ask", proj / "a.txt", "q?", "--mode", "fast")
    assert p.returncode == 2 and "--mode must be one of auto, rlm, direct" in p.stderr
    scripted_server.default("root", 'FINAL("done")')
    p = cli("ask", proj / "a.txt", "q?", "--json")
    assert json.loads(p.stdout)["mode"] == "rlm"
    p = cli("ask", proj / "a.txt", "q?", "--json", RLM_MODE="direct")
    assert json.loads(p.stdout)["mode"] == "direct"
