"""End-to-end: the installed ``rlm ask`` against the scripted OpenAI-compatible server: a large input,
a directory, stdin, exit codes, stdout, --json, -q, usage and provider errors, the cost report. The
loop's rules (steps, nudges, FINAL handling, last calls) are tested in process in
tests/unit/test_engine_loop.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import assert_trajectory_shape, last_trajectory
from scripted_server import Reply

NEEDLE = "The secret launch code is 7391-ALPHA."


def make_haystack(path: Path, size_chars: int = 5_000_000, needles: int = 3) -> None:
    line = "2026-11-21 12:00:00 INFO worker heartbeat ok; queue depth nominal; nothing to report\n"
    n = size_chars // len(line)
    at = {n * (k + 1) // (needles + 1) for k in range(needles)}
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(line)
            if i in at:
                fh.write(NEEDLE + "\n")


def sub_answer(body: dict) -> str:
    prompt = body["messages"][-1]["content"]
    m = re.search(r"launch code is (\S+)\.", prompt)
    return m.group(1) if m else "NONE"


def largest_root_message(server) -> int:
    return max(len(m.get("content") or "") for r in server.requests_for("root") for m in r.body["messages"])


def test_needle_in_5mb_haystack(cli, scripted_server, tmp_path):
    hay = tmp_path / "haystack.log"
    make_haystack(hay)
    s = scripted_server
    s.script("root",
             "Let me search for likely lines first.\n```repl\nimport re\n"
             "hits = [m.start() for m in re.finditer(r'launch code', context)]\nprint(len(context), hits)\n```",
             "```repl\nwindows = [context[max(0, h - 300): h + 300] for h in hits]\n"
             "answers = llm_query_batched(['What is the launch code in this text? ' + w for w in windows])\n"
             "print(answers)\n```",
             "All sub-LMs agree.\nFINAL(The launch code is 7391-ALPHA)")
    s.default("sub", sub_answer)
    home = tmp_path / "home"
    p = cli("ask", str(hay), "What is the secret launch code?")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "The launch code is 7391-ALPHA\n"
    doc = last_trajectory(home)
    assert_trajectory_shape(doc)
    assert doc["status"] == "answered" and doc["answer"] == "The launch code is 7391-ALPHA"
    assert doc["context"]["total_chars"] > 5_000_000
    calls = doc["iterations"][1]["steps"][0]["sub_calls"]
    assert [c["response"] for c in calls] == ["7391-ALPHA"] * 3
    assert doc["usage"]["sub"]["calls"] == 3 and doc["usage"]["root"]["calls"] == 3
    # The context never travels to the root LM: its largest message stays far below the input.
    assert largest_root_message(s) < 20_000
    assert len(s.requests_for("sub")) == 3


def test_multi_file_repo_with_files(cli, scripted_server, tmp_path):
    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    (repo / "app" / "auth.py").write_text("def login(user, password):\n    return check_token(user)\n")
    (repo / "app" / "views.py").write_text("from app.auth import login\n")
    (repo / "README.md").write_text("# Demo\n")
    s = scripted_server
    s.script("root",
             "```repl\nprint(sorted(files))\nauth = [p for p in files if p.endswith('auth.py')]\n"
             "print(auth, files[auth[0]])\n```",
             "```repl\nFINAL('Authentication is handled in ' + auth[0] + ' by login()')\n```")
    home = tmp_path / "home"
    p = cli("ask", "repo/", "where is auth handled?", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "Authentication is handled in repo/app/auth.py by login()"
    second = s.requests_for("root")[1].body["messages"][-1]["content"]
    assert "def login(user, password)" in second and "views.py" in second
    doc = last_trajectory(home)
    assert sorted(f["path"] for f in doc["context"]["files"]) == [
        "repo/README.md", "repo/app/auth.py", "repo/app/views.py"]


def test_log_on_stdin(cli, scripted_server, tmp_path):
    log = "".join(f"step {i} ok\n" for i in range(2000)) + "ERROR: deploy failed: image pull backoff\n"
    s = scripted_server
    s.script("root", "```repl\nprint([l for l in files['<stdin>'].splitlines() if 'ERROR' in l])\n```",
             "FINAL(The deploy failed because of an image pull backoff.)")
    home = tmp_path / "home"
    p = cli("ask", "-", "why did the deploy fail?", input=log)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "The deploy failed because of an image pull backoff.\n"
    assert "image pull backoff" in s.requests_for("root")[1].body["messages"][-1]["content"]
    assert last_trajectory(home)["context"]["files"][0]["path"] == "<stdin>"


def test_max_iterations_exit_3_with_partial_answer(cli, scripted_server, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("data\n")
    s = scripted_server
    s.script("root", "```repl\nprint(1)\n```", "```repl\nprint(2)\n```",
             "I could not finish. FINAL(partial: probably data)")
    home = tmp_path / "home"
    p = cli("ask", str(src), "q?", "--max-iterations", "2")
    assert p.returncode == 3, p.stderr
    assert p.stdout == "partial: probably data\n"
    doc = last_trajectory(home)
    assert doc["status"] == "max_iterations" and doc["answer"] == "partial: probably data"
    assert doc["iterations"][-1]["final_call"] is True
    assert "Do not write any more code" in s.requests_for("root")[-1].body["messages"][-1]["content"]


def test_json_output(cli, scripted_server, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("data\n")
    s = scripted_server
    s.script("root", "FINAL(yes)")
    p = cli("ask", str(src), "q?", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["schema"] == "rlm-answer/1"
    assert (out["status"], out["answer"], out["exit_code"]) == ("answered", "yes", 0)
    assert Path(out["trajectory"]).exists()
    assert out["usage"]["root"]["calls"] == 1


def test_quiet_prints_only_the_answer(cli, scripted_server, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("data\n")
    scripted_server.script("root", "FINAL(yes)")
    p = cli("ask", str(src), "q?", "-q", "--no-log")
    assert (p.returncode, p.stdout, p.stderr) == (0, "yes\n", "")
    assert not (tmp_path / "home" / "logs").exists()


@pytest.mark.parametrize("args,input,needle", [
    (["ask", "/nonexistent/path", "q?"], None, "/nonexistent/path"),
    (["ask", "-", "q?"], "", "empty"),
    (["ask", "q?"], None, "SOURCE"),
])
def test_bad_input_is_one_line_exit_2(cli, args, input, needle):
    p = cli(*args, input=input)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert needle in p.stderr and "Traceback" not in p.stderr
    assert p.stdout == ""


def test_no_model_is_a_usage_error(cli, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("data\n")
    # no flag, no env, no config, no provider key (a local server could still answer)
    unset = {k: None for k in cli.env() if k == "RLM_MODEL" or k.endswith("_API_KEY")}
    p = cli("ask", str(src), "q?", **unset)
    if p.returncode != 2 and "local" in p.stderr:
        pytest.skip("a local OpenAI-compatible server answers on a default port here")
    assert p.returncode == 2 and "model" in p.stderr and "Traceback" not in p.stderr
    assert p.stdout == ""


def test_provider_auth_error_is_exit_1_one_line(cli, scripted_server, tmp_path):
    from scripted_server import Reply

    src = tmp_path / "a.txt"
    src.write_text("data\n")
    scripted_server.default("root", Reply(status=401, text="invalid api key"))
    home = tmp_path / "home"
    p = cli("ask", str(src), "q?")
    assert p.returncode == 1, p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("rlm: error:")]
    assert len(errors) == 1 and "authentication" in errors[0]
    assert "Traceback" not in p.stderr
    assert len(scripted_server.requests_for("root")) == 1  # not retried
    doc = last_trajectory(home)
    assert doc["status"] == "error" and doc["error"]["message"]


def test_cost_report_per_model_on_stderr(cli, scripted_server, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("data\n")
    s = scripted_server
    s.default("gpt-4o-mini", Reply(text="fine", prompt_tokens=1000, completion_tokens=10, cached_tokens=400))
    s.script("root", "```repl\nprint(llm_query('x'))\n```", "FINAL(ok)")
    p = cli("ask", str(src), "q?", "--sub-model", "openai/gpt-4o-mini", "--price", "openai/root=1/2")
    assert p.returncode == 0, p.stderr
    lines = {line.split(":")[0].strip(): line for line in p.stderr.splitlines() if line.startswith("  openai/")}
    assert "(400 cached)" in lines["openai/gpt-4o-mini"] and "$0.0" in lines["openai/gpt-4o-mini"]
    assert "2 call(s)" in lines["openai/root"] and "$?" not in lines["openai/root"]  # priced by --price
