"""The loop's rules, in process: the engine and a real REPL against the FakeLM (no CLI, no HTTP).

Code steps and their feedback, nudges for replies without code, FINAL and FINAL_VAR as code and as
text, the last call for the best answer, the iteration limit, unclosed blocks, repeated failures and
bounded root replies. The end-to-end tests in tests/e2e keep a thin sample of these through the CLI.
"""

from __future__ import annotations

import asyncio

from engine_runner import run_engine
from helpers import assert_trajectory_shape, step_stdout

from rlm_cli.lm.replies import MAX_REPLY_CHARS
from rlm_cli.repl.process import ReplProcess
from rlm_cli.run import engine
from rlm_cli.run.budget import Limits


def told(lm, index: int) -> str:
    """The last user message of root request ``index``: what the root LM was told after the previous reply."""
    return lm.requests_for("root")[index].body["messages"][-1]["content"]


def test_a_step_that_raises_is_shown_and_the_namespace_survives(fake_lm):
    fake_lm.script("root", "```repl\nwords = context.split()\nprint(words[100])\n```",
                   "```repl\nprint(len(words))\nFINAL_VAR('words')\n```")
    run = run_engine(fake_lm, files={"a.txt": "alpha beta gamma\n"})
    assert run.status == "answered" and run.exit_code == 0
    assert "IndexError" in told(fake_lm, 1) and "Traceback" in told(fake_lm, 1)
    assert run.doc["iterations"][0]["steps"][0]["error"].startswith("IndexError")
    assert "alpha" in run.answer  # `words` was still defined after the error
    assert_trajectory_shape(run.doc)


def test_final_var_as_text_after_code(fake_lm):
    fake_lm.script("root", "```repl\nresult = 'forty-two (computed)'\n```", "Done.\n\nFINAL_VAR(result)")
    run = run_engine(fake_lm)
    assert (run.status, run.answer) == ("answered", "forty-two (computed)")


def test_final_as_text_with_parentheses_and_a_final_beside_unrun_code_is_ignored(fake_lm):
    fake_lm.script("root", "```repl\nv = int(context.split()[-1]) * 7\nprint(v)\n```\nFINAL(999)",
                   "FINAL(\"42 (f(x) = (6 * 7))\")")
    run = run_engine(fake_lm, files={"a.txt": "the value is 6\n"})
    assert (run.status, run.answer) == ("answered", "42 (f(x) = (6 * 7))")
    assert "42" in told(fake_lm, 1) and "ignored" in told(fake_lm, 1)


def test_final_called_in_code_ends_the_run_before_later_blocks(fake_lm):
    fake_lm.script("root", "```repl\nx = 6 * 7\n```\n```repl\nFINAL(f'the answer is {x}')\n```\n"
                           "```repl\nprint('never runs')\n```")
    run = run_engine(fake_lm)
    assert (run.status, run.answer) == ("answered", "the answer is 42")
    assert len(run.doc["iterations"][0]["steps"]) == 2 and len(fake_lm.requests_for("root")) == 1


def test_the_iteration_limit_ends_with_a_last_call_for_the_best_answer(fake_lm):
    fake_lm.script("root", "```repl\nprint(1)\n```", "```repl\nprint(2)\n```",
                   "I could not finish. FINAL(partial: probably data)")
    run = run_engine(fake_lm, limits=Limits(max_iterations=2))
    assert (run.status, run.answer, run.exit_code) == ("max_iterations", "partial: probably data", 3)
    assert run.doc["status"] == "max_iterations" and run.doc["answer"] == "partial: probably data"
    assert run.doc["iterations"][-1]["final_call"] is True
    assert "Do not write any more code" in told(fake_lm, -1)
    assert "Iteration 1 of 2 done" in told(fake_lm, 1)


def test_a_reply_without_code_gets_a_nudge_naming_untagged_fences(fake_lm):
    fake_lm.script("root", "I think I should look at the data.\n```\nshow(data)\n```", "```repl\nx = 1\n```",
                   "Still thinking.", "FINAL(ok)")
    run = run_engine(fake_lm)
    assert run.answer == "ok"
    assert "no ```repl code block" in told(fake_lm, 1) and "not run" in told(fake_lm, 1)
    assert "no ```repl code block" in told(fake_lm, 3) and "not run" not in told(fake_lm, 3)
    assert run.doc["iterations"][0]["steps"] == []


def test_a_step_past_the_step_timeout_restarts_the_repl(fake_lm):
    fake_lm.script("root", "```repl\nkeep = 1\nwhile True:\n    pass\n```",
                   "```repl\nprint('keep' in globals(), 'data' in context)\n```", "FINAL(survived)")
    run = run_engine(fake_lm, limits=Limits(step_timeout=1))
    assert (run.status, run.answer) == ("answered", "survived")
    assert "timed out" in told(fake_lm, 1) and "restarted" in told(fake_lm, 1)
    assert "False True" in told(fake_lm, 2)  # variables lost, context loaded again
    assert run.doc["iterations"][0]["steps"][0]["repl_restarted"] is True


