"""Text tables for the commands (``rlm logs``, ``rlm ls``, ``rlm bench``): Rich :class:`~rich.table.Table`
with one look, printed without colour when the stream is not a terminal, and without trailing blanks.

Cells are :class:`~rich.text.Text` (never markup: a file name or a question may hold ``[brackets]``)
and must already have their control characters made visible (:mod:`rlm_cli.view.safe`).
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

WIDE = 10_000
"""Width of a table printed on a pipe without ``COLUMNS``: nothing is cut for want of a terminal."""


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def new_table(*, title: str | None = None) -> Table:
    """An empty table: bold header, a rule under it (on a terminal), two spaces between columns, no
    outer border."""
    return Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold",
                 title=title, title_justify="left", title_style="bold", expand=False)


def stream_width(stream: TextIO) -> int:
    """The width (cells) to lay a table out for: the terminal's on a terminal, else ``COLUMNS`` when
    set, else :data:`WIDE`."""
    try:
        if stream.isatty():
            return Console(file=stream).width
    except (AttributeError, ValueError, OSError):
        pass
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else WIDE


def fit_column(table: Table, index: int, width: int | None) -> None:
    """Give column ``index`` of ``table`` (built by :func:`new_table`, cells added) the room the other
    columns leave at ``width`` cells (None: the terminal's), so that Rich never has to squeeze the
    others: its text is cut with ``…`` instead. Keeps the column's ``min_width``."""
    if width is None:
        width = stream_width(sys.stdout)
    others = 0
    for i, column in enumerate(table.columns):
        if i != index:
            cells = [len(str(column.header)), *(Text.from_markup(c).cell_len if isinstance(c, str) else c.cell_len
                                                for c in column._cells)]
            others += max(cells) + 2  # two cells between columns
    column = table.columns[index]
    column.max_width = max(column.min_width or 1, width - others)


def print_table(table: Table, stream: TextIO | None = None, width: int | None = None) -> None:
    """Print ``table`` on ``stream`` (default stdout) at ``width`` cells (default :func:`stream_width`),
    each line without trailing blanks. Colour and the rule under the header only on a terminal (no
    colour with ``NO_COLOR``)."""
    stream = sys.stdout if stream is None else stream
    width = stream_width(stream) if width is None else width
    if not _isatty(stream):  # a pipe: no rule under the header (`awk 'NR > 1'` gets the rows)
        table.box, table.padding = None, (0, 2, 0, 0)
    console = Console(file=stream, width=width, highlight=False, soft_wrap=False)
    with console.capture() as capture:
        console.print(table)
    text = "\n".join(line.rstrip() for line in capture.get().split("\n"))
    stream.write(text if text.endswith("\n") else text + "\n")
    stream.flush()
