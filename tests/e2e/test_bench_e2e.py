"""End-to-end: ``rlm bench`` (the installed command) against the scripted server: the table, the
--json fields, trajectories that ``rlm show`` opens, the base system's truncation note, exit codes
and Ctrl-C. Mechanics only: the scripted root finds needles with code, so scores are not the point."""

from __future__ import annotations

import json
import re
import signal
import threading
from pathlib import Path

from helpers import assert_trajectory_shape, repl_pids, wait_until

TRUNCATION_NOTE = "Note: the input was truncated to fit your context window"


def all_text(body: dict) -> str:
    return "\n".join(str(m.get("content") or "") for m in body["messages"])


def root_reply(body: dict) -> str:
    """base (the input is in the prompt): a chatty answer quoting the first code in sight; rlm: code
    that finds the asked vault's code in ``context`` and calls FINAL."""
    text = all_text(body)
    if "<input>" in text:
        m = re.search(r"vault is (\d{4}-\d{4})", text)
        return "I think the code is " + (m.group(1) if m else "unknown") + "."
    vault = re.search(r"access code for the (\w+ \w+) vault\?", text).group(1)
    return ("```repl\nimport re\n"
            f"m = re.search(r'access code for the {vault} vault is (\\S+)\\.', context)\n"
            "FINAL(m.group(1) if m else 'none')\n```")


def test_bench_table_trajectories_and_show(cli, scripted_server, tmp_path):
    scripted_server.default("root", root_reply)
    out = tmp_path / "runs"
    p = cli("bench", "niah", "--n", "2", "--lengths", "8000,20k", "--context-window", "3000", "--out", out)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split()[:4] == ["suite", "length", "system", "n"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [("niah", "8k", "rlm", "2"), ("niah", "8k", "base", "2"),
                                                        ("niah", "20k", "rlm", "2"), ("niah", "20k", "base", "2")]
    assert all(r[4] == "100.0%" for r in rows if r[2] == "rlm")  # the scripted code finds every needle
    files = sorted(f.name for f in out.glob("*.json"))
    assert files == sorted(f"niah-{n}-{i}-{s}.json" for n in (8000, 20000) for i in (0, 1) for s in ("rlm", "base"))
    for f in out.glob("*.json"):
        doc = json.loads(f.read_text())
        assert_trajectory_shape(doc)
        assert doc["status"] == "answered"
    shown = cli("show", out / "niah-20000-1-base.json")
    assert shown.returncode == 0 and "access code" in shown.stdout
    shown = cli("show", out / "niah-8000-0-rlm.json")
    assert shown.returncode == 0 and "FINAL" in shown.stdout
    assert "[8/8]" in p.stderr  # plain progress, one line per finished run


def test_bench_json_and_base_truncation(cli, scripted_server, tmp_path):
    scripted_server.default("root", root_reply)
    p = cli("bench", "niah", "--n", "1", "--lengths", "8000,40k", "--context-window", "4000", "--json",
            "--concurrency", "2")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["schema"] == "rlm-bench/1" and doc["status"] == "completed"
    assert set(doc["systems"]) == {"rlm", "base"}
    for summary in doc["systems"].values():
        assert set(summary) >= {"accuracy", "cost_usd", "input_tokens", "output_tokens", "duration_s", "sub_calls",
                                "tasks"}
        assert summary["tasks"] == 2 and summary["cost_usd"] is None  # the scripted models are unpriced
    assert doc["systems"]["rlm"]["accuracy"] == 1.0
    assert len(doc["tasks"]) == 4 and len(doc["groups"]) == 4
    for row in doc["tasks"]:
        assert Path(row["trajectory"]).is_file()  # in the log directory by default
        assert row["input_tokens"] > 0
    base = {r["task"]: r for r in doc["tasks"] if r["system"] == "base"}
    assert base["niah-40000-0"]["truncated"] is True and base["niah-8000-0"]["truncated"] is False
    prompts = [all_text(r.body) for r in scripted_server.requests_for("root") if "<input>" in all_text(r.body)]
    assert len(prompts) == 2
    long, short = sorted(prompts, key=lambda t: TRUNCATION_NOTE in t, reverse=True)
    assert TRUNCATION_NOTE in long and TRUNCATION_NOTE not in short
    assert len(long) < 4000 * 4  # cut to the window (characters at 4 per token)
    assert "==> niah-40000-0/haystack.txt <==" in long  # the loader's concatenation, as rlm's context


def test_bench_usage_errors_exit_2(cli, scripted_server):
    for args, message in ((["nope"], "unknown suite 'nope'"), (["niah", "--lengths", "8q"], "not a length"),
                          (["niah", "--lengths", "100"], "give 2,000"),
                          (["niah", "--systems", "rlm,gpt"], "--systems"),
                          (["niah", "--depths", "2"], "--depths"),
                          (["niah"], "--context-window")):  # base with a model the catalogue does not know
        p = cli("bench", *args)
        assert p.returncode == 2, (args, p.stderr)
        assert message in p.stderr and "Traceback" not in p.stderr
        assert not scripted_server.chat_requests()


def test_bench_ctrl_c_prints_partial_table_and_keeps_trajectories(cli, scripted_server, tmp_path):
    calls = []
    lock = threading.Lock()

    def reply(body: dict) -> str:
        with lock:
            calls.append(1)
            first = len(calls) == 1
        return root_reply(body) if first else "```repl\nimport time\ntime.sleep(120)\n```"

    scripted_server.default("root", reply)
    out = tmp_path / "runs"
    proc = cli.popen("bench", "niah", "--n", "3", "--lengths", "8000", "--systems", "rlm", "--out", out,
                     TMPDIR=str(tmp_path))
    assert wait_until(lambda: len(calls) >= 2, 60), "the second task never started"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "rlm: interrupted" in stderr
    row = stdout.splitlines()[1].split()
    assert row[:4] == ["niah", "8k", "rlm", "2"]  # the finished task and the interrupted one
    statuses = {f.name: json.loads(f.read_text())["status"] for f in out.glob("*.json")}
    assert statuses == {"niah-8000-0-rlm.json": "answered", "niah-8000-1-rlm.json": "interrupted"}
    assert not repl_pids(tmp_path)


HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)"> \x1b]52;c;aGk=\x07'


