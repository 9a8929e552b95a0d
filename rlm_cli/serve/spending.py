"""The server-wide spending limit (``--max-total-cost``): USD over the server's life or a rolling window.

Each run reserves, before it starts, the most it may spend: its cost budget (the request's
``rlm.max_cost`` or the server's ``--max-cost``), or everything still available when it has none.
The run's ``max_cost`` becomes that reservation, which the engine enforces (no LM call starts once
it is reached; the call in flight may pass it by its own cost). When the run ends the reservation is
replaced by what it really spent. A request that finds nothing left is refused 429
``spending_limit``. With a window (``5/h``), spending older than the window no longer counts.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

from rlm_cli.serve.errors import ApiError


class Spending:
    """``limit`` USD (None: no limit) per ``window`` seconds (None: the server's lifetime).
    ``clock`` returns seconds (monotonic). Use from the event loop's thread only."""

    def __init__(self, limit: float | None, window: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self.reserved = 0.0
        self.runs = 0  # runs holding a reservation
        self._spent: collections.deque[tuple[float, float]] = collections.deque()  # (time, USD)

    def spent(self) -> float:
        """USD spent within the window (all of it without a window)."""
        if self.window is not None:
            horizon = self.clock() - self.window
            while self._spent and self._spent[0][0] <= horizon:
                self._spent.popleft()
        return sum(usd for _, usd in self._spent)

    def _describe(self) -> str:
        per = {3600.0: " per hour", 86400.0: " per day"}.get(self.window or 0.0, "")
        return f"--max-total-cost ${self.limit:g}{per}"

    def reserve(self, budget: float | None) -> float | None:
        """Reserve for one run at most ``budget`` USD (None: all that is available); returns the
        run's cost budget (``budget`` itself when there is no limit). Raises :class:`ApiError` 429
        ``spending_limit`` when nothing is available."""
        if self.limit is None:
            return budget
        spent = self.spent()
        available = self.limit - spent - self.reserved
        if available <= 1e-12:
            detail = f"${spent:.4f} spent"
            if self.reserved > 0:
                detail += (f", ${self.reserved:.4f} reserved by {self.runs} running request(s) (give requests "
                           "a cost budget, rlm.max_cost or --max-cost, to let them run side by side)")
            when = "retry later"
            if self.window is not None and self._spent:
                when = f"retry in about {max(1, int(self._spent[0][0] + self.window - self.clock()) + 1)} s"
            raise ApiError(429, f"the server's spending limit ({self._describe()}) is reached: {detail}; {when}",
                           "spending_limit")
        amount = available if budget is None else min(budget, available)
        self.reserved += amount
        self.runs += 1
        return amount

    def settle(self, reserved: float | None, spent_usd: float | None) -> None:
        """A run that reserved ``reserved`` USD ended having spent ``spent_usd`` (None: nothing known)."""
        if self.limit is None:
            return
        self.reserved = max(0.0, self.reserved - (reserved or 0.0))
        self.runs = max(0, self.runs - 1)
        self.record(spent_usd)

    def record(self, usd: float | None) -> None:
        """Count ``usd`` spent outside a run (the JSON repair turn); None or 0 is ignored."""
        if self.limit is not None and usd:
            self._spent.append((self.clock(), float(usd)))
