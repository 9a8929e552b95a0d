"""Benchmark: ``rlm serve`` throughput of this checkout against another one, interleaved under the same load.

On a loaded machine two ``bench_serve.py`` runs minutes apart see different loads. This starts two
``rlm serve`` processes over the same SOURCE against the same scripted LM (``--lm-latency`` s per
reply): "new" runs this checkout, "base" runs the checkout at ``--base DIR`` (e.g. made with
``git archive REV | tar -x -C DIR``; it is put first on ``PYTHONPATH``). It then alternates rounds of
``--clients`` concurrent clients x ``--requests`` requests between them (``--rounds`` each, the order
flipped every round) and prints each round's requests per minute, each side's median and best, and
their ratios to the ideal (``60 x clients / lm_latency``), and each server's CPU per request: its
event-loop (main) thread's (``/proc/PID/task/PID/schedstat``: steadier than wall time under load,
though blind to the loop's waits in system calls, such as a fork waiting for the child's exec) and
the whole process's (all its threads; the REPL children not counted).
Run: ``.venv/bin/python bench/bench_serve_ab.py --base /tmp/base [--rounds 6] [--requests 5]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))


def idle_s(path: Path) -> float:
    """The server's event-loop idle seconds until now (see loopstats/sitecustomize.py)."""
    now, data = time.monotonic(), path.read_bytes()
    if len(data) != 16:
        return 0.0
    idle, since = struct.unpack("dd", data)
    return idle + (now - since if since else 0.0)


def cpu_s(pid: int) -> tuple[float, float, float]:
    """(main thread CPU seconds, whole process CPU seconds, main thread seconds runnable but waiting
    for a CPU) of ``pid`` (Linux /proc)."""
    with open(f"/proc/{pid}/task/{pid}/schedstat") as fh:
        loop, queued = (int(v) / 1e9 for v in fh.read().split()[:2])
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return loop, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), queued


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="directory of the other checkout (holds rlm_cli/)")
    ap.add_argument("--new", help="directory of the checkout measured as new (default: this one; a copy keeps "
                    "edits made while the benchmark runs out of the measurement)")
    ap.add_argument("--lm-latency", type=float, default=0.2)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--requests", type=int, default=5, help="per client per round")
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    from bench_serve import ROOT_REPLY, free_port, run_clients, wait_up
    from scripted_server import Reply, ScriptedServer

    rlm = str(Path(sys.executable).parent / "rlm")
    ideal = 60 * args.clients / args.lm_latency
    rates: dict[str, list[float]] = {"base": [], "new": []}
    cpu: dict[str, list[tuple[float, ...]]] = {"base": [], "new": []}  # per request, per round
    busy: dict[str, list[float]] = {"base": [], "new": []}  # the loop's busy wall seconds per request
    with tempfile.TemporaryDirectory() as tmp, ScriptedServer() as server:
        server.default("root", Reply(ROOT_REPLY, delay_s=args.lm_latency))
        doc = Path(tmp) / "doc.txt"
        doc.write_text("some text to count\n" * 1000)
        procs, urls = {}, {}
        for side in ("base", "new"):
            env = {k: v for k, v in os.environ.items() if not k.startswith("RLM_") and k != "PYTHONPATH"}
            env.update({"RLM_HOME": str(Path(tmp) / side), "RLM_MODEL": "openai/root", "RLM_SUB_MODEL": "openai/sub",
                        "RLM_API_BASE": server.base_url, "OPENAI_API_KEY": "sk-bench", "NO_COLOR": "1",
                        "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
            other = args.base if side == "base" else args.new
            env["PYTHONPATH"] = os.pathsep.join([*([str(Path(other).resolve())] if other else []),
                                                 str(HERE / "loopstats")])
            env["RLM_BENCH_LOOP_IDLE"] = str(Path(tmp) / f"{side}.idle")
            port = free_port()
            urls[side] = f"http://127.0.0.1:{port}/v1"
            procs[side] = subprocess.Popen(
                [rlm, "serve", str(doc), "--port", str(port), "--max-running", str(args.clients),
                 "--max-queue", str(args.clients * args.requests)], env=env, cwd=tmp,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            messages = [{"role": "user", "content": "how long is the context?"}]
            for side in ("base", "new"):
                wait_up(urls[side], procs[side])
                run_clients(urls[side], args.clients, 2, messages)  # warm-up
            for r in range(args.rounds):
                for side in (("base", "new") if r % 2 == 0 else ("new", "base")):
                    before, idle, t = cpu_s(procs[side].pid), idle_s(Path(tmp) / f"{side}.idle"), time.monotonic()
                    wall, done = run_clients(urls[side], args.clients, args.requests, messages)
                    after = cpu_s(procs[side].pid)
                    idle = idle_s(Path(tmp) / f"{side}.idle") - idle
                    busy[side].append((time.monotonic() - t - idle) / max(1, len(done)))
                    rates[side].append(60 * len(done) / wall)
                    cpu[side].append(tuple((b - a) / max(1, len(done)) for a, b in zip(before, after, strict=True)))
                print(f"round {r + 1}: base {rates['base'][-1]:.0f}, new {rates['new'][-1]:.0f} requests/minute; "
                      f"loop CPU per request base {1000 * cpu['base'][-1][0]:.1f} ms, "
                      f"new {1000 * cpu['new'][-1][0]:.1f} ms; loop busy per request base "
                      f"{1000 * busy['base'][-1]:.1f} ms, new {1000 * busy['new'][-1]:.1f} ms", flush=True)
        finally:
            for proc in procs.values():
                proc.send_signal(signal.SIGTERM)
            for proc in procs.values():
                proc.wait(timeout=60)
    for side in ("base", "new"):
        med, best = statistics.median(rates[side]), max(rates[side])
        loop = statistics.median(c[0] for c in cpu[side])
        whole = statistics.median(c[1] for c in cpu[side])
        queued = statistics.median(c[2] for c in cpu[side])
        print(f"{side}: median {med:.0f} ({med / ideal:.2f} of the ideal {ideal:.0f}), best {best:.0f} "
              f"({best / ideal:.2f}); per request (median of rounds): loop thread CPU {1000 * loop:.1f} ms, "
              f"process CPU {1000 * whole:.1f} ms, loop busy (wall) {1000 * statistics.median(busy[side]):.1f} ms, "
              f"loop thread runnable but waiting for a CPU {1000 * queued:.1f} ms")
    print(f"new / base: median {statistics.median(rates['new']) / statistics.median(rates['base']):.2f}, "
          f"loop CPU per request {statistics.median(c[0] for c in cpu['new']) / statistics.median(c[0] for c in cpu['base']):.2f}")


if __name__ == "__main__":
    main()
