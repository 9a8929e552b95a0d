"""Small text helpers shared by the views: one-line previews, control-character scrubbing, numbers.

Model output can contain anything, including terminal escape sequences; every string a view shows
goes through :func:`clean` (or :func:`one_line`, or :func:`rlm_cli.view.safe.inline` for names)
first, so neither the plain lines nor the live tree ever carry an escape code that the model wrote:
control characters are made visible (``\\x1b``; see :mod:`rlm_cli.view.safe`), not obeyed.
"""

from __future__ import annotations

from rlm_cli.view.safe import inline, visible


def clean(text: object) -> str:
    """``text`` with control characters (escape codes included) made visible, tabs as four spaces.

    ``None`` gives ``""``; newlines are kept (``\\r\\n`` as ``\\n``). Never raises."""
    if not text:
        return ""
    return visible(text).replace("\t", "    ")


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


def usd(cost: float | None, unknown: str = "cost unknown") -> str:
    """A cost in USD (``$0.0123``), or ``unknown`` (default ``"cost unknown"``) when no call had a price."""
    if cost is None:
        return unknown
    return f"${cost:.4f}" if cost < 10 else f"${cost:,.2f}"


def cost_report(usage: dict | None) -> list[str]:
    """One line per model from a run's ``usage`` (``by_model``): calls, input (cached) and output
    tokens, USD ("cost unknown" when the model has no price). Empty when there is nothing to report."""
    lines = []
    for model, u in ((usage or {}).get("by_model") or {}).items():
        cached = f" ({u.get('cached_tokens', 0):,} cached)" if u.get("cached_tokens") else ""
        lines.append(f"  {inline(model, 120)}: {u.get('calls', 0):,} call(s), {u.get('input_tokens', 0):,} in{cached} / "
                     f"{u.get('output_tokens', 0):,} out tokens, {usd(u.get('cost_usd'))}")
    return lines
