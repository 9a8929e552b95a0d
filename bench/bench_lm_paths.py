"""The request paths for ``openai/`` models, side by side: what each costs to import and per call.

What it measures
    Three ways ``rlm`` can call an OpenAI-compatible server, each in a fresh process against
    ``tests/scripted_server.py`` on loopback (replies at once, so the client's own work is measured):

    * ``sdk-httpx2``  the OpenAI SDK (``LMClient`` -> ``backend_openai``) on its default HTTP client
                      (httpx2 in openai 3.x);
    * ``sdk-aiohttp`` the same on the SDK's aiohttp transport (the ``openai[aiohttp]`` extra);
    * ``litellm``     ``LMClient`` with ``backend="litellm"`` (``litellm.acompletion``, which calls the
                      same SDK).

    Per path: the import (first call's module loading: wall, CPU, RSS growth), then ``--calls``
    non-streamed calls (default 640) at 16 in flight through ``LMClient.complete``: CPU per call
    (user + sys of the client process / calls) and wall. Interleaved over ``--reps`` rounds (default
    3), medians printed. CPU per call is what serialises on the event loop in a fan-out
    (``bench_fanout.py``); the import is paid on every ``rlm ask`` (in the prewarm thread).

Targets
    None of its own: the numbers decide which paths rlm keeps (README "Local models", CHANGELOG).
Run: ``.venv/bin/python bench/bench_lm_paths.py``. Prints numbers, never asserts timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PATHS = ("sdk-httpx2", "sdk-aiohttp", "litellm")
CONCURRENCY = 16


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def child(path: str, base_url: str, calls: int) -> None:
    """Import the path, make ``calls`` calls; print one JSON line of numbers."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from rlm_cli.lm import backend_openai
    from rlm_cli.lm.client import LMClient

    if path == "sdk-httpx2":
        backend_openai._http_client = lambda openai: None  # the SDK's default client
    rss0, cpu0, t0 = _rss_mb(), _cpu(), time.perf_counter()
    if path == "litellm":
        from rlm_cli.lm.backend_litellm import load_litellm

        load_litellm()
    else:
        import openai

        backend_openai._http_client(openai)
    imp = {"import_wall_s": time.perf_counter() - t0, "import_cpu_s": _cpu() - cpu0, "import_mb": _rss_mb() - rss0}

    async def run() -> tuple[float, float]:
        lm = LMClient(api_base=base_url, api_key="sk-test", concurrency=CONCURRENCY,
                      backend="litellm" if path == "litellm" else "auto")
        async with lm:
            msgs = [{"role": "user", "content": "warm up"}]
            await lm.complete("openai/sub", msgs)  # connection set-up, lazy imports of the first call
            c0, w0 = _cpu(), time.perf_counter()
            await asyncio.gather(*(lm.complete("openai/sub", [{"role": "user", "content": f"n {i}"}])
                                   for i in range(calls)))
            return _cpu() - c0, time.perf_counter() - w0

    cpu, wall = asyncio.run(run())
    print(json.dumps({**imp, "cpu_per_call_ms": cpu / calls * 1000, "wall_s": wall, "rss_mb": _rss_mb()}))


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--calls", type=int, default=640)
    args = parser.parse_args()
    import benchenv

    print(benchenv.as_installed())
    sys.path.insert(0, str(ROOT / "tests"))
    import scripted_server

    scripted_server._Handler.disable_nagle_algorithm = True
    import importlib.metadata as md

    print(f"openai {md.version('openai')}, litellm {md.version('litellm')}, aiohttp {md.version('aiohttp')}; "
          f"{args.calls} calls at {CONCURRENCY} in flight per run; load average {os.getloadavg()[0]:.1f} at start")
    results: dict[str, list[dict]] = {p: [] for p in PATHS}
    with scripted_server.ScriptedServer() as server:
        server.default("sub", "ok")
        for _ in range(args.reps):
            for path in PATHS:
                proc = subprocess.run([sys.executable, __file__, "--child", path, server.base_url, str(args.calls)],
                                      capture_output=True, text=True, timeout=600)
                try:
                    results[path].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                except (ValueError, IndexError):
                    print(f"  {path} failed: {proc.stderr[-800:]}")
    print(f"\n{'path':12} {'import wall s':>13} {'import cpu s':>12} {'import MB':>9} {'cpu/call ms':>11} "
          f"{'calls wall s':>12} {'RSS MB':>7}")
    for path, rs in results.items():
        if not rs:
            continue
        m = lambda k, rs=rs: statistics.median(r[k] for r in rs)  # noqa: E731
        print(f"{path:12} {m('import_wall_s'):13.2f} {m('import_cpu_s'):12.2f} {m('import_mb'):9.1f} "
              f"{m('cpu_per_call_ms'):11.2f} {m('wall_s'):12.2f} {m('rss_mb'):7.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
