"""Which models model code may call (issue #10, class 5), in process against the FakeLM: only the
models the user chose or allowed, and under ``max_cost`` only priced ones; and the number of live REPL
processes under ``rlm_query_batched`` (class 7). Settings resolution (``RLM_ALLOW_MODELS``, the
config file's aliases) is tested through the CLI in tests/e2e/test_trust_models.py."""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import pytest
from engine_runner import run_engine
from helpers import step_stdout
from scripted_server import Reply

from rlm_cli.run.budget import Limits


def test_an_unnamed_model_is_an_error_string_with_no_request_and_no_sub_call(fake_lm):
    fake_lm.script("root",
                   "```repl\nout = [llm_query('x', model='openai/anything') for _ in range(40)]\n"
                   "out += llm_query_batched(['a', 'b'], model='openai/other')\n"
                   "print(len(out), sum(o.startswith('Error:') for o in out))\nprint(out[0])\nprint(out[-1])\n```",
                   "FINAL(done)")
    fake_lm.default("*", "should never be called")
    run = run_engine(fake_lm)
    assert run.status == "answered"
    assert [r.model for r in fake_lm.chat_requests()] == ["root", "root"]  # no sub-call reached any provider
    out = step_stdout(run.doc).splitlines()
    assert out[0] == "42 42"
    assert "'openai/anything' is not allowed" in out[1] and "--allow-model" in out[1]
    assert "openai/root" in out[1] and "openai/sub" in out[1]  # what is allowed is stated
    assert "'openai/other' is not allowed" in out[2]
    usage = run.doc["usage"]
    assert usage["sub_calls"] == 0 and usage["sub"]["calls"] == 0 and usage["refused_sub_calls"] == 0


def test_aliases_allowed_models_and_the_root_model_may_be_called(fake_lm):
    fake_lm.script("root",
                   "```repl\nfor m in ['openai/extra2', 'fast', 'openai/fastm', 'openai/sub', None, 'openai/root',"
                   " 'openai/extra3']:\n    print(llm_query('hi', model=m)[:60])\n```",
                   "root says hi", "FINAL(done)")
    for name in ("extra2", "extra3", "fastm", "sub"):
        fake_lm.default(name, lambda body, name=name: f"{name} says hi")
    run = run_engine(fake_lm, model_aliases={"fast": "openai/fastm"}, allowed_models=("openai/extra2",))
    out = step_stdout(run.doc).splitlines()
    assert out[:6] == ["extra2 says hi", "fastm says hi", "fastm says hi", "sub says hi", "sub says hi", "root says hi"]
    assert out[6].startswith("Error: model 'openai/extra3' is not allowed")
    assert fake_lm.requests_for("extra3") == []


def test_hostile_model_names_are_bounded_and_refused(fake_lm):
    fake_lm.script("root",
                   "```repl\nfor m in ['x' * 100000 + '\\x1b[2J', 123, ['openai/sub'], {'a': 1}]:\n"
                   "    r = llm_query_batched.__self__.channel.request('llm_query', {'prompt': 'p', 'model': m})\n"
                   "    print(len(r), repr(r[:60]))\n```",
                   "FINAL(done)")
    fake_lm.default("*", "should never be called")
    run = run_engine(fake_lm)
    assert [r.model for r in fake_lm.chat_requests()] == ["root", "root"]
    lines = step_stdout(run.doc).splitlines()
    assert len(lines) == 4
    for line in lines:
        n, text = line.split(" ", 1)
        assert int(n) < 600 and text[1:].startswith("Error: ")
    assert "\x1b" not in step_stdout(run.doc)


def test_max_cost_refuses_an_unpriced_allowed_model_at_call_time(fake_lm):
    fake_lm.script("root",
                   "```repl\nprint(llm_query('hi', model='openai/extra'))\n"
                   "print(llm_query('hi', model='openai/gpt-4o-mini'))\n"
                   "print(llm_query('hi', model='openai/priced'))\n```",
                   "FINAL(done)")
    for name in ("extra", "gpt-4o-mini", "priced"):
        fake_lm.default(name, lambda body, name=name: f"{name} says hi")
    run = run_engine(fake_lm, limits=Limits(max_cost=1),
                     prices={"openai/root": (0, 0), "openai/sub": (0, 0), "openai/priced": (1, 1)},
                     allowed_models=("openai/extra", "openai/gpt-4o-mini", "openai/priced"))
    out = step_stdout(run.doc).splitlines()
    assert out[0].startswith("Error:") and "openai/extra" in out[0] and "--price" in out[0]
    assert out[1:] == ["gpt-4o-mini says hi", "priced says hi"]  # litellm's map prices gpt-4o-mini
    assert fake_lm.requests_for("extra") == []
    assert run.doc["usage"]["sub_calls"] == 2


