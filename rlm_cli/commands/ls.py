"""``rlm ls SOURCE...``: what ``rlm ask`` would load, what it skips and why. Needs no model or key.

It runs the real loader (into a temporary context file, deleted afterwards), so every number is
exact: characters and lines of decoded text, the encoding used, and the estimated tokens. Nothing
here imports litellm.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rlm_cli.commands.loader_options import (
    DEFAULT_MAX_FILE_SIZE_TEXT,
    DEFAULT_MAX_INPUT_SIZE_TEXT,
    LOADING_RULES_HELP,
    ExcludeOpt,
    FollowSymlinksOpt,
    IncludeOpt,
    MaxFileSizeOpt,
    MaxInputSizeOpt,
    NoDefaultExcludesOpt,
    load_options_from,
)
from rlm_cli.loader.options import format_size

if TYPE_CHECKING:
    from rlm_cli.context import LoadedContext

PIPE_WIDTH = 10_000  # = rlm_cli.view.table.WIDE (a test checks): nothing cut for want of a terminal

HELP = ("List what `rlm ask` would load from SOURCE... (files, directories, - for stdin, URLs, git remotes): each file with "
        "its size in characters and lines, the skipped ones with the reason, and totals. Needs no model. "
        + LOADING_RULES_HELP)


def ls_command(
    sources: Annotated[list[str], typer.Argument(metavar="SOURCE...",
                                                 help="Files, directories, - for standard input, URLs or git remotes (gh:ORG/REPO#REF).")],
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    no_default_excludes: NoDefaultExcludesOpt = False,
    max_file_size: MaxFileSizeOpt = DEFAULT_MAX_FILE_SIZE_TEXT,
    max_input_size: MaxInputSizeOpt = DEFAULT_MAX_INPUT_SIZE_TEXT,
    follow_symlinks: FollowSymlinksOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    options = load_options_from(include, exclude, no_default_excludes, max_file_size, max_input_size,
                                follow_symlinks)
    options.digests = False  # no session compares this load's files
    with tempfile.TemporaryDirectory(prefix="rlm-ls-") as tmp:
        from rlm_cli.loader import load_sources  # lazily: `rlm --help` must stay fast

        loaded = load_sources(sources, options, Path(tmp) / "context.txt")
    from rlm_cli.view.pipe import stdout_may_close

    out = sys.stdout
    with stdout_may_close():
        if as_json:
            from rlm_cli.view.safe import json_text

            out.write(json_text(listing_dict(loaded)) + "\n")
        else:
            tty = _isatty(out)
            out.write(listing_text(loaded, _width(out, tty), colour=tty))


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _width(stream, tty: bool) -> int:
    """:func:`rlm_cli.view.table.stream_width` of ``stream``; on a pipe without importing Rich (~30 ms
    of a second ``rlm ls``): ``COLUMNS`` when set, else the table module's wide default."""
    if tty:
        from rlm_cli.view.table import stream_width

        return stream_width(stream)
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else PIPE_WIDTH


def listing_dict(loaded: LoadedContext) -> dict:
    """The ``--json`` document: ``files``, ``skipped`` and ``totals`` (sizes: chars and bytes), and
    ``sources`` (what each URL or git remote became) when there were any."""
    return {
        **({"sources": [o._asdict() for o in loaded.origins]} if loaded.origins else {}),
        "files": [{"path": f.path, "chars": f.chars, "lines": f.lines, "bytes": f.size_bytes,
                   "encoding": f.encoding, "language": f.language, "offset": f.offset,
                   **({"converted": f.converted} if f.converted else {}),
                   **({"pages": list(f.pages)} if f.pages else {})} for f in loaded.files],
        "skipped": [{"path": s.path, "reason": s.reason, "bytes": s.size_bytes} for s in loaded.skipped],
        "totals": {"files": len(loaded.files), "chars": sum(f.chars for f in loaded.files),
                   "context_chars": loaded.total_chars, "est_tokens": loaded.est_tokens,
                   "bytes": sum(f.size_bytes for f in loaded.files), "skipped": len(loaded.skipped)},
    }


