"""``definitions`` and ``callers`` in the REPL (rlm_cli/repl/child_code.py), over a context laid out
as the child holds it, and in the real sandboxed REPL; and the first block offering them for code
questions (rlm_cli/run/first_block.py)."""

from __future__ import annotations

import contextlib
import io

import pytest
from engine_runner import run_engine
from helpers import context_over

from rlm_cli.repl.child_code import make_code_tools
from rlm_cli.repl.child_grep import make_tools
from rlm_cli.run.first_block import code_names, counted_file, first_block

PY = ("import os\n"
      "from pkg.store import sync_ledger\n"
      "\n"
      "\n"
      "LIMIT = 5\n"
      "\n"
      "class Store:\n"
      "    def flush(self, data, encoding='utf-8'):\n"
      "        if data:\n"
      "            return sync_ledger(data)\n"
      "\n"
      "    async def close(self):\n"
      "        def inner():\n"
      "            return sync_ledger (None)\n"
      "        return inner()\n"
      "\n"
      "sync_ledger(0)\n")
JS = "export async function syncLedger(x) {\n  return x;\n}\nfunction run() {\n  syncLedger(1);\n}\n"
GO = "package main\n\nfunc (s *Store) Flush(n int) error {\n\treturn nil\n}\n"


def tools_over(tmp_path, files: dict[str, str]) -> dict:
    """The REPL's search tools and ``files`` (path -> text) over ``files`` laid out as the child holds them."""
    context, spans, _loaded = context_over(tmp_path, files)
    tools = make_tools(context, spans)
    texts = {path: context[start:end] for path, (start, end) in spans.items()}
    return {**tools, **make_code_tools(context, spans, tools["grep"]), "files": texts}


def test_definitions_find_the_defining_line_in_any_language(tmp_path):
    tools = tools_over(tmp_path, {"pkg/app.py": PY, "web/app.js": JS, "main.go": GO,
                                  "pkg/store.py": "\n\ndef sync_ledger(data, retries=3):\n    return data\n"})
    definitions = tools["definitions"]
    assert definitions("sync_ledger") == [("pkg/store.py", 3, "def sync_ledger(data, retries=3):")]
    assert definitions("flush") == [("pkg/app.py", 8, "    def flush(self, data, encoding='utf-8'):")]
    assert definitions("Store") == [("pkg/app.py", 7, "class Store:")]
    assert definitions("LIMIT") == [("pkg/app.py", 5, "LIMIT = 5")]
    assert definitions("syncLedger") == [("web/app.js", 1, "export async function syncLedger(x) {")]
    assert definitions("Flush") == [("main.go", 3, "func (s *Store) Flush(n int) error {")]
    assert definitions("pkg.store.sync_ledger") == definitions("sync_ledger")  # a dotted name: its last part
    assert definitions("missing") == []
    assert definitions("flush", paths="*.js") == []
    with pytest.raises(ValueError, match="not a name"):
        definitions("a b")
    with pytest.raises(TypeError):
        definitions(None)


def test_callers_name_the_enclosing_function_and_skip_definitions_and_imports(tmp_path):
    tools = tools_over(tmp_path, {"pkg/app.py": PY, "web/app.js": JS})
    callers = tools["callers"]
    assert callers("sync_ledger") == [
        ("pkg/app.py", 10, "flush", "            return sync_ledger(data)"),  # inside an if, in a method
        ("pkg/app.py", 14, "inner", "            return sync_ledger (None)"),  # a nested function
        ("pkg/app.py", 17, None, "sync_ledger(0)"),  # module level
    ]
    assert callers("syncLedger") == [("web/app.js", 5, "run", "  syncLedger(1);")]
    assert callers("close") == []


