"""Compact file tree for the root LM (placeholder; the loader work replaces it)."""

from __future__ import annotations

from rlm_cli.context import FileEntry


def render_tree(files: list[FileEntry], max_chars: int = 4000) -> str:
    """One line per file (``path (N chars)``), cut to ``max_chars`` characters."""
    out, used = [], 0
    for i, f in enumerate(files):
        line = f"{f.path} ({f.chars:,} chars)"
        if used + len(line) + 1 > max_chars - 40:
            out.append(f"... and {len(files) - i} more files")
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(out)
