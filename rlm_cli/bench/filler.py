"""Filler text for bench haystacks: service log lines and prose sentences that look like real text
(varied words, numbers, timestamps), never one repeated line. Every function draws only from the
:class:`random.Random` it is given."""

from __future__ import annotations

import random

SERVICES = ("api-gateway", "billing", "auth", "search", "scheduler", "inventory", "mailer", "reports",
            "uploads", "payments", "notifier", "cache", "ledger", "exporter")
LEVELS = ("INFO", "INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR")
ACTIONS = ("request handled", "cache miss", "cache hit", "job finished", "job queued", "retrying upstream call",
           "connection opened", "connection closed", "token refreshed", "batch flushed", "slow query",
           "healthcheck ok", "rate limit near", "config reloaded", "worker idle", "file rotated")
PATHS = ("/v1/orders", "/v1/users", "/v1/search", "/v1/invoices", "/v2/items", "/v1/login", "/healthz",
         "/v1/reports/daily", "/v1/export", "/v2/carts")
SUBJECTS = ("The committee", "Our team", "The river", "A traveller", "The old library", "The market",
            "Every engineer", "The harbour master", "A small bakery", "The museum", "The orchestra",
            "The city council", "A quiet village", "The research group", "The night train")
VERBS = ("considered", "described", "remembered", "measured", "ignored", "celebrated", "questioned",
         "rebuilt", "painted", "visited", "studied", "announced", "postponed", "welcomed", "revised")
OBJECTS = ("the northern bridge", "a forgotten recipe", "the autumn schedule", "three wooden boats",
           "the annual report", "a long winter", "the new timetable", "an unusual storm",
           "the lighthouse", "a box of letters", "the garden wall", "the harvest festival",
           "an early draft", "the western road", "a set of maps")
TAILS = ("before the rain started", "after a long debate", "with little enthusiasm", "for the second time",
         "despite the cost", "as everyone expected", "without much notice", "late in the evening",
         "during the spring", "in great detail", "once again", "to general surprise")


def log_line(rng: random.Random) -> str:
    """One service log line (no newline), about 90-130 characters."""
    day, hour, minute, sec = rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    return (f"2026-03-{day:02d}T{hour:02d}:{minute:02d}:{sec:02d}Z {rng.choice(LEVELS):<5} "
            f"{rng.choice(SERVICES)}[{rng.randint(100, 9999)}] {rng.choice(ACTIONS)} "
            f"path={rng.choice(PATHS)} status={rng.choice((200, 200, 200, 201, 204, 304, 404, 500))} "
            f"latency_ms={rng.randint(1, 2400)} req={rng.getrandbits(32):08x}")


def sentence(rng: random.Random) -> str:
    """One prose sentence (no newline), 40-100 characters."""
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}."


def paragraph(rng: random.Random) -> str:
    """Two to five sentences on one line."""
    return " ".join(sentence(rng) for _ in range(rng.randint(2, 5)))


def filler_line(rng: random.Random) -> str:
    """A log line (about two in three) or a prose paragraph."""
    return log_line(rng) if rng.random() < 0.65 else paragraph(rng)


def filler_lines(rng: random.Random, chars: int) -> list[str]:
    """Lines (without newlines) whose lengths plus one newline each add up to at most ``chars``
    characters, and to within one line of it."""
    lines: list[str] = []
    used = 0
    while True:
        line = filler_line(rng)
        if used + len(line) + 1 > chars:
            return lines
        lines.append(line)
        used += len(line) + 1
