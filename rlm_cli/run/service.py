"""One question answered end to end: load -> REPL + engine -> events -> view and trajectory.

:func:`answer_question` is what ``rlm ask`` calls (and what any other front end can call): it
checks the trajectory target, loads the sources into a private run directory, starts the LM
client and the engine under :func:`rlm_cli.run.interrupts.run_until_signal`, and always removes
the run directory (it holds a copy of the input) before returning. Printing is the caller's job:
the :class:`RunOutcome` says what happened, the view it attached shows it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlm_cli.errors import UsageError

if TYPE_CHECKING:  # imported when a run starts: `rlm --help` stays fast
    from rlm_cli.loader.options import LoadOptions
    from rlm_cli.run.budget import Limits
    from rlm_cli.run.config import RunResult
    from rlm_cli.run.events import EventBus
    from rlm_cli.settings.resolve import Settings


@dataclass
class RunRequest:
    """What to answer and how: ``sources`` (paths or ``-``), the ``question``, loader options,
    resolved ``settings`` and ``limits``; ``system``: extra root instructions; ``log``: trajectory
    path (None: the log directory), ``no_log``: none; ``request_timeout``: seconds per LM request;
    ``repl_network``: let REPL code use the network."""

    sources: list[str]
    question: str
    load_options: LoadOptions
    settings: Settings
    limits: Limits
    system: str | None = None
    log: Path | None = None
    no_log: bool = False
    request_timeout: float = 300.0
    repl_network: bool = False
    session: Any = None  # a rlm_cli.run.session.SessionLink: this run as a turn of a conversation
    build_context: Callable[[Path], Any] | None = None
    """Writes the run's context file at the path given and returns its LoadedContext, instead of
    loading ``sources`` there (``rlm serve``: its SOURCEs loaded once, :mod:`rlm_cli.serve.cache`);
    ``sources`` then only name the input in messages."""
    log_writer: Any = None
    """A :class:`~rlm_cli.trajectory.background.TrajectoryWriter`: the trajectory is written off the
    event loop (``rlm serve``); the caller awaits its ``drained()``. None: written in the loop."""
    make_repl: Callable[[Any, Path], Any] | None = None
    """``(loaded, workdir) -> ReplProcess | None``: a REPL started ahead for the root RLM (``rlm serve``'s
    warm REPLs, :mod:`rlm_cli.serve.warm`); None, or when it gives None: started by the run."""
    lm_paths: Any = None
    """The LM request paths shared by several runs (``LMClient``'s ``backend_override``; ``rlm serve``:
    :class:`~rlm_cli.serve.lmpaths.SharedPaths`, its connections reused); None: the run's own."""


@dataclass
class RunOutcome:
    """How the run ended: the engine's ``result`` (status, answer, error, exhausted), the ``run_id``,
    ``models`` (``{"root", "sub"}``), where the trajectory went (``log_path``, None with --no-log),
    the trajectory's ``usage`` and ``duration_s`` (seconds), the ``signals`` that interrupted it
    (numbers; empty when none), the trajectory ``write_errors`` (messages) and the answer's
    ``citations`` check (:func:`rlm_cli.run.citations.check_answer`; None when there is no answer)."""

    result: RunResult
    run_id: str
    models: dict[str, str]
    log_path: Path | None
    usage: dict[str, Any] | None
    duration_s: float | None
    signals: list[int] = field(default_factory=list)
    write_errors: list[str] = field(default_factory=list)
    citations: dict | None = None
    mode: str = "rlm"  # which ran: "rlm" (the loop) or "direct" (--mode)


def default_log_path(run_id: str) -> Path:
    """``<log dir>/<UTC stamp>-<run id>.json``: names sort by start time (see trajectory.store)."""
    from rlm_cli.settings.paths import log_dir

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return log_dir() / f"{stamp}-{run_id}.json"


def _load_cannot_fork(sources: list[str]) -> bool:
    """Whether loading ``sources`` is sure to stay in this process: no directory among them (only a
    walk yields enough files for the two-process load, :func:`rlm_cli.loader.parallel.available`) and
    fewer sources than that load's minimum."""
    from rlm_cli.loader.parallel import MIN_ITEMS
    from rlm_cli.loader.remote import looks_remote

    return len(sources) < MIN_ITEMS and not any(s != "-" and (os.path.isdir(s) or looks_remote(s))
                                                for s in sources)


