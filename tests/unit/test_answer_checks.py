"""Answers that are not answers (issue 22, point 1): code, rlm's own prompt text, a dump of the
REPL's output, nothing. The loop refuses them while it has iterations; the last call's is replaced by
one rescue call showing the printed lines; a rescue that fails too gives no answer, never a fake one.
Every rule is inert on a clean run (same root calls, no notice)."""

from __future__ import annotations

from engine_runner import run_engine

from rlm_cli.run.answers import looks_like_code, prompt_lines, relevant_lines, why_not_an_answer
from rlm_cli.run.budget import Limits

HAY = {"notes.txt": "filler line\n" * 30 + "The magic number for the falcon vault is 7781.\n" + "more filler\n" * 30}
SEARCH = "```repl\nhits = search('magic number falcon vault')\nfor p, n, t in hits:\n    print(f'{p}:{n}: {t}')\n```"


def told(lm, index: int) -> str:
    return lm.requests_for("root")[index].body["messages"][-1]["content"]


def test_repl_code_is_not_an_answer_but_a_value_or_the_users_code_is():
    assert looks_like_code("hits = search('What is the magic number?')\nfor path, line, text in hits:\n    print(text)")
    assert looks_like_code("print(context[:100])") and looks_like_code("FINAL_VAR(result)")
    for value in ("42", "Paris", "[1, 2, 3]", "context", "def retry(n):\n    return n * 2", "a.b.c",
                  "The answer is 42 (notes.txt:31).", "import os\nos.getcwd()"):
        assert not looks_like_code(value), value


def test_prompt_text_and_output_dumps_are_named():
    lines = prompt_lines("Question: where?\n\nThe context holds 49 file(s), 990,463 characters (about 247,616 "
                         "tokens).\n", "{reason}. Do not write any more code. Reply now with your best answer",
                         exclude="where?")
    assert why_not_an_answer("The context holds 49 file(s), 990,463 characters (about 247,616 tokens).",
                             prompt_text=lines, outputs=[]) == "rlm's own prompt text"
    hits = "\n".join(f"notes.txt:{i}: filler line" for i in range(1, 13))
    assert why_not_an_answer(hits, prompt_text=lines, outputs=[hits]) == "a dump of the REPL's output"
    assert why_not_an_answer("Output of block 1 of 1:\n```\nx\n```", prompt_text=lines, outputs=[]) \
        == "a dump of the REPL's output"
    assert why_not_an_answer("  ", prompt_text=lines, outputs=[]) == "empty"
    # a short list of hits the model chose, or a plain answer: answers
    assert why_not_an_answer("notes.txt:3: filler line", prompt_text=lines, outputs=[hits]) is None
    assert why_not_an_answer("7781 (notes.txt:31)", prompt_text=lines, outputs=[hits]) is None


def test_relevant_lines_prefer_the_question_words_and_keep_printed_order():
    outs = ["a.txt:1: nothing here\na.txt:2: the vault code is 1\n", "b.txt:9: vault magic 2\n"]
    assert relevant_lines(outs, "What is the magic vault code?").splitlines() == [
        "a.txt:2: the vault code is 1", "b.txt:9: vault magic 2"]
    assert relevant_lines([], "q") == ""


def test_a_final_that_is_the_search_block_is_refused_and_the_loop_goes_on(fake_lm):
    code_answer = "hits = search('magic number')\nfor path, line, text in hits:\n    print(text)"
    fake_lm.script("root", SEARCH, f"FINAL({code_answer!r})", 'FINAL("7781")')
    run = run_engine(fake_lm, question="What is the magic number for the falcon vault?", files=HAY)
    assert (run.status, run.answer) == ("answered", "7781")
    assert "it is code, not an answer" in told(fake_lm, 2)


def test_a_last_call_answer_that_dumps_the_output_is_rescued_with_the_printed_lines(fake_lm):
    dump = "Output of block 1 of 1:\nnotes.txt:31: The magic number for the falcon vault is 7781."
    fake_lm.script("root", SEARCH, dump, "7781")
    run = run_engine(fake_lm, question="What is the magic number for the falcon vault?", files=HAY,
                     limits=Limits(max_iterations=1))
    assert (run.status, run.answer) == ("max_iterations", "7781")
    rescue = fake_lm.requests_for("root")[2].body["messages"]
    assert len(rescue) == 2 and "notes.txt:31: The magic number for the falcon vault is 7781." in rescue[1]["content"]
    assert "```repl" not in rescue[1]["content"]  # rlm's prompts are not sent again
    assert any("asked once more" in n for n in run.notices())
    assert run.doc["iterations"][-1]["final_call"] is True


