"""``search`` in the REPL: ranked keyword search over ``files`` (rlm_cli/repl/child_grep.py), on a
context laid out as the child holds it, and in the real REPL through the engine."""

from __future__ import annotations

import pytest
from engine_runner import run_engine

from rlm_cli.context import ContextWriter
from rlm_cli.repl.child_grep import MAX_K, MAX_LINE_CHARS, make_tools, query_terms


def tools_over(tmp_path, files: dict[str, str]) -> dict:
    writer = ContextWriter(tmp_path / "ctx.txt")
    for path, text in files.items():
        writer.add(path, text)
    loaded = writer.finish()
    spans = {path: (offset, offset + chars) for path, offset, chars in loaded.index()}
    return make_tools(loaded.read(), spans)


HAYSTACK = {
    "a.txt": "The weather was mild.\n"
             "The reset code for the scarlet falcon vault is 1111.\n"
             "The access code for the ivory wombat vault is 2222.\n"
             "Nobody could access the garden.\n",
    "b.txt": "filler\n" * 5 + "The Access Code for the SCARLET falcon Vaults is 3333.\n",
}


def test_the_line_with_the_rare_words_of_the_question_ranks_first(tmp_path):
    search = tools_over(tmp_path, HAYSTACK)["search"]
    hits = search("What is the access code for the scarlet falcon vault?")
    assert hits[0] == ("b.txt", 6, "The Access Code for the SCARLET falcon Vaults is 3333.")
    # the decoys follow: the one sharing the rare words "scarlet falcon" above the one sharing "access code"
    assert [h[1:] for h in hits[1:3]] == [(2, "The reset code for the scarlet falcon vault is 1111."),
                                          (3, "The access code for the ivory wombat vault is 2222.")]
    assert ("a.txt", 1, "The weather was mild.") not in hits  # no query word: never listed
    assert len(hits) == 4


def test_idf_weights_rare_terms_above_common_ones(tmp_path):
    search = tools_over(tmp_path, {"f.txt": "common common\n" * 50 + "rare only\n" + "common rare\n"})["search"]
    assert search("common rare", k=2) == [("f.txt", 52, "common rare"), ("f.txt", 51, "rare only")]
    # two common-only lines never beat the line with the rare word
    assert search("common rare", k=3)[2][2] == "common common"


def test_terms_match_at_word_starts_in_any_case(tmp_path):
    search = tools_over(tmp_path, {"src/auth.py": "def Authenticate(user):\n    unauthorized = 1\n"})["search"]
    assert search("where is auth handled") == [("src/auth.py", 1, "def Authenticate(user):")]


def test_query_terms_drop_stop_words_and_repeats():
    assert query_terms("What is the access code for the Scarlet vault? the CODE") == \
        ["access", "code", "scarlet", "vault"]
    assert query_terms("what is it") == ["what", "is", "it"]  # only stop words: all of them are used
    assert query_terms("") == []
    assert len(query_terms(" ".join(f"w{i}" for i in range(100)))) == 32


def test_paths_k_and_bad_arguments(tmp_path):
    search = tools_over(tmp_path, HAYSTACK)["search"]
    assert {p for p, _, _ in search("code", paths="a.*")} == {"a.txt"}
    assert len(search("code vault", k=1)) == 1
    assert search("?!") == [] and search("zebra") == []
    for bad in (0, MAX_K + 1, True, 2.0):
        with pytest.raises(ValueError, match="k must be"):
            search("code", k=bad)
    with pytest.raises(TypeError, match="query must be a str"):
        search(["code"])
    with pytest.raises(TypeError, match="search: paths"):
        search("code", paths=[1])


def test_a_long_line_is_cut_around_its_first_hit(tmp_path):
    search = tools_over(tmp_path, {"min.js": "x" * 5000 + " needle " + "y" * 5000 + "\nnext\n"})["search"]
    [(path, line, text)] = search("needle")
    assert (path, line) == ("min.js", 1) and "needle" in text and len(text) <= MAX_LINE_CHARS + 6