def test_blocks_after_a_restart_are_not_run(fake_lm):
    fake_lm.script("root", "```repl\nimport os\nos.kill(os.getpid(), 9)\n```\n```repl\nprint('SECOND')\n```", "FINAL(ok)")
    run = run_engine(fake_lm)
    assert run.answer == "ok"
    assert "Blocks 2-2 were not run" in told(fake_lm, 1) and "SECOND" not in told(fake_lm, 1)


def test_a_last_call_answer_in_a_fence_is_unwrapped(fake_lm):
    """Seen with a real 1.5B model: the best-answer reply wraps plain text in a ```repl fence."""
    fake_lm.script("root", "```repl\nprint(1)\n```", "```repl\nThe magic number is 42.\n```")
    run = run_engine(fake_lm, limits=Limits(max_iterations=1))
    assert (run.status, run.answer) == ("max_iterations", "The magic number is 42.")


def test_a_last_call_answer_in_prose_is_taken(fake_lm):
    fake_lm.script("root", "```repl\nprint(1)\n```", "The answer is probably 7.")
    assert run_engine(fake_lm, limits=Limits(max_iterations=1)).answer == "The answer is probably 7."


def test_a_repeated_failing_block_gets_a_note(fake_lm):
    """Seen with a real 1.5B model: the same failing code sent again and again."""
    bad = "```repl\nint('haystack')\n```"
    fake_lm.script("root", bad, "```repl\nx = 1\n```", bad, "FINAL(gave up)")
    run = run_engine(fake_lm)
    assert run.answer == "gave up"
    assert "Do not repeat it" not in told(fake_lm, 1) and "Do not repeat it" not in told(fake_lm, 2)
    assert "Do not repeat it" in told(fake_lm, 3)  # (sent twice in a row, it would end the loop instead)


def test_an_unclosed_block_is_not_run_and_the_root_is_told(fake_lm):
    fake_lm.script("root", "```repl\nprint('RAN-' + 'UNCLOSED')", "```repl\nx = 1\n```\n```repl\nprint('HALF')", "FINAL(done)")
    run = run_engine(fake_lm)
    assert (run.status, run.answer) == ("answered", "done")
    assert "never closed" in told(fake_lm, 1) and "RAN-UNCLOSED" not in told(fake_lm, 1)
    assert not run.doc["iterations"][0]["steps"]
    assert "never closed" in told(fake_lm, 2) and "HALF" not in told(fake_lm, 2)  # the closed block ran
    assert len(run.doc["iterations"][1]["steps"]) == 1


