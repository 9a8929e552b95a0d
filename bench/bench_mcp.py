"""Benchmark: what ``rlm mcp`` adds per ``ask`` call over the same run made in process.

Starts the scripted OpenAI-compatible server (tests/scripted_server.py; each root reply takes
``--lm-latency`` seconds and is one ```repl``` block calling FINAL: one root call plus one REPL step)
and measures, after one warm-up each:
  - in process: ``--calls`` sequential runs through :func:`rlm_cli.run.service.run_question` (what
    ``rlm ask`` runs, with its session record, minus the process start-up and printing);
  - over MCP: ``--calls`` sequential ``ask`` calls from the MCP SDK's own client to one ``rlm mcp``
    process on stdio (JSON-RPC framing, schema validation, the roots scope, progress, the session
    record), timed at the client.
"added" is the difference of the medians (target: < 50 ms). Prints numbers; asserts nothing.
``--profile PATH`` runs the server under cProfile (its stats written to PATH when it exits) and prints
the calls that took its time. Run: ``.venv/bin/python bench/bench_mcp.py [--calls 10] [--lm-latency 0.05]
[--profile PATH]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

ROOT_REPLY = '```repl\nFINAL("answer: " + str(len(context)))\n```'


def in_process(base_url: str, source: Path, calls: int) -> list[float]:
    import asyncio

    from rlm_cli.commands.loader_options import load_options_from
    from rlm_cli.run.service import RunRequest, run_question
    from rlm_cli.run.session import new_session
    from rlm_cli.settings.resolve import resolve

    settings = resolve({"model": "openai/root", "sub_model": "openai/sub", "api_base": base_url})
    opts = load_options_from(None, None, False, "10MB", "100MB", False)
    opts.progress = False

    class View:
        stream_root = False

    async def main() -> list[float]:
        times = []
        for i in range(calls + 1):
            t0 = time.perf_counter()
            session = new_session([str(source)])  # as `rlm ask` does: every run can be continued
            req = RunRequest(sources=[str(source)], question=f"q{i}", load_options=opts, settings=settings,
                             limits=settings.limits(), session=session)
            out = await run_question(req, lambda bus: View())
            assert out.result.status == "answered", out.result
            session.finish(out.result.answer, out.result.status, out.log_path)
            times.append(time.perf_counter() - t0)
        return times[1:]

    return asyncio.run(main())


def over_mcp(cli, source: Path, calls: int) -> list[float]:
    import anyio
    from mcp_support import stdio_session

    async def main() -> list[float]:
        times = []
        with open(os.devnull, "w") as sink:
            async with stdio_session(cli, roots=[source.parent], errlog=sink) as s:
                for i in range(calls + 1):
                    t0 = time.perf_counter()
                    r = await s.call_tool("ask", {"question": f"q{i}", "sources": [str(source)]})
                    assert not r.is_error, r
                    times.append(time.perf_counter() - t0)
        return times[1:]

    return anyio.run(main)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--lm-latency", type=float, default=0.05)
    ap.add_argument("--profile", metavar="PATH", help="run the MCP server under cProfile, its stats to PATH")
    args = ap.parse_args()
    from benchenv import as_installed
    from helpers import Cli
    from scripted_server import Reply, ScriptedServer

    note = as_installed()
    tmp = Path(tempfile.mkdtemp(prefix="bench-mcp-"))
    source = tmp / "ws" / "doc.txt"
    source.parent.mkdir()
    source.write_text("a line of text\n" * 20_000)
    os.environ.update({"RLM_HOME": str(tmp / "home-inproc"), "OPENAI_API_KEY": "sk-bench",
                       "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    with ScriptedServer() as server:
        server.default("root", Reply(ROOT_REPLY, delay_s=args.lm_latency))
        inproc = in_process(server.base_url, source, args.calls)
        if args.profile:
            _profiled_server(tmp, args.profile)
        mcp = over_mcp(Cli(tmp / "home-mcp", server), source, args.calls)
    a, b = statistics.median(inproc), statistics.median(mcp)
    print(f"rlm mcp overhead per ask call ({args.calls} calls, LM latency {args.lm_latency * 1000:.0f} ms; {note})")
    print(f"  in process (rlm ask's run): median {a * 1000:7.1f} ms  min {min(inproc) * 1000:7.1f} ms")
    print(f"  over MCP stdio (SDK client): median {b * 1000:7.1f} ms  min {min(mcp) * 1000:7.1f} ms")
    print(f"  added by the server: {(b - a) * 1000:+.1f} ms median (target < 50 ms)")
    if args.profile:
        import pstats

        print(f"the server process, by own time ({args.calls + 1} calls, start-up included):")
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(20)


def _profiled_server(tmp: Path, out: str) -> None:
    """Make the MCP client start the server under cProfile (stats dumped at exit or on SIGTERM)."""
    import mcp_support

    launcher = tmp / "rlm-profiled"
    launcher.write_text(f"""#!{sys.executable}
import atexit, cProfile, os, signal, sys
prof = cProfile.Profile()
def dump(*_):
    prof.disable()
    prof.dump_stats({os.path.abspath(out)!r})
    if _:
        os._exit(0)
signal.signal(signal.SIGTERM, dump)
atexit.register(dump)
sys.argv[0] = "rlm"
from rlm_cli.cli import main
prof.enable()
main()
""")
    launcher.chmod(0o755)
    mcp_support.RLM = str(launcher)

if __name__ == "__main__":
    main()
