"""EPUB books that repeat themselves (issue 21, point 9), through the installed ``rlm``: a book of a
few kB whose spine names one text-less 550 kB chapter 5,000 times (directly, or through 5,000 manifest
ids for the one file) converts as one chapter; distinct chapters whose markup together passes the
book's bound are refused with one line."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

SAFETY_S = 120  # an outer bound for a hung rlm only (today's main runs into the 600 s file timeout)
CHAPTER = "<html><body><p>CHAPTER-TEXT</p>" + "<div></div>" * 50_000 + "</body></html>"  # ~550 kB


def book(path: Path, manifest: str, spine: str, chapters: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        zf.writestr("META-INF/container.xml", '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
                    '<rootfiles><rootfile full-path="OEBPS/c.opf"/></rootfiles></container>')
        zf.writestr("OEBPS/c.opf", f'<package xmlns="http://www.idpf.org/2007/opf"><manifest>{manifest}</manifest>'
                    f'<spine>{spine}</spine></package>')
        for name, text in chapters.items():
            zf.writestr(f"OEBPS/{name}", text)
    return path


def test_a_spine_that_repeats_one_chapter_converts_it_once(cli, tmp_path):
    path = book(tmp_path / "repeat.epub", '<item id="c" href="c.xhtml"/>', '<itemref idref="c"/>' * 5000,
                {"c.xhtml": CHAPTER})
    assert path.stat().st_size < 50_000
    proc = cli("ls", path, "--json", cwd=tmp_path, timeout=SAFETY_S)
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)["files"]
    assert entry["chars"] < 100  # "CHAPTER-TEXT" once, not 5,000 times


def test_many_manifest_ids_for_one_file_convert_it_once(cli, tmp_path):
    ids = range(5000)
    path = book(tmp_path / "aliases.epub", "".join(f'<item id="i{i}" href="c.xhtml#p{i}"/>' for i in ids),
                "".join(f'<itemref idref="i{i}"/>' for i in ids), {"c.xhtml": CHAPTER})
    proc = cli("ls", path, "--json", cwd=tmp_path, timeout=SAFETY_S)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files"][0]["chars"] < 100


def test_markup_of_distinct_chapters_is_bounded(cli, tmp_path):
    names = [f"c{i}.xhtml" for i in range(20)]  # 11 MB of markup, over the bound for 100 kB of text
    path = book(tmp_path / "wide.epub", "".join(f'<item id="i{i}" href="{n}"/>' for i, n in enumerate(names)),
                "".join(f'<itemref idref="i{i}"/>' for i in range(len(names))), dict.fromkeys(names, CHAPTER))
    proc = cli("ls", path, "--max-input-size", "100kB", cwd=tmp_path, timeout=SAFETY_S)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.startswith("rlm: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "bytes of markup" in proc.stderr
