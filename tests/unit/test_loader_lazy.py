"""Work a load does not need is not done (issue 24, "work done twice"): a tree without documents
converts nothing and imports neither pypdf, Beautiful Soup nor chardet (a converter started ahead of
its first walk is stopped at the plan, and its second load starts none); a second load of a tree
with non-UTF-8 files takes chardet's answers from the cache; Beautiful Soup is imported without the
extras rlm never asks of it, and converts exactly as with them. Checked in fresh interpreters, via
``sys.modules``: never by timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from convert_support import make_html

from rlm_cli.loader import detect_cache
from rlm_cli.loader.convert import Converted
from rlm_cli.loader.convert.cache import ConvertCache, entry_key

# Runs `rlm ls ARGS --json` in this interpreter (no exit of the process), then prints one JSON line:
# the heavy modules loaded and how many converter workers were started.
LS_PROBE = """
import json, os, sys
if os.environ.get("PROBE_ONE_CPU"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
from rlm_cli.loader.convert import worker
starts = []
real_start = worker.ConverterProcess._start
def counting_start(self):
    if self._proc is None:
        starts.append(1)
    return real_start(self)
worker.ConverterProcess._start = counting_start
from rlm_cli.commands.app import app
sys.argv = ["rlm", "ls", *sys.argv[1:]]
import io, contextlib
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        app(standalone_mode=False)
    except SystemExit:
        pass
listing = json.loads(out.getvalue())
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("pypdf", "bs4", "chardet", "lxml", "rich"))
print(json.dumps({"heavy": heavy, "starts": len(starts),
                  "files": [[f["path"], f["encoding"], f["chars"]] for f in listing["files"]]}))
"""


def _ls(args: list[str], home: Path, cache_max: str | None = None, one_cpu: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLM_")}
    env["RLM_HOME"] = str(home)
    if one_cpu:
        env["PROBE_ONE_CPU"] = "1"
    if cache_max is not None:
        env["RLM_CONVERT_CACHE_MAX"] = cache_max
    proc = subprocess.run([sys.executable, "-c", LS_PROBE, *args, "--json"], capture_output=True,
                          text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _text_tree(root: Path, n: int = 80) -> Path:
    """``n`` small UTF-8 source files, a README and an HTML fragment (source code, not a page)."""
    (root / "pkg").mkdir(parents=True)
    for i in range(n):
        (root / "pkg" / f"m{i}.py").write_text(f"def f{i}():\n    return {i}  # é\n", encoding="utf-8")
    (root / "README.md").write_text("# tree\n", encoding="utf-8")
    (root / "page.html").write_text("<div>{{ a fragment: source, not a page }}</div>\n")
    return root


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return 1


def test_ls_of_a_tree_without_documents_converts_nothing_and_imports_no_parser(tmp_path):
    tree = _text_tree(tmp_path / "tree")
    first = _ls([str(tree)], tmp_path / "home")
    assert len(first["files"]) == 82
    # a tree never loaded before: the converter is started ahead of the walk on a spare CPU
    # (Conversions.before_walk), and stopped when the plan holds nothing to convert
    assert first["starts"] == (1 if _cpus() >= 2 else 0)
    assert first["heavy"] == []  # no pypdf, bs4, chardet, lxml in rlm itself; and no Rich on a pipe
    second = _ls([str(tree)], tmp_path / "home")
    assert second["starts"] == 0 and second["heavy"] == [] and second["files"] == first["files"]
    if _cpus() >= 2:  # no spare CPU: nothing is started ahead, even the first time
        alone = _ls([str(tree)], tmp_path / "home-one-cpu", one_cpu=True)
        assert alone["starts"] == 0 and alone["files"] == first["files"]


def test_second_load_takes_the_detected_encoding_from_the_cache(tmp_path):
    tree = _text_tree(tmp_path / "tree")
    (tree / "legacy.txt").write_bytes("caf\xe9 cr\xe8me br\xfbl\xe9e, na\xefve fa\xe7ade\n".encode("cp1252"))
    home = tmp_path / "home"
    first = _ls([str(tree)], home)
    assert "chardet" in first["heavy"]  # detected once...
    second = _ls([str(tree)], home)
    assert second["files"] == first["files"]
    assert [f for f in second["files"] if f[0].endswith("legacy.txt")][0][1] == "cp1252"
    assert second["heavy"] == []  # ...then taken from the cache: chardet is not even imported
    off = _ls([str(tree)], tmp_path / "home-off", cache_max="0")
    assert off["files"] == first["files"] and "chardet" in off["heavy"]
    assert not (tmp_path / "home-off" / "cache").exists()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RLM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RLM_CONVERT_CACHE_MAX", raising=False)
    monkeypatch.setattr(detect_cache, "_memo", {})
    monkeypatch.setattr(detect_cache, "_opened", {})
    return ConvertCache.open()


@pytest.mark.parametrize("planted", ["hex", "rot_13", "zlib_codec", "ascii", "no-such-codec", "UTF-8", "",
                                     "x" * 100])
def test_a_planted_answer_that_detection_could_not_give_is_ignored(cache, planted):
    sample = "d\xe9j\xe0 vu\n".encode("latin-1") * 20
    key = entry_key(detect_cache.KIND, __import__("hashlib").sha256(sample).hexdigest())
    cache.put(key, Converted(planted, detect_cache.NOTE))
    calls = []

    def detect(s):
        calls.append(s)
        return "cp1252"
    assert detect_cache.detect_cached(sample, detect) == "cp1252"
    assert calls == [sample]
    # the fresh answer replaced the planted one
    assert detect_cache.detect_cached(sample, lambda s: pytest.fail("detected again")) == "cp1252"
    detect_cache._memo.clear()
    assert detect_cache.detect_cached(sample, lambda s: pytest.fail("detected again")) == "cp1252"


def test_a_document_entry_under_the_same_bytes_is_not_an_answer(cache):
    """An entry of another kind can never answer: the kind is part of the key, and the note is checked."""
    sample = b"\xe9t\xe9\n" * 10
    key = entry_key(detect_cache.KIND, __import__("hashlib").sha256(sample).hexdigest())
    cache.put(key, Converted("cp1252", "converted from HTML"))
    assert detect_cache.detect_cached(sample, lambda s: "latin_1") == "latin_1"


def test_bs4_without_its_extras_converts_exactly_as_with_them(tmp_path):
    page = make_html(tmp_path / "page.html")
    probe = """
