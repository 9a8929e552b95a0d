"""Running a bench: each task through each system, scored, with every trajectory written.

Tasks are generated one at a time when their turn comes (a 1 MB task is not held longer than its
runs), written as files under a private input directory (``<task id>/...``, removed at the end),
and run by every system in turn: ``rlm`` through :func:`rlm_cli.run.service.run_question` (the code
path of ``rlm ask``), ``base`` through :func:`rlm_cli.bench.base.run_base`. ``concurrency`` tasks
run at once. The process's working directory is the input directory while the bench runs, so
the loaded paths read ``<task id>/<file>`` (the same for both systems).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_cli.bench.scoring import score
from rlm_cli.bench.tasks import Task, generators

SYSTEMS = ("rlm", "base")


@dataclass(frozen=True)
class TaskSpec:
    """Which task to generate: ``suite``, ``length`` (characters), ``index``, ``seed``, ``depth``
    (niah only; None: from the seed)."""

    suite: str
    length: int
    index: int
    seed: int
    depth: float | None = None

    def generate(self) -> Task:
        """The task (deterministic in the fields)."""
        gen = generators()[self.suite]
        if self.suite == "niah" and self.depth is not None:
            return gen(self.length, self.index, self.seed, depth=self.depth)
        return gen(self.length, self.index, self.seed)


def plan(suites: list[str], lengths: list[int], n: int, seed: int,
         depths: list[float] | None = None) -> list[TaskSpec]:
    """The bench's tasks in run order: suites, then lengths, then ``n`` indices; niah task ``i`` at
    ``depths[i % len(depths)]`` when ``depths`` is given."""
    return [TaskSpec(s, length, i, seed, depths[i % len(depths)] if depths and s == "niah" else None)
            for s in suites for length in lengths for i in range(n)]


@dataclass
class BenchConfig:
    """How to run: ``systems`` (of :data:`SYSTEMS`), resolved ``settings`` and per-task ``limits``,
    ``concurrency`` (tasks at once), ``window_tokens`` (the base system's context window; needed
    when ``base`` runs), ``out_dir`` (trajectories as ``<task id>-<system>.json``; None: the log
    directory), ``request_timeout`` (seconds per LM request), ``system_extra`` (extra root
    instructions), ``backend`` (the LM request path)."""

    systems: list[str]
    settings: Any
    limits: Any
    concurrency: int = 1
    window_tokens: int | None = None
    out_dir: Path | None = None
    request_timeout: float = 300.0
    system_extra: str | None = None
    backend: str = "auto"


@dataclass
class TaskResult:
    """One system's result on one task. ``score`` in [0, 1]; ``cost_usd`` None when unpriced;
    tokens over all LM calls; ``duration_s`` wall seconds; ``trajectory`` the file (str) or None."""

    task_id: str
    suite: str
    length: int
    index: int
    system: str
    score: float
    status: str
    answer: str | None
    expected: Any
    cost_usd: float | None
    input_tokens: int
    output_tokens: int
    duration_s: float
    sub_calls: int
    trajectory: str | None
    error: str | None = None
    extra: dict = field(default_factory=dict)
    malformed: str | None = None  # what the answer is when it is not one (code, prompt text, a dump, empty)

    def as_dict(self) -> dict:
        """The JSON row (see docs/bench.md)."""
        return {"task": self.task_id, "suite": self.suite, "length": self.length, "index": self.index,
                "system": self.system, "score": round(self.score, 4), "status": self.status,
                "answer": self.answer, "expected": self.expected, "cost_usd": self.cost_usd,
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "duration_s": round(self.duration_s, 3), "sub_calls": self.sub_calls,
                "trajectory": self.trajectory, "error": self.error, "malformed": self.malformed, **self.extra}


def _usage_numbers(usage: dict | None) -> tuple[float | None, int, int, int]:
    usage = usage or {}
    tin = sum(int((usage.get(r) or {}).get("input_tokens") or 0) for r in ("root", "sub"))
    tout = sum(int((usage.get(r) or {}).get("output_tokens") or 0) for r in ("root", "sub"))
    return usage.get("total_cost_usd"), tin, tout, int(usage.get("sub_calls") or 0)


class _NoView:
    """A run's view in a bench: none (the bench shows progress across tasks instead)."""

    stream_root = False


