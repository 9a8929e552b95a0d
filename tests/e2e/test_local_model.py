"""Opt-in: `rlm ask` end to end against a real small model on an OpenAI-compatible server.

Skipped unless ``RLM_TEST_LOCAL_MODEL_BASE`` names the server (e.g. ``http://127.0.0.1:8767/v1`` for
llama-cpp-python serving Qwen2.5-Coder-1.5B, see ``shared/local-model.md``). A small model is a messy
root LM (several blocks per reply, invented outputs, guessed FINALs), so this asserts the mechanics,
never the answer: replies parsed and blocks run, the loop ends within its limits, the trajectory is
valid and complete, no REPL process is left behind.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from helpers import assert_trajectory_shape, last_trajectory, rlm_env, run_rlm

BASE = os.environ.get("RLM_TEST_LOCAL_MODEL_BASE")
pytestmark = [pytest.mark.local_model,
              pytest.mark.skipif(not BASE, reason="set RLM_TEST_LOCAL_MODEL_BASE to a local model server")]


def test_real_model_needle_mechanics(tmp_path: Path):
    rng = random.Random(3)
    words = ["alpha", "beta", "gamma", "delta", "river", "mountain", "travel", "ocean", "forest"]
    lines = [" ".join(rng.choice(words) for _ in range(8)) + "." for _ in range(600)]
    lines.insert(377, "The magic number is 4817.")
    src = tmp_path / "haystack.txt"
    src.write_text("\n".join(lines) + "\n")
    home = tmp_path / "home"
    env = rlm_env(None, home, RLM_API_BASE=BASE, RLM_MODEL="openai/local", RLM_SUB_MODEL="openai/local",
                  TMPDIR=str(tmp_path))
    p = run_rlm(["ask", str(src), "What is the magic number hidden in the text?", "--max-iterations", "4",
                 "--step-timeout", "30", "--timeout", "900", "--request-timeout", "600"], env, timeout=1000)
    assert p.returncode in (0, 3), p.stderr  # answered, or ran out of iterations: both are clean endings
    doc = last_trajectory(home)
    assert_trajectory_shape(doc)
    assert doc["status"] in ("answered", "max_iterations")
    assert 1 <= len(doc["iterations"]) <= 5  # 4 iterations plus at most one best-answer call
    ran = [s for it in doc["iterations"] for s in it["steps"]]
    assert all(s["duration_s"] is not None for s in ran)  # every started block finished (or was killed)
    if doc["status"] == "answered":
        assert p.stdout.strip() == doc["answer"].strip()
    leftovers = [d for d in Path("/proc").iterdir() if d.name.isdigit() and _cmdline(d).find(str(tmp_path)) >= 0
                 and "child.py" in _cmdline(d)]
    assert not leftovers


def _cmdline(proc_dir: Path) -> str:
    try:
        return (proc_dir / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def test_real_model_tiny_bench(tmp_path: Path):
    """`rlm bench niah` with both systems on the real model: the bench runs to the end (exit 0), every
    run has its trajectory, the JSON carries per-system accuracy. Scores are not asserted."""
    import json

    home = tmp_path / "home"
    out = tmp_path / "runs"
    env = rlm_env(None, home, RLM_API_BASE=BASE, RLM_MODEL="openai/local", RLM_SUB_MODEL="openai/local",
                  TMPDIR=str(tmp_path))
    p = run_rlm(["bench", "niah", "--n", "1", "--lengths", "8000", "--context-window", "8192", "--max-iterations",
                 "3", "--step-timeout", "30", "--timeout", "600", "--request-timeout", "600", "--out", str(out),
                 "--json"], env, timeout=1500)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert set(doc["systems"]) == {"rlm", "base"}
    assert all(0 <= s["accuracy"] <= 1 for s in doc["systems"].values())
    for row in doc["tasks"]:
        assert_trajectory_shape(json.loads(Path(row["trajectory"]).read_text()))
