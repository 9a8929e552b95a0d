"""Server-wide bounds: at most ``running`` RLMs at once; up to ``queue`` more requests wait; beyond
that a request is refused at once (429)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from rlm_cli.serve.errors import ApiError


class Admission:
    """Running slots (``running``) and a bounded wait (``queue`` requests). Create inside the loop."""

    def __init__(self, running: int, queue: int) -> None:
        self._sem = asyncio.Semaphore(max(1, running))
        self.max_queue = max(0, queue)
        self.waiting = 0
        self.running = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a running slot for the body of the ``async with``, waiting in the queue for it.
        Raises :class:`ApiError` 429 when every slot is taken and the queue is full."""
        if self._sem.locked() and self.waiting >= self.max_queue:
            raise ApiError(429, f"too many requests: {self.running} running and {self.waiting} queued; "
                           "retry later", "rate_limit_exceeded")
        self.waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._sem.release()