def listing_text(loaded: LoadedContext, width: int | None = None, colour: bool = False) -> str:
    """The listing: what each remote source became, a table of the files (chars, lines, path, encoding
    when not UTF-8, what a converted document was: ``converted from PDF, 31 pages``; drawn with Rich at
    ``width`` cells, default 100; a path longer than its column folds onto the next line, never cut),
    then skips, totals. ``colour``: keep the styles (a terminal).

    A file name can hold anything (escape sequences, newlines): names and reasons are shown on one
    line with their control characters made visible (:func:`rlm_cli.view.safe.inline`), on a
    terminal and on a pipe alike; ``--json`` keeps them exact.
    """
    from rlm_cli.view.safe import inline

    lines = []
    for o in loaded.origins:
        lines.append(f"{inline(o.source)}: {inline(o.detail)}")
    if loaded.origins:
        lines.append("")
    if loaded.files:
        lines.append(_files_table(loaded, width or 100, colour).rstrip("\n"))
    if loaded.skipped:
        lines.append("")
        lines.append(f"skipped ({len(loaded.skipped):,}):")
        for s in loaded.skipped:
            size = f", {format_size(s.size_bytes)}" if s.size_bytes else ""
            lines.append(f"  {inline(s.path)}  ({inline(s.reason)}{size})")
    chars = sum(f.chars for f in loaded.files)
    lines.append("")
    n = len(loaded.files)
    lines.append(f"{n:,} file{'s' if n != 1 else ''}, {chars:,} chars (~{loaded.est_tokens:,} tokens with headers), "
                 f"{format_size(sum(f.size_bytes for f in loaded.files))} read; {len(loaded.skipped):,} skipped")
    return "\n".join(lines) + "\n"


def _files_table(loaded: LoadedContext, width: int, colour: bool) -> str:
    """The files as a Rich table (text, ``width`` cells wide at most, no trailing blanks). On a pipe
    (no ``colour``) when no path has to fold, the same text is laid out directly (:func:`_plain_table`):
    Rich took ~1 s for the 5,500 rows of the Django tree, twice the load itself."""
    if not colour:
        plain = _plain_table(loaded, width)
        if plain is not None:
            return plain
    return _rich_table(loaded, width, colour)


def _rich_table(loaded: LoadedContext, width: int, colour: bool) -> str:
    """The files table drawn by Rich (see :func:`_files_table`)."""
    import io

    from rich.text import Text

    from rlm_cli.view.safe import inline
    from rlm_cli.view.table import new_table, print_table

    table = new_table()
    table.add_column("chars", justify="right", no_wrap=True)
    table.add_column("lines", justify="right", no_wrap=True)
    table.add_column("path", overflow="fold")  # a file name is never cut: it folds
    for f in loaded.files:
        path = Text(inline(f.path))
        if f.encoding not in ("utf-8", "ascii"):
            path.append(f"  ({inline(f.encoding)})", style="dim")
        if f.converted:
            path.append(f"  {inline(f.converted)}", style="dim")
        table.add_row(f"{f.chars:,}", f"{f.lines:,}", path)
    buf = io.StringIO()
    if colour:
        buf.isatty = lambda: True  # type: ignore[method-assign]  # Rich: styles for a terminal
    print_table(table, buf, width=width)
    return buf.getvalue()


def _plain_table(loaded: LoadedContext, width: int) -> str | None:
    """The files table exactly as :func:`rlm_cli.view.table.print_table` prints it on a pipe (columns
    right-justified chars and lines, then the path, two spaces apart, no rule, lines without trailing
    blanks), or None when a path would not fit in ``width`` cells (Rich folds it)."""
    from rlm_cli.view.safe import inline

    rows = []
    for f in loaded.files:
        path = inline(f.path)
        if f.encoding not in ("utf-8", "ascii"):
            path += f"  ({inline(f.encoding)})"
        if f.converted:
            path += f"  {inline(f.converted)}"
        rows.append((f"{f.chars:,}", f"{f.lines:,}", path))
    if not rows:
        return None
    w_chars = max(len("chars"), *(len(r[0]) for r in rows))
    w_lines = max(len("lines"), *(len(r[1]) for r in rows))
    if all(r[2].isascii() for r in rows):  # printable ASCII (inline() escaped the rest): a cell each
        w_path = max(len("path"), *(len(r[2]) for r in rows))
    else:
        from rich.cells import cell_len

        w_path = max(len("path"), *(cell_len(r[2]) for r in rows))
    if w_chars + w_lines + w_path + 6 > width:  # each column padded by two cells on its right
        return None
    out = [f"{'chars':>{w_chars}}  {'lines':>{w_lines}}  path"]
    out += [f"{c:>{w_chars}}  {n:>{w_lines}}  {p}".rstrip() for c, n, p in rows]
    return "\n".join(out) + "\n"
