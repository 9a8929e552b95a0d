"""``rlm show [TRAJECTORY]``: a saved run as a tree (the latest run by default), or as HTML.

The tree is the live view's (:mod:`rlm_cli.view.render`), fully expanded: every iteration, code
step and sub-call, with output previews; ``--full`` shows complete code, outputs, root replies and
sub-call prompts and responses. ``--html FILE`` writes one self-contained page instead; ``--json``
prints the trajectory document itself (schema ``rlm-trajectory/1``, docs/json-output.md). A saved run
is hostile text: every string in it is shown with its control characters made visible
(:mod:`rlm_cli.view.safe`), on a terminal and on a pipe alike (this is a human rendering; the
trajectory file itself is the machine format).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from rlm_cli.errors import UsageError

HELP = ("Show a saved run as a tree: TRAJECTORY is a trajectory file or a run id, as `rlm logs` lists "
        "them (default: the latest run in the log directory).")


def complete_run_id(incomplete: str) -> list[tuple[str, str]]:
    """Shell completion of run ids: the ids in the log directory that start with ``incomplete``,
    newest first, each with its start time (local) as help. Reads file names only (never a
    trajectory), so a Tab stays fast with thousands of runs; never raises. Usable for any option
    that takes a run id (``rlm ask --resume``)."""
    try:
        from rlm_cli.settings.paths import log_dir
        from rlm_cli.trajectory import store

        out: dict[str, str] = {}
        for path in store.list_runs(log_dir()):
            found = store.run_id_of(path)
            if found and found[1].startswith(incomplete) and found[1] not in out:
                out[found[1]] = store.local_time(found[0])
        return list(out.items())[:200]
    except Exception:  # completion must never print a traceback into the user's shell
        return []


def show_command(
    trajectory: str = typer.Argument(None, metavar="TRAJECTORY", autocompletion=complete_run_id,
                                     help="A trajectory .json file or a run id (default: the latest run)."),
    full: bool = typer.Option(False, "--full", help="Complete code, outputs, replies, prompts and responses."),
    html: Path = typer.Option(None, "--html", metavar="OUT.html",
                              help="Write a self-contained HTML page (collapsible tree) instead."),
    as_json: bool = typer.Option(False, "--json", help="Print the trajectory document (JSON) instead of a tree."),
) -> None:
    """Render a saved trajectory as a tree on stdout, write it as HTML with ``--html``, or print the
    document as JSON with ``--json`` (complete: ``--full`` changes nothing there)."""
    from rlm_cli.settings.paths import log_dir
    from rlm_cli.trajectory import store
    from rlm_cli.view.safe import inline
    from rlm_cli.view.tree import RunModel

    if as_json and html is not None:
        raise UsageError("--json and --html are two outputs: choose one")
    path = store.resolve(trajectory, log_dir())
    doc = store.load(path)
    from rlm_cli.view.pipe import stdout_may_close

    if as_json:
        from rlm_cli.view.safe import json_text

        with stdout_may_close():
            sys.stdout.write(json_text(doc) + "\n")
        return
    try:
        model = RunModel.from_trajectory(doc)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise UsageError(f"{path} is not a valid rlm trajectory ({type(exc).__name__}: {exc})") from exc
    from rlm_cli.view.turns import turns_text

    turns = turns_text(doc, full)
    if html is not None:
        from rlm_cli.view.html import to_html

        try:
            html.write_text(to_html(model, full=full, conversation=turns.plain if turns else None),
                            encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {html}: {exc}") from exc
        print(f"rlm: wrote {inline(html)}", file=sys.stderr)
        return
    from rlm_cli.view.pipe import stdout_console
    from rlm_cli.view.render import RenderOptions, render

    tty = sys.stdout.isatty()
    width = None if tty or os.environ.get("COLUMNS") else 120
    console = stdout_console(highlight=False, width=width, soft_wrap=False)
    with stdout_may_close():
        if turns is not None:  # a conversation: its questions first, then every iteration of all of them
            console.print(turns)
        console.print(render(model, RenderOptions.show(full)))
        console.print(f"trajectory: {inline(path)}", style="dim", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``show`` to the app."""
    app.command("show", help=HELP)(show_command)
