"""Documents through the installed ``rlm``: ``rlm ls`` shows what each became, ``rlm ask`` puts the
converted text (and nothing of an HTML page's scripts) into the REPL's ``context``, and documents
that cannot be converted are skipped with the reason, or a one-line error (exit 2) when named."""

from __future__ import annotations

import json

import pytest
from convert_support import SCRIPT_NUMBER, make_docx, make_html, make_notebook, make_pdf, make_pdf_bomb
from helpers import last_trajectory

PAGES = ["Introduction to the launch.", "The launch code is 4242.", "Appendix and index."]


def _ls_json(cli, *args, cwd, **kwargs):
    proc = cli("ls", "--json", *args, cwd=cwd, **kwargs)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _repl_output(server) -> str:
    """What the REPL printed in the first step, as the root model saw it in its second request."""
    return server.requests_for("root")[1].body["messages"][-1]["content"]


def test_ls_shows_what_each_document_became(cli, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    make_pdf(docs / "report.pdf", PAGES)
    make_html(docs / "page.html")
    make_pdf(docs / "noext", ["no extension, still a PDF"])  # judged by its bytes
    proc = cli("ls", "docs", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.endswith("docs/report.pdf  converted from PDF, 3 pages") for line in lines), proc.stdout
    assert any(line.endswith("docs/page.html  converted from HTML") for line in lines)
    assert any(line.endswith("docs/noext  converted from PDF, 1 page") for line in lines)
    assert "skipped (" not in proc.stdout and proc.stderr == ""
    doc = _ls_json(cli, "docs/report.pdf", cwd=tmp_path)
    (entry,) = doc["files"]
    assert entry["converted"] == "converted from PDF, 3 pages"
    assert len(entry["pages"]) == 3 and entry["pages"][0] == 0


def test_pdf_on_standard_input_is_converted(cli, tmp_path):
    data = make_pdf(tmp_path / "r.pdf", PAGES).read_bytes()
    doc = _ls_json(cli, "-", cwd=tmp_path, input=data)
    (entry,) = doc["files"]
    assert entry["path"] == "<stdin>" and entry["converted"] == "converted from PDF, 3 pages"
    proc = cli("ls", "-", cwd=tmp_path, input=b"%PDF-1.4 broken")
    assert proc.returncode == 2 and proc.stderr.startswith("rlm: error: cannot convert <stdin>: corrupt PDF")


def test_ask_pdf_pages_are_marked_in_context_and_kept_in_the_trajectory(cli, scripted_server, tmp_path):
    make_pdf(tmp_path / "report.pdf", PAGES)
    s = scripted_server
    s.script("root",
             "```repl\nprint(repr(context))\nf = files['report.pdf']\n"
             "print('PAGE2AT', f.index('--- page 2 ---'))\n```",
             "FINAL(4242, report.pdf p.2)")
    home = tmp_path / "home"
    p = cli("ask", "report.pdf", "What is the launch code?", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "4242, report.pdf p.2\n"
    assert "cite a page as `PATH p.N`" in s.requests_for("root")[0].body["messages"][-1]["content"]
    seen = _repl_output(s)
    assert "--- page 1 ---\\nIntroduction to the launch." in seen
    assert "--- page 2 ---\\nThe launch code is 4242." in seen and "--- page 3 ---" in seen
    (entry,) = last_trajectory(home)["context"]["files"]
    assert entry["converted"] == "converted from PDF, 3 pages"
    assert f"PAGE2AT {entry['pages'][1]}" in seen  # the metadata points at the marker in `context`
    assert last_trajectory(home)["citations"]["valid"] == ["report.pdf p.2"]  # the page is checked
    s.script("root", "```repl\nprint(1)\n```", "FINAL(4242, report.pdf p.9)")
    p = cli("ask", "report.pdf", "What is the launch code?", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert ("rlm: warning: the answer cites report.pdf p.9: page 9 is past the end of the document, "
            "which has 3 page(s)") in p.stderr


def test_ask_html_script_never_reaches_context(cli, scripted_server, tmp_path):
    """The attack from the issue: a number inside <script> was taken as the answer."""
    make_html(tmp_path / "page.html")
    s = scripted_server
    s.script("root", "```repl\nprint(repr(context))\n```", "FINAL(12)")
    p = cli("ask", "page.html", "What is the launch code?", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    seen = _repl_output(s)
    assert "The launch code is 12, see the manual." in seen
    assert "# Launch procedure" in seen and "## Details" in seen
    assert "- first step" in seen and "name | value" in seen and "alpha | 1" in seen
    for hidden in (SCRIPT_NUMBER, "script-secret", "style-secret", "Menu entry", "Breadcrumb", "About us",
                   "Copyright footer", "Enable JavaScript", "template text", "<p>", "launchCode"):
        assert hidden not in seen, hidden


def test_docx_and_notebook(cli, scripted_server, tmp_path):
    pytest.importorskip("docx")
    make_docx(tmp_path / "report.docx")
    make_notebook(tmp_path / "analysis.ipynb", output_chars=10_000)
    s = scripted_server
    s.script("root", "```repl\nprint(repr(context))\n```", "FINAL(done)")
    p = cli("ask", "report.docx", "analysis.ipynb", "Summarise", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    seen = _repl_output(s)
    assert "# Quarterly report\\n\\nRevenue grew in every region." in seen
    assert "## Numbers" in seen and "- a bullet point" in seen and "north | 12%" in seen
    assert "# Analysis" in seen and "print('x' * 10000)" in seen
    assert "more characters of output cut" in seen and "x" * 10_000 not in seen
    assert "[output: image/png]" in seen and "iVBORw0KGgo" not in seen


@pytest.mark.parametrize("name, make, reason", [
    ("locked.pdf", lambda p: make_pdf(p, ["secret text"], password="hunter2"), "encrypted PDF: needs a password"),
    ("broken.pdf", lambda p: p.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> trailing garbage"),
     "corrupt PDF"),
    ("scan.pdf", lambda p: make_pdf(p, [None, None]), "PDF with no text layer (2 pages of images?)"),
])
def test_unconvertible_pdf_skipped_when_walked_error_when_named(cli, tmp_path, name, make, reason):
    d = tmp_path / "d"
    d.mkdir()
    make(d / name)
    (d / "notes.txt").write_text("plain notes\n")
    doc = _ls_json(cli, "d", cwd=tmp_path)
    assert [f["path"] for f in doc["files"]] == ["d/notes.txt"]
    (skip,) = doc["skipped"]
    assert skip["path"] == f"d/{name}" and skip["reason"].startswith(reason), skip
    proc = cli("ls", f"d/{name}", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"rlm: error: cannot convert d/{name}: {reason}"), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    proc = cli("ask", f"d/{name}", "question?", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr


def test_decompression_bomb_is_bounded(cli, tmp_path):
    make_pdf_bomb(tmp_path / "bomb.pdf")
    make_pdf(tmp_path / "ok.pdf", ["fine"])
    doc = _ls_json(cli, ".", cwd=tmp_path)
    assert [f["path"] for f in doc["files"]] == ["ok.pdf"]
    (skip,) = doc["skipped"]
    assert skip["path"] == "bomb.pdf"


def test_converted_text_is_bounded_by_max_input_size(cli, tmp_path):
    make_pdf(tmp_path / "long.pdf", ["word " * 100] * 20)
    proc = cli("ls", "long.pdf", "--max-input-size", "1kB", cwd=tmp_path)
    assert proc.returncode == 2
    assert "over --max-input-size" in proc.stderr or "converted text over" in proc.stderr, proc.stderr