# -- live REPLs -----------------------------------------------------------------------------------
def _live_repls(scope: str) -> int:
    """REPLs alive for runs whose working directory is under ``scope``: distinct working directories
    (one per REPL) of processes running the REPL child script (a sandbox wrapper shares its child's)."""
    found = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
                cwd = os.readlink(d / "cwd")
            except OSError:
                continue
            if b"rlm_cli/repl/child.py" in cmd and scope in cwd:
                found.add(cwd)
    return len(found)


def _root_script(body: dict) -> str | Reply:
    """Root LM replies by who asks: the top-level question fans out, children fan out once more
    (at max_depth 2), grandchildren answer; every child's first reply is held a little."""
    msgs = body["messages"]
    first = msgs[1]["content"] if len(msgs) > 1 else ""
    if len(msgs) > 2:
        return "FINAL(done)"
    if "Question: TOP" in first:
        n = 12 if "You are at depth 0; recursive RLMs are allowed down to depth 1." in msgs[0]["content"] else 6
        return (f"```repl\nr = rlm_query_batched([f'CHILD {{i}}' for i in range({n})])\n"
                "print('answers', sum(not x.startswith('Error') for x in r), len(r))\n```")
    if "Question: CHILD" in first and "You are at depth 1;" in msgs[0]["content"]:
        return Reply("```repl\nr = rlm_query_batched([f'GRAND {i}' for i in range(3)])\nprint(r)\n```",
                     delay_s=0.05)
    return Reply("FINAL(ok)", delay_s=0.2)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc")
@pytest.mark.parametrize("depth", [1, 2])
def test_rlm_query_batched_bounds_live_repls(fake_lm, depth):
    fake_lm.default("root", _root_script)
    fake_lm.default("sub", "ok")
    peak = 0
    stop = threading.Event()
    marker = f"rlm-test-run-{uuid.uuid4().hex}-"  # this run's working directory, not another test run's

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _live_repls(marker))
            stop.wait(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = run_engine(fake_lm, "TOP", limits=Limits(concurrency=4, max_depth=depth, max_sub_calls=1000,
                                                        max_iterations=3), workdir_prefix=marker)
    finally:
        stop.set()
        watcher.join()
    assert run.status == "answered"
    n = 12 if depth == 1 else 6  # three times the child slots (--concurrency 4), and more than fit at depth 2
    assert f"answers {n} {n}" in step_stdout(run.doc)
    assert peak >= 2  # the watcher did see child REPLs
    assert peak <= 1 + 4 * depth, peak  # the root's, and at most --concurrency per depth


QUESTION = ("List every pair of distinct users who both have at least one record labelled 'shipping'. "
            "Give each pair as (user, user), one pair per line.")


def test_the_question_alone_is_not_sent_to_a_sub_lm(fake_lm):
    """A 1.5B root sent ``llm_query_batched([question, question])``: two sub-LMs invented users for
    two minutes. A prompt that is the question and nothing to read is an error string, not a call;
    the same question beside text to read is sent."""
    fake_lm.script("root",
                   "```repl\nout = llm_query_batched([QUESTION, QUESTION])\nout.append(llm_query('Answer this: ' + QUESTION))\n"
                   "out.append(llm_query(QUESTION + '\\n\\n' + context[:200]))\nout.append(llm_query('Is 7 prime?'))\n"
                   "for o in out:\n    print(o[:60])\n```".replace("QUESTION", repr(QUESTION)),
                   "FINAL(done)")
    fake_lm.default("sub", "a sub-LM reply")
    run = run_engine(fake_lm, question=QUESTION, files={"records.txt": "[#1] user u7 | label: shipping | a\n" * 5})
    assert run.status == "answered"
    out = step_stdout(run.doc).splitlines()
    assert all(line.startswith("Error: not sent: this prompt is the user's question") for line in out[:3])
    assert out[3:] == ["a sub-LM reply", "a sub-LM reply"]  # with text to read; a short question of its own
    assert [r.model for r in fake_lm.chat_requests()] == ["root", "sub", "sub", "root"]
    assert run.doc["usage"]["sub_calls"] == 2
    assert sum("the question alone" in n for n in run.notices()) == 1  # once a run


def test_question_alone_needs_the_whole_question_and_little_else():
    from rlm_cli.run.subcalls import question_alone

    assert question_alone("  list EVERY pair of distinct users who both have...  ", "List every pair of distinct users "
                          "who both have")
    assert not question_alone("Who wrote it?", "Who wrote it?")  # too short to tell
    assert not question_alone("Which lines mention the parser?", "Which function parses the config file?")
    assert not question_alone("Which function parses the config file? Here is the code: " + "def f(): pass " * 5,
                              "Which function parses the config file?")
