"""Harness overhead against the reference implementation (``rlms``, PyPI; imports as ``rlm``).

What it measures
    The same scripted needle-in-a-haystack trajectory over a 2 MB and a 40 MB haystack (4 needles),
    run by ``rlm ask`` and by ``rlms`` (``RLM(backend="openai", ...).completion(...)``), both pointed
    at one scripted OpenAI-compatible server (``tests/scripted_server.py``) on loopback:

    * root reply 1: a ``repl`` block that greps ``context`` for the needles and prints the offsets;
    * root reply 2: a ``repl`` block that cuts a 600-character window around each hit, sends the 4
      windows with ``llm_query_batched`` (4 sub-calls, each answered after 200 ms) and submits
      "The launch code is 7391-ALPHA" in each harness's own protocol: ``FINAL(...)`` in code for
      rlm, ``answer["content"] = ...; answer["ready"] = True`` for rlms.

    Identical work on both sides: 2 root calls, the same greps, the same 4 sub-calls, the same answer.
    rlm ask runs with ``--no-log`` and rlms without a logger (neither writes a trajectory).

    Wall time: from the start of the command to its exit, measured by a fresh wrapper process
    (``python bench_reference.py --measure -- CMD``), so it includes interpreter start and imports.
    Peak memory, three ways: (a) ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` read by that
    wrapper once the command has exited: the peak RSS of the largest single process in the tree
    (rlm's REPL subprocess included: it is waited for); (b) the peak of the SUM of RSS over the whole
    process tree, polled from /proc every 20 ms (rlm ask = CLI + sandbox launcher + REPL init + REPL
    process; rlms = one process); (c) the peak of the sum of PSS over the tree, polled likewise: pages
    a forked process shares with its parent (the REPL's init and its worker) count once, as the
    machine pays them. The target ratio uses (b), the strictest; (a) and (c) are printed beside it.

    CPU: user + sys of the whole tree (``RUSAGE_CHILDREN``), far less sensitive than wall time to
    other work on the machine.

    Import cost: both sides call the server through the OpenAI SDK (rlm does for ``openai/`` models,
    without importing litellm), both a 3.x release (rlm's from its lock file, rlm on its aiohttp
    transport; rlms's whatever pip resolves for it). Each rep also times each side's client import
    alone (fresh processes: ``rlm_cli.lm.backend_openai.warm_up()``, ``import rlm, rlm.clients.openai``), and
    the bench prints the wall, CPU and tree-RSS ratios with each side's import taken out (its median
    minus its import's median), labelled as such: the raw ratios are what a user feels (and what the
    targets are about); the adjusted ones isolate the harness.

Targets
    rlm / rlms <= 0.9 for wall time and <= 1.0 for peak memory (tree RSS), at 2 MB and at 40 MB.

The rlms venv lives in bench/.cache/rlms-venv (created and ``pip install rlms==0.1.3``-ed from the
package index on first use); haystacks in bench/.cache/data. Prints numbers, never asserts timings.
Run: ``.venv/bin/python bench/bench_reference.py`` (``--reps N``, default 3, medians reported).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
RLMS_VENV = CACHE / "rlms-venv"
RLMS_PY = RLMS_VENV / "bin" / "python"
RLMS_SPEC = "rlms==0.1.3"
DATA = CACHE / "data"
RLM = str(Path(sys.executable).parent / "rlm")

SIZES = {"2MB": 2_000_000, "40MB": 40_000_000}
NEEDLES = 4
NEEDLE = "The secret launch code is 7391-ALPHA."
QUESTION = "What is the secret launch code?"
ANSWER = "The launch code is 7391-ALPHA"
SUB_LATENCY_S = 0.2
POLL_S = 0.02

STEP_1 = ("I will look for the needle first.\n```repl\nimport re\n"
          "hits = [m.start() for m in re.finditer(r'launch code', context)]\n"
          "print(len(context), hits)\n```")
STEP_2_CODE = ("windows = [context[max(0, h - 300): h + 300] for h in hits]\n"
               "answers = llm_query_batched(['What is the launch code in this text? ' + w for w in windows])\n"
               "print(answers)\n")
ROOT_REPLIES = {
    "rlm": [STEP_1, "```repl\n" + STEP_2_CODE + "FINAL('The launch code is ' + answers[0])\n```"],
    "rlms": [STEP_1, "```repl\n" + STEP_2_CODE
             + "answer['content'] = 'The launch code is ' + answers[0]\nanswer['ready'] = True\n```"],
}


# -- setup -------------------------------------------------------------------------------------
def ensure_rlms() -> str:
    """Create bench/.cache/rlms-venv with rlms installed (once); returns the installed version."""
    probe = [str(RLMS_PY), "-c", "import importlib.metadata as m; print(m.version('rlms'))"]
    if RLMS_PY.exists():
        p = subprocess.run(probe, capture_output=True, text=True)
        if p.returncode == 0:
            return p.stdout.strip()
    print(f"installing {RLMS_SPEC} into {RLMS_VENV} ...", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(RLMS_VENV)], check=True)
    subprocess.run([str(RLMS_PY), "-m", "pip", "install", "-q", RLMS_SPEC], check=True)
    return subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()


def haystack(label: str, size: int) -> Path:
    """A deterministic log file of about ``size`` bytes with NEEDLES copies of the needle."""
    path = DATA / f"haystack-{label}.txt"
    if path.exists() and abs(path.stat().st_size - size) < 200:
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    line = "2026-11-21 12:00:00 INFO worker heartbeat ok; queue depth nominal; nothing to report\n"
    n = (size - NEEDLES * (len(NEEDLE) + 1)) // len(line)
    at = {n * (k + 1) // (NEEDLES + 1) for k in range(NEEDLES)}
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(line)
            if i in at:
                fh.write(NEEDLE + "\n")
    tmp.replace(path)
    return path


def sub_reply(body: dict):
    from scripted_server import Reply

    m = re.search(r"launch code is (\S+)\.", body["messages"][-1]["content"])
    return Reply(m.group(1) if m else "NONE", delay_s=SUB_LATENCY_S)


# -- measuring one command ---------------------------------------------------------------------




def tree_mem_kb(root: int) -> tuple[int, int]:
    """(sum of VmRSS, sum of PSS) over the descendants of ``root`` (not ``root`` itself: the
    measuring wrapper). RSS counts a page shared by several processes (after a fork) once per
    process; PSS splits it between them, so its sum is what the tree costs the machine."""
    from benchenv import children, proc_kb

    rss = pss = 0
    todo, seen = children(root), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        rss += proc_kb(f"/proc/{pid}/status", "VmRSS:")
        pss += proc_kb(f"/proc/{pid}/smaps_rollup", "Pss:")
        todo.extend(children(pid))
    return rss, pss


def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``cmd`` under a fresh wrapper process; wall, rc, stdout, maxrss (a) and tree peak (b), in MB."""
    wrapper = subprocess.Popen([sys.executable, __file__, "--measure", "--", *cmd], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    peak = peak_pss = 0
    while wrapper.poll() is None:
        rss, pss = tree_mem_kb(wrapper.pid)
        peak, peak_pss = max(peak, rss), max(peak_pss, pss)
        time.sleep(POLL_S)
    out, err = wrapper.communicate()
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"rc": -1, "wall_s": float("nan"), "maxrss_mb": float("nan"), "tree_mb": float("nan"),
                "pss_mb": float("nan"), "stdout": out, "stderr": err}
    res["tree_mb"] = peak / 1024
    res["pss_mb"] = peak_pss / 1024
    return res