def test_a_huge_root_reply_is_cut_before_history_trajectory_and_next_prompt(fake_lm):
    huge = "```repl\nprint('x')\n```\n" + "blah " * (3 * MAX_REPLY_CHARS // 5)  # 3 x the bound
    fake_lm.script("root", huge, "FINAL(ok)")
    run = run_engine(fake_lm)
    assert (run.status, run.answer) == ("answered", "ok")
    sent = fake_lm.requests_for("root")[1].body["messages"]
    assistant = [m["content"] for m in sent if m["role"] == "assistant"]
    assert len(assistant[0]) < MAX_REPLY_CHARS + 200 and "were cut" in assistant[0]
    assert sum(len(m["content"]) for m in sent) < MAX_REPLY_CHARS + 20_000
    assert len(run.doc["iterations"][0]["response"]) < MAX_REPLY_CHARS + 200
    assert "x" in step_stdout(run.doc)  # the block before the cut ran


def test_a_streamed_root_reply_reaches_the_view_bounded(fake_lm):
    from rlm_cli.run.events import RootDelta

    fake_lm.script("root", "FINAL(streamed)" + " " * (MAX_REPLY_CHARS + 10))
    run = run_engine(fake_lm, stream_root=True)
    assert run.answer == "streamed"
    shown = "".join(e.text for e in run.events if isinstance(e, RootDelta))
    assert shown.startswith("FINAL(streamed)") and len(shown) == MAX_REPLY_CHARS
    assert fake_lm.requests_for("root")[0].stream


def test_step_output_is_truncated_to_max_output_chars(fake_lm):
    fake_lm.script("root", "```repl\nprint('y' * 5000)\n```", "FINAL(ok)")
    run = run_engine(fake_lm, limits=Limits(max_output_chars=300))
    feedback = told(fake_lm, 1)
    assert "y" * 151 not in feedback and "y" * 150 in feedback and "[... 4,700 characters omitted ...]" in feedback
    assert len(step_stdout(run.doc)) == 5001  # the trajectory keeps the whole output


# --- FINAL_VAR -----------------------------------------------------------------------------------
def test_final_var_of_a_missing_variable_on_the_last_call_is_not_the_answer(fake_lm):
    fake_lm.default("root", "I am done.\nFINAL_VAR(result)")
    run = run_engine(fake_lm, limits=Limits(max_iterations=1))
    assert (run.status, run.answer, run.exit_code) == ("max_iterations", None, 3)
    assert run.doc["answer"] is None
    # nothing had run, so no variable could exist: the offered first block ran instead
    assert any("rlm ran the search it had offered" in n for n in run.notices())


def test_final_var_of_a_missing_variable_after_code_is_not_the_answer(fake_lm):
    fake_lm.script("root", "```repl\nprint(1)\n```", "FINAL_VAR(result)")
    run = run_engine(fake_lm, limits=Limits(max_iterations=1))
    assert (run.status, run.answer) == ("max_iterations", None)


def test_final_var_in_code_of_a_missing_variable_is_an_error_to_the_code(fake_lm):
    fake_lm.script("root", "```repl\nFINAL_VAR('nothing_here')\n```", "FINAL(recovered)")
    run = run_engine(fake_lm)
    assert run.answer == "recovered"
    assert "nothing_here" in told(fake_lm, 1)


def test_a_slow_final_variable_lookup_is_not_a_timeout_budget(fake_lm, monkeypatch):
    """get_var gives up after its own timeout (30 s in production, shortened here); no --timeout was
    set, so the run must not report the timeout budget as exhausted."""
    original = ReplProcess.get_var

    async def short_get_var(self, name, *args, **kwargs):
        async with asyncio.timeout(1.0):
            return await original(self, name, *args, **kwargs)

    monkeypatch.setattr(ReplProcess, "get_var", short_get_var)
    fake_lm.script("root",
                   "```repl\nclass Slow:\n    def __str__(self):\n        import time\n        time.sleep(600)\n"
                   "        return 'never'\nresult = Slow()\nprint('defined')\n```",
                   "FINAL_VAR(result)",
                   "FINAL(a plain answer)")
    run = run_engine(fake_lm)
    assert run.result.exhausted != "timeout" and run.doc.get("exhausted") != "timeout"
    assert (run.status, run.answer) == ("answered", "a plain answer")
    assert "timed out" in told(fake_lm, 2) and "result" in told(fake_lm, 2)


def test_an_inner_timeout_escaping_the_run_is_an_error_not_the_timeout_budget(fake_lm, monkeypatch):
    async def boom(self):
        raise TimeoutError("some inner wait")

    monkeypatch.setattr(engine.RlmInstance, "solve", boom)
    run = run_engine(fake_lm)
    assert run.status == "error" and run.result.exhausted is None and run.exit_code == 1
    assert "timed out (some inner wait)" in run.result.error["message"]
    assert run.doc["status"] == "error"


def test_the_run_is_recorded_as_the_contract_says(fake_lm):
    fake_lm.script("root", "```repl\nprint(llm_query('hi'))\n```", "FINAL(done)")
    fake_lm.default("sub", "hello")
    run = run_engine(fake_lm, question="what?", files={"a.txt": "one\ntwo\n", "b.txt": "three\n"})
    doc = run.doc
    assert_trajectory_shape(doc)
    assert (doc["status"], doc["question"], doc["answer"], doc["error"]) == ("answered", "what?", "done", None)
    assert doc["models"] == {"root": "openai/root", "sub": "openai/sub"}
    assert [(f["path"], f["lines"]) for f in doc["context"]["files"]] == [("a.txt", 2), ("b.txt", 1)]
    call = doc["iterations"][0]["steps"][0]["sub_calls"][0]
    assert (call["kind"], call["model"], call["prompt"], call["response"]) == ("llm", "openai/sub", "hi", "hello")
    assert doc["usage"]["root"]["calls"] == 2 and doc["usage"]["sub"]["calls"] == 1


def test_the_first_message_states_the_metadata_and_skipped_files_never_the_context(tmp_path):
    from rlm_cli.loader import LoadOptions, load_sources
    from rlm_cli.run import prompts

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("the secret is 42\n")
    (src / "b.bin").write_bytes(b"\x00\x01" * 100)
    loaded = load_sources([str(src)], LoadOptions(), tmp_path / "context.txt")
    message = prompts.first_message("what is the secret?", loaded, "a.txt  17")
    assert message.startswith("Question: what is the secret?")
    assert len(loaded.files) == 1 and f"1 file(s), {loaded.total_chars:,} characters" in message
    assert "1 file(s) were skipped" in message and "the secret is 42" not in message
