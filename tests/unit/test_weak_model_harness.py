"""What the loop does for weak root models (issue #14, part 2), in process with the FakeLM.

The parser rules come from real replies of Qwen2.5-Coder-1.5B (tests/fixtures/real_root_replies.jsonl):
the ``repl`` tag outside or inside a bare fence, or with its opening fence lost; ``Final(...)`` in
another case where unambiguous; ``FINAL(name)`` of a variable. The loop points out repeated code with
repeated output, offers a runnable first ``search`` block to a root that answers before looking, and
asks for the answer early when the root sends the same reply twice in a row. The worked example in the system prompt is what moved `rlm bench niah` (CHANGELOG;
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
    # run again later (the same reply twice in a row ends the loop instead: see the stall tests)
    fake_lm.script("root", "```repl\nprint(context[:10])\n```", "```repl\nx = 1\n```",
                   "```repl\nprint(context[:10])\n```", "FINAL(x)")
    run = run_engine(fake_lm, files={"a.txt": "alpha beta gamma\n"})
    assert run.answer == "1"
    assert "same output" not in told(fake_lm, 1) and "same output" not in told(fake_lm, 2)
    assert "printed the same output again" in told(fake_lm, 3)


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
    assert "## A worked example" in text
    assert 'hits = search("Which port does the billing service listen on?")' in text
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


def test_a_first_reply_without_code_is_replaced_by_the_offered_block_which_rlm_runs(fake_lm):
    # the 1.5B model's commonest failure: an answer, "No hits found." (what it imagines the offered
    # block prints) or "No context provided." before looking, then the same reply copied every turn
    question = 'What is the "access" code?\nfor the vault'
    fake_lm.script("root", "No hits found.", "```repl\nprint(1)\n```", "Still no code.", "FINAL(7)")
    run = run_engine(fake_lm, question=question, files={"a.txt": "the access code for the vault is 77\n"})
    assert run.answer == "7"
    first = fake_lm.requests_for("root")[0].body["messages"][-1]["content"]
    block = first.split("```repl\n")[-1].split("```")[0]
    # the question becomes a Python string literal (quotes and newlines escaped): the block runs as written
    compile(block, "<first block>", "exec")
    assert "search('What is the \"access\" code? for the vault')" in block
    history = fake_lm.requests_for("root")[1].body["messages"]
    assert history[2] == {"role": "assistant", "content": "```repl\n" + block.strip("\n") + "\n```"}
    assert "a.txt:1: the access code for the vault is 77" in history[3]["content"]
    assert "rlm ran the first block for you" in history[3]["content"]
    assert not any("No hits found." in m["content"] for m in history)
    # the trajectory keeps the real reply, with the step rlm ran, and says so
    it0 = run.doc["iterations"][0]
    assert it0["response"] == "No hits found." and it0["steps"][0]["code"] == block.strip("\n")
    assert any("rlm ran the search" in n for n in run.notices())
    # once code has run, the plain nudge
    assert "no ```repl code block" in told(fake_lm, 3) and "rlm ran" not in told(fake_lm, 3)


def test_an_empty_block_gets_told_and_is_no_answer(fake_lm):
    fake_lm.script("root", "```repl\nx = 1\n```", "```\nrepl\n```", "```python\n\n```", "```repl\n```")
    run = run_engine(fake_lm, limits=Limits(max_iterations=3))
    assert "block was empty" in told(fake_lm, 2)
    assert (run.status, run.answer) == ("max_iterations", None)  # not the text "```repl```"


def test_a_literal_final_written_before_any_output_was_seen_is_refused(fake_lm):
    # a real pattern of the 1.5B model: search and answer in one reply, the answer invented
    fake_lm.script("root", "```repl\nprint(grep('code'))\n```\n```repl\nFINAL('321')\n```",
                   "```repl\nFINAL('4242')\n```")
    run = run_engine(fake_lm, files={"a.txt": "the code is 4242\n"})
    assert (run.status, run.answer) == ("answered", "4242")
    assert "FINAL(...) was not accepted" in told(fake_lm, 1) and "a.txt', 1, 'the code is 4242'" in told(fake_lm, 1)
    assert "Start by running the search" not in told(fake_lm, 1)  # its own search printed: no offer
    # nothing read or printed: rlm runs the offered block (at temperature 0 the 1.5B root copied the
    # worked example's FINAL("12345") three times in a row, then guessed on the last call)
    fake_lm.script("root", "```repl\nFinal('1057')\n```", "```repl\nFINAL('4242')\n```")
    blind = run_engine(fake_lm, question="What is the code?", files={"a.txt": "the code is 4242\n"})
    assert (blind.status, blind.answer) == ("answered", "4242")
    assert "a.txt:1: the code is 4242" in told(fake_lm, -1)
    assert any(n.startswith("the root LM answered before reading any output") for n in blind.notices())
    step = run.doc["iterations"][0]["steps"][1]
    assert step["final_answer"] is None


def test_a_final_of_a_computed_value_or_a_number_already_read_is_taken(fake_lm):
    fake_lm.script("root", "```repl\nhits = grep('code')\nprint(hits)\nFINAL(hits[0][2])\n```")
    assert run_engine(fake_lm, files={"a.txt": "the code is 4242\n"}).answer == "the code is 4242"
    fake_lm.script("root", "```repl\nprint(grep('code'))\n```", "```repl\nprint(2)\nFINAL('4242 (a.txt:1)')\n```")
    assert run_engine(fake_lm, files={"a.txt": "the code is 4242\n"}).answer == "4242 (a.txt:1)"  # read before
    fake_lm.script("root", "```repl\nprint(1)\n```", "```repl\nx = 5\nFINAL('5071')\n```")
    assert run_engine(fake_lm).answer == "5071"  # output read before, nothing printed now: nothing unread
    fake_lm.script("root", "```repl\nprint(1)\nFINAL('it is in src/auth.py:2')\n```")
    files = {"src/auth.py": "def login(): ...\n"}
    assert run_engine(fake_lm, files=files).answer == "it is in src/auth.py:2"  # a path it was shown (the tree)
    fake_lm.script("root", "```repl\nprint(1)\nFINAL('8841')\n```", "FINAL(8841)")
    assert run_engine(fake_lm).answer == "8841"  # refused once; said again after reading, taken


def test_a_literal_final_naming_a_path_never_read_is_refused_as_a_guess(fake_lm):
    """Seen on codeqa: a search and FINAL("billing/parse_legacy_record.py") in one reply, the search's
    hits naming src/orbit/auth/rules.py; the invented path was taken as the answer."""
    files = {"src/orbit/auth/rules.py": "def parse_legacy_record(data):\n    return data\n",
             "src/orbit/api/handlers.py": "from orbit.auth.rules import parse_legacy_record\n"}
    fake_lm.script("root", "```repl\nprint(grep('def parse_legacy_record'))\n```\n"
                           "```repl\nFINAL('billing/parse_legacy_record.py')\n```",
                   "```repl\nFINAL('src/orbit/auth/rules.py')\n```")
    run = run_engine(fake_lm, question="In which file is `parse_legacy_record` defined?", files=files)
    assert (run.status, run.answer) == ("answered", "src/orbit/auth/rules.py")
    assert "number or a file path that appears nowhere" in told(fake_lm, 1)


def test_invented_numbers():
    from rlm_cli.run.guesses import invented, literal_final

    seen = "niah/haystack.txt:1878: The access code for the indigo falcon vault is 9429-3981."
    assert not invented("9429-3981 (niah/haystack.txt:1878)", seen)
    assert invented("321", seen) and invented("The code is 1234-5678.", seen)
    assert not invented("Paris", seen) and not invented("a.txt:12", seen)
    # every number must have been read: a path holding digits does not vouch for an invented code
    assert invented("72546 (niah/haystack.txt:1878)", seen)
    # paths: as written or as the end of a longer one; a :line suffix and prose words are not paths
    assert not invented("haystack.txt", seen) and not invented("It is in niah/haystack.txt:1878.", seen)
    assert invented("billing/rules.py", seen) and invented("see src/haystack.txt", seen)
    assert not invented("e.g. the falcon vault, i.e. indigo", seen)
    assert literal_final("x = 1\nFINAL('42')") == "42" and literal_final("FINAL(42)") == "42"
    assert literal_final("FINAL(x)") is None and literal_final("FINAL_VAR('x')") is None
    assert literal_final("FINAL(True)") is None and literal_final("not python (") is None


def test_the_same_reply_twice_in_a_row_ends_the_loop_early_with_a_last_call(fake_lm):
    # in 135 bench trajectories of the 1.5B root, a reply sent twice in a row came a third time in 55 of
    # 59 cases; the other 4 scored 0 (docs/bench.md, issue 24)
    same = "```repl\nprint(context[:10])\n```"
    fake_lm.script("root", same, same, "The answer is 42.")
    run = run_engine(fake_lm, limits=Limits(max_iterations=20))
    assert (run.status, run.answer) == ("max_iterations", "The answer is 42.")
    assert len(fake_lm.requests_for("root")) == 3  # not 21
    assert "same reply 2 times in a row" in told(fake_lm, 2) and "Do not write any more code" in told(fake_lm, 2)
    assert any("same reply 2 times" in n for n in run.notices())
    assert len(run.doc["iterations"]) == 3 and run.doc["iterations"][-1]["final_call"] is True


def test_the_last_call_is_reminded_of_the_answer_the_first_block_kept(fake_lm):
    # stdlib, seed 1: the block kept 'time_comps'; the 1.5B root sent other code twice, then answered
    # its last call with a paragraph of its own
    files = {"util.py": "def build(x):\n    x += 1\n    return x * 2\n"}
    other = "```repl\nllm_query_batched(['What does it return?'])\n```"
    fake_lm.script("root", "It returns a number.", other, other, "FINAL_VAR(answer)")
    run = run_engine(fake_lm, question="What does the function `build` return?", files=files,
                     limits=Limits(max_iterations=8))
    assert (run.status, run.answer) == ("max_iterations", "x * 2")
    assert "The first block kept an answer in the variable `answer`: 'x * 2'." in told(fake_lm, 3)
    # a last answer that is no answer (pairs, seed 0: the worked example's sentence) gives way to the kept one
    fake_lm.script("root", "It returns a number.", other, other, 'FINAL("The billing service listens on port 8443.")')
    before = len(fake_lm.requests_for("root"))
    run = run_engine(fake_lm, question="What does the function `build` return?", files=files,
                     limits=Limits(max_iterations=8))
    assert (run.status, run.answer) == ("max_iterations", "x * 2")
    assert any("the one rlm's first block kept" in n for n in run.notices())
    assert len(fake_lm.requests_for("root")) - before == 4  # no rescue call
    # no block kept one: no such line
    fake_lm.script("root", other, other, "FINAL(none)")
    run_engine(fake_lm, question="What does it return?", limits=Limits(max_iterations=8))
    assert "kept an answer" not in told(fake_lm, 2)


def test_a_last_call_answering_with_final_in_another_case_in_a_block_answers_its_literal(fake_lm):
    # pairs, seed 1: the last call's reply was ```repl\nFinal('The pairs ... are: (u1443, u4331)...')\n```,
    # and the code itself, Final( and all, became the answer
    same = "```repl\nprint(context[:10])\n```"
    fake_lm.script("root", same, same, "```repl\nFinal('The pairs are: (u1, u2)')\n```")
    run = run_engine(fake_lm, limits=Limits(max_iterations=8))
    assert (run.status, run.answer) == ("max_iterations", "The pairs are: (u1, u2)")


def test_replies_that_differ_from_the_one_before_do_not_stall(fake_lm):
    fake_lm.script("root", "no code", "```repl\nx = 1\n```", "no code", "```repl\nx = 1\n```", "no code",
                   "FINAL(done)")
    run = run_engine(fake_lm)
    assert (run.status, run.answer) == ("answered", "done")
    assert not any("same reply" in n for n in run.notices())


def test_numbers_answered_before_any_code_ran_are_a_guess(fake_lm):
    # seen on the bench: FINAL("123") as the very first reply, copied from the shape of the worked example
    fake_lm.script("root", "```repl\nx = 5\nFINAL('5071')\n```", "FINAL(5071)")
    run = run_engine(fake_lm)
    assert "FINAL(...) was not accepted" in told(fake_lm, 1) and "rlm ran the first block" in told(fake_lm, 1)
    assert run.answer == "5071"  # said again: taken
    fake_lm.script("root", "FINAL(8443)", "FINAL(8443)")
    run = run_engine(fake_lm)
    assert (run.status, run.answer) == ("answered", "8443")  # said again after reading output: taken
    assert "rlm ran the first block" in told(fake_lm, -1)  # the first, a guess, was replaced by the search
    fake_lm.script("root", "FINAL(the sky is blue)")
    assert run_engine(fake_lm).answer == "the sky is blue"  # no number to check: taken


def test_an_answer_made_only_of_the_questions_words_before_any_output_is_a_guess(fake_lm):
    # seen on the bench (niah, seed 1): the worked example's shape copied as the first reply,
    # FINAL("crimson tapir vault") for "What is the access code for the crimson tapir vault?"
    question = "What is the access code for the crimson tapir vault? Answer with the code only."
    files = {"vaults.txt": "filler\nThe access code for the crimson tapir vault is 4821-7730.\nfiller\n"}
    fake_lm.script("root", 'The next message shows it.\n```repl\nFINAL("crimson tapir vault")\n```',
                   '```repl\nFINAL("4821-7730")\n```')
    run = run_engine(fake_lm, question=question, files=files)
    assert (run.status, run.answer) == ("answered", "4821-7730")
    assert "only repeats words of the question" in told(fake_lm, 1) and "4821-7730" in told(fake_lm, 1)
    fake_lm.script("root", "FINAL(Crimson Tapir Vault.)", "FINAL(4821-7730)")  # as text: the same
    run = run_engine(fake_lm, question=question, files=files)
    assert run.answer == "4821-7730" and "only repeats words of the question" in told(fake_lm, 1)
    assert any("the question's own words" in n for n in run.notices())
    # once output was read, such an answer is the model's to give (one of the labels a question lists)
    fake_lm.script("root", "```repl\nprint(count('shipping'), count('billing'))\n```", "```repl\nFINAL('shipping')\n```")
    run = run_engine(fake_lm, question="Which label is more frequent, shipping or billing?",
                     files={"a.txt": "shipping\nshipping\nbilling\n"})
    assert (run.status, run.answer) == ("answered", "shipping")
    # a blind answer with a word the question does not hold is not this guess
    fake_lm.script("root", "```repl\nFINAL('the tapir vault is empty')\n```")
    assert run_engine(fake_lm, question=question, files=files).answer == "the tapir vault is empty"


def test_a_child_rlm_may_answer_from_the_text_its_prompt_carries(fake_lm):
    """rlm_query(question + chunk): the child's prompt holds the text, so a first-reply FINAL of its
    words is read, not restated (the echo rule is the top-level RLM's only)."""
    def route(body: dict) -> str:
        system = body["messages"][0]["content"]
        if "You are at depth 0" in system:
            turn = sum(m["role"] == "assistant" for m in body["messages"])
            return ("```repl\nprint(rlm_query('Which colour is the vault? The vault is blue.'))\n```" if turn == 0
                    else "FINAL(the child said blue)")
        return '```repl\nFINAL("blue")\n```'

    fake_lm.default("root", route)
    run = run_engine(fake_lm, question="Which colour is the vault?", limits=Limits(max_depth=1))
    assert (run.status, run.answer) == ("answered", "the child said blue")
    call = run.doc["iterations"][0]["steps"][0]["sub_calls"][0]
    assert call["kind"] == "rlm" and call["response"] == "blue" and len(call["iterations"]) == 1


def test_echoes_the_question():
    from rlm_cli.run.guesses import echoes

    q = "What is the access code for the crimson tapir vault? Answer with the code only."
    assert echoes("crimson tapir vault", q) and echoes("'The Crimson Tapir vault.'", q) and echoes("code", q)
    assert not echoes("4821-7730", q) and not echoes("the vault is empty", q)
    assert not echoes("", q) and not echoes("...", q) and not echoes("vault", "")


def test_a_refused_literal_stays_refused_while_its_number_was_never_read(fake_lm):
    # seen on the bench: the worked example's "8443" copied into FINAL after a search, then re-sent
    guess = "```repl\nFINAL('8443 (conf/services.txt:88)')\n```"
    fake_lm.script("root", "```repl\nprint(grep('code'))\n" + guess[8:], guess, "```repl\nprint(8443, 'conf/services.txt')\n```", guess)
    run = run_engine(fake_lm, files={"a.txt": "the code is 4242\n"})
    assert "not accepted" in told(fake_lm, 1) and "not accepted" in told(fake_lm, 2)
    assert "8443" not in told(fake_lm, 1)  # the refusal does not itself make the number "read"
    assert run.answer == "8443 (conf/services.txt:88)"  # once printed by code, it was read: taken


def test_a_dashed_code_written_without_quotes_is_the_answer_not_a_subtraction(fake_lm):
    # real replies of the 1.5B model: FINAL(5978-8761) answered -2783, Final(5262-2552) answered 2710
    fake_lm.script("root", "```repl\nprint(grep('vault'))\n```", "```repl\nFINAL(5978-8761)\n```")
    run = run_engine(fake_lm, files={"a.txt": "the vault code is 5978-8761\n"})
    assert run.answer == "5978-8761"
    fake_lm.script("root", "```repl\nprint(grep('vault'))\n```", "```repl\nFinal(5262-2552)\n```")
    assert run_engine(fake_lm, files={"a.txt": "the vault code is 5262-2552\n"}).answer == "5262-2552"
    fake_lm.script("root", "```repl\nprint(1)\n```", "```repl\nFINAL(100 - 58)\n```")
    assert run_engine(fake_lm).answer == "42"  # spaced arithmetic is arithmetic


def test_final_in_lower_case_in_code_answers_with_its_literal(fake_lm):
    # a real reply of the 1.5B model after reading the right line: final("7251-6161") raised NameError
    fake_lm.script("root", "```repl\nprint(grep('code'))\n```", "```repl\nfinal('7251-6161')\n```")
    run = run_engine(fake_lm, files={"a.txt": "the code is 7251-6161\n"})
    assert (run.status, run.answer) == ("answered", "7251-6161")
    # still a guess when its number was never read
    fake_lm.script("root", "```repl\nprint(grep('code'))\nfinal('1111-2222')\n```", "FINAL(none found)")
    run = run_engine(fake_lm, files={"a.txt": "the code is 7251-6161\n"})
    assert run.answer == "none found" and "not accepted" in told(fake_lm, -1)
    # a lower-case final that is a computed value stays an error the model sees
    fake_lm.script("root", "```repl\nx = 1\nfinal(x)\n```", "FINAL(done)")
    assert run_engine(fake_lm).answer == "done"


def test_a_first_reply_whose_blocks_are_not_python_gets_the_offered_block_run(fake_lm):
    # real replies of the 1.5B model: an imagined error inside a repl fence, repeated turn after turn
    fake_lm.script("root", "```repl\nError: No matching file found for 'the vault'\n```", "FINAL(done)")
    run = run_engine(fake_lm, question="What is the vault code?", files={"a.txt": "the vault code is 77\n"})
    assert run.answer == "done"
    assert "a.txt:1: the vault code is 77" in told(fake_lm, 1) and "no code that runs" in told(fake_lm, 1)
    # once code has run, a syntax error is the model's to see
    fake_lm.script("root", "```repl\nprint(1)\n```", "```repl\nprint(\n```", "FINAL(done)")
    run_engine(fake_lm)
    assert "SyntaxError" in told(fake_lm, -1) and "rlm ran" not in told(fake_lm, -1)


def test_a_last_call_answer_with_numbers_never_read_is_flagged(fake_lm):
    fake_lm.script("root", "```repl\nprint(grep('code'))\n```", "The code is 8443.")
    run = run_engine(fake_lm, files={"a.txt": "the code is 4242\n"}, limits=Limits(max_iterations=1))
    assert (run.status, run.answer) == ("max_iterations", "The code is 8443.")
    assert any("appear nowhere in what the root LM read" in n for n in run.notices())
    fake_lm.script("root", "```repl\nprint(grep('code'))\n```", "The code is 4242.")
    run = run_engine(fake_lm, files={"a.txt": "the code is 4242\n"}, limits=Limits(max_iterations=1))
    assert not any("appear nowhere" in n for n in run.notices())


def test_the_same_code_twice_with_a_changing_status_line_ends_the_loop_early(fake_lm):
    """Seen with the 1.5B model on oolong: it copied the offered block and rlm's status line (whose
    iteration number changes) for five turns; the code, not the whole text, is what repeats."""
    block = "```repl\nprint(context[:10])\n```\n\n[Iteration {n} of 8 done; sub-calls 0/1000.]"
    fake_lm.script("root", block.format(n=1), block.format(n=2), "The answer is 42.")
    run = run_engine(fake_lm, limits=Limits(max_iterations=8))
    assert (run.status, run.answer) == ("max_iterations", "The answer is 42.")
    assert len(fake_lm.requests_for("root")) == 3


def test_a_reply_sent_again_after_the_offered_block_ran_in_its_place_is_not_a_stall(fake_lm):
    """The reply the offered block replaced was never run: sent again, it meets the block's state and is
    handled, not taken for a stall (test_an_imagined_final_var_before_any_code_ran_gets_the_offered_block_run:
    the same FINAL_VAR then answers); sent a third time, it is one."""
    fake_lm.script("root", "no code", "no code", "no code", "The answer is 42.")
    run = run_engine(fake_lm, limits=Limits(max_iterations=8))
    assert (run.status, run.answer) == ("max_iterations", "The answer is 42.")
    assert len(fake_lm.requests_for("root")) == 4  # the offered block, the reply handled, then the stall
    assert "rlm ran the first block" in told(fake_lm, 1) and "same reply" not in told(fake_lm, 2)
    assert "same reply 2 times in a row" in told(fake_lm, 3)


def test_a_final_of_a_bare_word_the_question_lists_is_that_word(fake_lm):
    """Seen on oolong: FINAL(shipping), the quotes forgotten, a NameError twice, then a wrong label on
    the last call. A bare name the question holds is the answer; a variable never defined is not."""
    question = "Which label is most frequent? The labels are: billing, shipping. Answer with the label only."
    fake_lm.script("root", "```repl\nprint(count('shipping'))\n```", "```repl\nFINAL(shipping)\n```")
    run = run_engine(fake_lm, question=question, files={"a.txt": "label: shipping\n"})
    assert (run.status, run.answer) == ("answered", "shipping")
    fake_lm.script("root", "```repl\nprint(count('shipping'))\n```", "```repl\nFINAL(result)\n```", "FINAL(billing)")
    run = run_engine(fake_lm, question=question, files={"a.txt": "label: shipping\n"})
    assert run.answer == "billing" and "name 'result' is not defined" in told(fake_lm, -1)


def test_a_history_past_the_window_ends_with_the_rescue_call_not_an_error(fake_lm):
    """Seen on stdlib: the model printed all of `context` three times into a 16k window; the next
    root call was refused (the prompt is longer than the window) and the run ended in an error."""
    from fake_lm import Reply

    fake_lm.script("root", "```repl\nprint(grep('code'))\n```",
                   Reply("This model's maximum context length is 8192 tokens", status=400), "4242")
    run = run_engine(fake_lm, question="What is the code?", files={"a.txt": "the code is 4242\n"})
    assert (run.status, run.answer) == ("max_iterations", "4242")
    assert any("no longer fits the root LM's context window" in n for n in run.notices())
    assert len(fake_lm.requests_for("root")[-1].body["messages"]) == 2  # a fresh, short conversation


def test_a_last_call_final_answer_line_is_the_answer(fake_lm):
    """Seen on pairs: eight replies "Output of block N of 3:\\nFinal answer: `u1285` and `u5997`, ...",
    the last one rejected whole as a dump of the REPL's output."""
    reply = "Output of block 9 of 3:\nFinal answer: `u1285` and `u5997`."
    fake_lm.script("root", "```repl\nprint(grep('u1'))\n```", "```repl\nprint(1)\n```", reply)
    run = run_engine(fake_lm, files={"a.txt": "u1285 u5997\n"}, limits=Limits(max_iterations=2))
    assert (run.status, run.answer) == ("max_iterations", "`u1285` and `u5997`.")


def test_an_imagined_final_var_before_any_code_ran_gets_the_offered_block_run(fake_lm):
    """Seen on oolong (third round): the 1.5B root wrote what the offered ranking block would print,
    down to its last line "the variable answer holds billing: FINAL_VAR(answer) answers with it", as
    text; `answer` did not exist (nothing had run) and the same reply came back until the last call.
    The offered block runs instead; the same reply then answers with the real value."""
    question = ("Which label is the most frequent among the records? The labels are: billing, shipping. "
                "Answer with the label only.")
    imagined = "16 lines hold 'billing'\nthe variable answer holds billing: FINAL_VAR(answer) answers with it"
    fake_lm.script("root", imagined, imagined)
    run = run_engine(fake_lm, question=question, files={"r.txt": "label: shipping\n" * 3 + "label: billing\n"})
    assert (run.status, run.answer) == ("answered", "shipping")  # the block's count, not the imagined one
    assert any("rlm ran the search it had offered" in n for n in run.notices())
    assert len(fake_lm.requests_for("root")) == 2
