"""The cache of converted documents (rlm_cli/loader/convert/cache.py): a second load converts
nothing and is identical; a poisoned cache is never trusted; the size bound; permissions."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from convert_support import document_entries, make_html, make_pdf

from rlm_cli.context import ContextWriter
from rlm_cli.errors import InputError
from rlm_cli.loader import LoadOptions, load_sources
from rlm_cli.loader.convert import Converted
from rlm_cli.loader.convert import cache as cache_mod
from rlm_cli.loader.convert.cache import ConvertCache, decode_entry, encode_entry
from rlm_cli.loader.convert.load import Conversions
from rlm_cli.loader.convert.progress import ConversionProgress
from rlm_cli.loader.convert.worker import ConverterProcess


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A user cache of our own (RLM_HOME), on."""
    monkeypatch.setenv("RLM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RLM_CONVERT_CACHE_MAX", raising=False)
    return tmp_path / "home"


@pytest.fixture
def spawns(monkeypatch):
    """Counts worker conversions and worker starts (prestart included)."""
    counts = {"convert": 0, "start": 0}
    convert, start = ConverterProcess.convert, ConverterProcess._start

    def counting_convert(self, *args, **kwargs):
        counts["convert"] += 1
        return convert(self, *args, **kwargs)

    def counting_start(self):
        if self._proc is None:
            counts["start"] += 1
        return start(self)
    monkeypatch.setattr(ConverterProcess, "convert", counting_convert)
    monkeypatch.setattr(ConverterProcess, "_start", counting_start)
    return counts


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    make_pdf(root / "report.pdf", ["alpha page one", "beta page two", "gamma page three"])
    make_html(root / "page.html")
    (root / "notes.txt").write_text("plain text\n")
    (root / "card.html").write_text("<div>{{ user.name }}</div>\n")  # a template: text, never converted
    return root


def _load(tmp_path: Path, root: Path, n: int, **opts):
    loaded = load_sources([str(root)], LoadOptions(progress=False, **opts), tmp_path / f"ctx{n}.txt")
    return loaded, loaded.read(), loaded.log_dict()


def _entries(home: Path) -> list[Path]:
    return document_entries(home / "cache" / "convert")


def test_second_load_converts_nothing_and_is_identical(tmp_path, home, spawns):
    root = _tree(tmp_path)
    first, text1, log1 = _load(tmp_path, root, 1)
    assert spawns == {"convert": 2, "start": 1}
    assert len(_entries(home)) == 2
    second, text2, log2 = _load(tmp_path, root, 2)
    assert spawns == {"convert": 2, "start": 1}  # no conversion, no worker started (not even prestarted)
    assert text2 == text1 and log2 == log1
    assert second.files == first.files and second.skipped == first.skipped
    pdf = next(f for f in second.files if f.path.endswith("report.pdf"))
    assert pdf.pages and len(pdf.pages) == 3 and pdf.converted.startswith("converted from PDF")
    assert "gamma page three" in text2


def test_changed_document_is_converted_again(tmp_path, home, spawns):
    root = _tree(tmp_path)
    _load(tmp_path, root, 1)
    make_pdf(root / "report.pdf", ["delta page one"])
    _, text, _ = _load(tmp_path, root, 2)
    assert spawns["convert"] == 3 and "delta page one" in text and "gamma" not in text


def _add(tmp_path: Path, doc: Path, max_chars: int, cache, n: int):
    writer = ContextWriter(tmp_path / f"add{n}.txt")
    conversions = Conversions(max_chars, ConversionProgress(io.StringIO()), cache=cache)
    try:
        conversions.add(writer, doc.name, str(doc), doc.stat().st_size, "pdf", strict=False)
        with pytest.raises(InputError) as strict:
            conversions.add(writer, doc.name, str(doc), doc.stat().st_size, "pdf", strict=True)
    finally:
        conversions.close()
    return writer.finish(), str(strict.value)


def test_cached_text_obeys_max_input_size_as_a_fresh_conversion(tmp_path, home, spawns):
    doc = make_pdf(tmp_path / "big.pdf", ["word " * 400] * 3)
    _load(tmp_path, tmp_path, 1)  # the whole text cached
    assert spawns["convert"] == 1
    cached, cached_error = _add(tmp_path, doc, 3000, ConvertCache.open(), 2)
    assert spawns["convert"] == 1  # answered from the cache...
    fresh, fresh_error = _add(tmp_path, doc, 3000, None, 3)
    assert spawns["convert"] == 3
    assert cached.files == fresh.files == []  # ...exactly as the converter itself answers
    assert cached.skipped == fresh.skipped and "--max-input-size" in cached.skipped[0].reason
    assert cached_error == fresh_error


