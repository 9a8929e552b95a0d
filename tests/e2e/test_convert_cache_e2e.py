"""The cache of converted documents through the installed ``rlm``: a second ``rlm ls`` of the same
documents prints exactly what the first did, from entries kept 0600 in a 0700 directory under the
user cache (``$RLM_HOME/cache/convert``); a tampered entry changes nothing the user sees."""

from __future__ import annotations

import stat

from convert_support import document_entries, make_html, make_pdf


def test_second_ls_is_identical_and_the_cache_is_private(cli, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    make_pdf(docs / "report.pdf", ["Introduction.", "The launch code is 4242.", "Appendix."])
    make_html(docs / "page.html")
    first = cli("ls", "--json", "docs", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    directory = cli.home / "cache" / "convert"
    entries = document_entries(directory)  # the mark the directory's load leaves is not one
    assert len(entries) == 2 and len(list(directory.glob("*.txt"))) == 3
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in directory.glob("*.txt")} == {0o600}
    second = cli("ls", "--json", "docs", cwd=tmp_path)
    assert (second.returncode, second.stdout, second.stderr) == (0, first.stdout, first.stderr)
    originals = {p: p.read_bytes() for p in entries}
    for entry in entries:  # poisoned: the text changed, the header kept
        entry.write_bytes(entry.read_bytes().replace(b"4242", b"6666").replace(b"12", b"66"))
    third = cli("ls", "--json", "docs", cwd=tmp_path)
    assert (third.returncode, third.stdout, third.stderr) == (0, first.stdout, first.stderr)
    assert {p: p.read_bytes() for p in entries} == originals  # removed and written afresh
    plain = cli("ls", "docs", cwd=tmp_path)
    assert "converted from PDF, 3 pages" in plain.stdout and "converted from HTML" in plain.stdout
