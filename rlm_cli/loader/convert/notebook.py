"""Jupyter notebooks (``.ipynb``, JSON) to text: cells in order, markdown as it is, code in fenced
blocks, each output cut to :data:`MAX_OUTPUT_CHARS` characters (images and other rich outputs are
named, not included)."""

from __future__ import annotations

import json

from rlm_cli.loader.convert import ConversionError, Converted, clean, over_budget

MAX_OUTPUT_CHARS = 2000  # characters kept of one cell output


def _text(value) -> str:
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


def _cut(text: str) -> str:
    if len(text) <= MAX_OUTPUT_CHARS:
        return text
    return text[:MAX_OUTPUT_CHARS] + f"\n[... {len(text) - MAX_OUTPUT_CHARS:,} more characters of output cut]"


def _output(out: dict) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        return _cut(_text(out.get("text")))
    if kind == "error":
        return _cut(f"{_text(out.get('ename'))}: {_text(out.get('evalue'))}")
    data = out.get("data")
    if isinstance(data, dict):
        if "text/plain" in data:
            return _cut(_text(data["text/plain"]))
        kinds = ", ".join(str(k) for k in list(data)[:5])
        return f"[output: {kinds}]"
    return ""


def convert_notebook(data: bytes, max_chars: int) -> Converted:
    """A notebook file's bytes to text (see the module doc). Raises :class:`ConversionError` for
    anything that is not a notebook's JSON, and past ``max_chars`` characters."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ConversionError(f"not a notebook: invalid JSON ({str(exc)[:80]})") from None
    cells = doc.get("cells") if isinstance(doc, dict) else None
    if not isinstance(cells, list):
        raise ConversionError("not a notebook: no list of cells")
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    lang = meta.get("language_info", {}).get("name", "") if isinstance(meta.get("language_info"), dict) else ""
    parts: list[str] = []
    size = 0
    for n, cell in enumerate(cells, 1):
        if not isinstance(cell, dict):
            continue
        source = _text(cell.get("source")).rstrip("\n")
        kind = cell.get("cell_type")
        if kind == "code":
            piece = f"# In [{n}]:\n```{lang if isinstance(lang, str) else ''}\n{source}\n```\n"
            outputs = [o for o in (cell.get("outputs") or []) if isinstance(o, dict)]
            texts = [t for t in (_output(o) for o in outputs) if t]
            if texts:
                piece += "Output:\n" + "\n".join(t.rstrip("\n") for t in texts) + "\n"
        else:
            piece = source + "\n" if source else ""
        if not piece:
            continue
        piece += "\n"
        size += len(piece)
        if size > max_chars:
            raise over_budget(max_chars)
        parts.append(piece)
    count = len(cells)
    return Converted(clean("".join(parts)), f"converted from notebook, {count} cell{'s' if count != 1 else ''}")
