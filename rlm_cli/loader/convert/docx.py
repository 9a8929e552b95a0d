"""DOCX to text with python-docx (the ``rlm-cli[docs]`` extra): paragraphs in order, headings as
markdown ``#`` by level, list paragraphs as ``- ``, tables as rows of cells joined by `` | ``."""

from __future__ import annotations

import zipfile

from rlm_cli.loader.convert import DOCS_EXTRA_HINT, ConversionError, Converted, clean, over_budget

MAX_UNCOMPRESSED_BYTES = 512 * 1024 * 1024  # a DOCX (a ZIP) declaring more than this is refused


def check_zip(fs_path: str, what: str, limit: int | None = None) -> None:
    """Refuse a ZIP whose members declare more than ``limit`` bytes together (default
    :data:`MAX_UNCOMPRESSED_BYTES`): a zip bomb. Python's zipfile never inflates a member past its
    declared size. Raises :class:`ConversionError`."""
    if limit is None:
        limit = MAX_UNCOMPRESSED_BYTES
    try:
        with zipfile.ZipFile(fs_path) as zf:
            total = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise ConversionError(f"corrupt {what} ({' '.join(str(exc).split())[:100]})") from None
    if total > limit:
        raise ConversionError(f"{what} expands to {total:,} bytes, over {limit:,}: refused")


def _heading_level(paragraph) -> int:
    try:
        name = (paragraph.style.name or "") if paragraph.style is not None else ""
    except (KeyError, ValueError, AttributeError):
        return 0
    if name == "Title":
        return 1
    if name.startswith("Heading "):
        level = name[8:].strip()
        return min(int(level), 6) if level.isdigit() else 0
    return 0


def _is_list(paragraph) -> bool:
    try:
        name = paragraph.style.name if paragraph.style is not None else ""
    except (KeyError, ValueError, AttributeError):
        return False
    return bool(name) and name.startswith("List")


def convert_docx(fs_path: str, max_chars: int) -> Converted:
    """The text of the DOCX at ``fs_path`` (see the module doc).

    Raises :class:`ConversionError` when python-docx is not installed (the message says how to
    install it), for a corrupt file or a zip bomb, and past ``max_chars`` characters.
    """
    try:
        import docx
        from docx.table import Table
    except ImportError:
        raise ConversionError(f"DOCX needs python-docx: {DOCS_EXTRA_HINT}") from None
    check_zip(fs_path, "DOCX")
    try:
        document = docx.Document(fs_path)
        blocks = list(document.iter_inner_content())
    except Exception as exc:  # noqa: BLE001 - python-docx raises many kinds for a broken file
        raise ConversionError(f"corrupt DOCX ({' '.join(str(exc).split())[:100] or type(exc).__name__})") from None
    parts: list[str] = []
    size = 0
    for block in blocks:
        if isinstance(block, Table):
            rows = [" | ".join(" ".join(cell.text.split()) for cell in row.cells) for row in block.rows]
            piece = "\n".join(rows) + "\n\n"
        else:
            text = block.text.strip()
            if not text:
                continue
            level = _heading_level(block)
            piece = ("#" * level + " " + text + "\n\n") if level else (("- " if _is_list(block) else "") + text + "\n\n")
        size += len(piece)
        if size > max_chars:
            raise over_budget(max_chars)
        parts.append(piece)
    return Converted(clean("".join(parts)).rstrip("\n") + "\n", "converted from DOCX")
