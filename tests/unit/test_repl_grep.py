"""``grep`` in the REPL: the search itself (rlm_cli/repl/child_grep.py, over a context and file spans
as the child holds them), and in the real REPL through the engine against the FakeLM: root code calls
grep, prints, and the feedback carries the hits."""

from __future__ import annotations

import re

import pytest
from engine_runner import run_engine
from helpers import context_over

from rlm_cli.context import ContextWriter
from rlm_cli.repl.child_grep import MAX_LINE_CHARS, make_grep


def grep_over(tmp_path, files: dict[str, str]):
    """``grep`` over ``files`` laid out exactly as the REPL child gets them (context + index)."""
    context, spans, loaded = context_over(tmp_path, files)
    return make_grep(context, spans), loaded


def test_hits_carry_path_line_number_and_line(tmp_path):
    grep, loaded = grep_over(tmp_path, {
        "src/app.py": "import os\n\ndef login(user):\n    return check(user)  # login\n",
        "notes.txt": "no match here\nLOGIN is case-insensitive here\r\nlast line without newline: login",
    })
    assert grep("login") == [("src/app.py", 3, "def login(user):"), ("src/app.py", 4, "    return check(user)  # login"),
                             ("notes.txt", 3, "last line without newline: login")]
    assert grep("login", flags=re.IGNORECASE)[2] == ("notes.txt", 2, "LOGIN is case-insensitive here")
    assert grep(re.compile(r"^def \w+"), paths="*.py") == [("src/app.py", 3, "def login(user):")]
    assert grep("^$") == [("src/app.py", 2, "")]  # ^ and $ anchor at lines, within each file only
    assert grep("login", paths=["notes.txt"]) == [("notes.txt", 3, "last line without newline: login")]
    # every reported line number is within the file's line count, which the citation check uses
    lines = {f.path: f.lines for f in loaded.files}
    assert all(1 <= n <= lines[p] for p, n, _ in grep(""))
    assert [n for p, n, _ in grep("") if p == "notes.txt"] == [1, 2, 3]


def test_a_line_is_reported_once_and_a_long_line_is_cut_around_the_hit(tmp_path):
    long_line = "x" * 50_000 + "NEEDLE" + "y" * 50_000
    grep, _ = grep_over(tmp_path, {"min.js": long_line + "\nNEEDLE NEEDLE NEEDLE\n"})
    hits = grep("NEEDLE")
    assert [(p, n) for p, n, _ in hits] == [("min.js", 1), ("min.js", 2)]
    assert "NEEDLE" in hits[0][2] and len(hits[0][2]) <= MAX_LINE_CHARS + 6
    assert hits[0][2].startswith("...") and hits[0][2].endswith("...")


def test_max_hits_and_bad_arguments(tmp_path, capsys):
    grep, _ = grep_over(tmp_path, {"a.txt": "hit\n" * 10, "b.txt": "hit\n"})
    assert len(grep("hit", max_hits=3)) == 3
    err = capsys.readouterr().err
    assert "stopped at max_hits=3" in err
    total = len(grep("hit", max_hits=10_000))
    capsys.readouterr()
    assert f"{total - 3:,} more matches follow" in err and f"pass max_hits={total})" in err
    assert len(grep("hit", paths="a.txt", max_hits=10)) == 10
    assert "max_hits" not in capsys.readouterr().err  # exactly all of them: nothing was left out
    assert grep("hit", max_hits=0) == []
    with pytest.raises(TypeError):
        grep(b"hit")
    with pytest.raises(TypeError):
        grep("hit", paths=[1])
    with pytest.raises(ValueError):
        grep("hit", max_hits=-1)
    with pytest.raises(re.error):
        grep("(unclosed")


def test_root_code_calls_grep_and_the_feedback_carries_the_hits(fake_lm):
    """The function is in the real REPL's namespace (the sandboxed child), survives reassignment,
    and its hits reach the root LM in the next message."""
    fake_lm.script("root",
                   "```repl\nhits = grep(r'def \\w+', paths='*.py')\nfor h in hits:\n    print(h)\n"
                   "grep = None\n```",
                   "```repl\nprint(grep('TODO'))\nFINAL('login is defined at src/auth.py:2')\n```")
    run = run_engine(fake_lm, files={"src/auth.py": "import hmac\ndef login(u):\n    pass\n",
                                     "src/views.py": "# TODO: views\ndef index():\n    pass\n",
                                     "README.md": "def not_code\n"})
    assert run.status == "answered"
    told = fake_lm.requests_for("root")[1].body["messages"][-1]["content"]
    assert "('src/auth.py', 2, 'def login(u):')" in told and "('src/views.py', 2, 'def index():')" in told
    assert "README.md" not in told
    assert "`grep` was reassigned" in told
    assert "[('src/views.py', 1, '# TODO: views')]" in run.doc["iterations"][1]["steps"][0]["stdout"]
    system = fake_lm.requests_for("root")[0].body["messages"][0]["content"]
    assert "grep(pattern, paths=None, flags=0, max_hits=200)" in system and "`path:line`" in system


def test_a_files_text_passed_as_paths_searches_that_file(tmp_path):
    # grep(pattern, files[path]): a call the 1.5B model writes; it found 0 hits for six turns
    grep, _ = grep_over(tmp_path, {"a.txt": "alpha\nbeta\n", "b.txt": "beta\ngamma\n"})
    text = "beta\ngamma\n"
    assert grep("beta", text) == [("b.txt", 1, "beta")]
    with pytest.raises(ValueError, match="paths selects files by name"):
        grep("beta", "some other\ntext")
    assert grep("beta", "*.txt") == [("a.txt", 2, "beta"), ("b.txt", 1, "beta")]  # globs as before


