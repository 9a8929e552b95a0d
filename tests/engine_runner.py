"""Run the engine in this process against a :class:`~fake_lm.FakeLM`: no CLI subprocess, no HTTP.

:func:`run_engine` does what ``rlm ask`` does between loading and printing (a context file, a
:class:`~rlm_cli.run.config.RunConfig`, an :class:`~rlm_cli.lm.client.LMClient`, an event bus with a
trajectory recorder, :func:`rlm_cli.run.engine.run`), with the fake as the LM client's one request
path. The REPL is the real one (its own sandboxed subprocess): what the root LM's code does is
tested for real, only the provider is scripted. Tests of the loop's rules (nudges, FINAL handling,
last calls, budgets, iteration limits, retries) use it; the end-to-end tests keep the CLI and HTTP.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fake_lm import FakeLM
from helpers import FAKE_API_KEY

from rlm_cli.context import ContextWriter
from rlm_cli.lm.client import LMClient, Price
from rlm_cli.repl.sandbox import remove_tree
from rlm_cli.run import config, engine
from rlm_cli.run.budget import Limits
from rlm_cli.run.events import EventBus, Notice
from rlm_cli.trajectory.recorder import TrajectoryRecorder

__all__ = ["EngineRun", "run_engine"]

STATUS_EXIT = {"answered": 0, "budget_exhausted": 3, "max_iterations": 3, "interrupted": 130, "error": 1}
"""The exit code ``rlm ask`` gives each run status (the contract's exit codes)."""


@dataclass
class EngineRun:
    """One finished in-process run: the engine's ``result``, the trajectory ``doc`` as the recorder
    built it (the same dict ``rlm ask`` writes), and every event emitted, in order."""

    result: config.RunResult
    doc: dict
    events: list = field(default_factory=list)
    workdir: Path | None = None  # the run's (removed) working directory: REPL command lines name it

    @property
    def status(self) -> str:
        """The trajectory status (``answered``, ``max_iterations``, ``budget_exhausted``, ``error``...)."""
        return self.result.status

    @property
    def answer(self) -> str | None:
        """The answer (None when none)."""
        return self.result.answer

    @property
    def exit_code(self) -> int:
        """The exit code ``rlm ask`` would give this run."""
        return STATUS_EXIT.get(self.result.status, 1)

    def notices(self) -> list[str]:
        """The messages of the run's notices (warnings, retries), in order."""
        return [e.message for e in self.events if isinstance(e, Notice)]


def run_engine(fake: FakeLM, question: str = "q?", files: dict[str, str] | None = None, *,
               limits: Limits | None = None, root_model: str = "openai/root", sub_model: str = "openai/sub",
               prices: dict[str, tuple[float, float]] | None = None, stream_root: bool = False,
               lm_options: dict[str, dict] | None = None, max_retries: int = 6, backoff_base_s: float = 0.01,
               workdir_prefix: str = "rlm-test-run-", **cfg_kw) -> EngineRun:
    """Run one top-level RLM over ``files`` (path -> text; default one ``input.txt`` holding
    ``"some data\\n"``) with ``fake`` answering every LM call; returns the :class:`EngineRun`.

    ``limits`` are the budgets (:class:`~rlm_cli.run.budget.Limits`, the CLI's defaults when None);
    ``prices``: model -> (USD per million input tokens, per million output tokens), as ``--price``;
    ``stream_root``: stream root replies, as the live view asks; ``lm_options``: per-role request
    options (``{"root": {...}, "sub": {...}}``); ``max_retries`` and ``backoff_base_s`` (seconds;
    small, so retried faults cost no wall time; a ``Retry-After`` is still honoured) go to the
    :class:`~rlm_cli.lm.client.LMClient`; other keyword arguments go to
    :class:`~rlm_cli.run.config.RunConfig` (``model_aliases``, ``allowed_models``, ``system_extra``,
    ``sub_chars``...). Never raises for a failed run (see :func:`rlm_cli.run.engine.run`).

    The working directory is made as ``rlm ask`` makes it (a fresh directory named ``workdir_prefix``
    plus random characters in the system's temporary directory, searchable by others when running as
    root, so the REPL can drop to an unprivileged user as under the CLI) and removed afterwards.
    Everything between loading and printing is the engine's: :func:`rlm_cli.run.service.answer_question`
    (signals, the view, the log file) is left to the end-to-end tests.
    """
    workdir = Path(tempfile.mkdtemp(prefix=workdir_prefix))
    if os.geteuid() == 0:
        os.chmod(workdir, 0o711)
    try:
        return _run(fake, workdir, question, files, limits, root_model, sub_model, prices, stream_root, lm_options,
                    max_retries, backoff_base_s, cfg_kw)
    finally:
        remove_tree(workdir)


def _run(fake, workdir, question, files, limits, root_model, sub_model, prices, stream_root, lm_options,
         max_retries, backoff_base_s, cfg_kw) -> EngineRun:
    writer = ContextWriter(workdir / "context.txt")
    for path, text in (files if files is not None else {"input.txt": "some data\n"}).items():
        writer.add(path, text)
    loaded = writer.finish()
    cfg = config.RunConfig(question=question, root_model=root_model, sub_model=sub_model,
                           limits=limits or Limits(), stream_root=stream_root, **cfg_kw)
    recorder = TrajectoryRecorder(None)
    events: list = []
    bus = EventBus([recorder, events.append])
    lm = LMClient(api_key=FAKE_API_KEY, options=lm_options or {},
                  prices={m: Price(*p) for m, p in (prices or {}).items()}, max_retries=max_retries,
                  backoff_base_s=backoff_base_s, backend_override=fake)
    lm.on_retry = lambda message: bus.emit(Notice(message, level="info"))

    async def go() -> config.RunResult:
        async with lm:
            return await engine.run(cfg, loaded, lm, bus, workdir / "repl")

    result = asyncio.run(go())
    return EngineRun(result, recorder.doc, events, workdir)
