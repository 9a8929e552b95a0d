"""A conversation's questions, for ``rlm show``: one line per turn of a session's trajectory.

The trajectory is hostile text (a saved file): every string goes through :mod:`rlm_cli.view.fmt`.
"""

from __future__ import annotations

from rich.text import Text

from rlm_cli.view import fmt
from rlm_cli.view.safe import inline


def session_turns(doc: dict) -> list[dict]:
    """The turns of ``doc``'s ``session`` (dicts; none when absent or malformed)."""
    session = doc.get("session")
    turns = session.get("turns") if isinstance(session, dict) else None
    return [t for t in turns if isinstance(t, dict)] if isinstance(turns, list) else []


def turns_text(doc: dict, full: bool = False) -> Text | None:
    """``conversation ID · N questions`` and a line per question (status, answer preview, the root
    iterations it holds), or None when the run is a single question."""
    turns = session_turns(doc)
    if len(turns) < 2:
        return None
    out = Text()
    out.append(f"conversation {inline(doc.get('id'), 80)} · {len(turns)} questions\n", style="bold")
    for n, turn in enumerate(turns, 1):
        its = turn.get("iterations")
        span = ""
        if isinstance(its, list) and len(its) == 2 and all(isinstance(i, int) for i in its):
            span = f" · iterations {its[0] + 1}-{its[1]}" if its[1] > its[0] else " · no iterations"
        status = inline(turn.get("status"), 30)
        out.append(f"  {n}. ", style="bold")
        out.append(fmt.one_line(turn.get("question"), 0 if full else 120))
        out.append(f"\n     {status}{span}", style="green" if status == "answered" else "yellow")
        if turn.get("answer") is not None:
            out.append(" → " + fmt.one_line(turn.get("answer"), 0 if full else 100), style="dim")
        out.append("\n")
    return out
