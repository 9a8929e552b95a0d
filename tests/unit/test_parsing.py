"""The reply parser, on real small-model replies (tests/fixtures/real_root_replies.jsonl) and on edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlm_cli.run.parsing import find_final, parse_reply

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "real_root_replies.jsonl"


def fixture_replies() -> list[str]:
    """The replies of the fixture file, in order (a missing file fails the test: it is in the repository)."""
    return [json.loads(line)["reply"] for line in FIXTURES.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_real_replies_parse_as_expected():
    replies = fixture_replies()
    parsed = [parse_reply(r) for r in replies]
    # Fences mentioned in prose ("Here's the first ```repl``` block:") are not blocks; the invented
    # outputs in untagged fences are not run.
    assert [len(p.blocks) for p in parsed[:2]] == [1, 1]
    assert parsed[1].blocks[0] == "print(len(context))\nprint(context[:500])"
    assert parsed[1].untagged_blocks == 1
    # "Final(answer)" / "Final(your answer)" placeholders are not answers.
    assert parsed[2].final_text is None and not parsed[2].blocks
    assert parsed[3].final_text is None and not parsed[3].final_beside_code
    # Several blocks in one reply, the last calling FINAL in code: all run in order.
    assert len(parsed[6].blocks) == 3 and parsed[6].blocks[2] == "FINAL(magic_number)"
    # Bare ``` fences whose body is REPL code (here llm_query(...)) run when no block is tagged.
    assert parsed[11].blocks == ['llm_query("What is the magic number hidden in the context?")'] * 5
    assert parsed[11].untagged_blocks == 0 and "llm_query" not in parsed[11].prose
    # A reply with invented output but no code and an upper-case FINAL: accepted as text.
    assert parsed[15].final_text == "123456" and not parsed[15].blocks
    for p in parsed:  # nothing ever both runs code and answers from text
        assert not (p.blocks and p.final_text is not None)


@pytest.mark.parametrize("reply,answer", [
    ("FINAL(42)", "42"),
    ("FINAL(f(x) = (a, b))", "f(x) = (a, b)"),
    ('FINAL("it\'s (done")', "it's (done"),
    ("Answer below.\nFINAL(The bug is in auth.py (line 3))\nHope this helps (really).", "The bug is in auth.py (line 3)"),
    ("FINAL(unclosed answer (with a paren)", "unclosed answer (with a paren"),
    ("FINAL('''multi\nline''')", "multi\nline"),
    ("FINAL(  spaced  )", "spaced"),
])
def test_final_text(reply, answer):
    assert parse_reply(reply).final_text == answer


def test_final_var_text_and_beside_code():
    assert parse_reply("FINAL_VAR(result)").final_var == "result"
    assert parse_reply("FINAL_VAR('result')").final_var == "result"
    p = parse_reply("```repl\nx = 1\n```\nFINAL(x)")
    assert p.blocks == ["x = 1"] and p.final_beside_code and p.final_text is None
    assert find_final("MY_FINAL(3)") is None  # not a FINAL call


def test_fences():
    assert parse_reply("```python\nprint(1)\n```").blocks == ["print(1)"]
    assert parse_reply("  ```repl\n  if x:\n      y()\n  ```").blocks == ["if x:\n    y()"]
    assert parse_reply("````repl\nprint('```')\n````").blocks == ["print('```')"]
    assert parse_reply("```repl\nprint(1)").blocks == []  # never closed (cut off): not run
    assert parse_reply("```bash\nls\n```").blocks == []
    assert parse_reply("```repl\n\n```").blocks == []
    two = parse_reply("```repl\na = 1\n```\ntext\n~~~python\nb = 2\n~~~")
    assert two.blocks == ["a = 1", "b = 2"]


def test_bare_fences_run_only_when_they_hold_repl_code_and_nothing_is_tagged():
    # the 1.5B model copies rlm's own first block without its tag: it ran nothing for four turns
    copied = "```\nhits = search('access code')\nfor path, line, text in hits:\n    print(path, line, text)\n```"
    assert parse_reply(copied).blocks == ["hits = search('access code')\nfor path, line, text in hits:\n"
                                          "    print(path, line, text)"]
    assert parse_reply("Output:\n```\n60700\n...\n```").blocks == []  # invented output parses, uses no REPL name
    assert parse_reply("```\nhaystack.txt:26: The code is 1234\n```").blocks == []  # not Python
    beside = parse_reply("Plan:\n```\nx = search('a')\n```\n```repl\nprint(2)\n```")
    assert beside.blocks == ["print(2)"] and beside.untagged_blocks == 1 and "x = search" in beside.prose
    assert parse_reply("```\nprint(1)\n").blocks == []  # unclosed: never run


def test_a_whole_reply_of_repl_code_without_fences_runs():
    # a real reply of the 1.5B model, sent four times in a row before this rule
    reply = "search('What is the access code for the scarlet falcon vault? Answer with the code only.')"
    assert parse_reply(reply).blocks == [reply]
    assert parse_reply("print(len(context))\nhits = grep('x')").blocks == ["print(len(context))\nhits = grep('x')"]
    assert parse_reply("FINAL(42)").blocks == [] and parse_reply("FINAL(42)").final_text == "42"  # still text
    assert parse_reply("None").blocks == [] and parse_reply("The answer is print(5).").blocks == []
    assert parse_reply("x = 1").blocks == []  # Python, but no REPL function called: not taken as code
