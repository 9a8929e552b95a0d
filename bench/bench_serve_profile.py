"""``bench_serve.py --profile``: the throughput run against an ``rlm serve`` in this process, its event
loop under cProfile and each phase of a request timed (see bench_serve.py)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import cProfile
import functools
import io
import os
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path

PHASES = collections.defaultdict(list)


def _timed(owner, name: str, label: str) -> None:
    fn = getattr(owner, name)

    if asyncio.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return await fn(*a, **k)
            finally:
                PHASES[label].append(time.perf_counter() - t)
    else:
        @functools.wraps(fn)
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                PHASES[label].append(time.perf_counter() - t)
    setattr(owner, name, wrapper)


def _instrument() -> None:
    from rlm_cli.lm.client import LMClient
    from rlm_cli.repl.process import ReplProcess
    from rlm_cli.run import service
    from rlm_cli.serve.cache import SourceCache
    from rlm_cli.trajectory.recorder import TrajectoryRecorder

    _timed(service, "run_question", "request: run_question (all)")
    _timed(service, "load_request", "load: run dir + context (worker thread)")
    _timed(SourceCache, "_current", "  of which: fingerprint, reload if changed")
    _timed(ReplProcess, "start", "REPL start (warm: ahead; cold: during the LM call)")
    _timed(LMClient, "complete", "root LM call")
    _timed(ReplProcess, "execute", "REPL step")
    _timed(ReplProcess, "close", "REPL close (warm: in the background)")
    _timed(service.LoadedRun, "close", "run dir removal (worker thread)")
    _timed(TrajectoryRecorder, "write", "trajectory snapshot (on the loop; written in a thread)")


def profile(args) -> None:
    import benchenv
    import openai
    from bench_serve import ROOT_REPLY, free_port, run_clients, wait_up
    from scripted_server import Reply, ScriptedServer

    print(benchenv.as_installed())
    with tempfile.TemporaryDirectory() as tmp, ScriptedServer() as server:
        server.default("root", Reply(ROOT_REPLY, delay_s=args.lm_latency))
        for k in [k for k in os.environ if k.startswith("RLM_")]:
            del os.environ[k]
        os.environ.update({"RLM_HOME": str(Path(tmp) / "home"), "RLM_MODEL": "openai/root",
                           "RLM_SUB_MODEL": "openai/sub", "RLM_API_BASE": server.base_url,
                           "OPENAI_API_KEY": "sk-bench", "NO_COLOR": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
        doc = Path(tmp) / "doc.txt"
        doc.write_text("some text to count\n" * 1000)
        os.utime(doc, (time.time() - 60, time.time() - 60))
        cfg = _config(doc, free_port(), args)
        _instrument()
        from rlm_cli.serve.app import serve_until_stopped

        prof = cProfile.Profile(time.thread_time) if args.cpu else cProfile.Profile()
        cpu: list[float] = []
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()

        def run_server() -> None:
            asyncio.set_event_loop(loop)
            prof.enable()
            try:
                loop.run_until_complete(serve_until_stopped(cfg, stop))
            finally:
                prof.disable()

        thread = threading.Thread(target=run_server)
        thread.start()
        url = f"http://127.0.0.1:{cfg.port}/v1"
        try:
            wait_up(url, _Alive(thread))
            messages = [{"role": "user", "content": "how long is the context?"}]
            openai.OpenAI(base_url=url, api_key="unused", max_retries=0).chat.completions.create(
                model="rlm", messages=messages)  # warm-up
            PHASES.clear()
            clock = time.pthread_getcpuclockid(thread.ident)
            cpu.append(time.clock_gettime(clock))
            with contextlib.redirect_stderr(io.StringIO()):  # the access log
                wall, done = run_clients(url, args.clients, args.requests, messages)
            cpu.append(time.clock_gettime(clock))
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=60)
    print(f"in process, {args.clients} clients x {args.requests} requests: {len(done)} in {wall:.2f} s = "
          f"{60 * len(done) / wall:.0f} requests/minute; phases (mean per call, ms):")
    for label, values in PHASES.items():
        print(f"  {label:45s} {1000 * sum(values) / len(values):7.1f}  x{len(values) / max(1, len(done)):.1f}")
    print(f"event-loop thread CPU per request (profiler overhead included): "
          f"{1000 * (cpu[1] - cpu[0]) / max(1, len(done)):.1f} ms")
    if args.profile_out:
        prof.dump_stats(args.profile_out)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
    print(f"event-loop thread, by own {'CPU' if args.cpu else 'wall'} time (the warm-up included):")
    print("\n".join(out.getvalue().splitlines()[6:]))


class _Alive:
    """What wait_up polls: a thread as a process (``poll()`` None while it runs)."""

    def __init__(self, thread: threading.Thread) -> None:
        self.thread, self.returncode = thread, None

    def poll(self):
        return None if self.thread.is_alive() else 1


def _config(doc: Path, port: int, args):
    from rlm_cli.loader.options import LoadOptions
    from rlm_cli.serve.config import ServeConfig, model_names
    from rlm_cli.settings.resolve import resolve

    settings = resolve({}, probe=False)
    load = LoadOptions()
    load.allow_remote, load.progress = False, False
    return ServeConfig(sources=[str(doc)], load_options=load, settings=settings, limits=settings.limits(),
                       port=port, max_running=args.clients, max_queue=args.clients * args.requests,
                       model_names=model_names(settings.model, dict(settings.aliases)))


if __name__ == "__main__":
    sys.exit("run bench_serve.py --profile")
