"""Does the live view slow a run? 500 zero-latency sub-calls, live tree against --quiet, one process.

Drives the real engine (:func:`rlm_cli.run.engine.run`: REPL subprocess, litellm client, budgets,
trajectory recorder) against ``tests/scripted_server.py``'s :class:`ScriptedServer` started in
process, with zero-latency replies. The root LM's first reply fans out ``--calls`` sub-calls with
``llm_query_batched``; its second answers. Each round runs the same script twice: once with only the
trajectory recorder on the bus (what ``rlm ask --quiet`` attaches) and once with the live tree too
(a :class:`~rlm_cli.view.live.LiveView` on a recording Rich console forced into terminal mode,
redrawing at 8 frames a second, with streamed root replies as ``rlm ask`` would ask for). After a
warm-up run, rounds alternate the order; the ratio reported is median(live) / median(quiet).

    .venv/bin/python bench/bench_view.py [--calls 500] [--rounds 5]

Target: ratio <= 1.1. Exit status 1 when the target is missed. Wall times are noisy on a busy machine,
so the benchmark also reports the CPU time of this process (live / quiet) and the share of the run
the live view itself was busy (handling events plus drawing frames): an upper bound on what it can
cost a run, independent of the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # scripted_server
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from scripted_server import ScriptedServer  # noqa: E402

from rlm_cli.context import ContextWriter  # noqa: E402
from rlm_cli.lm.client import LMClient  # noqa: E402
from rlm_cli.run import config, engine  # noqa: E402
from rlm_cli.run.budget import Limits  # noqa: E402
from rlm_cli.run.events import EventBus  # noqa: E402
from rlm_cli.trajectory.recorder import TrajectoryRecorder  # noqa: E402
from rlm_cli.view.live import LiveView  # noqa: E402

FANOUT = """Fan out.
```repl
answers = llm_query_batched([f"Summarize part {{i}}" for i in range({n})])
print(len(answers), sum(a == "ok" for a in answers))
```"""


class TimedLiveView(LiveView):
    """The live view, timing the work it does: handling events (engine thread) and drawing frames
    (Rich's refresh thread, which holds the GIL while it draws)."""

    busy_events = 0.0
    busy_frames = 0.0

    def __call__(self, ev) -> None:
        t0 = time.perf_counter()
        super().__call__(ev)
        self.busy_events += time.perf_counter() - t0

    def __rich_console__(self, console, options):
        t0 = time.perf_counter()
        segments = list(super().__rich_console__(console, options))
        self.busy_frames += time.perf_counter() - t0
        return segments


def one_run(server: ScriptedServer, workdir: Path, calls: int, live: bool) -> tuple[float, dict]:
    """One engine run; returns (wall seconds, facts about it)."""
    server.script("root", FANOUT.format(n=calls), "FINAL(done)")
    workdir.mkdir(parents=True, exist_ok=True)
    writer = ContextWriter(workdir / "context.txt")
    writer.add("doc.txt", "lorem ipsum dolor sit amet\n" * 2000)
    loaded = writer.finish()
    limits = Limits(max_sub_calls=calls + 10, concurrency=16, max_iterations=5)
    cfg = config.RunConfig(question="bench", root_model="openai/root", sub_model="openai/sub", limits=limits,
                           stream_root=live, sub_chars=32_000)
    recorder = TrajectoryRecorder(None)
    bus = EventBus([recorder])
    view = None
    if live:
        console = Console(file=io.StringIO(), force_terminal=True, width=120, height=40, record=True)
        view = TimedLiveView(console, refresh_per_second=8)
        bus.add(view)
    lm = LMClient(api_base=server.base_url, api_key="sk-test", timeout_s=60)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        async def run_and_close():
            async with lm:
                return await engine.run(cfg, loaded, lm, bus, workdir / "repl")

        result = asyncio.run(run_and_close())
    finally:
        if view is not None:
            view.close()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    facts = {"status": result.status, "sub_calls": recorder.doc["usage"].get("sub_calls"), "cpu_s": round(cpu, 3)}
    if view is not None:
        facts["frames"] = view.renders
        facts["view_busy_s"] = round(view.busy_events + view.busy_frames, 3)
        facts["view_busy_pct"] = round(100 * (view.busy_events + view.busy_frames) / wall, 1)
        facts["summary_ok"] = "answered" in view.console.export_text()
    return wall, facts


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print each run and the ratio."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    import benchenv

    print(benchenv.as_installed())
    server = ScriptedServer().start()
    server.default("sub", "ok")
    times: dict[bool, list[float]] = {False: [], True: []}
    cpus: dict[bool, list[float]] = {False: [], True: []}
    busy: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="rlm-bench-") as tmp:
            n = 0

            def run(live: bool, record: bool = True) -> None:
                nonlocal n
                n += 1
                wall, facts = one_run(server, Path(tmp) / f"run{n}", args.calls, live)
                if facts["status"] != "answered" or facts["sub_calls"] != args.calls:
                    raise SystemExit(f"bench run went wrong: {facts}")
                print(f"{'live ' if live else 'quiet'} {wall:7.3f}s  {facts}" + ("" if record else "  (warm-up)"))
                if record:
                    times[live].append(wall)
                    cpus[live].append(facts["cpu_s"])
                    if live:
                        busy.append(facts["view_busy_pct"])

            run(False, record=False)
            for r in range(args.rounds):
                for live in ((False, True) if r % 2 == 0 else (True, False)):
                    run(live)
    finally:
        server.stop()
    quiet, live = statistics.median(times[False]), statistics.median(times[True])
    ratio = live / quiet
    cpu_ratio = statistics.median(cpus[True]) / statistics.median(cpus[False])
    paired = statistics.median(lv / qt for lv, qt in zip(times[True], times[False], strict=True))
    print(f"{args.calls} zero-latency sub-calls: quiet {quiet:.3f}s, live {live:.3f}s (medians of "
          f"{args.rounds}); ratio {ratio:.3f} (target <= 1.1); median of per-round ratios {paired:.3f}; "
          f"this process's CPU time ratio {cpu_ratio:.3f}; "
          f"the live view was busy {statistics.median(busy):.1f}% of the run's wall time (median)")
    return 0 if ratio <= 1.1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
