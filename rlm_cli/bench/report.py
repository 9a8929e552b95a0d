"""The bench's numbers: per (suite, length, system) and per system, as a table and as JSON.

Every figure is a mean over the tasks of its group: ``accuracy`` (mean score, 0-1), ``cost_usd``
(USD per task; None when any task of the group is unpriced), ``input_tokens`` and ``output_tokens``
(per task, over all LM calls), ``duration_s`` (wall seconds per task), ``sub_calls`` (per task);
``failed``: how many runs ended in an error (a provider failure: they score 0); and ``malformed``: how
many answers were not answers (code, rlm's prompt text, a dump of REPL output, empty:
:func:`rlm_cli.run.answers.why_not_an_answer`); ``tokens_per_correct``: input + output tokens per
correct answer (summed tokens over summed scores; None when nothing scored).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from rlm_cli.bench.tasks import format_length

SCHEMA = "rlm-bench/1"


def summarise(rows: Iterable[Any]) -> dict:
    """The means of :class:`~rlm_cli.bench.runner.TaskResult` ``rows`` (see the module doc), with
    ``tasks`` (how many). An empty group has ``accuracy`` None."""
    rows = list(rows)
    n = len(rows)
    if not n:
        return {"tasks": 0, "accuracy": None, "cost_usd": None, "input_tokens": None, "output_tokens": None,
                "duration_s": None, "sub_calls": None, "failed": 0, "malformed": 0, "tokens_per_correct": None}
    costs = [r.cost_usd for r in rows]
    return {"tasks": n, "accuracy": round(sum(r.score for r in rows) / n, 4),
            "cost_usd": None if any(c is None for c in costs) else round(sum(costs) / n, 6),
            "input_tokens": round(sum(r.input_tokens for r in rows) / n, 1),
            "output_tokens": round(sum(r.output_tokens for r in rows) / n, 1),
            "duration_s": round(sum(r.duration_s for r in rows) / n, 3),
            "sub_calls": round(sum(r.sub_calls for r in rows) / n, 2),
            "failed": sum(1 for r in rows if r.status == "error"),
            "malformed": sum(1 for r in rows if getattr(r, "malformed", None)),
            "tokens_per_correct": tokens_per_correct(rows)}


MIN_CORRECT = 0.001  # summed score below which no answer counts as correct (tokens per correct: None)


def tokens_per_correct(rows: list[Any]) -> float | None:
    """Input + output tokens over all ``rows`` divided by their summed score (a task scored 0.5 is half
    a correct answer): what one correct answer costs in tokens. None when nothing scored (summed
    scores under :data:`MIN_CORRECT`: a count off by a hundred earns ~1e-15 of partial credit)."""
    correct = sum(r.score for r in rows)
    if correct < MIN_CORRECT:
        return None
    return round(sum(r.input_tokens + r.output_tokens for r in rows) / correct, 1)


def groups(results: list[Any], systems: list[str]) -> list[dict]:
    """One summary per (suite, length, system) present in ``results``, in first-seen order of
    suite and length, systems in ``systems`` order; each with ``suite``, ``length``, ``system``."""
    keys = list(dict.fromkeys((r.suite, r.length) for r in results))
    out = []
    for suite, length in keys:
        for system in systems:
            rows = [r for r in results if r.suite == suite and r.length == length and r.system == system]
            if rows:
                out.append({"suite": suite, "length": length, "system": system, **summarise(rows)})
    return out


def bench_doc(results: list[Any], *, systems: list[str], meta: dict, interrupted: bool) -> dict:
    """The ``--json`` object: ``schema``, ``status`` (``completed``/``interrupted``), the run's
    ``meta`` (seed, n, lengths, suites, models, ...), ``systems`` (system -> overall summary, with
    ``accuracy``), ``groups`` (per suite, length and system) and ``tasks`` (one row per task and
    system, with its ``trajectory`` path)."""
    return {"schema": SCHEMA, "status": "interrupted" if interrupted else "completed", **meta,
            "systems": {s: summarise(r for r in results if r.system == s) for s in systems},
            "groups": groups(results, systems),
            "tasks": [r.as_dict() for r in results]}


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "acc":
        return f"{value * 100:.1f}%"
    if kind == "usd":
        return f"${value:.4f}"
    if kind == "int":
        return f"{value:,.0f}"
    if kind == "s":
        return f"{value:.1f}s"
    return f"{value:g}"


COLUMNS = (("suite", "suite", None), ("length", "length", None), ("system", "system", None),
           ("n", "tasks", "int"), ("accuracy", "accuracy", "acc"), ("cost", "cost_usd", "usd"),
           ("tok in", "input_tokens", "int"), ("tok out", "output_tokens", "int"),
           ("time", "duration_s", "s"), ("sub-calls", "sub_calls", "num"), ("failed", "failed", "int"),
           ("malformed", "malformed", "int"), ("tok/correct", "tokens_per_correct", "int"))


def table_rows(doc: dict) -> list[list[str]]:
    """The table's cells (strings) for a :func:`bench_doc`: one row per group."""
    rows = []
    for g in doc["groups"]:
        cells = []
        for _, key, kind in COLUMNS:
            value = g[key]
            cells.append(format_length(value) if key == "length" else str(value) if kind is None else _fmt(value, kind))
        rows.append(cells)
    return rows


def print_table(doc: dict, stream: TextIO | None = None, rich: bool | None = None) -> None:
    """Print the table of ``doc`` on ``stream`` (default stdout), drawn with Rich: with a title and
    colour on a terminal (or ``rich=True``), plain text without trailing blanks otherwise. Cells are
    the bench's own text and numbers."""
    from rlm_cli.view.table import WIDE, new_table
    from rlm_cli.view.table import print_table as print_rich_table

    stream = sys.stdout if stream is None else stream
    rows = table_rows(doc)
    if rich is None:
        rich = bool(getattr(stream, "isatty", lambda: False)())
    table = new_table(title=f"rlm bench ({doc['status']})" if rich else None)
    for i, (head, _, _) in enumerate(COLUMNS):
        table.add_column(head, justify="left" if i < 3 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    print_rich_table(table, stream, width=None if rich else WIDE)  # a pipe's rows are never cut
    if not rows:
        print("(no task finished)", file=stream)
