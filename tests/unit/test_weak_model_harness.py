"""What the loop does for weak root models (issue #14, part 2), in process with the FakeLM.

Each rule was kept because it moved `rlm bench` with a real small model (numbers in CHANGELOG and
the closing note of #14): the tag written on the line before a bare fence, other-case ``Final(...)``
where unambiguous, ``FINAL(name)`` of a variable, a note for repeated code with repeated output, a
note for a sub-LM prompt that carries none of the context, and a preview of the context's start.
"""

from __future__ import annotations

from engine_runner import run_engine

from rlm_cli.run import prompts
from rlm_cli.run.parsing import parse_reply


def told(lm, index: int) -> str:
    return lm.requests_for("root")[index].body["messages"][-1]["content"]


def test_a_tag_on_the_line_before_a_bare_fence_opens_a_code_block():
    parsed = parse_reply("Let me look.\nrepl\n```\nprint(len(context))\n```\n")
    assert parsed.blocks == ["print(len(context))"] and parsed.untagged_blocks == 0
    assert "repl" not in parsed.prose
    # a word that is not a language tag does not
    assert parse_reply("Output:\n```\n42\n```").blocks == []


def test_other_case_final_is_taken_only_when_unambiguous():
    assert parse_reply("Final(680339)").final_text == "680339"
    assert parse_reply("final('the key is ab-12')").final_text == "the key is ab-12"
    assert parse_reply("Final(The magic number is here)").final_text == "The magic number is here"
    placeholder = parse_reply("Final(your answer)")
    assert placeholder.final_text is None and placeholder.other_case_final == "Final"
    named = parse_reply("Final(answer)")  # a bare name: only a variable of that name answers
    assert named.final_text is None and named.final_var == "answer"
    assert parse_reply("```repl\nprint(1)\n```\nFinal(5)").final_text is None  # beside code: never


def test_final_of_a_variable_name_as_text_answers_with_its_value(fake_lm):
    fake_lm.script("root", "```repl\nmagic = 'forty-two'\n```", "FINAL(magic)")
    run = run_engine(fake_lm)
    assert (run.status, run.answer) == ("answered", "forty-two")


def test_a_placeholder_final_gets_told_how_to_answer(fake_lm):
    fake_lm.script("root", "```repl\nx = 1\n```", "Final(your answer)", "FINAL(done)")
    run = run_engine(fake_lm)
    assert run.answer == "done"
    assert "upper case" in told(fake_lm, 2)


def test_repeated_code_with_the_same_output_is_pointed_out(fake_lm):
    fake_lm.script("root", "```repl\nprint(context[:10])\n```", "```repl\nprint(context[:10])\n```",
                   "FINAL(x)")
    run = run_engine(fake_lm, files={"a.txt": "alpha beta gamma\n"})
    assert run.answer == "x"
    assert "same output" not in told(fake_lm, 1)
    assert "printed the same output again" in told(fake_lm, 2)


def test_a_sub_lm_prompt_without_the_context_gets_a_note(fake_lm):
    big = "filler line of text\n" * 200
    fake_lm.script("root", "```repl\nprint(llm_query('What is the magic number?'))\n```",
                   "```repl\nprint(llm_query('Find the number in: ' + context[:2000]))\n```", "FINAL(x)")
    fake_lm.script("sub", "I do not know.", "none")
    run_engine(fake_lm, files={"a.txt": big})
    assert "sees ONLY its prompt" in told(fake_lm, 1)
    assert "sees ONLY its prompt" not in told(fake_lm, 2)


def test_the_first_message_previews_the_start_of_the_context_only(tmp_path):
    from rlm_cli.loader import LoadOptions, load_sources

    (tmp_path / "a.txt").write_text("HEAD-OF-FILE " + "x" * 5000 + " TAIL-OF-FILE\n")
    loaded = load_sources([str(tmp_path / "a.txt")], LoadOptions(), tmp_path / "context.txt")
    message = prompts.first_message("q?", loaded, "a.txt")
    assert "HEAD-OF-FILE" in message and "TAIL-OF-FILE" not in message
    assert f"the first {prompts.PREVIEW_CHARS:,} of" in message


def test_a_block_whose_opening_fence_is_missing_runs_when_it_is_python():
    # a real reply of the 1.5B model: the tag without its backticks, code, then the closing fence
    reply = ("repl\nprint(len(context))\nprint(context[:2000])\n```\nThe context is 1,000,196 characters.\n"
             "```plaintext\nhello world\n```\n")
    parsed = parse_reply(reply)
    assert parsed.blocks == ["print(len(context))\nprint(context[:2000])"] and parsed.untagged_blocks == 1
    assert parse_reply("repl\nthis is not code at all\n```\n").blocks == []


def test_a_tag_on_the_first_line_inside_a_bare_fence_opens_a_code_block():
    # a real reply of the 1.5B model, repeated for eight iterations before this rule
    parsed = parse_reply("```\nrepl\nprint(len(context))\nprint(context[:2000])\n```")
    assert parsed.blocks == ["print(len(context))\nprint(context[:2000])"] and parsed.untagged_blocks == 0
