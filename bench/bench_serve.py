"""Benchmark: what ``rlm serve`` adds per request, and its throughput at a fixed scripted LM latency.

Starts the scripted OpenAI-compatible server (tests/scripted_server.py; every root reply takes
``--lm-latency`` seconds, default 0.2, and is one ```repl``` block calling FINAL, so a request is one
root LM call plus one REPL step) and one ``rlm serve`` on a free loopback port pointed at it, then:
  - latency: ``--requests`` sequential requests (after one warm-up), each timed at the client (the
    official ``openai`` client); "added" is that time minus the scripted LM latency: the server, the
    run's set-up (REPL start, load of the conversation file), the engine and the trajectory write;
  - for comparison, the same question through ``rlm ask`` (a fresh process per run: interpreter,
    imports and the same run), minus the LM latency;
  - throughput: ``--clients`` concurrent clients sending ``--requests`` requests each, the server at
    ``--max-running`` running RLMs: requests per minute; beside it, the same requests timed inside the
    server (its access log on stderr, handler start to answer).
The scripted LM and each throughput client run in a process of their own, as separate users and a
remote LM would (their CPU no longer queues behind one interpreter's GIL); ``--in-process`` runs them
as threads of this interpreter, as this benchmark did before 2026-12-08, for comparison.
With ``--profile``, the same throughput run is made against a server in this process instead: its
event-loop thread runs under cProfile, and the time of each phase of a request (load, REPL start,
LM call, step, REPL close, the run's clean-up) is printed, then the calls that took the loop's time
(``--profile-out PATH`` also saves the raw stats for ``pstats``).
Run: ``.venv/bin/python bench/bench_serve.py [--lm-latency 0.2] [--requests 10] [--clients 4] [--profile]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

ROOT_REPLY = '```repl\nFINAL("answer: " + str(len(context)))\n```'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"rlm serve exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url + "/models", timeout=2)
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("rlm serve did not start")


def run_clients(url: str, clients: int, requests: int, messages: list[dict],
                processes: bool = False) -> tuple[float, list[int]]:
    """``clients`` clients, each an ``openai`` client sending ``requests`` chat requests to ``url`` one
    after another: (wall seconds, one entry per answered request). Threads of this interpreter, or
    with ``processes`` one process each (spawned, SDK imported and client made before the clock
    starts), as separate users would be: then the clients' own CPU does not queue behind this
    interpreter's other threads for its GIL."""
    if processes:
        return _run_client_processes(url, clients, requests, messages)
    import openai

    done: list[int] = []

    def worker() -> None:
        c = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        for _ in range(requests):
            c.chat.completions.create(model="rlm", messages=messages)
            done.append(1)

    t = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.monotonic() - t, done


def _client_process(url: str, requests: int, messages: list[dict], barrier, results) -> None:
    """One client process of :func:`run_clients`: ready, wait for the start, send ``requests``
    requests, report (answered, CLOCK_MONOTONIC seconds at the last answer)."""
    import openai

    c = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    barrier.wait()
    n = 0
    try:
        for _ in range(requests):
            c.chat.completions.create(model="rlm", messages=messages)
            n += 1
    finally:
        results.put((n, time.monotonic()))


