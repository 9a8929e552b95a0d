"""Documents made by the tests (no binary fixtures in the repository): PDFs written with pypdf
(multi-page, encrypted, without text, corrupt, a decompression bomb), HTML with script, style and
navigation, a DOCX (python-docx), a notebook."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject, StreamObject

SCRIPT_NUMBER = "7391"  # inside <script> only: must never reach `context`


def _font(writer: PdfWriter):
    return writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica")}))


def make_pdf(path: Path, pages: list[str | None], password: str | None = None) -> Path:
    """A PDF with one page per item: its text in Helvetica, or no text at all (``None``)."""
    writer = PdfWriter()
    font = _font(writer)
    for text in pages:
        page = writer.add_blank_page(width=612, height=792)
        if text is None:
            continue
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
        stream = DecodedStreamObject()
        esc = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream.set_data(f"BT /F1 12 Tf 72 720 Td ({esc}) Tj ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
    if password is not None:
        writer.encrypt(password, algorithm="RC4-128")
    with open(path, "wb") as fh:
        writer.write(fh)
    return path


def make_pdf_bomb(path: Path, inflated_bytes: int = 100_000_000) -> Path:
    """A one-page PDF whose content stream is ``inflated_bytes`` of spaces deflated (about 0.1%)."""
    writer = PdfWriter()
    page = writer.add_blank_page(width=612, height=792)
    comp = zlib.compressobj(9)
    chunk = b" " * (1 << 20)
    data = b"".join(comp.compress(chunk) for _ in range(inflated_bytes // len(chunk))) + comp.flush()
    stream = StreamObject()
    stream._data = data
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    page[NameObject("/Contents")] = writer._add_object(stream)
    with open(path, "wb") as fh:
        writer.write(fh)
    return path


def make_html(path: Path) -> Path:
    """A page with a script (holding :data:`SCRIPT_NUMBER`), a style, navigation, a heading, a list, a
    table and a link; the answer in the visible text is 12."""
    path.write_text(f"""<!DOCTYPE html>
<html><head><title>Launch notes</title>
<style>.code {{ content: "style-secret"; }}</style>
<script>var launchCode = {SCRIPT_NUMBER}; console.log("script-secret");</script>
</head><body>
<header><a href="/">Home</a> <a href="/about">About us</a></header>
<nav><ul><li>Menu entry</li></ul></nav>
<div role="navigation">Breadcrumb trail</div>
<main><h1>Launch   procedure</h1>
<p>The launch code is <b>12</b>, see <a href="https://example.com/x">the manual</a>.</p>
<ul><li>first step</li><li>second step</li></ul>
<table><tr><th>name</th><th>value</th></tr><tr><td>alpha</td><td>1</td></tr></table>
<noscript>Enable JavaScript</noscript><template><p>template text</p></template>
<h2>Details</h2><p>More text.</p></main>
<footer>Copyright footer</footer>
<script type="application/ld+json">{{"code": {SCRIPT_NUMBER}}}</script>
</body></html>
""", encoding="utf-8")
    return path


def make_docx(path: Path) -> Path:
    """A DOCX with a title, a level-2 heading, a paragraph, a bullet and a 2x2 table."""
    import docx

    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("Revenue grew in every region.")
    document.add_heading("Numbers", level=2)
    document.add_paragraph("a bullet point", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([["region", "growth"], ["north", "12%"]]):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    document.save(str(path))
    return path


def make_notebook(path: Path, output_chars: int = 10_000) -> Path:
    """A notebook: a markdown cell, a code cell with a long stream output and a plot output."""
    doc = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"language_info": {"name": "python"}},
           "cells": [
               {"cell_type": "markdown", "metadata": {}, "source": ["# Analysis\n", "We count things."]},
               {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": "print('x' * 10000)",
                "outputs": [{"output_type": "stream", "name": "stdout", "text": ["x" * output_chars + "\n"]},
                            {"output_type": "display_data", "metadata": {},
                             "data": {"image/png": "iVBORw0KGgo="}}]}]}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def document_entries(directory: Path) -> list[Path]:
    """The convert cache's entries for documents in ``directory``, sorted: the mark a directory load
    leaves (an empty entry, ``Conversions.before_walk``) is not one."""
    def is_mark(path: Path) -> bool:
        meta = json.loads(path.read_bytes().split(b"\n", 1)[0])["meta"]
        return meta["chars"] == 0 and meta["note"] == ""
    return sorted(p for p in directory.glob("*.txt") if not is_mark(p))