@pytest.mark.parametrize("attack", ["payload", "truncated", "foreign", "symlink", "hardlink", "mode"])
def test_poisoned_entry_is_ignored_removed_and_converted_afresh(tmp_path, home, spawns, attack):
    root = _tree(tmp_path)
    _, text1, log1 = _load(tmp_path, root, 1)
    entries = _entries(home)
    by_content = {p: p.read_bytes() for p in entries}
    pdf_entry = next(p for p, b in by_content.items() if b"converted from PDF" in b.split(b"\n", 1)[0])
    other = next(p for p in entries if p != pdf_entry)
    if attack == "payload":  # header kept, text changed
        data = pdf_entry.read_bytes().replace(b"gamma page three", b"gamma page EVIL!")
        pdf_entry.write_bytes(data)
    elif attack == "truncated":
        pdf_entry.write_bytes(pdf_entry.read_bytes()[:-5])
    elif attack == "foreign":  # a valid entry for another key renamed into place
        os.replace(other, pdf_entry)
    elif attack == "symlink":  # even to a valid entry: never followed
        target = tmp_path / "evil.txt"
        target.write_bytes(by_content[pdf_entry])
        os.chmod(target, 0o600)
        pdf_entry.unlink()
        pdf_entry.symlink_to(target)
    elif attack == "hardlink":
        target = tmp_path / "evil.txt"
        os.link(pdf_entry, target)
    elif attack == "mode":
        os.chmod(pdf_entry, 0o666)
    before = spawns["convert"]
    _, text2, log2 = _load(tmp_path, root, 2)
    assert spawns["convert"] == before + 1 + (attack == "foreign")  # the poisoned one converted afresh
    assert text2 == text1 and log2 == log1 and "EVIL" not in text2
    if attack == "symlink":
        assert (tmp_path / "evil.txt").exists()  # removed the link, not what it points at
    after = pdf_entry.lstat()
    assert stat.S_ISREG(after.st_mode) and after.st_nlink == 1 and stat.S_IMODE(after.st_mode) == 0o600
    assert decode_entry(pdf_entry.stem, pdf_entry.read_bytes()) is not None


def test_permissions_and_an_unsafe_directory(tmp_path, home):
    root = _tree(tmp_path)
    _load(tmp_path, root, 1)
    directory = home / "cache" / "convert"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in directory.glob("*.txt")} == {0o600}  # marks too
    os.chmod(directory, 0o777)
    assert ConvertCache.open() is not None and stat.S_IMODE(directory.stat().st_mode) == 0o700
    # the cache directory itself replaced by a symlink: no cache at all
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    for p in directory.glob("*.txt"):
        p.unlink()
    directory.rmdir()
    directory.symlink_to(elsewhere)
    assert ConvertCache.open() is None


def test_size_bound_evicts_least_recently_used(tmp_path):
    one = Converted("x" * 3000, "converted from HTML")
    size = len(encode_entry("k" * 64, one).encode())
    cache = ConvertCache.open(tmp_path / "c", max_bytes=int(size * 2.5))
    keys = [f"{i:064x}" for i in range(3)]
    cache.put(keys[0], one)
    cache.put(keys[1], one)
    os.utime(cache.directory / (keys[0] + ".txt"), ns=(1, 1_000_000_000))
    os.utime(cache.directory / (keys[1] + ".txt"), ns=(1, 2_000_000_000))
    assert cache.get(keys[0]) == one  # used: now the most recent
    cache.put(keys[2], one)
    assert cache.get(keys[1]) is None  # the least recently used went
    assert cache.get(keys[0]) == one and cache.get(keys[2]) == one
    total = sum(p.stat().st_size for p in cache.directory.iterdir())
    assert total <= cache.max_bytes
    cache.put("f" * 64, Converted("y" * (size * 3), "too big"))  # larger than the whole bound: not kept
    assert not (cache.directory / ("f" * 64 + ".txt")).exists()


def test_env_bound(monkeypatch):
    monkeypatch.setenv("RLM_CONVERT_CACHE_MAX", "64MB")
    assert cache_mod.max_bytes_from_env() == 64_000_000
    monkeypatch.setenv("RLM_CONVERT_CACHE_MAX", "lots")
    assert cache_mod.max_bytes_from_env() == 0
    monkeypatch.delenv("RLM_CONVERT_CACHE_MAX")
    assert cache_mod.max_bytes_from_env() == cache_mod.DEFAULT_MAX_BYTES
    assert ConvertCache.open(max_bytes=0) is None