def measure_main(cmd: list[str]) -> int:
    """The wrapper: run ``cmd`` to its end, print one JSON line (runs in a fresh process)."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"rc": p.returncode, "wall_s": wall, "maxrss_mb": ru.ru_maxrss / 1024,
                      "cpu_s": ru.ru_utime + ru.ru_stime, "stdout": p.stdout[-2000:], "stderr": p.stderr[-3000:]}))
    return 0


# -- the rlms side -----------------------------------------------------------------------------
def rlms_main(base_url: str, path: str) -> int:
    """Run the trajectory with rlms (executed by the rlms venv's python)."""
    from rlm import RLM  # rlms

    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    kw = {"base_url": base_url, "api_key": "sk-test"}
    rlm = RLM(backend="openai", backend_kwargs={"model_name": "root", **kw},
              other_backends=["openai"], other_backend_kwargs=[{"model_name": "sub", **kw}],
              environment="local", max_depth=1, max_iterations=30)
    result = rlm.completion(text, root_prompt=QUESTION)
    print(result.response)
    return 0


# -- the bench ---------------------------------------------------------------------------------
def run_tool(server, tool: str, path: Path) -> dict:
    from scripted_server import ScriptedServer

    assert isinstance(server, ScriptedServer)
    server.script("root", *ROOT_REPLIES[tool])
    n0 = len(server.requests)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLM_")}
    env.update({"OPENAI_API_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "NO_COLOR": "1",
                "RLM_HOME": str(CACHE / "rlm-home")})
    if tool == "rlm":
        cmd = [RLM, "ask", str(path), QUESTION, "-m", "openai/root", "--sub-model", "openai/sub",
               "--api-base", server.base_url, "--concurrency", "16", "--no-log", "-q"]
    else:
        cmd = [str(RLMS_PY), __file__, "--run-rlms", server.base_url, str(path)]
    res = measure(cmd, env)
    reqs = server.requests[n0:]
    res["root_calls"] = sum(1 for r in reqs if r.model == "root")
    res["sub_calls"] = sum(1 for r in reqs if r.model == "sub")
    res["left"] = server.pending("root")
    while server.pending("root"):  # a failed run must not leave replies for the next one
        server._next_reply("root", {})
    lines = res.get("stdout", "").strip().splitlines()
    res["answer"] = lines[-1] if lines else ""
    res["ok"] = (res["rc"] == 0 and res["answer"] == ANSWER and res["root_calls"] == 2
                 and res["sub_calls"] == NEEDLES)
    return res


IMPORT_CMDS = {"rlm": [sys.executable, "-c", "from rlm_cli.lm.backend_openai import warm_up; warm_up()"],
               "rlms": [str(RLMS_PY), "-c", "import rlm, rlm.clients.openai"]}


def import_once(tool: str) -> dict:
    """Each side's LM client library imported alone in a fresh process: the OpenAI SDK, its aiohttp
    transport and TLS context for rlm; rlms + its OpenAI SDK. Both end with the interpreter's usual
    teardown (rlm's own command skips it: see ``rlm_cli.commands.app.exit_now``)."""
    res = measure(IMPORT_CMDS[tool], dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True"))
    res["ok"] = res["rc"] == 0
    return res


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--measure"]:
        return measure_main(argv[2:] if argv[1:2] == ["--"] else argv[1:])
    if argv[:1] == ["--run-rlms"]:
        return rlms_main(argv[1], argv[2])
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reps", type=int, default=3, help="runs per (tool, size); medians are reported")
    parser.add_argument("--server-as-is", action="store_true",
                        help="do not set TCP_NODELAY on the scripted server (each answer on a kept-alive "
                             "connection then waits ~40 ms for the client's delayed ACK)")
    args = parser.parse_args(argv)
    import benchenv

    print(benchenv.as_installed())

    sys.path.insert(0, str(ROOT / "tests"))
    import scripted_server

    note = "scripted server used as shipped"
    if not args.server_as_is and not getattr(scripted_server._Handler, "disable_nagle_algorithm", False):
        scripted_server._Handler.disable_nagle_algorithm = True
        note = ("the bench set TCP_NODELAY on the scripted server (as shipped, every answer on a kept-alive "
                "connection waits ~40 ms: Nagle + delayed ACK)")

    version = ensure_rlms()
    paths = {label: haystack(label, size) for label, size in SIZES.items()}
    print(f"reference: rlms {version} ({RLMS_VENV}); rlm: {RLM}")
    print(f"trajectory: 2 root calls, {NEEDLES} sub-calls of {SUB_LATENCY_S * 1000:.0f} ms; "
          f"haystacks: {', '.join(f'{k} = {p.stat().st_size:,} B' for k, p in paths.items())}")
    print(f"note: {note}")
    print(f"machine: {os.cpu_count()} CPUs, 1-min load average {os.getloadavg()[0]:.1f} at start "
          "(other work on the machine slows every number); medians of "
          f"{args.reps} runs, tools interleaved")
    print("memory: tree = peak of the sum of RSS over the process tree (polled every 20 ms); "
          "maxrss = getrusage(RUSAGE_CHILDREN).ru_maxrss from a fresh wrapper (largest single process); "
          "PSS = peak of the sum of PSS over the tree (pages shared after a fork counted once)")

    results: dict[tuple[str, str], list[dict]] = {}
    with scripted_server.ScriptedServer() as server:
        server.default("sub", sub_reply)
        for rep in range(args.reps):
            for label, path in paths.items():
                for tool in ("rlm", "rlms"):
                    r = run_tool(server, tool, path)
                    results.setdefault((label, tool), []).append(r)
                    if not r["ok"]:
                        print(f"  WARNING: {tool} {label} run {rep + 1} did not go as scripted: exit {r['rc']}, "
                              f"answer {r['answer']!r}, root calls {r['root_calls']}, sub calls {r['sub_calls']}\n"
                              f"  stderr: {r.get('stderr', '')[-1500:]}")
            for tool in ("rlm", "rlms"):
                results.setdefault(("import", tool), []).append(import_once(tool))

    def med(label: str, tool: str, key: str) -> float:
        return statistics.median(r[key] for r in results[(label, tool)])

    print()
    print(f"{'context':8} {'tool':5} {'wall s':>7} {'cpu s':>6} {'tree MB':>8} {'maxrss MB':>9} {'PSS MB':>7}  runs ok")
    for label in [*paths, "import"]:
        for tool in ("rlm", "rlms"):
            rs = results[(label, tool)]
            print(f"{label:8} {tool:5} {med(label, tool, 'wall_s'):7.2f} {med(label, tool, 'cpu_s'):6.2f} "
                  f"{med(label, tool, 'tree_mb'):8.0f} {med(label, tool, 'maxrss_mb'):9.0f} "
                  f"{med(label, tool, 'pss_mb'):7.0f}  "
                  f"{sum(r['ok'] for r in rs)}/{len(rs)}")
    print("(import: the OpenAI SDK path rlm uses for openai/ models (`rlm_cli.lm.backend_openai.warm_up()`) on the "
          "rlm side, `import rlm, rlm.clients.openai` on the rlms side, each alone in a fresh process)")
    print()
    keys = (("wall_s", "wall"), ("cpu_s", "cpu"), ("tree_mb", "tree RSS"), ("maxrss_mb", "maxrss"),
            ("pss_mb", "tree PSS"))
    print("ratios rlm / rlms (target <= 1.0 for wall and memory):")
    print(f"{'context':8} " + " ".join(f"{name:>9}" for _, name in keys) + "   |  imports out: "
          + " ".join(f"{name:>9}" for _, name in keys[:3]))
    for label in paths:
        raw = [med(label, "rlm", k) / med(label, "rlms", k) for k, _ in keys]
        adj = []
        for k, _ in keys[:3]:
            a = med(label, "rlm", k) - med("import", "rlm", k)
            b = med(label, "rlms", k) - med("import", "rlms", k)
            adj.append(a / b if b > 0 else float("nan"))
        print(f"{label:8} " + " ".join(f"{v:9.2f}" for v in raw) + "   |               "
              + " ".join(f"{v:9.2f}" for v in adj))
    print("(imports out: each side's median minus the median of its import alone; an approximation that "
          "takes the LM client library's import out of both sides. Wall is the most load-sensitive "
          "column; cpu = user + sys of the whole tree)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
