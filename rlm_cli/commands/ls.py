"""``rlm ls SOURCE...``: what ``rlm ask`` would load (PLACEHOLDER: the loader issue replaces this)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from rlm_cli.loader import LoadOptions, load_sources

HELP = "List what `rlm ask` would load from SOURCE... (files, directories, - for stdin). Needs no model."


def ls_command(sources: list[str] = typer.Argument(..., metavar="SOURCE...")) -> None:
    with tempfile.TemporaryDirectory() as d:
        ctx = load_sources(sources, LoadOptions(), Path(d) / "context.txt")
    for f in ctx.files:
        print(f"{f.chars:>10}  {f.path}")
