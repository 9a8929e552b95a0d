"""The converters in process, the worker's limits, and the loader's glue (no CLI here; the end-to-end
tests are tests/e2e/test_convert_e2e.py)."""

from __future__ import annotations

import io
import sys
import zipfile

import pytest
from convert_support import make_docx, make_notebook, make_pdf

from rlm_cli.context import ContextWriter
from rlm_cli.errors import InputError
from rlm_cli.loader.convert import ConversionError, convert_file, detect
from rlm_cli.loader.convert import worker as worker_mod
from rlm_cli.loader.convert.html import html_to_text
from rlm_cli.loader.convert.load import Conversions
from rlm_cli.loader.convert.progress import ConversionProgress
from rlm_cli.loader.convert.worker import ConverterProcess


@pytest.mark.parametrize("prefix, names, kind", [
    (b"%PDF-1.7\n", ("report",), "pdf"),
    (b"junk\n%PDF-1.4", ("x.pdf",), "pdf"),
    (b"# mentions %PDF- in a docstring", ("tool.py",), None),
    (b"\xef\xbb\xbf  <!DOCTYPE html><p>", ("download",), "html"),
    (b"<HTML><body>", ("x",), "html"),
    (b"<p>fragment, a partial template", ("page.htm",), None),
    (b"<head><title>t</title></head><body>x", ("page.htm",), "html"),
    (b"{% extends 'base.html' %}<html>", ("base.html",), None),
    (b"<div>{{ user.name }}</div>", ("card.html",), None),
    (b"<p>not named html", ("notes.txt",), None),
    (b'{"cells": []}', ("n.ipynb",), "ipynb"),
    (b"PK\x03\x04" + b"\0" * 26 + b"mimetypeapplication/epub+zip", ("book",), "epub"),
    (b"PK\x03\x04....word/document.xml", ("f",), "docx"),
    (b"PK\x03\x04....", ("a.docx",), "docx"),
    (b"PK\x03\x04....", ("a.zip",), None),
    (b"print('hi')\n", ("a.py",), None),
])
def test_detect(prefix, names, kind):
    assert detect(prefix, *names) == kind


def test_pdf_pages_and_offsets(tmp_path):
    path = make_pdf(tmp_path / "r.pdf", ["one", "two", "three"])
    result = convert_file("pdf", str(path), 10_000)
    assert result.note == "converted from PDF, 3 pages"
    for n, offset in enumerate(result.pages, 1):
        assert result.text[offset:].startswith(f"--- page {n} ---\n")
    with pytest.raises(ConversionError, match="converted text over 20 characters"):
        convert_file("pdf", str(path), 20)


def test_html_deep_nesting_does_not_recurse():
    depth = 50_000
    text = html_to_text("<div>" * depth + "deep text" + "</div>" * depth)
    assert text == "deep text\n"


def test_html_keeps_article_header_and_pre():
    text = html_to_text("<article><header><h2>Post</h2></header><pre>  a = 1\n    b = 2</pre></article>"
                        "<p aria-hidden='true'>hidden</p><p hidden>also hidden</p>")
    assert text == "## Post\n\n  a = 1\n    b = 2\n"


def test_docx_without_the_extra_says_how_to_install(tmp_path, monkeypatch):
    pytest.importorskip("docx")
    path = make_docx(tmp_path / "r.docx")
    monkeypatch.setitem(sys.modules, "docx", None)  # import docx now raises ImportError
    with pytest.raises(ConversionError) as info:
        convert_file("docx", str(path), 10_000)
    assert str(info.value) == "DOCX needs python-docx: pip install 'rlm-cli[docs]'"


def test_docx_zip_bomb_is_refused(tmp_path, monkeypatch):
    pytest.importorskip("docx")
    from rlm_cli.loader.convert import docx as docx_mod

    path = make_docx(tmp_path / "r.docx")
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("word/media/zeros.bin", b"\0" * 5_000_000)
    monkeypatch.setattr(docx_mod, "MAX_UNCOMPRESSED_BYTES", 1_000_000)
    with pytest.raises(ConversionError, match="DOCX expands to .* bytes, over 1,000,000: refused"):
        docx_mod.convert_docx(str(path), 10_000)


def test_notebook_outputs_cut(tmp_path):
    path = make_notebook(tmp_path / "n.ipynb", output_chars=5000)
    result = convert_file("ipynb", str(path), 100_000)
    assert "[... 3,001 more characters of output cut]" in result.text
    with pytest.raises(ConversionError, match="not a notebook"):
        (tmp_path / "bad.ipynb").write_text("[1, 2]")
        convert_file("ipynb", str(tmp_path / "bad.ipynb"), 100)


