"""Fan-out benchmark: 64 sub-calls of 250 ms at ``--concurrency 16`` through the real ``rlm ask``.

What it measures
    One ``rlm ask`` run against the scripted OpenAI-compatible server (``tests/scripted_server.py``,
    on loopback, in this process). The root LM's first reply is a ``repl`` block calling
    ``llm_query_batched`` with 64 prompts; every sub-call is answered after 250 ms; the second root
    reply is ``FINAL(...)``. The wall time of the batch step is read from the trajectory
    (``--log PATH``, ``iterations[0].steps[0].duration_s``) and compared with the ideal
    64 / 16 x 250 ms = 1.0 s. The server records the most requests it ever had in flight at once.

    Also printed, to tell the harness from the machine: the server-side span of the 64 sub-calls,
    how long a slot freed by an answer stayed empty before rlm sent the next request ("slot idle"),
    and a floor: the same 64 x 250 ms at 16 issued right after by a minimal stdlib asyncio HTTP
    client in a fresh process (what this machine, under its current load, allows at best).

Targets
    batch step / ideal <= 1.15, and server-side max in flight <= 16 (the ``--concurrency`` limit).

It runs 3 times and prints each run and the median. It prints numbers and never asserts timings.
Run: ``.venv/bin/python bench/bench_fanout.py`` (``--runs N``, ``--server-as-is``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import scripted_server  # noqa: E402
from scripted_server import Reply, ScriptedServer  # noqa: E402

RLM = str(Path(sys.executable).parent / "rlm")
N_CALLS = 64
CONCURRENCY = 16
LATENCY_S = 0.25
RUNS = 3
IDEAL_S = (N_CALLS / CONCURRENCY) * LATENCY_S
TARGET_RATIO = 1.15

ROOT_CODE = (
    "```repl\n"
    f"prompts = ['Reply with the number ' + str(i) for i in range({N_CALLS})]\n"
    "answers = llm_query_batched(prompts)\n"
    "print(len(answers), answers[:3], answers[-1])\n"
    "```"
)


def disable_nagle() -> bool:
    """Make the scripted server answer with TCP_NODELAY; returns whether the bench had to set it.

    ``http.server`` writes headers and body in separate ``send()`` calls; with Nagle's algorithm on,
    the body of every answer on a kept-alive connection waits for the client's delayed ACK (~40 ms
    on Linux), which would be charged to the harness under test.
    """
    handler = scripted_server._Handler
    if getattr(handler, "disable_nagle_algorithm", False):
        return False
    handler.disable_nagle_algorithm = True
    return True


def sub_reply(body: dict) -> Reply:
    prompt = body["messages"][-1]["content"]
    return Reply(text="n=" + prompt.rsplit(" ", 1)[-1], delay_s=LATENCY_S)


def slot_idle_ms(requests: list) -> list[float]:
    """How long each slot freed by an answer stayed empty before the client sent the next request.

    The i-th answer out frees the slot that the (CONCURRENCY + i)-th request in takes.
    """
    ends = sorted(r.t_end for r in requests if r.t_end is not None)
    starts = sorted(r.t_start for r in requests)
    return [(starts[CONCURRENCY + i] - ends[i]) * 1000 for i in range(min(len(ends), len(starts) - CONCURRENCY))]


# -- floor: a minimal client -------------------------------------------------------------------
async def _floor_client(base_url: str) -> float:
    """64 chat requests, 16 kept-alive connections, stdlib only; returns the elapsed seconds."""
    url = urlsplit(base_url)
    path = url.path.rstrip("/") + "/chat/completions"
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(N_CALLS):
        queue.put_nowait(i)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                body = json.dumps({"model": "sub", "messages": [
                    {"role": "user", "content": f"Reply with the number {i}"}]}).encode()
                writer.write(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (path.encode(), url.netloc.encode(), len(body), body))
                await writer.drain()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - t0


def floor_once(server: ScriptedServer) -> float:
    """Run the minimal client in a fresh process against ``server``; its elapsed seconds."""
    proc = subprocess.run([sys.executable, __file__, "--floor", server.base_url], capture_output=True,
                          text=True, timeout=60)
    try:
        return float(proc.stdout.strip())
    except ValueError:
        return float("nan")


# -- one rlm ask run ---------------------------------------------------------------------------
def run_once(workdir: Path, k: int) -> dict:
    src = workdir / "input.txt"
    src.write_text("a small input; the benchmark is about the sub-calls\n", encoding="utf-8")
    log = workdir / f"trajectory-{k}.json"
    with ScriptedServer() as server:
        server.script("root", ROOT_CODE, "All sub-calls answered.\nFINAL(done)")
        server.default("sub", sub_reply)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RLM_")}
        env.update({"OPENAI_API_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "NO_COLOR": "1",
                    "RLM_HOME": str(workdir / "home")})
        cmd = [RLM, "ask", str(src), "Fan out.", "-m", "openai/root", "--sub-model", "openai/sub",
               "--api-base", server.base_url, "--concurrency", str(CONCURRENCY), "--log", str(log), "-q"]
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180,
                              stdin=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        subs = server.requests_for("sub")
        done = [r for r in subs if r.t_end is not None]
        out = {
            "rc": proc.returncode, "answer": proc.stdout.strip(), "wall_s": wall, "load": load,
            "sub_requests": len(subs), "sub_ok": sum(1 for r in subs if r.status == 200),
            "max_in_flight": server.max_in_flight,
            # first sub-request in to last answer out, as the server saw them
            "server_span_s": (max(r.t_end for r in done) - min(r.t_start for r in done)) if done else float("nan"),
            "idle_ms": slot_idle_ms(subs), "stderr": proc.stderr.strip()[-2000:],
        }
        out["floor_s"] = floor_once(server)
    try:
        doc = json.loads(log.read_text(encoding="utf-8"))
        out["step_s"] = float(doc["iterations"][0]["steps"][0]["duration_s"])
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        out["step_s"] = float("nan")
        out["error"] = f"could not read the trajectory {log}: {exc!r}"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--server-as-is", action="store_true",
                        help="do not set TCP_NODELAY on the scripted server (each answer then waits ~40 ms "
                             "for the client's delayed ACK)")
    parser.add_argument("--floor", metavar="BASE_URL", help=argparse.SUPPRESS)  # internal: the floor client
    args = parser.parse_args(argv)
    if args.floor:
        print(f"{asyncio.run(_floor_client(args.floor)):.4f}")
        return 0

    note = "scripted server used as shipped"
    if not args.server_as_is and disable_nagle():
        note = ("the bench set TCP_NODELAY on the scripted server (as shipped, every answer on a kept-alive "
                "connection waits ~40 ms: Nagle + delayed ACK); --server-as-is measures without")
    print(f"fan-out: {N_CALLS} sub-calls x {LATENCY_S * 1000:.0f} ms at --concurrency {CONCURRENCY}; "
          f"ideal batch step {IDEAL_S:.2f} s; targets: ratio <= {TARGET_RATIO}, max in flight <= {CONCURRENCY}")
    print(f"rlm: {RLM}")
    print(f"note: {note}")
    import benchenv

    print(benchenv.as_installed())
    print(f"machine: {os.cpu_count()} CPUs; 1-min load average is printed per run (other work on the machine "
          "slows every number)")
    results = []
    with tempfile.TemporaryDirectory(prefix="rlm-bench-fanout-") as tmp:
        for k in range(1, args.runs + 1):
            r = run_once(Path(tmp), k)
            results.append(r)
            idle = r["idle_ms"]
            print(f"run {k}: batch step {r['step_s']:.3f} s  ratio {r['step_s'] / IDEAL_S:.3f}  "
                  f"max_in_flight {r['max_in_flight']}  | server span {r['server_span_s']:.3f} s  "
                  f"slot idle median {statistics.median(idle) if idle else float('nan'):.0f} ms "
                  f"max {max(idle) if idle else float('nan'):.0f} ms  floor client {r['floor_s']:.3f} s  "
                  f"| sub requests {r['sub_ok']}/{r['sub_requests']}  whole rlm ask {r['wall_s']:.2f} s  "
                  f"exit {r['rc']} answer {r['answer']!r}  load {r['load']:.1f}")
            if r["rc"] != 0 or "error" in r or r["sub_ok"] != N_CALLS:
                print(f"  WARNING: run {k} did not go as scripted: {r.get('error', '')}\n  stderr: {r['stderr']}")
    med = statistics.median(r["step_s"] for r in results)
    print(f"median: batch step {med:.3f} s  ratio {med / IDEAL_S:.3f} (target <= {TARGET_RATIO})  "
          f"max_in_flight {max(r['max_in_flight'] for r in results)} (target <= {CONCURRENCY})  "
          f"floor client {statistics.median(r['floor_s'] for r in results):.3f} s  "
          f"whole rlm ask {statistics.median(r['wall_s'] for r in results):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