@dataclass
class LoadedRun:
    """A request's input, loaded into its private run directory ``workdir`` (``loaded``: the
    :class:`~rlm_cli.context.LoadedContext`; ``backend``: the LM request path). :meth:`close`
    removes the directory (it holds a copy of the input)."""

    workdir: Path
    loaded: Any
    backend: str

    def close(self) -> None:
        """Remove the run directory (idempotent)."""
        from rlm_cli.repl.sandbox import remove_tree

        remove_tree(self.workdir)


def load_request(req: RunRequest) -> LoadedRun:
    """Check the trajectory target and the LM backend, then load ``req.sources`` into a fresh run
    directory (synchronous: it may fork a second loader process). The caller must ``close()`` the
    result. Raises :class:`~rlm_cli.errors.RlmError` subclasses for unusable input (a bad ``--log``
    target, nothing to load, a missing source)."""
    from rlm_cli.lm.client import check_backend, prewarm
    from rlm_cli.loader import load_sources

    backend = check_backend(os.environ.get("RLM_LM_BACKEND", "").strip().lower() or "auto")
    if req.log is not None and not req.no_log:
        from rlm_cli.trajectory.recorder import check_log_path

        check_log_path(req.log)
    from rlm_cli.run.rundirs import make_run_dir

    workdir = make_run_dir()  # with its owner's marker; stale ones of killed runs removed first
    run = LoadedRun(workdir, None, backend)
    settings = req.settings
    models = [settings.model, settings.sub_model or settings.model]
    # The client library's import (~1 s of CPU) overlaps the load and the REPL's start-up. A load that
    # may fork a second loader process (a directory, or MIN_ITEMS files or more) needs this process
    # single-threaded: then the import starts after the load.
    early = _load_cannot_fork(req.sources)
    try:
        if early:
            prewarm(models, backend)
        if req.build_context is not None:
            run.loaded = req.build_context(workdir / "context.txt")
        else:
            run.loaded = load_sources(req.sources, req.load_options, workdir / "context.txt")
        if not run.loaded.files:
            from rlm_cli.loader.remote import redact

            shown = " ".join(redact(s) for s in req.sources)
            raise UsageError("nothing to load: every file was skipped (see `rlm ls " + shown + "`)")
        if not early:
            prewarm(models, backend)
    except BaseException:
        run.close()
        raise
    return run


def answer_question(req: RunRequest, attach_view: Callable[[EventBus], Any]) -> RunOutcome:
    """Load, run and record one question as the whole process's work (``rlm ask``); returns the
    :class:`RunOutcome`.

    ``attach_view(bus)`` subscribes the caller's view to the run's events and returns it; its
    ``stream_root`` attribute (bool) asks for streamed root replies. SIGINT, SIGTERM and SIGHUP
    cancel the run (:func:`rlm_cli.run.interrupts.run_until_signal`); the outcome then has status
    ``interrupted`` and lists the signals. Raises :class:`~rlm_cli.errors.RlmError` subclasses for
    unusable input (a bad ``--log`` target, nothing to load, a missing source); everything after
    loading ends in the outcome, also interruptions.
    """
    from rlm_cli.run.interrupts import run_until_signal

    run = load_request(req)
    try:
        signals: list[int] = []
        prepared: list[RunOutcome] = []
        outcome = run_until_signal(run_loaded(req, run, attach_view, started=prepared.append), signals)
        if outcome is None:  # interrupted: the trajectory was written by the engine's RunFinished
            outcome = prepared[0]
        outcome.signals = signals
        return outcome
    finally:
        run.close()


async def run_question(req: RunRequest, attach_view: Callable[[EventBus], Any], *,
                       lm_semaphore: Any = None, started: Callable[[RunOutcome], Any] | None = None,
                       ) -> RunOutcome:
    """:func:`load_request` then :func:`run_loaded`, with no signal handling (the caller owns the event
    loop, e.g. ``rlm serve`` per request); the run directory is always removed. The load runs in a
    worker thread, so other tasks of the loop go on meanwhile (a threaded process loads in one
    process: :func:`rlm_cli.loader.parallel.available`); cancelled during the load, the run directory
    is removed once the thread is done. Arguments, result and errors as for :func:`run_loaded`."""
    import asyncio

    loading = asyncio.ensure_future(asyncio.to_thread(load_request, req))
    try:
        run = await asyncio.shield(loading)
    except asyncio.CancelledError:
        def discard(fut: asyncio.Future) -> None:
            if not fut.cancelled() and fut.exception() is None:
                fut.result().close()

        loading.add_done_callback(discard)
        raise
    try:
        return await run_loaded(req, run, attach_view, lm_semaphore=lm_semaphore, started=started)
    finally:  # removed in a worker thread (the loop serves other runs meanwhile), also when cancelled
        closing = asyncio.ensure_future(asyncio.to_thread(run.close))
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            closing.add_done_callback(lambda fut: fut.cancelled() or fut.exception())
            raise


