"""Where the time and memory of one scripted ``rlm ask`` go, phase by phase.

What it measures
    The needle-in-a-haystack trajectory of ``bench_reference.py`` (2 root calls, 4 sub-calls of
    200 ms: 0.2 s of LM time on the critical path, plus the root calls' own few ms) over a 2 MB
    haystack (``--size 40MB`` for the other one), run as ``rlm ask ... -q --no-log`` against
    ``tests/scripted_server.py``. The command runs in a fresh process started as
    ``python bench_overhead.py --child -- ask ...``: that process times the import of
    ``rlm_cli.cli`` and wraps, without changing them, the functions that own each phase
    (``answer_question``, ``load_sources``, ``backend_openai.warm_up`` in the prewarm thread,
    ``ReplProcess.start``/``execute``/``close``, ``LMClient.complete``/``aclose``,
    ``run_until_signal``), records when the answer reaches stdout, when ``main`` returns and when
    the last atexit handler runs; the parent notes when it started the process and when it exited.
    Times are CLOCK_MONOTONIC (shared by both processes), printed in ms from the start.

    Phases printed (medians over ``--reps``, interleaved with nothing else):
      interpreter start      process start -> the child's first line (Python + site)
      import rlm_cli.cli     typer, the command modules
      parse + resolve        -> answer_question (Typer parsing, settings, prices)
      load                   load_sources (the haystack copied into the run directory)
      REPL start             ReplProcess.start: sandbox launcher, child interpreter, init, context
                             hand-off (the child's own figure for building ``context`` is printed too)
      SDK import (thread)    backend_openai.warm_up in the prewarm thread (overlaps load + REPL start)
      root call 1, step 1, root call 2, step 2 (4 sub-calls of 200 ms)
      REPL close, LM client close, loop close
      answer -> main returns  printing the ending
      main -> atexit done     interpreter shutdown, part 1 (atexit: thread pools joined)
      atexit -> exit          interpreter shutdown, part 2 (module teardown, GC), as the parent sees it
    and, beside it, the wall time of the same command run as the ``rlm`` console script.

    Memory: the peak RSS of each process of the tree (the CLI, the sandbox launcher(s), the REPL's
    init and the REPL), polled every 20 ms from /proc, named by their command lines. PID 1 of the
    REPL's namespace is one process seen twice: Python while it locks the sandbox down, then (where
    a pids cgroup or RLIMIT_NPROC holds the task limit) the shell init it execs into.

Targets
    None of its own: it explains ``bench_reference.py`` (rlm / rlms <= 0.9 wall, <= 1.0 tree RSS).
Run: ``.venv/bin/python bench/bench_overhead.py`` (``--reps N``, default 5; ``--size 40MB``).
Prints numbers, never asserts timings.
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
POLL_S = 0.02


# -- the child: runs `rlm` in process with timing wrappers ------------------------------------
def child_main(argv: list[str]) -> None:
    t_first = time.monotonic()
    out = open(os.environ["BENCH_EVENTS"], "a", buffering=1)

    def mark(name: str, t: float | None = None, **extra) -> None:
        out.write(json.dumps({"name": name, "t": time.monotonic() if t is None else t, **extra}) + "\n")

    import atexit

    atexit.register(lambda: mark("atexit_done"))  # registered first: runs last
    mark("child_start", t_first)
    t = time.monotonic()
    import rlm_cli.cli as cli

    mark("import_cli", t, end=time.monotonic())

    def timed(owner, attr: str, name: str, is_async: bool, extra=None):
        fn = getattr(owner, attr)
        if is_async:
            async def wrapper(*a, **kw):
                t0 = time.monotonic()
                try:
                    return await fn(*a, **kw)
                finally:
                    mark(name, t0, end=time.monotonic(), **(extra(a, kw) if extra else {}))
        else:
            def wrapper(*a, **kw):
                t0 = time.monotonic()
                try:
                    return fn(*a, **kw)
                finally:
                    mark(name, t0, end=time.monotonic(), **(extra(a, kw) if extra else {}))
        setattr(owner, attr, wrapper)

    import rlm_cli.loader as loader
    import rlm_cli.run.interrupts as interrupts
    import rlm_cli.run.service as service
    from rlm_cli.lm import backend_openai, client
    from rlm_cli.repl import process

    timed(service, "answer_question", "answer_question", False)
    timed(loader, "load_sources", "load", False)
    timed(backend_openai, "warm_up", "sdk_import", False)
    timed(interrupts, "run_until_signal", "event_loop", False)
    timed(process.ReplProcess, "start", "repl_start", True)
    timed(process.ReplProcess, "execute", "step", True)
    timed(process.ReplProcess, "close", "repl_close", True)
    timed(client.LMClient, "complete", "lm_call", True, lambda a, kw: {"role": kw.get("role", a[3] if len(a) > 3 else "?")})
    timed(client.LMClient, "aclose", "lm_close", True)
    orig_start = process.ReplProcess.start

    async def start_and_report(self, *a, **kw):
        await orig_start(self, *a, **kw)
        mark("repl_load", load_s=self.load_s, method=self.load_method)
    process.ReplProcess.start = start_and_report

    class Stdout:
        def __init__(self, inner):
            self.inner, self.seen = inner, False

        def write(self, s):
            if not self.seen and s:
                self.seen = True
                mark("answer_written")
            return self.inner.write(s)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    sys.stdout = Stdout(sys.stdout)
    try:
        import rlm_cli.commands.app as app_module
    except ImportError:
        app_module = None
    exit_now = getattr(app_module, "exit_now", None)
    if exit_now is not None:  # main() ends through exit_now (os._exit after the atexit handlers)
        def exit_marked(code):
            mark("main_returned")
            exit_now(code)
        app_module.exit_now = exit_marked
    sys.argv = ["rlm", *argv]
    try:
        cli.main()
    except SystemExit:
        mark("main_returned")
        raise


# -- the parent ----------------------------------------------------------------------------------




def _rss_kb(pid: int) -> int:
    from benchenv import proc_kb  # not at module level: child_main runs in the measured process

    return proc_kb(f"/proc/{pid}/status", "VmRSS:")


def _pss_kb(pid: int) -> int:
    from benchenv import proc_kb

    return proc_kb(f"/proc/{pid}/smaps_rollup", "Pss:")


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return []


def _role(args: list[str], parent_role: str) -> str:
    """A process's part in the run, from its command line and its parent's part."""
    name = Path(args[0]).name if args else "?"
    if not parent_role:
        return "rlm CLI (the parent)"
    if "rlm-init" in args:  # child_sandbox._shell_init: PID 1 after the lockdown
        return "REPL init (a shell, PID 1 of the namespace)"
    if name in ("unshare", "bwrap", "setpriv", "sh"):  # their arguments name child.py too
        return f"sandbox launcher ({name})"
    if any(a.endswith("child.py") for a in args):
        if "--locked" in args:
            return "REPL worker (started by the shell init)"
        return "REPL worker (forked by the Python init)" if parent_role.startswith("REPL init") else \
            "REPL init, Python (PID 1: the lockdown, then the shell init or the Python init)"
    return f"other: {' '.join(args)[:60]}"


def sample_tree(root: int, peaks: dict[str, int], tree_peak: list[int], pss_peaks: dict[str, int]) -> None:
    """One poll: per-role peak RSS and PSS (kB) of ``root`` and its descendants, and the tree's RSS sum."""
    from benchenv import children

    todo, seen, total, now, now_pss = [(root, "")], set(), 0, {}, {}
    while todo:
        pid, parent_role = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        rss = _rss_kb(pid)
        total += rss
        role = _role(_cmdline(pid), parent_role)
        now[role] = now.get(role, 0) + rss
        now_pss[role] = now_pss.get(role, 0) + _pss_kb(pid)
        todo.extend((kid, role) for kid in children(pid))
    for role, rss in now.items():
        peaks[role] = max(peaks.get(role, 0), rss)
        pss_peaks[role] = max(pss_peaks.get(role, 0), now_pss[role])
    tree_peak[0] = max(tree_peak[0], total)


