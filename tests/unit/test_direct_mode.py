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


TOO_LONG = "This model's maximum context length is 16384 tokens. However, you requested 17000 tokens"


def test_auto_runs_the_loop_when_the_provider_refuses_the_direct_call_for_its_length(fake_lm):
    """Characters / 4 is an estimate: a local model's tokenizer needed more tokens than the window
    held (the bench's base calls were refused the same way). `auto` then runs the loop, and says so."""
    from fake_lm import Reply

    fake_lm.script("root", Reply(TOO_LONG, status=400), 'FINAL("none")')
    run = run_engine(fake_lm, question="What is the magic number?", files=SMALL, mode="auto", window_tokens=16_384)
    assert (run.status, run.answer, run.doc["mode"]) == ("answered", "none", "rlm")
    sent = fake_lm.requests_for("root")
    assert "The magic number is 7781." in sent[0].body["messages"][0]["content"]  # the direct call
    assert "The magic number is 7781." not in str(sent[1].body["messages"])  # the loop: metadata only
    assert any("did not fit the root model's window" in n and "loop" in n for n in run.notices())


def test_direct_cuts_the_input_further_when_the_provider_refuses_it_for_its_length(fake_lm):
    from fake_lm import Reply

    fake_lm.script("root", Reply(TOO_LONG, status=400), "7781")
    files = {"notes.txt": "The magic number is 7781.\n" + "filler line\n" * 6_000}
    run = run_engine(fake_lm, question="What is the magic number?", files=files, mode="direct", window_tokens=16_384)
    assert (run.status, run.answer, run.doc["mode"]) == ("answered", "7781", "direct")
    first, second = (len(r.body["messages"][0]["content"]) for r in fake_lm.requests_for("root"))
    assert second < first * 0.8
    assert any("refused the input for its length" in n for n in run.notices())


def test_direct_gives_up_after_a_few_refusals(fake_lm):
    from fake_lm import Reply

    fake_lm.script("root", *[Reply(TOO_LONG, status=400)] * 6)
    run = run_engine(fake_lm, question="What is the magic number?", files=SMALL, mode="direct", window_tokens=16_384)
    assert run.status == "error" and "longer than the model's context window" in run.doc["error"]["message"]
    assert len(fake_lm.requests_for("root")) == 4  # the first call and three cuts