def _run_client_processes(url: str, clients: int, requests: int, messages: list[dict]) -> tuple[float, list[int]]:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(clients + 1), ctx.Queue()
    procs = [ctx.Process(target=_client_process, args=(url, requests, messages, barrier, results))
             for _ in range(clients)]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)
    t = time.monotonic()  # CLOCK_MONOTONIC: the same clock in every process of this machine
    ends = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return max(end for _, end in ends) - t, [1] * sum(n for n, _ in ends)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lm-latency", type=float, default=0.2, help="seconds per scripted LM reply")
    ap.add_argument("--requests", type=int, default=10, help="sequential requests; also per client")
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients for the throughput run")
    ap.add_argument("--in-process", action="store_true", help="run the throughput clients as threads and the "
                    "scripted LM in this interpreter (how this benchmark ran before 2026-12-08) instead of "
                    "a process each")
    ap.add_argument("--profile", action="store_true", help="profile the throughput run in this process")
    ap.add_argument("--profile-out", metavar="PATH", help="with --profile: also save the raw cProfile stats")
    ap.add_argument("--cpu", action="store_true", help="with --profile: profile the loop thread's CPU time "
                    "(time.thread_time) instead of wall time: steady under load, blind to waits in system calls")
    args = ap.parse_args()
    if args.profile:
        from bench_serve_profile import profile

        return profile(args)

    import benchenv
    import openai

    print(benchenv.as_installed())
    rlm = str(Path(sys.executable).parent / "rlm")
    with tempfile.TemporaryDirectory() as tmp, scripted_lm(args.lm_latency, args.in_process, Path(tmp)) as lm_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RLM_")}
        env.update({"RLM_HOME": str(Path(tmp) / "home"), "RLM_MODEL": "openai/root", "RLM_SUB_MODEL": "openai/sub",
                    "RLM_API_BASE": lm_url, "OPENAI_API_KEY": "sk-bench", "NO_COLOR": "1",
                    "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
        doc = Path(tmp) / "doc.txt"
        doc.write_text("some text to count\n" * 1000)
        port = free_port()
        url = f"http://127.0.0.1:{port}/v1"
        access_log = Path(tmp) / "serve-stderr.log"  # its access lines time each request inside the server
        proc = subprocess.Popen([rlm, "serve", str(doc), "--port", str(port), "--max-running", str(args.clients),
                                 "--max-queue", str(args.clients * args.requests)], env=env,
                                stdout=subprocess.DEVNULL, stderr=access_log.open("wb"))
        try:
            wait_up(url, proc)
            client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
            messages = [{"role": "user", "content": "how long is the context?"}]
            client.chat.completions.create(model="rlm", messages=messages)  # warm-up
            times = []
            for _ in range(args.requests):
                t = time.monotonic()
                client.chat.completions.create(model="rlm", messages=messages)
                times.append(time.monotonic() - t)
            ask = []
            for _ in range(min(3, args.requests)):
                t = time.monotonic()
                subprocess.run([rlm, "ask", str(doc), "how long is the context?", "-q"], env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                ask.append(time.monotonic() - t)
            wall, done = run_clients(url, args.clients, args.requests, messages, processes=not args.in_process)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        inside = server_times(access_log.read_bytes(), len(done))
    lat = args.lm_latency
    med = statistics.median(times)
    print(f"scripted LM latency: {lat:.3f} s per call; one root call per request")
    print(f"serve, sequential ({len(times)} requests): median {med:.3f} s, min {min(times):.3f} s, "
          f"max {max(times):.3f} s; added over the LM: median {med - lat:.3f} s")
    print(f"rlm ask, fresh process ({len(ask)} runs): median {statistics.median(ask):.3f} s; "
          f"added over the LM: {statistics.median(ask) - lat:.3f} s")
    print(f"serve, {args.clients} concurrent clients ({'threads' if args.in_process else 'processes'}) x {args.requests} requests: {len(done)} in {wall:.2f} s = "
          f"{60 * len(done) / wall:.0f} requests/minute (ideal at this LM latency with {args.clients} running: "
          f"{60 * args.clients / lat:.0f})")
    if inside:
        per = statistics.median(inside)
        print(f"  inside the server (its access log, same {len(inside)} requests): median {per:.3f} s per request "
              f"(added over the LM {per - lat:.3f} s), i.e. {60 * args.clients / per:.0f} requests/minute at "
              f"{args.clients} running; the rest of each request's {args.clients * wall / len(done):.3f} s at the "
              "client is outside the handler: the clients, HTTP parsing before the handler, loopback"
              + (" (the clients are threads of this benchmark's interpreter, which also runs the scripted LM)"
                 if args.in_process else ""))


@contextlib.contextmanager
def scripted_lm(latency_s: float, in_process: bool, tmp: Path):
    """The scripted LM (every root reply :data:`ROOT_REPLY` after ``latency_s`` seconds), in this
    interpreter or in its own process (``tests/scripted_server.py --script``): yields its base URL."""
    if in_process:
        from scripted_server import Reply, ScriptedServer

        with ScriptedServer() as server:
            server.default("root", Reply(ROOT_REPLY, delay_s=latency_s))
            yield server.base_url
        return
    script = tmp / "lm-script.json"
    script.write_text(json.dumps({"defaults": {"root": ROOT_REPLY}, "delay_s": latency_s}))
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "scripted_server.py"), "--script", str(script)],
                            stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def server_times(log: bytes, last: int) -> list[float]:
    """The durations (seconds) of the last ``last`` chat completions in ``rlm serve``'s access log
    (``rlm serve: POST /v1/chat/completions 200 0.215s run=...`` on its stderr)."""
    import re

    found = [float(m.group(1)) for m in re.finditer(rb"POST /v1/chat/completions 200 ([0-9.]+)s", log)]
    return found[-last:] if last else []


if __name__ == "__main__":
    main()