def test_regex_characters_in_the_query_are_words_not_patterns(tmp_path):
    search = tools_over(tmp_path, {"f.txt": "a (b) c\nfoo.*bar\nfoo_bar\n"})["search"]
    # the words "foo" and "bar", not the regex foo.*bar: "foo_bar" is one word, starting with "foo" only
    assert search("foo.*bar") == [("f.txt", 2, "foo.*bar"), ("f.txt", 3, "foo_bar")]


def test_search_in_the_real_repl(fake_lm):
    fake_lm.script("root", '```repl\nfor hit in search("access scarlet falcon code"):\n    print(hit)\n```', "FINAL(3333)")
    run = run_engine(fake_lm, files=HAYSTACK)
    assert run.answer == "3333"
    feedback = fake_lm.requests_for("root")[1].body["messages"][-1]["content"]
    assert "('b.txt', 6, 'The Access Code for the SCARLET falcon Vaults is 3333.')" in feedback.splitlines()[2]


def test_chunked_lower_case_search_finds_what_a_whole_pass_finds(tmp_path, monkeypatch):
    from rlm_cli.repl import child_grep

    text = ("Alpha CODE beta\n" + "x" * 50 + " code " + "y" * 50 + " VAULT\n"  # a line longer than a chunk
            + "Ärger mit dem Code\n"  # not ASCII: searched case-insensitively as it is
            + "barcode vaults Vault\n")
    whole = tools_over(tmp_path, {"f.txt": text})["search"]("code vault", k=50)
    monkeypatch.setattr(child_grep, "CHUNK_CHARS", 16)
    chunked = tools_over(tmp_path, {"f.txt": text})["search"]("code vault", k=50)
    assert chunked == whole
    assert sorted(line for _, line, _ in whole) == [1, 2, 3, 4]  # "barcode" is no word start; "vaults" is


def test_an_identifier_outranks_many_common_words(tmp_path):
    """Seen with the local 1.5B model: for "Which file defines the function `setMaxConns`?" the top 20
    lines were docstrings holding "file", "path", "relative", "defines"; the one line with the
    identifier was never among them (summed IDF: many common words outrank one rare word)."""
    # word frequencies of a 1 MB Python tree: "file" on 2 % of lines, "function" 1 %, "defines" 0.1 %
    doc = "    '''The file path relative to the root; defines which function applies.'''\n"
    body = ("x = compute(y)\n" * 97 + "open(file)\n" * 2 + "def function(): pass\n") * 10 + doc
    files = {f"pkg/mod{i}.py": body for i in range(24)}
    files["pkg/pool.py"] = "import os\n\n\ndef setMaxConns(n):\n    return n\n"
    search = tools_over(tmp_path, files)["search"]
    hits = search("Which file defines the function `setMaxConns`?")
    assert hits[0] == ("pkg/pool.py", 4, "def setMaxConns(n):")


def test_a_line_holding_every_rare_term_comes_first(tmp_path):
    filler = "".join(f"line {i} of filler\n" for i in range(3000))
    common = "alpha beta gamma delta\n" * 60
    files = {"a.txt": filler + common + "alpha beta gamma delta zebra\n" * 2, "b.txt": "zebra quokka\n"}
    search = tools_over(tmp_path, files)["search"]
    hits = search("alpha beta gamma delta zebra quokka")
    assert hits[0] == ("b.txt", 1, "zebra quokka")


def test_snake_case_dotted_and_quoted_terms_are_kept_whole(tmp_path):
    files = {"x.py": "value = 1\n" * 50 + "from os.path import join\n" + "def max_conns():\n" +
             "the magic number\n" + "number magic the\n" * 3}
    search = tools_over(tmp_path, files)["search"]
    assert search("where is os.path used")[0][2] == "from os.path import join"
    assert search("what does max_conns return")[0][2] == "def max_conns():"
    assert search('the "magic number" please')[0][2] == "the magic number"
    assert "os.path" in query_terms("where is os.path used") and "max_conns" in query_terms("max_conns x")
