"""Document converters: PDF, HTML, DOCX, Jupyter notebooks and EPUB to plain text for ``context``.

:func:`detect` picks a converter from a file's first bytes first (``%PDF-``, a ZIP holding
``word/`` or an EPUB ``mimetype``, ``<!doctype html``/``<html``), its extension second (``.html``,
``.htm``, ``.xhtml``, ``.ipynb``, ``.docx``, ``.epub``), so a downloaded ``page`` or a PDF without
an extension converts too. A ``.html`` file converts when it is a page (``<html``, ``<head``,
``<body`` or a doctype in its first 8 KiB), not a fragment; HTML whose first 8 KiB hold template
syntax (``{%``, ``{{``, ``<?php``, ``<%``) is a template. Fragments and templates are source code:
they stay text. :func:`convert_file` runs one converter in this process; the loader
runs it in a separate worker process with memory and time limits (:mod:`.worker`), since a
hostile document can make any parser spin or balloon.

Each converter returns a :class:`Converted` (the text, a note such as ``"converted from PDF, 31
pages"``, and for PDFs each page's character offset inside the text) or raises
:class:`ConversionError` with a one-line reason (``"encrypted PDF: needs a password"``). Output is
bounded: a converter stops with :class:`ConversionError` once its text would pass ``max_chars``
characters.
"""

from __future__ import annotations

from dataclasses import dataclass

LABELS = {"pdf": "PDF", "html": "HTML", "docx": "DOCX", "ipynb": "notebook", "epub": "EPUB"}
_EXTENSIONS = {".pdf": "pdf", ".html": "html", ".htm": "html", ".xhtml": "html", ".docx": "docx",
               ".ipynb": "ipynb", ".epub": "epub"}
_HTML_STARTS = (b"<!doctype html", b"<html")
# A template (Django/Jinja, Handlebars/Vue, PHP, ERB/JSP) is source code, not a page: loaded as text.
_TEMPLATE_MARKS = (b"{%", b"{{", b"<?php", b"<%")
_PAGE_TAGS = (b"<html", b"<!doctype html", b"<body", b"<head")
DOCS_EXTRA_HINT = "pip install 'rlm-cli[docs]'"


class ConversionError(Exception):
    """A document could not be converted; ``str(exc)`` is a one-line reason for a skip or an error."""


@dataclass
class Converted:
    """A converted document: ``text`` (characters), ``note`` (what it was, e.g. ``"converted from
    PDF, 31 pages"``), ``pages`` (for PDFs: the character offset inside ``text`` where each page's
    marker line starts, page 1 first; ``None`` otherwise)."""

    text: str
    note: str
    pages: list[int] | None = None


_LAST_CHARS = frozenset(c for ext in _EXTENSIONS for c in (ext[-1], ext[-1].upper()))


def extension_kind(name: str) -> str | None:
    """The converter a path's extension suggests (``"report.PDF"`` -> ``"pdf"``), or ``None``."""
    if not name or name[-1] not in _LAST_CHARS:  # most names (.py, .txt, .js): called per loaded file
        return None
    dot = name.rfind(".")
    return _EXTENSIONS.get(name[dot:].lower()) if dot > name.rfind("/") else None


def detect(prefix: bytes, *names: str) -> str | None:
    """The converter for a file (``"pdf"``, ``"html"``, ``"docx"``, ``"ipynb"``, ``"epub"``) or ``None``.

    ``prefix`` is the file's first bytes (up to 8 KiB); ``names`` are the paths it is known by
    (displayed and on disk), whose extensions count when the bytes do not decide. Cheap: it runs
    for every loaded file.
    """
    ext = None
    for name in names:
        ext = extension_kind(name)
        if ext:
            break
    if prefix.startswith(b"%PDF-"):
        return "pdf"
    # PDF readers accept junk before the header (within 1 KiB); a text file that merely mentions
    # "%PDF-" must stay text, so junk is allowed only in a file named .pdf
    if ext == "pdf":
        return "pdf" if b"%PDF-" in prefix[:1024] else None
    if prefix.startswith(b"PK\x03\x04"):
        if prefix[30:58] == b"mimetypeapplication/epub+zip":
            return "epub"
        if ext == "docx" or b"word/" in prefix:
            return "docx"
        return None
    if ext == "ipynb":
        return ext if b"\0" not in prefix[:1024] else None
    start = prefix[:256].lstrip(b"\xef\xbb\xbf \t\r\n")
    if start[:1] == b"<" and start[:14].lower().startswith(_HTML_STARTS):
        page = True
    elif ext == "html":  # a whole page, not a fragment (a partial template is source code)
        lowered = prefix.lower()
        page = any(tag in lowered for tag in _PAGE_TAGS)
    else:
        return None
    if page and b"\0" not in prefix[:1024] and not any(m in prefix for m in _TEMPLATE_MARKS):
        return "html"
    return None


def clean(text: str) -> str:
    """``text`` safe to write as UTF-8: NULs dropped, lone surrogates replaced by U+FFFD."""
    if "\0" in text:
        text = text.replace("\0", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def over_budget(max_chars: int) -> ConversionError:
    """The error for text past ``max_chars`` characters."""
    return ConversionError(f"converted text over {max_chars:,} characters (--max-input-size): stopped")


def convert_file(kind: str, fs_path: str, max_chars: int, progress=None) -> Converted:
    """Convert the file at ``fs_path`` with the converter ``kind`` (see :func:`detect`), in this process.

    ``max_chars`` bounds the text (characters); ``progress(done, total)`` is called as pages (or
    other units) are done. Raises :class:`ConversionError`; ``MemoryError`` and ``RecursionError``
    become one too.
    """
    try:
        if kind == "pdf":
            from rlm_cli.loader.convert.pdf import convert_pdf

            return convert_pdf(fs_path, max_chars, progress)
        if kind == "docx":
            from rlm_cli.loader.convert.docx import convert_docx

            return convert_docx(fs_path, max_chars)
        if kind == "epub":
            from rlm_cli.loader.convert.epub import convert_epub

            return convert_epub(fs_path, max_chars, progress)
        with open(fs_path, "rb") as fh:
            data = fh.read()
        if kind == "html":
            from rlm_cli.loader.convert.html import convert_html_bytes

            return convert_html_bytes(data, max_chars)
        if kind == "ipynb":
            from rlm_cli.loader.convert.notebook import convert_notebook

            return convert_notebook(data, max_chars)
    except RecursionError:
        raise ConversionError(f"{LABELS[kind]} nested too deeply to convert") from None
    except MemoryError:
        raise ConversionError(f"{LABELS[kind]} needs too much memory to convert") from None
    except OSError as exc:
        raise ConversionError(f"unreadable: {exc.strerror or exc.__class__.__name__}") from None
    raise ConversionError(f"no converter for {kind!r}")
