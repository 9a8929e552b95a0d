"""What conversations (issue #11) cost: a session's overhead on ``rlm ask``, and ``rlm ask -c``.

What it measures
    ``rlm ask FILE Q -q`` against ``tests/scripted_server.py`` (one root step that sets a variable
    holding ``--state`` of data, then ``FINAL``), as a user runs it:
      ask --no-log          no session (nothing saved): the baseline
      ask                   a session: the file fingerprints, the REPL saving its variables, the
                            session record and pickle written
      ask -c                the same file continued: the record and the trajectory read back, the
                            fingerprints compared, the variables restored in the new REPL
    Wall time of the whole command (process start to exit), medians over ``--reps``; and the size of
    what a session keeps on disk.
Run: ``.venv/bin/python bench/bench_sessions.py`` (``--size 40MB``, ``--state 8MB``, ``--reps 5``).
Prints numbers, never asserts timings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers import RLM, rlm_env  # noqa: E402
from scripted_server import ScriptedServer  # noqa: E402


def _bytes(text: str) -> int:
    units = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
    for unit, factor in units.items():
        if text.upper().endswith(unit):
            return int(float(text[:-2]) * factor)
    return int(text)


def _run(args: list[str], env: dict) -> float:
    t0 = time.monotonic()
    p = subprocess.run([RLM, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    took = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"rlm {' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="2MB", help="input file size")
    ap.add_argument("--state", default="1MB", help="size of the REPL variable kept between questions")
    ap.add_argument("--reps", type=int, default=5)
    opts = ap.parse_args()
    size, state = _bytes(opts.size), _bytes(opts.state)
    step = f"```repl\nkept = 'k' * {state}\nprint(len(kept))\n```"
    with tempfile.TemporaryDirectory() as tmp, ScriptedServer() as server:
        src = Path(tmp) / "input.log"
        line = "2026-11-21 12:00:00 INFO worker heartbeat ok; queue depth nominal\n"
        src.write_text(line * (size // len(line)))
        server.default("root", lambda body: "FINAL(done)" if "Output of block" in body["messages"][-1]["content"]
                       else step)
        env = rlm_env(server, Path(tmp) / "home")
        times: dict[str, list[float]] = {"ask --no-log": [], "ask": [], "ask -c": []}
        for _ in range(opts.reps):
            times["ask --no-log"].append(_run(["ask", str(src), "q?", "-q", "--no-log"], env))
            times["ask"].append(_run(["ask", str(src), "q?", "-q"], env))
            times["ask -c"].append(_run(["ask", "-c", "and then?", "-q"], env))
        print(f"input {size / 1e6:.1f} MB, REPL variable {state / 1e6:.1f} MB, {opts.reps} reps (median wall s)")
        for name, values in times.items():
            print(f"  {name:<14} {statistics.median(values):7.3f}")
        kept = Path(tmp) / "home" / "data" / "sessions"
        sizes = [sum(f.stat().st_size for f in d.iterdir()) for d in kept.iterdir()] if kept.is_dir() else []
        print(f"  kept on disk per session: {statistics.median(sizes) / 1e6:.2f} MB (median of {len(sizes)})"
              if sizes else "  nothing kept")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
