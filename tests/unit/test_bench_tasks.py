"""Bench task generation: deterministic from the seed, the asked length, lengths parsing
(rlm_cli/bench/tasks.py and the suite generators)."""

from __future__ import annotations

import random

import pytest

from rlm_cli.bench.runner import TaskSpec, plan
from rlm_cli.bench.tasks import SUITES, format_length, generators, parse_lengths, parse_suites
from rlm_cli.errors import UsageError


@pytest.mark.parametrize("suite", SUITES)
def test_same_seed_same_task_different_seed_differs(suite):
    gen = generators()[suite]
    random.seed(1)
    state = random.getstate()
    a = gen(20_000, 1, 7)
    assert random.getstate() == state  # the global generator is neither used nor moved
    random.seed(12345)
    b = gen(20_000, 1, 7)
    assert a == b
    assert gen(20_000, 1, 8).files != a.files
    assert gen(20_000, 2, 7).files != a.files


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("length", [2_000, 20_000, 300_000])
def test_length_is_close_to_asked(suite, length):
    task = generators()[suite](length, 0, 1)
    assert length * 0.9 <= task.chars <= length
    assert task.question and task.expected not in (None, "", [])


def test_niah_haystack_has_needle_once_and_varied_lines():
    task = generators()["niah"](50_000, 0, 3, depth=0.5)
    text = task.files["haystack.txt"]
    assert text.count(task.expected) == 1
    lines = text.splitlines()
    assert len(set(lines)) > 0.9 * len(lines)  # real-looking text, not one repeated line
    assert 0.4 < task.meta["needle_line"] / len(lines) < 0.6
    assert task.decoys and all(d in text and d != task.expected for d in task.decoys)


def test_parse_lengths():
    assert parse_lengths("8000,64k,1m") == [8000, 64_000, 1_000_000]
    assert parse_lengths("8k, 8000") == [8000]
    assert format_length(64_000) == "64k" and format_length(1_000_000) == "1m"
    for bad in ("", "5q", "1k", "-3", "1g", "200m"):
        with pytest.raises(UsageError):
            parse_lengths(bad)


def test_parse_suites():
    assert parse_suites(["niah", "NIAH"]) == ["niah"]
    with pytest.raises(UsageError):
        parse_suites(["nope"])


def test_plan_order_and_depths():
    specs = plan(["niah"], [8000, 16000], 2, 5, depths=[0.1, 0.9])
    assert [(s.length, s.index, s.depth) for s in specs] == [(8000, 0, 0.1), (8000, 1, 0.9), (16000, 0, 0.1),
                                                             (16000, 1, 0.9)]
    assert TaskSpec("niah", 8000, 0, 5, 0.1).generate().meta["depth"] == 0.1


def _records(task):
    return [line.split(" | ") for line in task.files["records.txt"].splitlines()]


@pytest.mark.parametrize("index", range(6))
def test_oolong_answer_matches_the_records(index):
    task = generators()["oolong"](30_000, index, 2)
    labels = [r[2].removeprefix("label: ") for r in _records(task)]
    kind = task.meta["question_kind"]
    counts = {c: labels.count(c) for c in set(labels)}
    if kind == "count":
        label = task.question.split("'")[1]
        assert task.expected == str(labels.count(label)) and task.kind == "numeric"
    elif kind == "most":
        assert counts[task.expected] > max(v for k, v in counts.items() if k != task.expected)
    elif kind == "least":
        assert counts[task.expected] < min(v for k, v in counts.items() if k != task.expected)
    else:
        a, b = task.question.split("'")[1], task.question.split("'")[3]
        want = "more" if labels.count(a) > labels.count(b) else "fewer" if labels.count(a) < labels.count(b) else "same"
        assert task.expected == want


@pytest.mark.parametrize("index", range(4))
def test_pairs_answer_matches_the_records(index):
    task = generators()["pairs"](30_000, index, 2)
    label = task.question.split("'")[1]
    users = sorted({r[1].removeprefix("user ") for r in _records(task) if r[2] == f"label: {label}"})
    assert 3 <= len(users) <= 6
    assert task.expected == [[a, b] for i, a in enumerate(users) for b in users[i + 1:]]


@pytest.mark.parametrize("index", range(6))
def test_codeqa_answer_matches_the_repository(index):
    task = generators()["codeqa"](30_000, index, 2)
    names = task.question.split("`")[1::2]  # where/caller: [fn]; default: [param, fn]
    fn = names[-1]
    defining = [p for p, text in task.files.items() if f"\ndef {fn}(" in text]
    assert len(defining) == 1
    kind = task.meta["question_kind"]
    if kind == "where":
        assert task.expected == defining[0]
    elif kind == "caller":
        callers = [line for text in task.files.values() for line in text.splitlines() if f"= {fn}(result)" in line]
        assert len(callers) == 1
        assert f"\ndef {task.expected}(" in "".join(task.files.values())
    else:
        sig = next(line for line in task.files[defining[0]].splitlines() if line.startswith(f"def {fn}("))
        assert f"{names[0]}={task.expected}," in sig.replace("'", "").replace("):", ",")


@pytest.mark.parametrize("index", range(12))
def test_stdlib_answers_hold_for_the_real_source(index):
    """The stdlib suite's questions are about the interpreter's real standard library: each expected
    answer is checked here again, from the text the task holds, with other means than the generator's."""
    import ast
    import re

    task = generators()["stdlib"](60_000, index, 3)
    assert all(not p.startswith(("test/", "idlelib/")) for p in task.files)
    names = task.question.split("`")[1::2]
    kind = task.meta["question_kind"]
    if kind == "count":
        text = task.files[names[0]]
        assert int(task.expected) == len(re.findall(r"^(?:async )?def \w+", text, re.MULTILINE))
        return
    fn = names[-1]
    defining = [p for p, text in task.files.items() if re.search(rf"^(?:async )?def {fn}\(", text, re.MULTILINE)]
    assert len(defining) == 1, defining
    source = task.files[defining[0]]
    if kind == "where":
        assert task.expected == defining[0]
    elif kind == "caller":
        body = ast.unparse(next(n for f in task.files.values() for n in ast.walk(ast.parse(f))
                                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == task.expected))
        assert f"{fn}(" in body
    elif kind == "returns":
        node = next(n for n in ast.parse(source).body if getattr(n, "name", None) == fn)
        assert f"return {task.expected}" in ast.unparse(node).replace("'", "")
    else:
        node = next(n for n in ast.parse(source).body if getattr(n, "name", None) == fn)
        assert task.expected in ast.unparse(node.args)