def test_a_rescue_that_fails_too_gives_no_answer(fake_lm):
    fake_lm.script("root", SEARCH, "print(context[:100])", "NO ANSWER")
    run = run_engine(fake_lm, question="What is the magic number for the falcon vault?", files=HAY,
                     limits=Limits(max_iterations=1))
    assert (run.status, run.answer) == ("max_iterations", None)
    fake_lm.script("root", SEARCH, "", "```repl\nprint(search('x'))\n```")
    run = run_engine(fake_lm, question="What is the magic number for the falcon vault?", files=HAY,
                     limits=Limits(max_iterations=1))
    assert (run.status, run.answer) == ("max_iterations", None)


def test_nothing_printed_means_no_rescue_call(fake_lm):
    fake_lm.script("root", "```repl\nx = 1\n```", "")
    run = run_engine(fake_lm, limits=Limits(max_iterations=1))
    assert (run.status, run.answer) == ("max_iterations", None)
    assert len(fake_lm.requests_for("root")) == 2


def test_other_case_final_then_a_paragraph_gives_the_final(fake_lm):
    fake_lm.script("root", SEARCH, "Final(7781)\n\nI found the number in notes.txt after searching for it.")
    run = run_engine(fake_lm, question="What is the magic number for the falcon vault?", files=HAY,
                     limits=Limits(max_iterations=1))
    assert run.answer == "7781"


def test_a_clean_run_makes_no_extra_call_and_no_notice(fake_lm):
    fake_lm.script("root", SEARCH, 'FINAL("7781 (notes.txt:31)")')
    run = run_engine(fake_lm, question="What is the magic number for the falcon vault?", files=HAY)
    assert (run.status, run.answer) == ("answered", "7781 (notes.txt:31)")
    assert len(fake_lm.requests_for("root")) == 2 and not run.notices()
    fake_lm.script("root", SEARCH, "The magic number is 7781, at notes.txt:31.")
    run = run_engine(fake_lm, question="What is the magic number for the falcon vault?", files=HAY,
                     limits=Limits(max_iterations=1))
    assert run.answer == "The magic number is 7781, at notes.txt:31."
    assert len(fake_lm.requests_for("root")) == 4 and not any("asked once more" in n for n in run.notices())


def test_the_bench_counts_malformed_answers():
    from types import SimpleNamespace

    from rlm_cli.bench.report import summarise
    from rlm_cli.bench.runner import malformed

    assert malformed("hits = search('What is the magic number?')\nfor path, line, text in hits:\n    print(text)") == "code"
    assert malformed("The context holds 49 file(s), 990,463 characters (about 247,616 tokens).") \
        == "rlm's own prompt text"
    assert malformed("Output of block 1 of 1:\n/tmp/x/hay1.txt:825: the code") == "a dump of the REPL's output"
    assert malformed("") == "empty" and malformed(None) is None and malformed("7781") is None
    rows = [SimpleNamespace(score=0.0, cost_usd=None, input_tokens=0, output_tokens=0, duration_s=0.0,
                            sub_calls=0, status="answered", malformed=m) for m in ("code", None, None)]
    assert summarise(rows)["malformed"] == 1


def test_tokens_per_correct_answer():
    from types import SimpleNamespace

    from rlm_cli.bench.report import tokens_per_correct

    rows = [SimpleNamespace(score=s, input_tokens=900, output_tokens=100) for s in (1.0, 0.5, 0.0)]
    assert tokens_per_correct(rows) == 2000.0  # 3,000 tokens for 1.5 correct answers
    assert tokens_per_correct(rows[2:]) is None
    # base on oolong answered "10" for 127: partial credit ~1e-15 made it 2e19 tokens per correct
    assert tokens_per_correct([SimpleNamespace(score=1e-15, input_tokens=16_000, output_tokens=2)]) is None


def test_the_count_lines_text_of_the_offered_block_is_prompt_text(fake_lm):
    """Seen on oolong: the 1.5B model's first reply imagined the block's output ("1 lines hold all of
    'feedback': ...") in a bare fence; rlm now runs the block, and that text is never the answer."""
    imagined = "```\n1 lines hold all of 'feedback': count them with count(), not by reading the hits\n```"
    fake_lm.script("root", imagined, imagined, imagined, imagined, "7")
    files = {"r.txt": "".join(f"[#{i}] label: {'feedback' if i % 3 == 0 else 'other'}\n" for i in range(30))}
    run = run_engine(fake_lm, question="How many records have the label 'feedback'?", files=files,
                     limits=Limits(max_iterations=3))
    steps = [s for it in run.doc["iterations"] for s in it["steps"]]
    assert steps and "10 lines hold all of 'feedback'" in steps[0]["stdout"]  # the offered block ran
    assert run.answer != imagined.strip("`\n") and "lines hold all of" not in (run.answer or "")