def test_code_questions_get_definitions_or_callers_in_their_first_block(tmp_path):
    assert code_names("In which file is the function `parse_legacy_record` defined?") == ["parse_legacy_record"]
    assert code_names("What is the default of the parameter `encoding` of the function `render_msg`?") == [
        "render_msg"]  # the function named, not its parameter
    assert code_names("Which function calls `syncLedger`?") == ["syncLedger"]  # case kept
    assert code_names("What is the magic number for the falcon vault?") == []
    assert code_names("Which file mentions `sync_ledger` most?") == []  # no code word
    # a code word that is a quoted name or a listed label is not a code question (oolong's 'returns')
    assert code_names("Are there more records labelled 'refund' than 'returns'? Or 'call'?") == []
    assert counted_file("How many top-level functions does the file `json/decoder.py` define?") == "json/decoder.py"
    assert counted_file("How many records have the label 'feedback'?") is None

    tools = tools_over(tmp_path, {"pkg/app.py": PY, "pkg/store.py": "def sync_ledger(data):\n    pass\n"})

    def printed(question: str) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(first_block(question), dict(tools))
        return out.getvalue()

    where = printed("In which file is the function `sync_ledger` defined?")
    assert "'sync_ledger' is defined at pkg/store.py:1: def sync_ledger(data):" in where
    assert "callers" not in first_block("In which file is the function `sync_ledger` defined?")
    calls = printed("Which function calls `sync_ledger`?")
    assert "'sync_ledger' is called by flush at pkg/app.py:10: return sync_ledger(data)" in calls
    assert "3 calls of 'sync_ledger' in all" in calls
    assert "the variable answer" not in calls  # two callers (and module-level code): nothing is picked
    # one file, one caller: kept in answer, which the 1.5B root then gave as the answer
    assert where.splitlines()[-1] == "the variable answer holds 'pkg/store.py': FINAL_VAR(answer) answers with it"
    assert printed("Which function calls `inner`?").splitlines()[-1] == (
        "the variable answer holds 'close': FINAL_VAR(answer) answers with it")
    assert "the variable answer" not in printed("What is the default of the parameter `encoding` of `flush`?")
    assert "no definition of 'nothing' found" in printed("Where is the function `nothing` defined?")
    counted = printed("How many top-level functions does the file `app.py` define?").splitlines()[-3:]
    assert counted == ["0 top-level functions (def at the start of a line) in app.py",
                       "3 indented def lines (methods, nested functions) in app.py", "1 top-level classes in app.py"]


def test_what_a_function_returns_or_defaults_to_gets_its_lines_in_the_first_block(tmp_path):
    """stdlib, seed 1: "The function `_parse_hh_mm_ss_ff` has one return statement. What does it
    return?" The block showed where it is defined, never its lines; the 1.5B root guessed."""
    store = ("def sync_ledger(data,\n                retries=3):\n    if not data:\n        raise ValueError(data, retries=5)\n"
             "    return (data,\n            retries)\n\n\ndef other():\n    pass\n")
    tools = tools_over(tmp_path, {"pkg/app.py": PY, "pkg/store.py": store, "web/app.js": JS})

    def run(question: str) -> tuple[list[str], dict]:
        out, namespace = io.StringIO(), dict(tools)
        with contextlib.redirect_stdout(out):
            exec(first_block(question), namespace)
        return out.getvalue().splitlines(), namespace

    printed, ns = run("The function `sync_ledger` has one return statement. What does it return?")
    at = printed.index("pkg/store.py:1-6, the definition of sync_ledger (6 lines):")
    assert printed[at + 1:at + 7] == store.splitlines()[:6]  # the signature's second line and the return's too
    assert "def other():" not in printed and "callers" not in first_block("What does `sync_ledger` return?")
    assert "answer" not in ns  # its one return goes on past its line: not cut and kept
    assert run("What does the function `flush` return?")[1]["answer"] == "sync_ledger(data)"  # one line: kept
    printed, ns = run("What is the default value of the parameter `encoding` of the function `flush`?")
    assert "pkg/app.py:8-10, the definition of flush (3 lines), its signature:" in printed
    assert ns["answer"] == "'utf-8'" and "        if data:" not in printed  # the signature will do
    # read from the signature only, over its lines: not from a call in the body
    printed, ns = run("What is the default of the parameter `retries` of the function `sync_ledger`?")
    assert ns["answer"] == "3" and printed[-3:-1] == store.splitlines()[:2]
    assert "answer" not in run("What is the default of the argument `data` of the function `sync_ledger`?")[1]
    printed, ns = run("What does the function `close` return?")  # two return lines (one nested): none kept
    assert "        return inner()" in printed and "answer" not in ns
    printed, ns = run("What does the function `syncLedger` return?")  # braces: to the closing brace
    assert printed[-4:-1] == ["export async function syncLedger(x) {", "  return x;", "}"] and ns["answer"] == "x"
    assert run("What does the function `nothing` return?")[0][-1] == "no definition of 'nothing' found"
    # a long one: its first 30 lines, then only its return lines, numbered
    tools = tools_over(tmp_path, {"long.py": "def build(x):\n" + "    x += 1\n" * 40 + "    return x * 2\n"})
    printed, ns = run("What does the function `build` return?")
    assert "long.py:1-42, the definition of build (42 lines):" in printed and printed.count("    x += 1") == 29
    assert "long.py:42:     return x * 2" in printed and ns["answer"] == "x * 2"


