"""``--mode auto|rlm|direct`` (issue 22, point 4): one call with the input in the prompt when it fits
the root model's window (auto) or always (direct); the loop otherwise. The trajectory says which ran."""

from __future__ import annotations

import pytest
from engine_runner import run_engine

from rlm_cli.context import ContextWriter
from rlm_cli.run.direct import MODES, build_prompt, choose_mode

SMALL = {"notes.txt": "The magic number is 7781.\n"}


def loaded_of(tmp_path, text: str):
    tmp_path.mkdir()
    writer = ContextWriter(tmp_path / "ctx.txt")
    writer.add("a.txt", text)
    return writer.finish()


def test_auto_is_direct_only_when_the_whole_input_fits(tmp_path):
    small, big = loaded_of(tmp_path / "s", "x" * 10_000), loaded_of(tmp_path / "b", "x" * 1_000_000)
    assert choose_mode("auto", small, "q?", 16_384) == "direct"
    assert choose_mode("auto", big, "q?", 16_384) == "rlm"
    assert choose_mode("auto", small, "q?", None) == "rlm"  # unknown window: the loop
    assert choose_mode("auto", small, "q?", 16_384, continued=True) == "rlm"  # a conversation's REPL
    assert choose_mode("direct", big, "q?", None) == "direct" and choose_mode("rlm", small, "q?", 10**6) == "rlm"
    with pytest.raises(ValueError):
        choose_mode("fast", small, "q?", 1000)
    assert MODES == ("auto", "rlm", "direct")


def test_direct_prompt_is_cut_to_the_window_and_says_so():
    prompt = build_prompt("y" * 100_000, "q?", 4_000)
    assert prompt.truncated and prompt.kept_chars < 16_000 and "truncated" in prompt.text


def test_auto_on_a_small_input_makes_one_call_with_the_input(fake_lm):
    fake_lm.script("root", "7781")
    run = run_engine(fake_lm, question="What is the magic number?", files=SMALL, mode="auto", window_tokens=16_384)
    assert (run.status, run.answer, run.doc["mode"]) == ("answered", "7781", "direct")
    sent = fake_lm.requests_for("root")
    assert len(sent) == 1 and "The magic number is 7781." in sent[0].body["messages"][0]["content"]
    assert len(run.doc["iterations"]) == 1 and not run.doc["iterations"][0]["steps"]


def test_auto_on_an_input_past_the_window_runs_the_loop(fake_lm):
    fake_lm.script("root", 'FINAL("none")')
    run = run_engine(fake_lm, question="What is the magic number?", files={"a.txt": "z" * 50_000 + "\n"},
                     mode="auto", window_tokens=4_000)
    assert (run.answer, run.doc["mode"]) == ("none", "rlm")
    assert "z" * 1000 not in fake_lm.requests_for("root")[0].body["messages"][1]["content"]


def test_the_default_is_the_loop(fake_lm):
    fake_lm.script("root", 'FINAL("x")')
    assert run_engine(fake_lm, files=SMALL).doc["mode"] == "rlm"