class NestedSlots:
    """An async context manager holding a slot of ``own`` (one run's LM calls), then one of ``shared``
    (a bound over several runs), for as long as an LM request is in flight."""

    def __init__(self, own: Any, shared: Any) -> None:
        self.own, self.shared = own, shared

    async def __aenter__(self) -> None:
        await self.own.acquire()
        try:
            await self.shared.acquire()
        except BaseException:
            self.own.release()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self.shared.release()
        self.own.release()


async def run_loaded(req: RunRequest, run: LoadedRun, attach_view: Callable[[EventBus], Any], *,
                     lm_semaphore: Any = None, started: Callable[[RunOutcome], Any] | None = None,
                     ) -> RunOutcome:
    """The async core shared by ``rlm ask`` and ``rlm serve``: LM client + engine + trajectory over
    an input :func:`load_request` loaded.

    ``lm_semaphore`` (an :class:`asyncio.Semaphore`): when given, each LM call of the run holds one of
    its own ``limits.concurrency`` slots and one of this shared bound (several runs together). ``started(outcome)``
    is called once, just before the engine starts, with a provisional outcome (status
    ``interrupted``) that stands if the run is cancelled (its usage is refreshed then). Cancelling the
    task cancels the run: its REPLs are killed and its trajectory written (status ``interrupted``)
    before :class:`asyncio.CancelledError` propagates.
    """
    import asyncio

    from rlm_cli.lm.client import LMClient
    from rlm_cli.run import config, engine
    from rlm_cli.run.citations import check_answer as check_citations
    from rlm_cli.run.events import CitationsChecked, EventBus, Notice
    from rlm_cli.settings.endpoints import lm_endpoints
    from rlm_cli.trajectory.recorder import TrajectoryRecorder

    settings = req.settings
    model, sub_model = settings.model, settings.sub_model or settings.model
    cfg = config.RunConfig(question=req.question, root_model=model, sub_model=sub_model, limits=req.limits,
                           system_extra=req.system, model_aliases=dict(settings.aliases),
                           allowed_models=tuple(settings.allow_models), repl_network=req.repl_network,
                           mode=getattr(settings, "mode", None) or "rlm", make_repl=req.make_repl)
    if req.session is not None:
        cfg.run_id, cfg.session = req.session.id, req.session
    log_path = None if req.no_log else (req.log or default_log_path(cfg.run_id))
    recorder = (TrajectoryRecorder(log_path, prior=req.session.prior_doc, turn_extra=req.session.turn_extra,
                                   writer=req.log_writer)
                if req.session is not None else TrajectoryRecorder(log_path, writer=req.log_writer))
    bus = EventBus([recorder])
    view = attach_view(bus)
    cfg.stream_root = view.stream_root
    lm = LMClient(**lm_endpoints(settings), timeout_s=req.request_timeout, max_retries=settings.max_retries,
                  options=settings.options, prices=settings.prices, backend=run.backend, backend_override=req.lm_paths)
    if lm_semaphore is not None:
        lm._sem = NestedSlots(asyncio.Semaphore(max(1, req.limits.concurrency)), lm_semaphore)
    lm.on_retry = lambda message: bus.emit(Notice(message, level="info"))

    def outcome(result: config.RunResult) -> RunOutcome:
        return RunOutcome(result=result, run_id=cfg.run_id, models={"root": model, "sub": sub_model},
                          log_path=log_path, usage=recorder.doc.get("usage"),
                          duration_s=recorder.doc.get("duration_s"), write_errors=list(recorder.write_errors),
                          mode=recorder.doc.get("mode") or "rlm")

    provisional = outcome(config.RunResult("interrupted", None, {"type": "interrupted",
                                                                 "message": "interrupted by the user"}))
    if started is not None:
        started(provisional)
    try:
        async with lm:
            result = await engine.run(cfg, run.loaded, lm, bus, run.workdir / "repl")
        citations = check_citations(result.answer, run.loaded.files,
                                    {f.path: len(f.pages) for f in run.loaded.files if f.pages})
        if citations is not None:
            bus.emit(CitationsChecked(citations))
        done = outcome(result)
        done.citations = citations
        return done
    except BaseException:  # cancelled: the engine's RunFinished wrote the trajectory; refresh the numbers
        provisional.usage = recorder.doc.get("usage")
        provisional.duration_s = recorder.doc.get("duration_s")
        provisional.write_errors = list(recorder.write_errors)
        raise