def test_bench_all_suites_html_report_escapes_answers(cli, scripted_server, tmp_path):
    def reply(body: dict) -> str:
        if "<input>" in all_text(body):
            return HOSTILE
        return "```repl\nFINAL(' '.join(sorted(files)))\n```"  # the loaded paths, as the REPL sees them

    scripted_server.default("root", reply)
    report = tmp_path / "report.html"
    p = cli("bench", "niah", "oolong", "pairs", "codeqa", "--n", "1", "--lengths", "4000", "--context-window", "2000",
            "--html", report, "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert [g["suite"] for g in doc["groups"]] == ["niah", "niah", "oolong", "oolong", "pairs", "pairs", "codeqa",
                                                   "codeqa"]
    rlm = {r["suite"]: r["answer"].split() for r in doc["tasks"] if r["system"] == "rlm"}
    assert rlm["niah"] == ["niah-4000-0/haystack.txt"] and rlm["pairs"] == ["pairs-4000-0/records.txt"]
    assert "codeqa-4000-0/README.md" in rlm["codeqa"] and len(rlm["codeqa"]) >= 3  # a directory: `files` holds each
    assert all(r["answer"] == HOSTILE for r in doc["tasks"] if r["system"] == "base")  # JSON: exact strings
    page = report.read_text()
    assert "<script" not in page and "<img" not in page and "\x1b" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<svg") == 4  # one accuracy-versus-length chart per suite
    assert not re.search(r"<[^>]*\b(src|href)\s*=", page)  # no tag fetches anything: no external resources


def test_bench_failed_runs_score_zero_and_are_reported_safely(cli, scripted_server):
    from scripted_server import Reply

    scripted_server.default("root", Reply(status=400, text="bad request \x1b]0;pwned\x07 here"))
    p = cli("bench", "niah", "--n", "1", "--lengths", "4000", "--context-window", "2000")
    assert p.returncode == 0, p.stderr  # the bench ran; the scores say the rest
    assert p.stdout.splitlines()[0].split()[-3:] == ["failed", "malformed", "tok/correct"]
    rows = [line.split() for line in p.stdout.splitlines()[1:]]
    assert [(r[2], r[4], r[-3], r[-2], r[-1]) for r in rows] == [("rlm", "0.0%", "1", "0", "-"),
                                                               ("base", "0.0%", "1", "0", "-")]
    assert "2 of 2 runs failed (scored 0)" in p.stderr
    assert "\x1b" not in p.stderr and "\\x1b]0;pwned" in p.stderr


def test_base_refused_for_its_length_is_retried_with_a_shorter_input(cli, scripted_server, tmp_path):
    """chars/4 is only an estimate: a model whose tokenizer needs more tokens refuses the base prompt
    ("maximum context length"); base cuts the input further and retries instead of scoring an error."""
    from scripted_replies import Reply

    limit_chars = 2 * 3000  # a tokenizer at 2 characters a token, a 3,000-token window

    def reply(body):
        text = all_text(body)
        if "<input>" in text and len(text) > limit_chars:
            return Reply(status=400, text="This model's maximum context length is 3000 tokens")
        return root_reply(body)

    scripted_server.default("root", reply)
    out = tmp_path / "runs"
    p = cli("bench", "niah", "--n", "1", "--lengths", "40k", "--systems", "base", "--context-window", "3000",
            "--json", "--out", out)
    assert p.returncode == 0, p.stderr
    row = json.loads(p.stdout)["tasks"][0]
    assert row["status"] == "answered", row
    doc = json.loads((out / "niah-40000-0-base.json").read_text())
    assert doc["status"] == "answered" and doc["bench"]["window_retries"] >= 1
    assert doc["bench"]["kept_chars"] < 3000 * 4 - 1024 * 4
    sizes = [len(all_text(r.body)) for r in scripted_server.requests_for("root")]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] <= limit_chars