def run_once(server, path: Path, events_file: Path, as_script: bool) -> dict:
    from bench_reference import QUESTION, ROOT_REPLIES

    server.script("root", *ROOT_REPLIES["rlm"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLM_")}
    env.update({"OPENAI_API_KEY": "sk-test", "NO_COLOR": "1", "RLM_HOME": str(HERE / ".cache" / "rlm-home"),
                "BENCH_EVENTS": str(events_file)})
    args = ["ask", str(path), QUESTION, "-m", "openai/root", "--sub-model", "openai/sub",
            "--api-base", server.base_url, "--concurrency", "16", "--no-log", "-q"]
    events_file.write_text("")
    cmd = ([str(Path(sys.executable).parent / "rlm"), *args] if as_script
           else [sys.executable, __file__, "--child", "--", *args])
    peaks: dict[str, int] = {}
    pss_peaks: dict[str, int] = {}
    tree_peak = [0]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while proc.poll() is None:
        sample_tree(proc.pid, peaks, tree_peak, pss_peaks)
        time.sleep(POLL_S)
    t_exit = time.monotonic()
    out, err = proc.communicate()
    while server.pending("root"):
        server._next_reply("root", {})
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    return {"t0": t0, "t_exit": t_exit, "rc": proc.returncode, "stdout": out.decode(errors="replace"),
            "stderr": err.decode(errors="replace"), "events": events, "peaks": peaks, "pss": pss_peaks, "tree_peak": tree_peak[0]}


def phases(run: dict) -> dict[str, float]:
    """Milliseconds per phase from one instrumented run's events."""
    ev = run["events"]
    first = {}
    for e in ev:
        first.setdefault(e["name"], e)
    every = lambda name: [e for e in ev if e["name"] == name]  # noqa: E731
    ms = lambda a, b: (b - a) * 1000  # noqa: E731
    t0 = run["t0"]
    out: dict[str, float] = {}
    out["interpreter start"] = ms(t0, first["child_start"]["t"])
    imp = first["import_cli"]
    out["import rlm_cli.cli"] = ms(imp["t"], imp["end"])
    aq = first["answer_question"]
    out["parse + resolve"] = ms(imp["end"], aq["t"])
    load = first["load"]
    out["load (answer_question -> load end)"] = ms(aq["t"], load["end"])
    rs = first["repl_start"]
    out["load end -> REPL start called"] = ms(load["end"], rs["t"])
    out["REPL start (to ready)"] = ms(rs["t"], rs["end"])
    if "repl_load" in first and first["repl_load"].get("load_s") is not None:
        out["  of it: context built in the child"] = first["repl_load"]["load_s"] * 1000
    if "sdk_import" in first:
        s = first["sdk_import"]
        out["SDK import (prewarm thread, overlaps)"] = ms(s["t"], s["end"])
        out["  SDK import ends after REPL ready by"] = max(0.0, ms(rs["end"], s["end"]))
    calls = sorted(every("lm_call"), key=lambda e: e["t"])
    roots = [c for c in calls if c.get("role") == "root"]
    steps = sorted(every("step"), key=lambda e: e["t"])
    cursor = rs["end"]
    for i, root in enumerate(roots):
        out[f"REPL ready/step -> root call {i + 1}"] = ms(cursor, root["t"])
        out[f"root call {i + 1}"] = ms(root["t"], root["end"])
        cursor = root["end"]
        if i < len(steps):
            out[f"root reply -> step {i + 1}"] = ms(cursor, steps[i]["t"])
            out[f"step {i + 1}"] = ms(steps[i]["t"], steps[i]["end"])
            cursor = steps[i]["end"]
    subs = [c for c in calls if c.get("role") != "root"]
    if subs:
        out["  sub-calls: mean duration"] = statistics.mean(ms(c["t"], c["end"]) for c in subs)
    rc = first.get("repl_close")
    if rc:
        out["last step -> REPL close"] = ms(cursor, rc["t"])
        out["REPL close"] = ms(rc["t"], rc["end"])
        cursor = rc["end"]
    lc = first.get("lm_close")
    if lc:
        out["LM client close"] = ms(lc["t"], lc["end"])
        cursor = max(cursor, lc["end"])
    loop = first["event_loop"]
    out["-> event loop closed"] = ms(cursor, loop["end"])
    out["loop closed -> answer written"] = ms(loop["end"], first["answer_written"]["t"])
    out["answer -> main returns"] = ms(first["answer_written"]["t"], first["main_returned"]["t"])
    out["main -> atexit done"] = ms(first["main_returned"]["t"], first["atexit_done"]["t"])
    out["atexit -> process exit"] = ms(first["atexit_done"]["t"], run["t_exit"])
    out["answer -> process exit"] = ms(first["answer_written"]["t"], run["t_exit"])
    out["TOTAL wall"] = ms(t0, run["t_exit"])
    return out


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child_main(sys.argv[3:] if sys.argv[2:3] == ["--"] else sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--size", default="2MB", choices=["2MB", "40MB"])
    args = parser.parse_args()
    import benchenv

    print(benchenv.as_installed())
    sys.path.insert(0, str(ROOT / "tests"))
    import scripted_server
    from bench_reference import ANSWER, SIZES, haystack, sub_reply

    scripted_server._Handler.disable_nagle_algorithm = True
    path = haystack(args.size, SIZES[args.size])
    print(f"rlm ask on a {args.size} haystack: 2 root calls, 4 sub-calls of 200 ms; rlm: {Path(sys.executable).parent / 'rlm'}")
    print(f"machine: {os.cpu_count()} CPUs, 1-min load average {os.getloadavg()[0]:.1f} at start; "
          f"medians of {args.reps} runs")
    runs, walls = [], []
    with tempfile.TemporaryDirectory() as tmp, scripted_server.ScriptedServer() as server:
        server.default("sub", sub_reply)
        events = Path(tmp) / "events.jsonl"
        for _ in range(args.reps):
            r = run_once(server, path, events, as_script=False)
            ok = r["rc"] == 0 and r["stdout"].strip() == ANSWER
            if not ok:
                print(f"  WARNING: run failed: exit {r['rc']}, stdout {r['stdout'][-200:]!r}\n{r['stderr'][-1500:]}")
                continue
            runs.append(r)
            s = run_once(server, path, events, as_script=True)
            if s["rc"] == 0:
                walls.append((s["t_exit"] - s["t0"]) * 1000)
    if not runs:
        return 1
    table = [phases(r) for r in runs]
    print(f"\n{'phase':44} {'median ms':>10} {'min':>8} {'max':>8}")
    for key in table[0]:
        vals = [t[key] for t in table if key in t]
        print(f"{key:44} {statistics.median(vals):10.1f} {min(vals):8.1f} {max(vals):8.1f}")
    if walls:
        print(f"{'(the rlm console script, same command: wall)':44} {statistics.median(walls):10.1f} "
              f"{min(walls):8.1f} {max(walls):8.1f}")
    print(f"\npeak RSS and PSS per process (MB, median over runs; the tree's peak RSS sum: "
          f"{statistics.median(r['tree_peak'] for r in runs) / 1024:.0f} MB)")
    roles = sorted({k for r in runs for k in r["peaks"]})
    print(f"  {'process':70} {'RSS':>6} {'PSS':>6}")
    for role in roles:
        vals = [r["peaks"].get(role, 0) / 1024 for r in runs]
        pss = [r["pss"].get(role, 0) / 1024 for r in runs]
        print(f"  {role:70} {statistics.median(vals):6.1f} {statistics.median(pss):6.1f}")
    print("  (RSS counts pages a forked process shares with its parent in both; PSS splits them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