import sys, json
if sys.argv[2] == "full":
    import bs4, bs4.css, soupsieve, lxml  # every extra loaded first: nothing hidden
from rlm_cli.loader.convert import convert_file
text = convert_file("html", sys.argv[1], 10**6).text
hidden = {m: m in sys.modules for m in ("lxml", "soupsieve", "html5lib", "chardet")}
import lxml, soupsieve, chardet  # still importable afterwards
print(json.dumps([text, hidden]))
"""
    outs = {}
    for mode in ("lean", "full"):
        proc = subprocess.run([sys.executable, "-c", probe, str(page), mode], capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr
        assert "soupsieve" not in proc.stderr  # no warning about CSS selectors
        outs[mode] = json.loads(proc.stdout)
    assert outs["lean"][0] == outs["full"][0]
    assert "# Launch procedure" in outs["lean"][0] and "12" in outs["lean"][0]
    assert outs["lean"][1] == {"lxml": False, "soupsieve": False, "html5lib": False, "chardet": False}
    assert outs["full"][1]["lxml"] is True


def test_converter_worker_never_imports_from_the_current_directory(tmp_path):
    """The worker is ``python -m``: without ``-P`` the directory rlm runs from came first on its
    ``sys.path``, so a ``pypdf/`` (or ``bs4/``, ``rlm_cli/``) in a checked-out tree ran as code."""
    from convert_support import make_pdf

    marker = tmp_path / "ran"
    for name in ("pypdf", "bs4"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    make_pdf(tmp_path / "doc.pdf", ["hello from the page"])
    make_html(tmp_path / "page.html")
    rlm = Path(sys.executable).parent / "rlm"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLM_")}
    env["RLM_HOME"] = str(tmp_path / "home")
    proc = subprocess.run([str(rlm), "ls", "doc.pdf", "page.html"], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "converted from PDF" in proc.stdout and "converted from HTML" in proc.stdout
    assert not marker.exists()
