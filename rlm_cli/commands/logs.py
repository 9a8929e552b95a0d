"""``rlm logs``: recent runs from the log directory, newest first (``--json`` for scripts)."""

from __future__ import annotations

import sys

import typer

HELP = "List recent runs from the log directory: when, status, question, iterations, sub-calls, cost, path."


def logs_command(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array of runs instead of a table."),
    limit: int = typer.Option(20, "-n", "--limit", min=1, help="How many runs to list (newest first)."),
) -> None:
    """List the newest ``limit`` runs of the log directory as aligned columns, or as JSON."""
    from rlm_cli.settings.paths import log_dir
    from rlm_cli.trajectory import store
    from rlm_cli.view.fmt import one_line, usd
    from rlm_cli.view.safe import inline

    directory = log_dir()
    rows = [store.summarize(p) for p in store.list_runs(directory)[:limit]]
    if as_json:
        from rlm_cli.view.safe import json_text

        sys.stdout.write(json_text(rows) + "\n")
        return
    if not rows:
        print(f"rlm: no runs in {inline(directory)}", file=sys.stderr)
        return
    from rich.console import Console
    from rich.text import Text

    header = ["when", "status", "question", "iter", "sub-calls", "cost", "path"]
    table = []
    for row in rows:
        # Every field comes from a file in the log directory: hostile text, made visible.
        status = inline(row["status"] or "?", 20)
        text = row["error"] if status == "unreadable" else row["question"]
        if status != "unreadable" and isinstance(row.get("turns"), int) and row["turns"] > 1:
            text = f"(question {row['turns']}) {text}"  # a conversation: its latest question
        started = inline(store.local_time(str(row["started_at"])), 25) if row["started_at"] else "?"
        table.append([started, status, one_line(text, 50),
                      "" if row["iterations"] is None else str(row["iterations"]),
                      "" if row["sub_calls"] is None else f"{row['sub_calls']:,}",
                      "" if status == "unreadable" else _cost(row["cost_usd"], usd), inline(row["path"])])
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header) - 1)]
    right = {3, 4, 5}
    styles = {"answered": "green", "error": "red", "unreadable": "red", "running": "cyan"}
    console = Console(highlight=False, soft_wrap=True)  # no wrapping, no cropping: paths stay whole

    def line(cells: list[str], style: str = "", status_style: str = "") -> Text:
        out = Text(style=style)
        for i, cell in enumerate(cells[:-1]):
            out.append(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]),
                       style=status_style if i == 1 else "")
            out.append("  ")
        out.append(cells[-1])
        return out  # Text, not markup: a question may contain [brackets]

    console.print(line(header, style="bold"))
    for cells in table:
        console.print(line(cells, status_style=styles.get(cells[1], "yellow")))


def _cost(value, usd) -> str:
    """``usd(value)`` for a number; ``?`` for anything else a damaged log may hold."""
    return usd(value) if value is None or isinstance(value, int | float) else "?"


def register(app: typer.Typer) -> None:
    """Add ``logs`` to the app."""
    app.command("logs", help=HELP)(logs_command)