def test_count_counts_matching_lines_without_a_cap(tmp_path):
    from rlm_cli.repl.child_grep import make_tools

    writer = ContextWriter(tmp_path / "ctx.txt")
    writer.add("access.log", "".join(f"user u{i % 50} GET /x status {404 if i % 7 == 0 else 200}\n"
                                     for i in range(5000)))
    writer.add("b.txt", "u42 404 404\nnothing\n")
    loaded = writer.finish()
    tools = make_tools(loaded.read(), {p: (o, o + c) for p, o, c in loaded.index()})
    expected = sum(1 for i in range(5000) if i % 50 == 42 and i % 7 == 0)
    pattern = r"(?i)^(?=.*(?<!\w)u42(?!\w))(?=.*(?<!\w)404(?!\w))"
    assert tools["count"](pattern, paths="access.log") == expected
    assert tools["count"](pattern) == expected + 1  # one line holding 404 twice counts once
    assert tools["count"]("status 200") == 5000 - len(range(0, 5000, 7))
    assert tools["count"]("absent") == 0


def test_a_counting_question_gets_a_count_in_its_first_block():
    from rlm_cli.run.first_block import count_terms, first_block

    assert count_terms("How many records have the label 'feedback'?") == ["feedback"]
    assert count_terms("How many requests from user u42 got status 404?") == ["u42", "404"]
    assert count_terms("How many functions does the file `json/decoder.py` define?") == []  # a file: no
    assert count_terms("What is the code for u42?") == []  # not a count
    block = first_block("How many requests from user u42 got status 404?")
    assert "n = count(" in block and "search(" in block
    assert "count(" not in first_block("What is the magic number for the falcon vault?")


def test_a_comparison_gets_each_terms_count_too(tmp_path):
    """Seen on oolong: "more, fewer or the same number of records labelled 'refund' compared with
    'returns'?" printed only "0 lines hold all of 'refund', 'returns'"; each term's count answers it."""
    import contextlib
    import io

    from rlm_cli.repl.child_grep import make_tools
    from rlm_cli.run.first_block import first_block

    writer = ContextWriter(tmp_path / "ctx.txt")
    writer.add("r.txt", "label: refund\nlabel: returns\nlabel: returns\nlabel: refunds\n")
    loaded = writer.finish()
    tools = make_tools(loaded.read(), {p: (o, o + c) for p, o, c in loaded.index()})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(first_block("Are there more, fewer or the same number of records labelled 'refund' compared "
                         "with 'returns'?"), dict(tools))
    assert out.getvalue().splitlines()[-3:] == [
        "2 lines hold 'returns'", "1 lines hold 'refund'", "'refund' is on fewer lines than 'returns'"]
    assert "lines hold all of" not in out.getvalue()  # lines holding both answer no comparison


def test_a_ranking_question_gets_each_candidates_count(tmp_path):
    """Seen on oolong: "Which label is the least frequent? The labels are: a, b, c" got twenty search
    hits and a guessed label; each listed candidate's count, highest first, answers it."""
    import contextlib
    import io

    from rlm_cli.repl.child_grep import make_tools
    from rlm_cli.run.first_block import first_block, rank_candidates

    question = ("Which label is the least frequent among the records? The labels are: billing, refund, "
                "shipping. Answer with the label only.")
    assert rank_candidates(question) == ["billing", "refund", "shipping"]  # no "shipping." from the period
    assert rank_candidates("Which is more common, 'timeout' or 'refused'?") == ["timeout", "refused"]
    assert rank_candidates("Which of these is used most often: foo, bar and baz?") == ["foo", "bar", "baz"]
    assert rank_candidates("What is the most important function?") == []  # no frequency asked
    assert rank_candidates("Which label is the most frequent?") == []  # no candidates named
    writer = ContextWriter(tmp_path / "ctx.txt")
    writer.add("r.txt", "label: refund\n" * 3 + "label: billing\n" + "label: shipping\n" * 2 + "billings\n")
    loaded = writer.finish()
    tools = make_tools(loaded.read(), {p: (o, o + c) for p, o, c in loaded.index()})
    for asked, answer in [(question, "billing"), (question.replace("least", "most"), "refund")]:
        out, namespace = io.StringIO(), dict(tools)
        with contextlib.redirect_stdout(out):
            exec(first_block(asked), namespace)
        assert out.getvalue().splitlines() == [  # no search: its hits hid the counts from a 1.5B root
            "3 lines hold 'refund'", "2 lines hold 'shipping'", "1 lines hold 'billing'",
            "most frequent: 'refund' (3 lines)", "least frequent: 'billing' (1 lines)",
            f"the variable answer holds {answer!r}: FINAL_VAR(answer) answers with it"]
        assert namespace["answer"] == answer


def test_a_path_without_its_leading_directory_selects_the_file(tmp_path):
    """Seen on the stdlib suite: count(r'^def', paths=['argparse.py']) counted 0 in
    stdlib-64000-0/argparse.py; the file tree shows paths under their root directory."""
    grep, _ = grep_over(tmp_path, {"lib/argparse.py": "def a():\n", "lib/myargparse.py": "def b():\n",
                                   "argparse.py.bak": "def c():\n"})
    assert grep("^def", paths="argparse.py") == [("lib/argparse.py", 1, "def a():")]
    assert grep("^def", paths=["/argparse.py"]) == [("lib/argparse.py", 1, "def a():")]
    assert grep("^def", paths="lib/argparse.py") == [("lib/argparse.py", 1, "def a():")]
    assert grep("^def", paths="ib/argparse.py") == []  # only at a "/"
