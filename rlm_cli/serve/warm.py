"""Warm REPLs: ``rlm serve`` starts the next requests' REPLs before the requests arrive.

A REPL start (sandbox plan, a Python child that builds ``context``) took ~170 ms under load, about as
long as a fast first LM call it overlaps, and closing one (kill, wait, cgroup and directory removal)
another ~25 ms before the answer could be sent. :class:`WarmPool` keeps up to ``size`` REPLs started
over the server's loaded SOURCEs (:class:`~rlm_cli.serve.cache.SourceCache`'s current snapshot), each
in its own private run directory. A request whose context is exactly those SOURCEs (no other
messages) takes a ready one (:meth:`WarmPool.take`; never one still starting: the run then starts
its own, as before) and the pool starts a replacement. Its REPL is closed in the background
(:meth:`WarmRepl.close` returns at once), so the answer does not wait for the kill.

Isolation: a warm REPL serves exactly one request. It is handed out once (removed from the pool),
killed when that request's run ends and never given to another, so no variable, file or process of
one request is seen by the next. Requests with other messages (their context differs) and REPL
restarts after a step timeout start cold REPLs, as ``rlm ask`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from rlm_cli.repl.process import ReplProcess


class WarmRepl(ReplProcess):
    """A :class:`~rlm_cli.repl.process.ReplProcess` started ahead over a cache ``snapshot``, in the
    private run directory ``rundir`` (its workdir is ``rundir/r0``). :meth:`start` is a no-op while
    the child started ahead is alive (a restart starts a fresh one); :meth:`close` ends it in the
    background and returns at once."""

    def __init__(self, pool: WarmPool, snapshot: Any, rundir: Path, sandbox: Any) -> None:
        super().__init__(snapshot.loaded.path, snapshot.loaded.index(), rundir / "r0", sandbox=sandbox)
        self.snapshot, self.rundir, self._pool = snapshot, rundir, pool
        self._closing: asyncio.Task | None = None

    def alive(self) -> bool:
        """Whether the child started ahead is still running."""
        return self.proc is not None and self.proc.returncode is None and self._writer is not None

    async def start(self) -> None:
        if self.alive() and self._closing is None:
            return
        await super().start()

    async def close(self) -> None:
        """Kill the child and remove its directories in a background task (tracked by the pool,
        awaited at shutdown); idempotent."""
        if self._closing is None:
            self._closing = self._pool.background(self._finish())

    async def _finish(self) -> None:
        # ReplProcess.close: the kill's signals and the clean-up (cgroup, the parent's descriptors,
        # the whole run directory) in worker threads.
        await ReplProcess.close(self)

    def _removed_on_close(self) -> Path:
        return self.rundir


def _prepare(network: bool) -> tuple[Path, Any]:
    """A new private run directory and the sandbox plan for its REPL's workdir (``rundir/r0``), made
    in one worker thread (off the loop). The directory is removed again when the plan fails."""
    from rlm_cli.repl.sandbox import plan_sandbox, remove_tree
    from rlm_cli.run.rundirs import make_run_dir

    rundir = make_run_dir()
    try:
        return rundir, plan_sandbox(str((rundir / "r0").resolve()), network)
    except BaseException:
        remove_tree(rundir)
        raise


class WarmPool:
    """Up to ``size`` REPLs started over the SOURCEs' snapshot, ``network``: the REPLs' network
    switch (``rlm serve --repl-network``). Use on one event loop; :meth:`close` at shutdown.
    ``taken`` and ``started`` count REPLs handed out and started (for tests and the benchmark)."""

    def __init__(self, size: int, network: bool = False) -> None:
        self.size = max(0, size)
        self.network = network
        self.taken = 0
        self.started = 0
        self._ready: list[WarmRepl] = []
        self._starting: set[asyncio.Task] = set()
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    def background(self, coro: Any) -> asyncio.Task:
        """Run ``coro`` as a task the pool awaits at :meth:`close`."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failed start or close is not worth a loop warning

    def take(self, snapshot: Any) -> WarmRepl | None:
        """A ready REPL over ``snapshot`` (None when none is ready), handed out once; the pool then
        starts replacements. REPLs over an older snapshot, or whose child died, are closed."""
        if self._closed or self.size == 0 or snapshot is None:
            return None
        for repl in [r for r in self._ready if r.snapshot is not snapshot or not r.alive()]:
            self._ready.remove(repl)
            self.background(repl.close())
        repl = self._ready.pop(0) if self._ready else None
        if repl is not None:
            self.taken += 1
        self.fill(snapshot)
        return repl

    def fill(self, snapshot: Any) -> None:
        """Start REPLs over ``snapshot`` until ``size`` are ready or starting."""
        while not self._closed and len(self._ready) + len(self._starting) < self.size:
            task = self.background(self._start(snapshot))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _start(self, snapshot: Any) -> None:
        from rlm_cli.repl.sandbox import remove_tree

        rundir, plan = await asyncio.to_thread(_prepare, self.network)
        try:
            repl = WarmRepl(self, snapshot, rundir, plan)
        except BaseException:
            await asyncio.to_thread(remove_tree, rundir)
            raise
        try:
            await ReplProcess.start(repl)
        except BaseException:
            await repl.close()
            raise
        self.started += 1
        if self._closed:
            await repl.close()
        else:
            self._ready.append(repl)

    async def close(self) -> None:
        """Stop starting, close every REPL not handed out and wait for all the pool's closes."""
        self._closed = True
        for task in list(self._starting):
            task.cancel()
        for repl in self._ready:
            await repl.close()
        self._ready.clear()
        while self._tasks:
            with contextlib.suppress(BaseException):
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
