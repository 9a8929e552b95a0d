"""Budgets that are guarantees, and the usage they are measured against.

Checked before every LM call (:meth:`Budget.check_call`) and every sub-call
(:meth:`Budget.reserve_sub_call`, which counts calls already in flight), so the run never makes more
sub-calls than ``max_sub_calls`` over all depths and never starts an LM call once ``max_cost`` (USD)
or ``max_tokens`` (input + output tokens, all calls) is reached or the ``timeout`` (seconds, whole
run) has passed. Addresses the paper's stated limitation that RLMs give "no strong guarantees on API
cost or runtime" (arXiv 2512.24601, Limitations).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from rlm_cli.errors import BudgetExceeded

if TYPE_CHECKING:  # a type only: `rlm --help` imports this module for its defaults
    from rlm_cli.run.events import Usage


@dataclass
class Limits:
    """The budgets in force. ``None`` means unlimited. Units: seconds, USD, tokens, counts."""

    max_iterations: int = 20
    max_depth: int = 1
    max_sub_calls: int | None = 1000
    max_cost: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None
    step_timeout: float = 120.0
    concurrency: int = 8
    max_output_chars: int = 20_000

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class UsageTotals:
    """Summed usage of a group of LM calls. ``cost_usd`` is None when none of them had a price."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    unpriced_calls: int = 0

    def add(self, usage: Usage) -> None:
        self.calls += 1
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cached_tokens += usage.cached_tokens
        if usage.cost_usd is None:
            self.unpriced_calls += 1
        else:
            self.cost_usd = (self.cost_usd or 0.0) + usage.cost_usd

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Budget:
    """Live accounting for one run, shared by every depth.

    ``root`` holds the top-level root LM's calls; ``sub`` every other call (sub-LMs and the LM calls
    of recursive RLMs); ``by_model`` the same per model. ``exhausted`` names the first budget that
    refused a call (``sub_calls``, ``cost``, ``tokens``, ``timeout``), or None.
    """

    limits: Limits
    started: float = field(default_factory=time.monotonic)
    sub_calls: int = 0
    refused_sub_calls: int = 0
    root: UsageTotals = field(default_factory=UsageTotals)
    sub: UsageTotals = field(default_factory=UsageTotals)
    by_model: dict[str, UsageTotals] = field(default_factory=dict)
    exhausted: str | None = None

    @property
    def cost_usd(self) -> float:
        """USD spent so far on priced calls."""
        return (self.root.cost_usd or 0.0) + (self.sub.cost_usd or 0.0)

    @property
    def tokens(self) -> int:
        """Input plus output tokens so far, all calls."""
        return sum(t.input_tokens + t.output_tokens for t in (self.root, self.sub))

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    def remaining_time(self) -> float | None:
        """Seconds left before ``timeout``, or None without one."""
        if self.limits.timeout is None:
            return None
        return self.limits.timeout - self.elapsed()

    def _refuse(self, name: str, message: str) -> BudgetExceeded:
        if self.exhausted is None:
            self.exhausted = name
        return BudgetExceeded(name, message)

    def check_call(self) -> None:
        """Raise :class:`BudgetExceeded` if no LM call may start now (cost, tokens or time)."""
        lim = self.limits
        if lim.max_cost is not None and self.cost_usd >= lim.max_cost:
            raise self._refuse("cost", f"cost budget of ${lim.max_cost:.4f} reached (${self.cost_usd:.4f} spent)")
        if lim.max_tokens is not None and self.tokens >= lim.max_tokens:
            raise self._refuse("tokens", f"token budget of {lim.max_tokens:,} reached ({self.tokens:,} used)")
        left = self.remaining_time()
        if left is not None and left <= 0:
            raise self._refuse("timeout", f"timeout of {lim.timeout:g}s reached")

    def reserve_sub_call(self) -> None:
        """Count one sub-call before it starts (calls in flight included); raises when refused."""
        lim = self.limits
        if lim.max_sub_calls is not None and self.sub_calls >= lim.max_sub_calls:
            raise self._refuse("sub_calls", f"sub-call budget of {lim.max_sub_calls:,} reached")
        self.check_call()
        self.sub_calls += 1

    def batch_allowance(self, count: int) -> int:
        """How many of ``count`` sub-calls asked for at once may still start: ``min(count, sub-calls
        left)``. Reserves nothing (each call still goes through :meth:`reserve_sub_call`, which also
        re-checks cost, tokens and time as the batch proceeds). Raises :class:`BudgetExceeded` when
        none may start (sub-calls, cost, tokens or time already spent)."""
        lim = self.limits
        if lim.max_sub_calls is not None:
            left = lim.max_sub_calls - self.sub_calls
            if left <= 0:
                raise self._refuse("sub_calls", f"sub-call budget of {lim.max_sub_calls:,} reached")
            count = min(count, left)
        self.check_call()
        return max(0, count)

    def record(self, model: str, usage: Usage, role: str) -> None:
        """Account one finished LM call; ``role`` is ``"root"`` (top-level root LM) or ``"sub"``."""
        (self.root if role == "root" else self.sub).add(usage)
        self.by_model.setdefault(model, UsageTotals()).add(usage)

    def usage_dict(self) -> dict:
        """The trajectory's ``usage`` field."""
        priced = self.root.cost_usd is not None or self.sub.cost_usd is not None
        return {
            "root": self.root.as_dict(),
            "sub": self.sub.as_dict(),
            "total_cost_usd": self.cost_usd if priced else None,
            "sub_calls": self.sub_calls,
            "refused_sub_calls": self.refused_sub_calls,
            "by_model": {m: t.as_dict() for m, t in self.by_model.items()},
        }

    def status_line(self) -> str:
        """One line on what is left of each budget, for the root LM and the view."""
        lim = self.limits
        parts = [f"sub-calls {self.sub_calls}" + (f"/{lim.max_sub_calls}" if lim.max_sub_calls else "")]
        if lim.max_cost is not None:
            parts.append(f"cost ${self.cost_usd:.4f}/${lim.max_cost:.2f}")
        if lim.max_tokens is not None:
            parts.append(f"tokens {self.tokens:,}/{lim.max_tokens:,}")
        if lim.timeout is not None:
            parts.append(f"time {self.elapsed():.0f}s/{lim.timeout:g}s")
        return ", ".join(parts)
