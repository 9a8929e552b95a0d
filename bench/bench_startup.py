"""Startup time of ``rlm --help`` (and of one Tab completion) against ``python -c "import typer, rich"``.

Shell completion runs ``rlm`` on every Tab, so startup is user-visible; the target is a ratio of at
most 1.5 between ``rlm --help`` and the bare import of its UI libraries. Runs are interleaved and
the median of ``--reps`` repetitions is reported. Usage::

    .venv/bin/python bench/bench_startup.py [--reps 15] [--json] [--max-ratio 1.5]

``--max-ratio`` makes the exit code 1 when the ratio is above it (for CI).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 1.5


def _time(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[:300]}")
    return elapsed


def measure(reps: int = 15, rlm: Path | None = None) -> dict:
    """Median wall seconds of each command over ``reps`` interleaved runs (after one warm-up each)."""
    rlm = rlm or Path(sys.executable).parent / "rlm"
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("_RLM_COMPLETE")}
        env.update(RLM_HOME=home, COLUMNS="100")
        complete_env = dict(env, _RLM_COMPLETE="complete_bash", COMP_WORDS="rlm ask --max", COMP_CWORD="2")
        cases = {
            "baseline": ([sys.executable, "-c", "import typer, rich"], env),
            "rlm_help": ([str(rlm), "--help"], env),
            "rlm_ask_help": ([str(rlm), "ask", "--help"], env),
            "rlm_complete": ([str(rlm)], complete_env),
        }
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for cmd, cenv in cases.values():
            _time(cmd, cenv)  # warm the OS file cache and .pyc files
        for _ in range(reps):
            for name, (cmd, cenv) in cases.items():
                samples[name].append(_time(cmd, cenv))
    med = {name: statistics.median(values) for name, values in samples.items()}
    return {"reps": reps, "median_s": med,
            "ratio_help": med["rlm_help"] / med["baseline"],
            "ratio_ask_help": med["rlm_ask_help"] / med["baseline"],
            "ratio_complete": med["rlm_complete"] / med["baseline"],
            "target_ratio": TARGET_RATIO}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--rlm", type=Path, default=None, help="the rlm executable (default: next to python)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--max-ratio", type=float, default=None, help="exit 1 if rlm --help is slower than this")
    args = parser.parse_args(argv)
    import benchenv

    print(benchenv.as_installed(), file=sys.stderr)
    result = measure(args.reps, args.rlm)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        med = result["median_s"]
        print(f"median of {args.reps} runs (wall ms):")
        print(f"  python -c 'import typer, rich'  {med['baseline'] * 1000:7.1f}")
        print(f"  rlm --help                       {med['rlm_help'] * 1000:7.1f}   ratio {result['ratio_help']:.2f}")
        print(f"  rlm ask --help                   {med['rlm_ask_help'] * 1000:7.1f}   "
              f"ratio {result['ratio_ask_help']:.2f}")
        print(f"  one Tab completion (bash)        {med['rlm_complete'] * 1000:7.1f}   "
              f"ratio {result['ratio_complete']:.2f}")
        verdict = "meets" if result["ratio_help"] <= TARGET_RATIO else "misses"
        print(f"rlm --help {verdict} the target ratio of {TARGET_RATIO}")
    return 1 if args.max_ratio is not None and result["ratio_help"] > args.max_ratio else 0


if __name__ == "__main__":
    sys.exit(main())
