"""Small text helpers shared by the views: one-line previews, control-character scrubbing, numbers.

Model output can contain anything, including terminal escape sequences; every string a view shows
goes through :func:`clean` (or :func:`one_line`) first, so neither the plain lines nor the live tree
ever carry an escape code that the model wrote.
"""

from __future__ import annotations

import re

# Whole escape sequences first (CSI ... final byte, OSC ... BEL/ST, two-byte ESC x), then any other
# C0 control except tab and newline, DEL, and C1 controls.
_ESCAPE = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
                     r"|\x1b[ -/]*[0-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str | None) -> str:
    """``text`` with control characters (escape codes included) removed; tabs become spaces."""
    if not text:
        return ""
    text = text.replace("\t", "    ").replace("\r\n", "\n")
    if "\x1b" in text or "\x9b" in text or "\x9d" in text:
        text = _ESCAPE.sub("", text)
    return _CONTROL.sub("", text)


def one_line(text: str | None, limit: int = 100) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters with an ellipsis."""
    text = " ".join(clean(text).split())
    if limit and len(text) > limit:
        return text[: max(0, limit - 1)] + "…"
    return text


def ascii_one_line(text: str | None, limit: int = 100) -> str:
    """Like :func:`one_line` but ending a cut with ``...`` (for the plain view)."""
    text = " ".join(clean(text).split())
    if limit and len(text) > limit:
        return text[: max(0, limit - 3)] + "..."
    return text


def head_lines(text: str | None, count: int, width: int = 0) -> tuple[list[str], int]:
    """The first ``count`` lines of ``text`` (each cut to ``width`` if given) and how many were left out."""
    lines = clean(text).rstrip("\n").split("\n") if text else []
    shown = lines[:count] if count else lines
    if width:
        shown = [ln if len(ln) <= width else ln[: width - 1] + "…" for ln in shown]
    return shown, len(lines) - len(shown)


def tail_lines(text: str | None, count: int, width: int = 0) -> tuple[list[str], int]:
    """The last ``count`` lines of ``text`` (each cut to ``width`` if given) and how many were left out."""
    lines = clean(text).rstrip("\n").split("\n") if text else []
    shown = lines[-count:] if count else lines
    if width:
        shown = [ln if len(ln) <= width else ln[: width - 1] + "…" for ln in shown]
    return shown, len(lines) - len(shown)


def tokens(n: int | None) -> str:
    """A token count, compact: ``950``, ``12.3k``, ``4.1M``."""
    n = n or 0
    if n < 10_000:
        return f"{n:,}"
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def seconds(s: float | None) -> str:
    """A duration: ``0.42s``, ``3.1s``, ``2m05s``; ``?`` when unknown."""
    if s is None:
        return "?"
    if s < 10:
        return f"{s:.2f}s"
    if s < 60:
        return f"{s:.1f}s"
    minutes, rest = divmod(int(round(s)), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def usd(cost: float | None) -> str:
    """A cost in USD, or ``$?`` when no call had a price."""
    if cost is None:
        return "$?"
    return f"${cost:.4f}" if cost < 10 else f"${cost:,.2f}"


def cost_report(usage: dict | None) -> list[str]:
    """One line per model from a run's ``usage`` (``by_model``): calls, input (cached) and output
    tokens, USD (``$?`` when the model has no price). Empty when there is nothing to report."""
    lines = []
    for model, u in ((usage or {}).get("by_model") or {}).items():
        cached = f" ({u.get('cached_tokens', 0):,} cached)" if u.get("cached_tokens") else ""
        lines.append(f"  {model}: {u.get('calls', 0):,} call(s), {u.get('input_tokens', 0):,} in{cached} / "
                     f"{u.get('output_tokens', 0):,} out tokens, {usd(u.get('cost_usd'))}")
    return lines