def test_an_answer_is_cut_to_the_one_value_the_question_asks_for():
    """Seen on the bench: "127 (records.txt:4)" for "Answer with a number" (a reader of the last
    number gets 4), a sentence around the path for "Answer with the file's path"."""
    from rlm_cli.run.answer_form import in_asked_form as form

    number = "How many records have the label 'feedback'? Answer with a number."
    assert form(number, "127 (records.txt:4)") == "127"
    assert form(number, "There are 1,234 records.") == "1234"
    assert form(number, "127") == "127"
    assert form(number, "127 of the 564 records") == "127 of the 564 records"  # two numbers: left
    assert form(number, "the code is 9429-3981") == "the code is 9429-3981"  # a code is no number
    path = "In which file is `_callable` defined? Answer with the file's path."
    assert form(path, "It is defined in `lib/unittest/mock.py` (line 150).") == "lib/unittest/mock.py"
    assert form(path, "src/a.py:12 and src/b.py:3") == "src/a.py:12 and src/b.py:3"
    label = "Which label is the least frequent? The labels are: account, feedback, pricing. Answer with the label only."
    assert form(label, "The least frequent label is 'account' (21 lines).") == "account"
    assert form(label, "account or pricing") == "account or pricing"
    word = ("Are there more, fewer or the same number of records labelled 'refund' compared with 'returns'? "
            "Answer with one word: more, fewer or same.")
    assert form(word, "Fewer.") == "fewer"
    assert form(word, "There are more returns than refunds") == "There are more returns than refunds"
    free = "Where is auth handled?"
    assert form(free, "In src/auth.py:12, see login()") == "In src/auth.py:12, see login()"  # no form asked


def test_the_cut_is_a_notice_and_a_protocol_answer_is_untouched(fake_lm):
    from engine_runner import run_engine

    question = "How many lines say hello? Answer with a number."
    fake_lm.script("root", "```repl\nprint(count('hello'))\n```", "FINAL(2 (a.txt:1-2))")
    run = run_engine(fake_lm, question=question, files={"a.txt": "hello\nhello\n"})
    assert run.answer == "2" and any("cut to the one value" in n for n in run.notices())
    fake_lm.script("root", "```repl\nprint(count('hello'))\n```", "FINAL(2)")
    run = run_engine(fake_lm, question=question, files={"a.txt": "hello\nhello\n"})
    assert run.answer == "2" and not any("cut to" in n for n in run.notices())


def test_the_question_copied_back_is_not_an_answer():
    """Seen on pairs: the final answer was the question's own text."""
    from rlm_cli.run.answers import why_not_an_answer

    question = "List every pair of distinct users who both have a record labelled 'billing'."
    assert why_not_an_answer(question, prompt_text=[], outputs=[], question=question) == "the question itself"
    assert why_not_an_answer(question.upper() + " Answer:", prompt_text=[], outputs=[],
                             question=question) == "the question itself"
    answer = question + "\n(u1285, u4799)\n(u1285, u5997)"
    assert why_not_an_answer(answer, prompt_text=[], outputs=[], question=question) is None  # echo, then an answer
    assert why_not_an_answer("Paris", prompt_text=[], outputs=[], question="What is the capital?") is None
    assert why_not_an_answer("Who wrote it", prompt_text=[], outputs=[], question="Who wrote it?") is None  # short


def test_an_error_of_the_runs_own_code_is_not_an_answer():
    """Seen on codeqa: the last call answered "```repl\\nError: NameError: name 'chunks' is not defined"."""
    from rlm_cli.run.answers import why_not_an_answer

    errors = ["NameError: name 'chunks' is not defined"]
    for answer in ("```repl\nError: NameError: name 'chunks' is not defined", "NameError: name 'chunks' is not defined",
                   "name 'chunks' is not defined"):
        assert why_not_an_answer(answer, prompt_text=[], outputs=[], errors=errors) == "an error of its own code"
    # an error the user asked about (read from the input, not raised by the run's code) is an answer
    assert why_not_an_answer("NameError: name 'cfg' is not defined", prompt_text=[], outputs=[], errors=errors) is None
    assert why_not_an_answer("NameError: name 'chunks' is not defined", prompt_text=[], outputs=[]) is None


def test_a_piece_of_the_worked_example_is_not_an_answer():
    """Seen on pairs: "The billing service listens on port 8443." (the worked example's output line)."""
    from rlm_cli.run.answers import static_prompt_lines, why_not_an_answer

    lines = static_prompt_lines()
    assert why_not_an_answer("The billing service listens on port 8443.", prompt_text=lines,
                             outputs=[]) == "rlm's own prompt text"
    assert why_not_an_answer("The auth service listens on port 8443.", prompt_text=lines, outputs=[]) is None
    assert why_not_an_answer("8443", prompt_text=lines, outputs=[]) is None  # too short to tell