def test_definitions_and_callers_in_the_real_repl(fake_lm):
    fake_lm.script("root", "```repl\nprint(definitions('sync_ledger'))\nprint(callers('sync_ledger'))\n```",
                   "FINAL(done)")
    run = run_engine(fake_lm, files={"pkg/app.py": PY, "pkg/store.py": "def sync_ledger(data):\n    pass\n"})
    assert run.status == "answered"
    out = run.doc["iterations"][0]["steps"][0]["stdout"]
    assert "[('pkg/store.py', 1, 'def sync_ledger(data):')]" in out
    assert "('pkg/app.py', 10, 'flush', '            return sync_ledger(data)')" in out
    system = fake_lm.requests_for("root")[0].body["messages"][0]["content"]
    assert "definitions(name, paths=None)" in system and "callers(name, paths=None)" in system


def test_a_pairs_question_gets_every_pair_computed(tmp_path):
    """OOLONG-Pairs: "every pair of distinct users who both have a record labelled 'shipping'" was 0
    of 5: the model never wrote the code; the block finds the users on those lines and pairs them."""
    from rlm_cli.run.first_block import pair_plan

    question = ("List every pair of distinct users who both have at least one record labelled 'shipping'. "
                "Give each pair as (user, user), for example (u1234, u5678), one pair per line.")
    assert pair_plan(question) == ("user", ["shipping"])  # not the example's ids
    assert pair_plan("Which pairs of files import `os`?") == ("file", ["os"])
    assert pair_plan("How many records have the label 'shipping'?") is None
    records = ("[#1] user u7 | label: shipping | a\n[#2] user u3 | label: billing | b\n"
               "[#3] user u5 | label: shipping | c\n[#4] user u7 | label: shipping | d\n[#5] user=u9 label: shipping\n")
    tools = tools_over(tmp_path, {"records.txt": records})
    out = io.StringIO()
    namespace = dict(tools)
    with contextlib.redirect_stdout(out):
        exec(first_block(question), namespace)
    printed = out.getvalue().splitlines()
    assert printed[0] == "4 lines hold all of 'shipping'; the first ones:"  # no search: its hits were noise
    assert printed[1] == "records.txt:1: [#1] user u7 | label: shipping | a"
    assert printed[-6:] == [
        "3 distinct users on those lines: ['u5', 'u7', 'u9']", "3 pairs of them:", "(u5, u7)", "(u5, u9)", "(u7, u9)",
        "the variable answer holds all 3 pairs, one per line: FINAL_VAR(answer) answers with them"]
    assert namespace["answer"] == "(u5, u7)\n(u5, u9)\n(u7, u9)"  # the model answered one pair of ten
