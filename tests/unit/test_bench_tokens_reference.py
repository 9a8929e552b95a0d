"""bench/bench_tokens_reference.py: matching an rlm bench JSON to regenerated tasks, and its table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from rlm_cli.bench.runner import plan

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def btr():
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_tokens_reference", ROOT / "bench" / "bench_tokens_reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _doc(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "out.json"
    path.write_text(json.dumps({"schema": "rlm-bench/1", "tasks": rows}))
    return path


def _tasks():
    return {t.id: t for t in (s.generate() for s in plan(["oolong", "codeqa"], [8000], 2, 0))}


def test_rows_match_by_id_expected_and_question(btr, tmp_path):
    tasks = _tasks()
    ids = list(tasks)
    traj = tmp_path / "t.json"
    traj.write_text(json.dumps({"question": "something else", "context": {"total_chars": 1}}))
    rows = [
        {"task": ids[0], "system": "rlm", "expected": tasks[ids[0]].expected, "score": 1.0},
        {"task": ids[1], "system": "rlm", "expected": "not it", "score": 1.0},  # a different task
        {"task": ids[2], "system": "rlm", "expected": tasks[ids[2]].expected, "trajectory": str(traj)},
        {"task": ids[0], "system": "base", "expected": tasks[ids[0]].expected},  # other systems ignored
        {"task": "niah-8000-0", "system": "rlm", "expected": "x"},  # not a task of this run
    ]
    got, notes = btr.rlm_rows(_doc(tmp_path, rows), tasks, {})
    assert list(got) == [ids[0]]
    assert any(n.startswith(ids[1] + ": not the same task (expected") for n in notes)
    assert any(n.startswith(ids[2] + ": not the same task (question") for n in notes)
    assert any(n.startswith(ids[3] + ": not in") for n in notes)


def test_context_length_checked_from_the_trajectory(btr, tmp_path):
    tasks = _tasks()
    tid = next(iter(tasks))
    traj = tmp_path / "t.json"
    traj.write_text(json.dumps({"question": tasks[tid].question, "context": {"total_chars": 100}}))
    rows = [{"task": tid, "system": "rlm", "expected": tasks[tid].expected, "trajectory": str(traj)}]
    assert list(btr.rlm_rows(_doc(tmp_path, rows), tasks, {tid: 100})[0]) == [tid]
    assert not btr.rlm_rows(_doc(tmp_path, rows), tasks, {tid: 101})[0]


def test_not_a_bench_file(btr, tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"schema": "rlm-trajectory/1"}))
    with pytest.raises(ValueError, match="not an rlm bench"):
        btr.rlm_rows(path, _tasks(), {})


def test_tokens_per_correct_counts_partial_scores(btr):
    s = btr.summary([{"score": 0.5, "tokens": 1000}, {"score": 0.0, "tokens": 500}])
    assert s == {"tasks": 2, "correct": 0.5, "mean_score": 0.25, "tokens": 1500, "per_task": 750, "per_correct": 3000}
    assert btr.summary([{"score": 0.0, "tokens": 10}])["per_correct"] is None
    res = [{"suite": "oolong", "rlm": {"score": 1.0, "tokens": 100}, "rlms": {"score": 0.5, "tokens": 400}}]
    lines = btr.table(res, ["oolong"])
    assert lines[2].startswith("oolong   rlms") and lines[2].endswith("0.12")  # 100 / 800


def test_scripted_root_speaks_each_protocol(btr):
    rlms = {"messages": [{"role": "system", "content": 'set answer["ready"] = True when done'}]}
    rlm = {"messages": [{"role": "system", "content": "call FINAL(answer)"}]}
    assert "answer['ready'] = True" in btr.scripted_root(rlms) and "FINAL" not in btr.scripted_root(rlms)
    assert "FINAL(r)" in btr.scripted_root(rlm)
