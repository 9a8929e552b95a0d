"""Benchmark: ``rlm serve`` throughput of this checkout against another one, interleaved under the same load.

On a loaded machine two ``bench_serve.py`` runs minutes apart see different loads. This starts two
``rlm serve`` processes over the same SOURCE against the same scripted LM (``--lm-latency`` s per
reply): "new" runs this checkout, "base" runs the checkout at ``--base DIR`` (e.g. made with
``git archive REV | tar -x -C DIR``; it is put first on ``PYTHONPATH``). It then alternates rounds of
``--clients`` concurrent clients x ``--requests`` requests between them (``--rounds`` each, the order
flipped every round) and prints each round's requests per minute, each side's median and best, and
their ratios to the ideal (``60 x clients / lm_latency``).
Run: ``.venv/bin/python bench/bench_serve_ab.py --base /tmp/base [--rounds 6] [--requests 5]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="directory of the other checkout (holds rlm_cli/)")
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
            if side == "base":
                env["PYTHONPATH"] = str(Path(args.base).resolve())
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
                    wall, done = run_clients(urls[side], args.clients, args.requests, messages)
                    rates[side].append(60 * len(done) / wall)
                print(f"round {r + 1}: base {rates['base'][-1]:.0f}, new {rates['new'][-1]:.0f} requests/minute",
                      flush=True)
        finally:
            for proc in procs.values():
                proc.send_signal(signal.SIGTERM)
            for proc in procs.values():
                proc.wait(timeout=60)
    for side in ("base", "new"):
        med, best = statistics.median(rates[side]), max(rates[side])
        print(f"{side}: median {med:.0f} ({med / ideal:.2f} of the ideal {ideal:.0f}), best {best:.0f} "
              f"({best / ideal:.2f})")
    print(f"new / base: median {statistics.median(rates['new']) / statistics.median(rates['base']):.2f}")


if __name__ == "__main__":
    main()
