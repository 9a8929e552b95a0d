"""Loading sources (files, directories, ``-`` for stdin) into a :class:`~rlm_cli.context.LoadedContext`.

FIRST VERSION, to be replaced by the full loader (git's exact file set, encodings, binaries, limits).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

from rlm_cli.context import STDIN_PATH, ContextWriter, LoadedContext
from rlm_cli.errors import InputError
from rlm_cli.loader.options import LoadOptions

__all__ = ["LoadOptions", "load_sources"]


def _walk(root: Path) -> list[Path]:
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "-co", "--exclude-standard"],
                             capture_output=True, check=True).stdout
        return sorted(root / p for p in out.decode("utf-8", "surrogateescape").split("\0") if p)
    except (OSError, subprocess.CalledProcessError):
        found = []
        for d, dirs, names in os.walk(root):
            dirs[:] = sorted(x for x in dirs if x != ".git")
            found.extend(Path(d) / n for n in sorted(names))
        return found


def load_sources(sources: list[str], options: LoadOptions, dest: Path,
                 stdin: BinaryIO | None = None) -> LoadedContext:
    """Load ``sources`` into the context file ``dest``. Raises :class:`InputError` (exit 2)."""
    writer = ContextWriter(dest)
    try:
        for src in sources:
            if src == "-":
                data = (stdin or sys.stdin.buffer).read()
                if not data:
                    raise InputError("standard input is empty")
                writer.add(STDIN_PATH, data.decode("utf-8", "replace"), size_bytes=len(data))
                continue
            p = Path(src)
            if not p.exists():
                raise InputError(f"no such file or directory: {src}")
            paths = _walk(p) if p.is_dir() else [p]
            for f in paths:
                if not f.is_file():
                    continue
                data = f.read_bytes()
                if b"\0" in data[:8192]:
                    writer.skip(str(f), "binary", len(data))
                    continue
                writer.add(str(f), data.decode("utf-8", "replace"), size_bytes=len(data))
        return writer.finish()
    except BaseException:
        writer.abort()
        raise
