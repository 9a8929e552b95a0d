"""``rlm logs``: recent runs from the log directory, newest first (``--json`` for scripts)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

HELP = ("List recent runs from the log directory: id (what `rlm show ID` takes), when, status, question, "
        "iterations, sub-calls, cost. --json adds each trajectory's path.")


def logs_command(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array of runs instead of a table."),
    limit: int = typer.Option(20, "-n", "--limit", min=1, help="How many runs to list (newest first)."),
) -> None:
    """List the newest ``limit`` runs of the log directory as a table (never wider than the terminal:
    the question is cut with ``…``), or as JSON."""
    from rlm_cli.settings.paths import log_dir
    from rlm_cli.trajectory import store
    from rlm_cli.view.fmt import one_line, usd
    from rlm_cli.view.safe import inline

    directory = log_dir()
    rows = [store.summarize(p) for p in store.list_runs(directory)[:limit]]
    if as_json:
        from rlm_cli.view.pipe import stdout_may_close
        from rlm_cli.view.safe import json_text

        with stdout_may_close():
            sys.stdout.write(json_text(rows) + "\n")
        return
    if not rows:
        print(f"rlm: no runs in {inline(directory)}", file=sys.stderr)
        return
    from rich.text import Text

    from rlm_cli.view.table import new_table, print_table
    from rlm_cli.view.words import STATUS_WORDS

    table = new_table()
    table.add_column("id", no_wrap=True)  # what `rlm show ID` takes
    table.add_column("when", no_wrap=True)  # local MM-DD HH:MM
    table.add_column("status", no_wrap=True)
    table.add_column("question", no_wrap=True, overflow="ellipsis", min_width=12)
    for head in ("iter", "calls", "cost"):
        table.add_column(head, justify="right", no_wrap=True)
    styles = {"answered": "green", "error": "red", "unreadable": "red", "running": "cyan"}
    for row in rows:
        # Every field comes from a file in the log directory: hostile text, made visible.
        raw_status = row["status"] if isinstance(row["status"], str) else "?"
        status = STATUS_WORDS.get(raw_status, inline(raw_status, 15))
        text = row["error"] if raw_status == "unreadable" else row["question"]
        if raw_status != "unreadable" and isinstance(row.get("turns"), int) and row["turns"] > 1:
            text = f"(question {row['turns']}) {text}"  # a conversation: its latest question
        run_id = inline(row["id"], 40) if row["id"] else inline(Path(row["path"]).name, 40)
        started = _when(store.local_time(str(row["started_at"]))) if row["started_at"] else "?"
        table.add_row(Text(run_id), Text(started), Text(status, style=styles.get(raw_status, "yellow")),
                      Text(one_line(text, 200)),
                      "" if row["iterations"] is None else str(row["iterations"]),
                      "" if row["sub_calls"] is None else f"{row['sub_calls']:,}",
                      "" if raw_status == "unreadable" else _cost(row["cost_usd"], usd))
    from rlm_cli.view.pipe import stdout_may_close
    from rlm_cli.view.table import fit_column, stream_width

    width = stream_width(sys.stdout)
    fit_column(table, 3, width)  # the question takes what the other columns leave: no line wraps
    with stdout_may_close():
        print_table(table, sys.stdout, width=width)


def _when(local: str) -> str:
    """``YYYY-MM-DD HH:MM:SS`` -> ``MM-DD HH:MM``; anything else (an unparsable time) made visible."""
    from rlm_cli.view.safe import inline

    return local[5:16] if len(local) >= 16 and local[4] == "-" and local[10] == " " else inline(local, 25)


def _cost(value, usd) -> str:
    """``usd(value)`` for a number; ``?`` when unknown (no call had a price) or not a number."""
    return usd(value, unknown="?") if isinstance(value, int | float) and not isinstance(value, bool) else "?"


def register(app: typer.Typer) -> None:
    """Add ``logs`` to the app."""
    app.command("logs", help=HELP)(logs_command)