def test_epub_in_reading_order(tmp_path):
    path = tmp_path / "book.epub"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        zf.writestr("META-INF/container.xml", '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
                    '<rootfiles><rootfile full-path="OEBPS/c.opf"/></rootfiles></container>')
        zf.writestr("OEBPS/c.opf", '<package xmlns="http://www.idpf.org/2007/opf"><manifest>'
                    '<item id="a" href="a.xhtml"/><item id="b" href="b.xhtml"/></manifest>'
                    '<spine><itemref idref="b"/><itemref idref="a"/></spine></package>')
        zf.writestr("OEBPS/a.xhtml", "<html><body><h1>Second</h1><script>x=1</script></body></html>")
        zf.writestr("OEBPS/b.xhtml", "<html><body><h1>First</h1></body></html>")
    assert detect(path.read_bytes()[:8192], "book") == "epub"
    result = convert_file("epub", str(path), 10_000)
    assert result.text == "# First\n\n# Second\n" and result.note == "converted from EPUB, 2 documents"


def test_worker_converts_and_reports_progress(tmp_path):
    path = make_pdf(tmp_path / "r.pdf", ["a", "b"])
    process = ConverterProcess()
    seen = []
    try:
        result = process.convert("pdf", str(path), 10_000, lambda done, total: seen.append((done, total)))
        assert result.note == "converted from PDF, 2 pages" and seen == [(1, 2), (2, 2)]
        with pytest.raises(ConversionError, match="corrupt PDF"):
            (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 nothing")
            process.convert("pdf", str(tmp_path / "bad.pdf"), 10_000)
    finally:
        process.close()


def test_worker_that_hangs_is_stopped(tmp_path, monkeypatch):
    """A conversion that never reports progress is killed after IDLE_TIMEOUT, and the next file gets
    a fresh worker."""
    monkeypatch.setattr(worker_mod, "IDLE_TIMEOUT", 0.3)
    process = ConverterProcess()
    monkeypatch.setattr(process, "command", [sys.executable, "-c", "import time; time.sleep(60)"])
    with pytest.raises(ConversionError, match="conversion stopped: no progress for 0.3 s"):
        process.convert("pdf", "whatever.pdf", 100)
    monkeypatch.setattr(process, "command", [sys.executable, "-c", "pass"])
    with pytest.raises(ConversionError, match=r"the converter process died \(exit status 0\)"):
        process.convert("pdf", "whatever.pdf", 100)
    process.close()


def _in_child(fn) -> str:
    """Run ``fn()`` in a forked child (as the two-process load does); its result as a string."""
    import os

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = str(fn())
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            out = f"{type(exc).__name__}: {exc}"
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return data.decode()


def test_forked_child_shares_the_worker(tmp_path):
    """The two-process load: the child uses the parent's worker under the lock (no second start);
    when the child's file kills that worker, the parent starts a fresh one for its next file."""
    import os

    path = make_pdf(tmp_path / "r.pdf", ["alpha", "beta"])
    process = ConverterProcess()
    try:
        process.prestart(["pdf"])
        worker_pid = process._proc.pid

        def child_converts():
            note = process.convert("pdf", str(path), 10_000).note
            return f"{note} via {process._proc.pid} owner-is-parent={process._owner != os.getpid()}"

        assert _in_child(child_converts) == f"converted from PDF, 2 pages via {worker_pid} owner-is-parent=True"
        assert process.convert("pdf", str(path), 10_000).note == "converted from PDF, 2 pages"
        assert process._proc.pid == worker_pid
        assert _in_child(lambda: process._kill()) == "None"  # the child kills it, cannot reap it
        assert process.convert("pdf", str(path), 10_000).note == "converted from PDF, 2 pages"
        assert process._proc.pid != worker_pid
    finally:
        process.close()


def test_strict_conversion_is_an_input_error_else_a_skip(tmp_path):
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 nothing")
    writer = ContextWriter(tmp_path / "ctx.txt")
    conversions = Conversions(10_000, ConversionProgress(io.StringIO()))
    try:
        assert not conversions.add(writer, "bad.pdf", str(tmp_path / "bad.pdf"), 16, "pdf", strict=False)
        with pytest.raises(InputError, match=r"^cannot convert bad\.pdf: corrupt PDF"):
            conversions.add(writer, "bad.pdf", str(tmp_path / "bad.pdf"), 16, "pdf", strict=True)
    finally:
        conversions.close()
    loaded = writer.finish()
    assert loaded.files == [] and loaded.skipped[0].reason.startswith("corrupt PDF")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal_and_after_a_moment(monkeypatch):
    from rlm_cli.loader.convert import progress as progress_mod

    quiet = ConversionProgress(io.StringIO())
    quiet.start("a.pdf")
    monkeypatch.setattr(progress_mod, "DELAY", 0.0)
    quiet.update(1, 2)
    assert quiet._bar is None
    tty = _Tty()
    bar = ConversionProgress(tty)
    bar.start("big\x1b[31m.pdf")
    bar.update(1, 2)
    bar.update(2, 2)
    bar.done()
    bar.close()
    out = tty.getvalue()
    assert "converting" in out and "\x1b[31m" not in out  # the name's escape sequence is made visible
