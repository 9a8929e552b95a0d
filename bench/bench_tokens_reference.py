"""Tokens per correct answer: rlm against the reference library ``rlms`` 0.1.3 on the SAME bench tasks.

What it measures
    The tasks ``rlm bench SUITES --lengths L --n N --seed S`` generates (``rlm_cli.bench.runner.plan``
    and ``TaskSpec.generate``: deterministic in suite, length, index and seed), each written under a
    private directory and loaded with rlm's loader exactly as ``rlm bench`` loads it (the same context
    string, file headers included), then handed whole, as one string, to ``rlms``
    (``RLM(backend="openai", backend_kwargs={model_name, base_url, api_key, timeout}, other_backends=
    ["openai"] for the sub-LM, environment="local", max_depth=1, max_iterations=--max-iterations)``,
    ``completion(context, root_prompt=question)``), run in its own venv (``bench/.cache/rlms-venv``,
    made by ``bench_reference.ensure_rlms``). Each answer is scored by rlm's own bench scorer
    (``rlm_cli.bench.scoring.score``).

    Tokens: input + output tokens over every LM call (root and sub), as the model server reports them
    in each response's ``usage``. rlms keeps its own count (``RLMChatCompletion.usage_summary``); the
    bench also counts every response's ``usage`` itself, by wrapping rlms's
    ``OpenAIClient._track_cost`` (which every call goes through), so a run that fails part-way still
    has the tokens it spent; the wrapped count is the one reported, and a difference with rlms's own
    count is flagged. rlm's numbers come from an ``rlm bench --json`` file of the same suites,
    lengths and seed (``--rlm-json``): its rows are matched by task id, and each is checked against
    the regenerated task (expected answer; the question and the context's length from its trajectory
    when that file is readable). Only tasks present on both sides are compared.

    Per suite: correct (summed score: a pairs answer scored 0.5 is half a correct answer), mean score,
    total tokens, tokens per task and tokens per correct answer (total tokens / summed score), for rlm
    and rlms side by side. Target (issue 24): rlm spends fewer tokens per correct answer on every suite.

Quick run with no model: ``--scripted`` starts ``tests/scripted_server.py`` in this process (root
replies: a repl block that asks the sub-LM and submits its reply in each harness's protocol) and,
without ``--rlm-json``, runs ``rlm bench`` against it first.

Run (the local model)::

    nice -n 10 .venv/bin/python bench/bench_tokens_reference.py oolong,codeqa --lengths 64k --n 3 \\
        --seed 0 --max-iterations 8 --rlm-json out.json --api-base http://127.0.0.1:8767/v1 \\
        --sub-api-base http://127.0.0.1:8768/v1 --request-timeout 1500

Prints numbers; never asserts them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


# -- the rlms side (runs in the rlms venv) ------------------------------------------------------
def rlms_main() -> int:
    """Run one task with rlms. Reads a JSON job on stdin (``context_path``, ``question``, ``root`` and
    ``sub`` as ``{"base_url", "model"}`` (sub may be null), ``max_iterations``, ``timeout``,
    ``temperature`` (None: the server's default)); prints
    one JSON line: ``answer`` (None on failure), ``error``, ``tokens`` (counted from every response's
    usage: ``{model: [input, output, calls]}``), ``own`` (rlms's usage summary, None on failure),
    ``duration_s``."""
    job = json.loads(sys.stdin.read())
    import rlm.clients.openai as oa
    from rlm import RLM

    counted: dict[str, list[int]] = {}
    original = oa.OpenAIClient._track_cost

    def track(self, response, model):  # every chat completion of rlms passes here
        usage = getattr(response, "usage", None)
        row = counted.setdefault(model, [0, 0, 0])
        row[0] += int(getattr(usage, "prompt_tokens", 0) or 0)
        row[1] += int(getattr(usage, "completion_tokens", 0) or 0)
        row[2] += 1
        return original(self, response, model)

    oa.OpenAIClient._track_cost = track
    with open(job["context_path"], encoding="utf-8") as fh:
        context = fh.read()

    def kwargs(side: dict) -> dict:
        out = {"model_name": side["model"], "base_url": side["base_url"], "api_key": "sk-none",
               "timeout": float(job["timeout"]), "max_retries": 0}
        if job.get("temperature") is not None:  # rlms passes sampling_args to every create() call
            out["sampling_args"] = {"temperature": float(job["temperature"])}
        return out

    extra = {}
    if job.get("sub"):
        extra = {"other_backends": ["openai"], "other_backend_kwargs": [kwargs(job["sub"])]}
    t0 = time.monotonic()
    answer = error = own = None
    try:
        rlm = RLM(backend="openai", backend_kwargs=kwargs(job["root"]), environment="local", max_depth=1,
                  max_iterations=int(job["max_iterations"]), **extra)
        result = rlm.completion(context, root_prompt=job["question"])
        answer = result.response
        own = {m: [s.total_input_tokens, s.total_output_tokens, s.total_calls]
               for m, s in result.usage_summary.model_usage_summaries.items()}
    except Exception as exc:  # a failed run still reports the tokens it spent
        error = f"{type(exc).__name__}: {str(exc)[:500]}"
    print(json.dumps({"answer": answer, "error": error, "tokens": counted, "own": own,
                      "duration_s": time.monotonic() - t0}))
    return 0


# -- the rlm side: tasks, contexts, the rlm bench JSON -----------------------------------------
def task_context(task, work: Path) -> str:
    """The context string rlm's REPL gets for ``task``: its files written under ``work/<task id>``
    and loaded with rlm's loader from ``work`` (paths read ``<task id>/<file>``, as in rlm bench)."""
    from rlm_cli.bench.runner import write_task
    from rlm_cli.loader import LoadOptions, load_sources

    write_task(task, work)
    old = os.getcwd()
    os.chdir(work)
    try:
        loaded = load_sources([task.id], LoadOptions(), work / f"{task.id}.context.txt")
        return loaded.read()
    finally:
        os.chdir(old)


def rlm_rows(path: Path, tasks: dict[str, object], contexts: dict[str, int]) -> tuple[dict[str, dict], list[str]]:
    """The ``system == "rlm"`` rows of an ``rlm bench --json`` file, by task id, for the tasks in
    ``tasks`` only; with notes on rows that do not match the regenerated task (expected answer,
    question, context length in characters: those rows are dropped) and tasks missing from the file.
    Raises ValueError for a file that is not an rlm bench JSON document."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith("rlm-bench/"):
        raise ValueError(f"{path}: not an rlm bench --json file")
    rows, notes = {}, []
    for row in doc.get("tasks", []):
        task = tasks.get(row.get("task"))
        if row.get("system") != "rlm" or task is None:
            continue
        why = None
        if json.loads(json.dumps(task.expected)) != row.get("expected"):
            why = f"expected {row.get('expected')!r}, regenerated {task.expected!r}"
        traj = _trajectory(row.get("trajectory"))
        if why is None and traj:
            if traj.get("question") != task.question:
                why = f"question {traj.get('question')!r} != {task.question!r}"
            elif (traj.get("context") or {}).get("total_chars") not in (None, contexts.get(task.id)):
                why = f"context {traj['context']['total_chars']} chars, regenerated {contexts.get(task.id)}"
        if why:
            notes.append(f"{row['task']}: not the same task ({why}); left out")
        else:
            rows[row["task"]] = row
    notes += [f"{tid}: not in {path.name}; left out" for tid in tasks if tid not in rows and
              not any(n.startswith(tid + ":") for n in notes)]
    return rows, notes


def _trajectory(path: str | None) -> dict | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8")) if path else None
    except (OSError, ValueError):
        return None


# -- the table ---------------------------------------------------------------------------------
def summary(rows: list[dict]) -> dict:
    """Per-group numbers from rows ``{"score", "tokens"}``: ``tasks``, ``correct`` (summed score),
    ``mean_score``, ``tokens`` (total), ``per_task``, ``per_correct`` (None when nothing scored)."""
    n, correct, tokens = len(rows), sum(r["score"] for r in rows), sum(r["tokens"] for r in rows)
    return {"tasks": n, "correct": round(correct, 3), "mean_score": round(correct / n, 3) if n else None,
            "tokens": tokens, "per_task": round(tokens / n) if n else None,
            "per_correct": round(tokens / correct) if correct > 0 else None}


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def table(results: list[dict], suites: list[str]) -> list[str]:
    """Lines of the rlm-vs-rlms table, one row per (suite, system), then ``all``."""
    lines = [f"{'suite':8} {'system':6} {'tasks':>5} {'correct':>8} {'mean':>6} {'tokens':>9} "
             f"{'tok/task':>9} {'tok/correct':>11}  rlm/rlms per correct"]
    for suite in [*suites, "all"]:
        group = [r for r in results if suite in ("all", r["suite"])]
        if not group:
            continue
        sums = {}
        for system in ("rlm", "rlms"):
            s = sums[system] = summary([{"score": r[system]["score"], "tokens": r[system]["tokens"]} for r in group])
            lines.append(f"{suite:8} {system:6} {s['tasks']:5} {s['correct']:8.2f} {s['mean_score']:6.2f} "
                         f"{s['tokens']:9,} {_num(s['per_task']):>9} {_num(s['per_correct']):>11}")
        a, b = sums["rlm"]["per_correct"], sums["rlms"]["per_correct"]
        lines[-1] += "  " + (f"{a / b:.2f}" if a and b else "- (a side with no correct answer)")
    return lines


# -- running -----------------------------------------------------------------------------------
def run_rlms_task(rlms_py: str, job: dict, timeout_s: float) -> dict:
    """One task through rlms in a fresh process of its venv; the child's JSON line, or an error row."""
    try:
        p = subprocess.run([rlms_py, __file__, "--run-rlms"], input=json.dumps(job), capture_output=True,
                           text=True, timeout=timeout_s, stdin=None)
    except subprocess.TimeoutExpired:
        return {"answer": None, "error": f"killed after {timeout_s:.0f} s", "tokens": {}, "own": None}
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"answer": None, "error": f"rlms exited {p.returncode}: {p.stderr.strip()[-300:]}",
                "tokens": {}, "own": None}


def rlms_side(args, task, work: Path) -> dict:
    """Run ``task`` through rlms (its context file already under ``work``); its row: ``score``,
    ``tokens`` (from the responses' usage), ``answer``, ``error``, ``calls`` (model -> [input,
    output, calls]), ``own`` (rlms's own count), ``duration_s``."""
    from bench_reference import RLMS_PY

    from rlm_cli.bench.scoring import score

    job = {"context_path": str(work / f"{task.id}.context.txt"), "question": task.question,
           "max_iterations": args.max_iterations, "timeout": args.request_timeout,
           "temperature": args.temperature,
           "root": {"base_url": args.api_base, "model": args.model},
           "sub": {"base_url": args.sub_api_base or args.api_base, "model": args.sub_model}}
    t0 = time.monotonic()
    out = run_rlms_task(str(RLMS_PY), job, args.task_timeout)
    counted = sum(v[0] + v[1] for v in out.get("tokens", {}).values())
    own = out.get("own")
    if own is not None and sum(v[0] + v[1] for v in own.values()) != counted:
        print(f"  note: {task.id}: rlms's own count {own} differs from the responses' usage {out['tokens']}")
    return {"score": score(task, out.get("answer")), "tokens": counted, "answer": out.get("answer"),
            "error": out.get("error"), "calls": out.get("tokens"), "own": own,
            "duration_s": round(time.monotonic() - t0, 1)}


def scripted_root(body: dict) -> str:
    """The scripted root reply: ask the sub-LM once and submit its reply, in the protocol of the
    harness whose system prompt this is (rlms: the ``answer`` dict; rlm: ``FINAL``)."""
    system = " ".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "system")
    ask = "r = llm_query('Answer briefly: ' + context[-2000:])\n"
    if 'answer["ready"]' in system or "answer['ready']" in system:
        return f"```repl\n{ask}answer['content'] = r\nanswer['ready'] = True\n```"
    return f"```repl\n{ask}FINAL(r)\n```"


def run_rlm_bench(args, base_url: str, out: Path) -> None:
    """``rlm bench`` of the same suites/lengths/n/seed against ``base_url`` (the scripted quick run)."""
    cmd = [str(Path(sys.executable).parent / "rlm"), "bench", args.suites, "--lengths", args.lengths,
           "--n", str(args.n), "--seed", str(args.seed), "--systems", "rlm", "-m", "openai/root",
           "--sub-model", "openai/sub", "--api-base", base_url, "--max-iterations", str(args.max_iterations),
           "--out", str(out.parent / "traj"), "--json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLM_")}
    env.update(RLM_HOME=str(out.parent / "home"), OPENAI_API_KEY="sk-none")
    with open(out, "w") as fh:
        subprocess.run(cmd, stdout=fh, env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--run-rlms"]:
        return rlms_main()
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("suites", help="comma-separated suites (niah, oolong, pairs, codeqa, stdlib)")
    ap.add_argument("--lengths", default="64k")
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rlm-json", type=Path, help="an rlm bench --json file of the same suites, lengths, seed")
    ap.add_argument("--api-base", default="http://127.0.0.1:8767/v1", help="the root model's server")
    ap.add_argument("--sub-api-base", help="the sub-LM's server (default: the root's)")
    ap.add_argument("--model", default="root")
    ap.add_argument("--sub-model", default="sub")
    ap.add_argument("--max-iterations", type=int, default=8)
    ap.add_argument("--request-timeout", type=float, default=1500.0, help="seconds per LM request")
    ap.add_argument("--temperature", type=float, help="rlms's sampling temperature, root and sub-LM (as rlm "
                    "bench's -o temperature T --sub-option temperature T); default: the server's")
    ap.add_argument("--task-timeout", type=float, default=7200.0, help="seconds per rlms task")
    ap.add_argument("--json", type=Path, help="write every row and the summaries here")
    ap.add_argument("--rlms-rows", type=Path, help="reuse the rlms rows of an earlier --json of this bench "
                    "(same tasks) instead of running rlms again")
    ap.add_argument("--scripted", action="store_true", help="quick run against tests/scripted_server.py")
    args = ap.parse_args(argv)

    from bench_reference import RLMS_PY, ensure_rlms

    from rlm_cli.bench.runner import plan
    from rlm_cli.bench.scoring import score
    from rlm_cli.bench.tasks import parse_lengths, parse_suites

    suites = parse_suites([args.suites])
    specs = plan(suites, parse_lengths(args.lengths), args.n, args.seed)
    version = ensure_rlms()
    work = Path(tempfile.mkdtemp(prefix="rlm-bench-tokens-"))
    server = None
    try:
        if args.scripted:
            sys.path.insert(0, str(ROOT / "tests"))
            from scripted_server import ScriptedServer

            server = ScriptedServer().__enter__()
            server.default("root", scripted_root)
            server.default("sub", lambda body: "42")
            args.api_base = args.sub_api_base = server.base_url
            if args.rlm_json is None:
                args.rlm_json = work / "rlm-bench.json"
                print(f"rlm bench against the scripted server -> {args.rlm_json}", flush=True)
                run_rlm_bench(args, server.base_url, args.rlm_json)
        tasks, contexts = {}, {}
        for spec in specs:
            task = spec.generate()
            tasks[task.id] = task
        for tid, task in tasks.items():
            contexts[tid] = len(task_context(task, work))
        rows, notes = rlm_rows(args.rlm_json, tasks, contexts) if args.rlm_json else ({}, [])
        reuse = {r["task"]: r["rlms"] for r in json.loads(args.rlms_rows.read_text())["tasks"]} \
            if args.rlms_rows else {}
        ids = list(rows) if args.rlm_json else list(tasks)
        print(f"rlms {version} ({RLMS_PY}); tasks: {len(specs)} generated, "
              + (f"{len(rows)} in common with {args.rlm_json}" if args.rlm_json else "no --rlm-json: rlms alone")
              + f"; root {args.model} at {args.api_base}, sub {args.sub_model} at "
              f"{args.sub_api_base or args.api_base}; max iterations {args.max_iterations}", flush=True)
        for note in notes:
            print(f"  note: {note}")
        results = []
        for tid in ids:
            task, row = tasks[tid], rows.get(tid)
            if tid in reuse:  # measured before (--rlms-rows): scored again, not run again
                side = dict(reuse[tid], score=score(task, reuse[tid].get("answer")))
            else:
                side = rlms_side(args, task, work)
            result = {"task": tid, "suite": task.suite, "expected": task.expected, "rlms": side}
            line = f"  {tid}: rlms score {side['score']:.2f}, {side['tokens']:,} tokens, {side['duration_s']:.0f} s"
            line += f", error {side['error']}" if side.get("error") else ""
            if row is not None:
                rlm_tokens = int(row.get("input_tokens") or 0) + int(row.get("output_tokens") or 0)
                result["rlm"] = {"score": float(row.get("score") or 0.0), "tokens": rlm_tokens,
                                 "answer": row.get("answer"), "status": row.get("status")}
                line += f" | rlm score {result['rlm']['score']:.2f}, {rlm_tokens:,} tokens"
            results.append(result)
            print(line, flush=True)
            if args.json:  # after every task: a long run stopped part-way keeps what it measured
                args.json.write_text(json.dumps({"rlms": version, "args": {k: str(v) for k, v in vars(args).items()},
                                                 "notes": notes, "tasks": results}, indent=1))
        print()
        both = [r for r in results if "rlm" in r]
        if both:
            for line in table(both, suites):
                print(line)
        else:
            for suite in suites:
                s = summary([r["rlms"] for r in results if r["suite"] == suite])
                print(f"{suite:8} rlms   {s}")
        print("(tokens: input + output over every root and sub call, from the server's usage fields; "
              "correct: summed score; tok/correct: total tokens / correct)")
    finally:
        if server is not None:
            server.__exit__(None, None, None)
        from rlm_cli.repl.sandbox import remove_tree

        remove_tree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
