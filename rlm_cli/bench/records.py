"""Labelled records for the ``oolong`` and ``pairs`` suites: one per line,
``[#00042] 2026-03-14 | user u4821 | label: billing | <a sentence>``."""

from __future__ import annotations

import random

from rlm_cli.bench.filler import sentence

LABELS = ("billing", "shipping", "refund", "account", "technical", "feedback", "security", "pricing", "returns",
          "warranty")


def user_ids(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct user ids ``u1000``-``u9999`` (``count`` at most 9,000)."""
    return [f"u{n}" for n in rng.sample(range(1000, 10000), count)]


def record(rng: random.Random, number: int, user: str, label: str) -> str:
    """One record line (no newline)."""
    return (f"[#{number:05d}] 2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} | user {user} | "
            f"label: {label} | {sentence(rng)}")


def records_for(chars: int, average: int = 110) -> int:
    """About how many records fit ``chars`` characters (at least 8)."""
    return max(8, chars // average)
