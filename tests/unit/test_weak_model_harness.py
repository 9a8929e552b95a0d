"""What the loop does for weak root models (issue #14, part 2), in process with the FakeLM.

The parser rules come from real replies of Qwen2.5-Coder-1.5B (tests/fixtures/real_root_replies.jsonl):
the ``repl`` tag outside or inside a bare fence, or with its opening fence lost; ``Final(...)`` in
another case where unambiguous; ``FINAL(name)`` of a variable. The loop points out repeated code with
repeated output. The worked example in the system prompt is what moved `rlm bench niah` (CHANGELOG;
the bench numbers are in the closing note of #14).
"""

from __future__ import annotations

from engine_runner import run_engine

from rlm_cli.run.budget import Limits
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


def test_the_system_prompt_carries_the_worked_example(tmp_path):
    from rlm_cli.loader import LoadOptions, load_sources
    from rlm_cli.run import prompts

    (tmp_path / "a.txt").write_text("x\n")
    loaded = load_sources([str(tmp_path / "a.txt")], LoadOptions(), tmp_path / "context.txt")
    text = prompts.system_prompt(loaded, "openai/sub", 20_000, 50_000, 0, 1)
    assert "## A worked example" in text and 'hits = grep(r"billing")' in text
    assert "FINAL(" in text.split("## A worked example")[1]


def test_the_real_replies_with_a_mangled_tag_now_run():
    from test_parsing import fixture_replies

    headless, inside = fixture_replies()[-2:]  # recorded from the 1.5B model; before these rules neither ran
    assert parse_reply(headless).blocks == ["print(len(context))\nprint(context[:2000])"]
    assert parse_reply(inside).blocks == ["print(len(context))\nprint(context[:2000])"]


def test_the_prompt_template_copied_into_final_is_not_an_answer(fake_lm):
    # seen on the 1.5B model's last call: "FINAL(your answer)", copied from rlm's own prompt
    assert parse_reply("FINAL(your answer)").final_text is None
    assert parse_reply("FINAL(<your answer>)").other_case_final == "FINAL"
    assert parse_reply("FINAL(your answer is 42)").final_text == "your answer is 42"
    fake_lm.script("root", "```repl\nx = 1\n```", "FINAL(your answer)", "FINAL(42)")
    run = run_engine(fake_lm)
    assert run.answer == "42" and "not a placeholder" in told(fake_lm, 2)
    fake_lm.script("root", "```repl\nx = 1\n```", "FINAL(Your Answer)")
    run = run_engine(fake_lm, limits=Limits(max_iterations=1))
    assert run.status == "max_iterations" and run.answer is None