def write_task(task: Task, root: Path) -> Path:
    """Write ``task.files`` under ``root / task.id`` (relative paths only: a path that would leave
    the directory raises ValueError). Returns the task's directory."""
    base = root / task.id
    for rel, text in task.files.items():
        dest = (base / rel).resolve()
        if base.resolve() not in dest.parents:
            raise ValueError(f"task file outside its directory: {rel!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
    return base


def _log_path(cfg: BenchConfig, task: Task, system: str, run_id: str) -> Path | None:
    if cfg.out_dir is not None:
        return cfg.out_dir / f"{task.id}-{system}.json"
    if system == "base":
        from rlm_cli.run.service import default_log_path

        return default_log_path(run_id)
    return None  # rlm: the run's own default path in the log directory


async def _run_rlm(cfg: BenchConfig, task: Task, sources: list[str]) -> tuple[dict, str | None]:
    from rlm_cli.loader import LoadOptions
    from rlm_cli.run.service import RunRequest, run_question

    req = RunRequest(sources=sources, question=task.question, load_options=LoadOptions(), settings=cfg.settings,
                     limits=cfg.limits, system=cfg.system_extra, log=_log_path(cfg, task, "rlm", ""),
                     request_timeout=cfg.request_timeout)
    started: list = []
    try:
        out = await run_question(req, lambda bus: _NoView(), started=started.append)
    except asyncio.CancelledError:
        if started and started[0].log_path:  # the interrupted run's trajectory is written: count it
            raise _Interrupted(started[0]) from None
        raise
    res = out.result
    return ({"status": res.status, "answer": res.answer, "error": (res.error or {}).get("message"),
             "usage": out.usage, "duration_s": out.duration_s or 0.0},
            str(out.log_path) if out.log_path else None)


class _Interrupted(BaseException):
    """A run cancelled by Ctrl-C after it started (carries its provisional outcome)."""

    def __init__(self, outcome: Any) -> None:
        super().__init__("interrupted")
        self.outcome = outcome


async def _run_base(cfg: BenchConfig, task: Task, sources: list[str]) -> tuple[dict, str | None]:
    from rlm_cli.bench.base import run_base

    run_id = uuid.uuid4().hex[:12]
    path = _log_path(cfg, task, "base", run_id)
    out = await run_base(task, sources, settings=cfg.settings, limits=cfg.limits, window_tokens=cfg.window_tokens or 0,
                         log_path=path, request_timeout=cfg.request_timeout, backend=cfg.backend, run_id=run_id)
    out["error"] = (out.get("error") or {}).get("message")
    return out, str(path) if path else None


def _result(task: Task, system: str, out: dict, trajectory: str | None) -> TaskResult:
    cost, tin, tout, subs = _usage_numbers(out.get("usage"))
    extra = {"truncated": out["truncated"]} if "truncated" in out else {}
    if task.meta.get("depth") is not None:
        extra["depth"] = task.meta["depth"]
    return TaskResult(task_id=task.id, suite=task.suite, length=task.length, index=task.index, system=system,
                      score=score(task, out.get("answer")), status=out["status"], answer=out.get("answer"),
                      expected=task.expected, cost_usd=cost, input_tokens=tin, output_tokens=tout,
                      duration_s=float(out.get("duration_s") or 0.0), sub_calls=subs, trajectory=trajectory,
                      error=out.get("error"), extra=extra, malformed=malformed(out.get("answer"), task.question))


def malformed(answer: str | None, question: str = "") -> str | None:
    """What ``answer`` is when it is not an answer (:func:`rlm_cli.run.answers.why_not_an_answer`
    against rlm's prompt templates and the ``question``); None for an answer, and for no answer."""
    from rlm_cli.run.answers import static_prompt_lines, why_not_an_answer

    if answer is None:
        return None
    return why_not_an_answer(answer, prompt_text=static_prompt_lines(exclude=question), outputs=[], question=question)


async def run_bench(cfg: BenchConfig, specs: list[TaskSpec], results: list[TaskResult],
                    on_result: Callable[[TaskResult], Any] | None = None) -> list[TaskResult]:
    """Run every task of ``specs`` through every system of ``cfg``, appending each
    :class:`TaskResult` to ``results`` as it finishes (so a caller interrupted mid-way keeps what is
    done) and calling ``on_result`` with it. Returns ``results``. Cancelling stops the tasks running
    (their trajectories written, status ``interrupted``) and propagates."""
    if cfg.out_dir is not None:
        cfg.out_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="rlm-bench-"))
    old_cwd = os.getcwd()
    os.chdir(root)  # loaded paths read "<task id>/<file>"
    slots = asyncio.Semaphore(max(1, cfg.concurrency))

    async def one(spec: TaskSpec) -> None:
        async with slots:
            task = await asyncio.to_thread(spec.generate)
            await asyncio.to_thread(write_task, task, root)
            try:
                for system in cfg.systems:
                    runner = _run_rlm if system == "rlm" else _run_base
                    t0 = time.monotonic()
                    try:
                        out, trajectory = await runner(cfg, task, [task.id])
                        out["duration_s"] = time.monotonic() - t0  # wall time, the load included
                    except _Interrupted as stop:
                        out = {"status": "interrupted", "answer": None, "error": "interrupted",
                               "usage": stop.outcome.usage, "duration_s": stop.outcome.duration_s or 0.0}
                        add(_result(task, system, out, str(stop.outcome.log_path)))
                        raise asyncio.CancelledError from None
                    add(_result(task, system, out, trajectory))
            finally:
                from rlm_cli.repl.sandbox import remove_tree

                await asyncio.to_thread(remove_tree, root / task.id)

    def add(result: TaskResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    jobs = [asyncio.ensure_future(one(spec)) for spec in specs]
    try:
        await asyncio.gather(*jobs)
    except BaseException:
        for job in jobs:
            job.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*jobs, return_exceptions=True)
        raise
    finally:
        os.chdir(old_cwd)
        from rlm_cli.repl.sandbox import remove_tree

        remove_tree(root)
    return results
