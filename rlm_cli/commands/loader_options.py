"""Typer option types for what to load, shared by ``rlm ask`` and ``rlm ls``.

Use them as parameter annotations, then build the options with :func:`load_options_from`::

    def ls_command(sources: ..., include: IncludeOpt = None, exclude: ExcludeOpt = None,
                   no_default_excludes: NoDefaultExcludesOpt = False,
                   max_file_size: MaxFileSizeOpt = DEFAULT_MAX_FILE_SIZE_TEXT,
                   max_input_size: MaxInputSizeOpt = DEFAULT_MAX_INPUT_SIZE_TEXT,
                   follow_symlinks: FollowSymlinksOpt = False) -> None:
        options = load_options_from(include, exclude, no_default_excludes, max_file_size,
                                    max_input_size, follow_symlinks)

Help texts avoid square brackets (Typer's rich markup would eat them) and keep to one line; the
default exclude list is printed by ``rlm ls --help`` only.
:data:`rlm_cli.commands.options.LOADING` is these options as one group.
"""

from __future__ import annotations

from typing import Annotated

import typer

from rlm_cli.errors import UsageError
from rlm_cli.loader.options import (
    DEFAULT_EXCLUDES,
    DEFAULT_MAX_FILE_SIZE,
    DEFAULT_MAX_INPUT_SIZE,
    LoadOptions,
    format_size,
    parse_size,
)

PANEL = "Loading"
DEFAULT_MAX_FILE_SIZE_TEXT = format_size(DEFAULT_MAX_FILE_SIZE).replace(" ", "")
DEFAULT_MAX_INPUT_SIZE_TEXT = format_size(DEFAULT_MAX_INPUT_SIZE).replace(" ", "")

LOADING_RULES_HELP = (
    "Directories load git's file set: tracked plus untracked files that .gitignore, .git/info/exclude "
    "and the global excludes file do not ignore (the same rules without git outside a repository); "
    "hidden files included, symlinks and binary files skipped. Files named explicitly are always loaded."
)

IncludeOpt = Annotated[list[str] | None, typer.Option(
    "--include", metavar="PATTERN", rich_help_panel=PANEL,
    help="Load only walked files matching this gitignore pattern.")]
ExcludeOpt = Annotated[list[str] | None, typer.Option(
    "--exclude", metavar="PATTERN", rich_help_panel=PANEL,
    help="Also skip walked files matching PATTERN (repeatable).")]
NoDefaultExcludesOpt = Annotated[bool, typer.Option(
    "--no-default-excludes", rich_help_panel=PANEL,
    help="Also load what the default excludes skip: " + " ".join(DEFAULT_EXCLUDES) + " (vendor/ is not "
         "excluded: vendored code that git tracks is often what you ask about).")]
"""The full list, for ``rlm ls --help``; the run commands use :data:`NoDefaultExcludesShortOpt`."""
NoDefaultExcludesShortOpt = Annotated[bool, typer.Option(
    "--no-default-excludes", rich_help_panel=PANEL,
    help="Also load lock files, node_modules/, .venv/... (rlm ls --help lists them).")]
MaxFileSizeOpt = Annotated[str, typer.Option(
    "--max-file-size", metavar="SIZE", rich_help_panel=PANEL,
    help="Skip walked files larger than SIZE (e.g. 2MiB).")]
MaxInputSizeOpt = Annotated[str, typer.Option(
    "--max-input-size", metavar="SIZE", rich_help_panel=PANEL,
    help="Stop when the whole input is larger than SIZE.")]
FollowSymlinksOpt = Annotated[bool, typer.Option(
    "--follow-symlinks", rich_help_panel=PANEL, help="Follow symlinks found while walking.")]


def load_options_from(include: list[str] | None, exclude: list[str] | None, no_default_excludes: bool,
                      max_file_size: str | int, max_input_size: str | int,
                      follow_symlinks: bool) -> LoadOptions:
    """:class:`LoadOptions` from the values of the options above; sizes are parsed to bytes.

    Raises :class:`~rlm_cli.errors.UsageError` (exit 2) naming the option on a bad size.
    """
    sizes = {}
    for flag, value in (("--max-file-size", max_file_size), ("--max-input-size", max_input_size)):
        try:
            sizes[flag] = value if isinstance(value, int) else parse_size(value)
        except ValueError as exc:
            raise UsageError(f"{flag}: {exc}") from None
    return LoadOptions(include=list(include or []), exclude=list(exclude or []),
                       default_excludes=not no_default_excludes, max_file_size=sizes["--max-file-size"],
                       max_input_size=sizes["--max-input-size"], follow_symlinks=follow_symlinks)
