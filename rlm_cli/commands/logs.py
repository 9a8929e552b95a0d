"""``rlm logs``: recent runs from the log directory, newest first (``--json`` for scripts)."""

from __future__ import annotations

import json
import os
import sys

import typer

HELP = "List recent runs from the log directory: when, status, question, iterations, sub-calls, cost, path."


def logs_command(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array of runs instead of a table."),
    limit: int = typer.Option(20, "-n", "--limit", min=1, help="How many runs to list (newest first)."),
) -> None:
    from rlm_cli.paths import log_dir
    from rlm_cli.view import runs
    from rlm_cli.view.fmt import one_line, usd

    directory = log_dir()
    rows = [runs.summarize(p) for p in runs.list_runs(directory)[:limit]]
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    if not rows:
        print(f"rlm: no runs in {directory}", file=sys.stderr)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    tty = sys.stdout.isatty()
    console = Console(highlight=False, width=None if tty or os.environ.get("COLUMNS") else 160)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name, kw in (("when", {"no_wrap": True}), ("status", {"no_wrap": True}), ("question", {"ratio": 2}),
                     ("iter", {"justify": "right"}), ("sub-calls", {"justify": "right"}),
                     ("cost", {"justify": "right", "no_wrap": True}), ("path", {"overflow": "fold", "ratio": 3})):
        table.add_column(name, **kw)
    styles = {"answered": "green", "error": "red", "unreadable": "red", "running": "cyan"}
    for row in rows:
        status = row["status"] or "?"
        text = row["error"] if status == "unreadable" else row["question"]
        cells = [runs.local_time(row["started_at"]) if row["started_at"] else "?", status, one_line(text, 60),
                 "" if row["iterations"] is None else str(row["iterations"]),
                 "" if row["sub_calls"] is None else f"{row['sub_calls']:,}",
                 "" if status == "unreadable" else usd(row["cost_usd"]), row["path"]]
        texts = [Text(c) for c in cells]  # Text, not markup: a question may contain [brackets]
        texts[1].stylize(styles.get(status, "yellow"))
        table.add_row(*texts)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``logs`` to the app."""
    app.command("logs", help=HELP)(logs_command)