def test_decode_rejects_bad_pages_and_key(tmp_path):
    entry = encode_entry("a" * 64, Converted("text", "converted from PDF, 1 page", [0]))
    assert decode_entry("a" * 64, entry.encode()) == Converted("text", "converted from PDF, 1 page", [0])
    assert decode_entry("b" * 64, entry.encode()) is None
    assert decode_entry("a" * 64, b"") is None and decode_entry("a" * 64, b"\xff\n") is None
    header, text = entry.split("\n", 1)
    assert decode_entry("a" * 64, (header.replace("[0]", "[99]") + "\n" + text).encode()) is None


@pytest.fixture
def two_cpus(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)


def _ahead(root: Path, names: list[str]) -> tuple[Conversions, object]:
    """A Conversions that went through before_walk(root) and the plan's prestart(names under root);
    returns it and the worker started ahead of the walk (``None`` if none was)."""
    conversions = Conversions(10**6, ConversionProgress(io.StringIO()))
    conversions.before_walk([str(root)])
    started = conversions.process._proc
    conversions.prestart(names, [str(root / n) for n in names])
    return conversions, started


def test_a_worker_started_ahead_of_the_walk_is_stopped_when_nothing_is_to_convert(tmp_path, home, two_cpus):
    root = tmp_path / "code"
    root.mkdir()
    (root / "a.py").write_text("x = 1\n")
    (root / "card.html").write_text("<div>{{ a template }}</div>\n")  # a document's name, not a page
    conversions, started = _ahead(root, ["a.py", "card.html"])
    assert started is not None  # a directory never loaded: started ahead, on the spare CPU
    assert conversions.process._proc is None and started.poll() is not None  # killed and reaped at the plan
    conversions.close(loaded=True)
    again, started = _ahead(root, ["a.py", "card.html"])
    assert started is None  # loaded before (the mark in the cache): nothing started ahead
    again.close(loaded=True)
    assert len(list((home / "cache" / "convert").glob("*.txt"))) == 1  # one mark, written once


def test_a_worker_started_ahead_is_kept_for_a_document_to_convert(tmp_path, home, two_cpus):
    root = _tree(tmp_path)
    conversions, started = _ahead(root, ["notes.txt", "report.pdf"])
    try:
        assert started is not None and conversions.process._proc is started and started.poll() is None
    finally:
        conversions.close()
    assert started.poll() is not None


def test_nothing_is_started_ahead_without_a_spare_cpu_or_a_directory(tmp_path, home, monkeypatch):
    root = _tree(tmp_path)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    conversions = Conversions(10**6, ConversionProgress(io.StringIO()))
    conversions.before_walk([str(root)])
    assert conversions.process._proc is None
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    conversions.before_walk([])  # files named one by one: no walk to get ahead of
    assert conversions.process._proc is None
    conversions.close()


@pytest.mark.parametrize("planted", ["file", "symlink"])
def test_a_planted_mark_only_changes_whether_the_worker_starts_ahead(tmp_path, home, two_cpus, planted):
    from rlm_cli.loader.convert.load import walked_key

    root = _tree(tmp_path)
    expected = _load(tmp_path, root, 0)[1]
    for p in (home / "cache" / "convert").glob("*.txt"):
        p.unlink()  # nothing cached: the next load converts everything again
    mark = home / "cache" / "convert" / (walked_key([os.path.realpath(root)]) + cache_mod.SUFFIX)
    if planted == "file":
        mark.write_text("not an entry")
        os.chmod(mark, 0o600)
    else:
        mark.symlink_to(tmp_path / "elsewhere")
    conversions = Conversions(10**6, ConversionProgress(io.StringIO()))
    conversions.before_walk([str(root)])
    assert (conversions.process._proc is None) == (planted == "file")  # a symlink is not a mark
    conversions.close()
    assert _load(tmp_path, root, 1)[1] == expected
    assert not (tmp_path / "elsewhere").exists()


def test_a_load_that_fails_after_the_walk_leaves_no_worker_behind(tmp_path, home, two_cpus, monkeypatch):
    root = _tree(tmp_path)
    started = []
    real_start = ConverterProcess._start

    def recording_start(self):
        proc = real_start(self)
        if proc not in started:
            started.append(proc)
        return proc
    monkeypatch.setattr(ConverterProcess, "_start", recording_start)
    with pytest.raises(InputError, match="no such file"):
        load_sources([str(root), str(tmp_path / "missing")], LoadOptions(progress=False), tmp_path / "ctx.txt")
    assert len(started) == 1 and started[0].poll() is not None  # started ahead, then killed and reaped
    assert _entries(home) == [] and not list((home / "cache" / "convert").glob("*.txt"))  # and no mark
