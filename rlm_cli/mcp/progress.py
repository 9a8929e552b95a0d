"""A run's events turned into MCP progress notifications (``notifications/progress``).

:class:`ProgressTracker` is an event-bus sink (synchronous, on the run's loop): it counts the root
iteration, sub-calls done / running / queued and the cost so far. :meth:`ProgressTracker.pump`
sends one notification per change, at most every :data:`MIN_INTERVAL_S`, through the SDK's
``report_progress`` (a no-op when the client sent no progress token). The progress value is a
counter that grows with every notification (the protocol requires it to increase); the numbers are
in the message.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from rlm_cli.run import events as ev

MIN_INTERVAL_S = 0.2
"""Seconds between two progress notifications of one call (changes in between are merged)."""


class ProgressTracker:
    """Counts of a running run, from its events (see the module doc). ``iteration``: the root's
    current iteration (1-based, 0 before the first); ``done``/``running``/``queued``: sub-calls;
    ``cost_usd``: USD so far (None while no call had a price)."""

    stream_root = False  # as a view: no streamed root replies

    def __init__(self) -> None:
        self.iteration = 0
        self.done = 0
        self.cost_usd: float | None = None
        self._queued_ids: set[str] = set()
        self._running_ids: set[str] = set()
        self._batch_pending = 0
        self.changed = asyncio.Event()

    @property
    def running(self) -> int:
        return len(self._running_ids)

    @property
    def queued(self) -> int:
        return len(self._queued_ids) + max(0, self._batch_pending)

    def _cost(self, usage: ev.Usage) -> None:
        if usage.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + usage.cost_usd

    def __call__(self, event: Any) -> None:
        """The bus sink: update the counts; wake the pump."""
        if isinstance(event, ev.IterationStarted) and event.depth == 0:
            self.iteration = event.index + 1
        elif isinstance(event, ev.RootReply):
            self._cost(event.usage)
        elif isinstance(event, ev.BatchQueued):
            self._batch_pending += event.count
        elif isinstance(event, ev.BatchDone):
            self._batch_pending -= event.not_started
        elif isinstance(event, ev.SubCallStarted):
            if event.batched:
                self._batch_pending -= 1
            self._queued_ids.add(event.call_id)
        elif isinstance(event, ev.SubCallSent):
            self._queued_ids.discard(event.call_id)
            self._running_ids.add(event.call_id)
        elif isinstance(event, ev.SubCallFinished):
            self._queued_ids.discard(event.call_id)
            self._running_ids.discard(event.call_id)
            self.done += 1
            self._cost(event.usage)
        else:
            return
        self.changed.set()

    def message(self) -> str:
        """One line: ``iteration 3; sub-calls 5 done, 2 running, 4 queued; $0.0123``."""
        cost = "cost unknown" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        return (f"iteration {self.iteration}; sub-calls {self.done} done, {self.running} running, "
                f"{self.queued} queued; {cost}")

    async def pump(self, report: Any) -> None:
        """Send ``report(progress, total, message)`` after each change (merged over
        :data:`MIN_INTERVAL_S`) until cancelled; a failed send stops the pump, never the run."""
        tick = 0
        last = None
        while True:
            await self.changed.wait()
            self.changed.clear()
            text = self.message()
            if text != last:
                tick += 1
                last = text
                try:
                    await report(float(tick), None, text)
                except Exception:  # noqa: BLE001 - the client went away: the run decides what happens
                    return
            await asyncio.sleep(MIN_INTERVAL_S)


async def stop(task: asyncio.Task | None) -> None:
    """Cancel a pump task and wait for it."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
