"""File fingerprints computed while the loader writes the context file (issue 24): the same digests
a saved session holds (BLAKE2b-16 of each file's text read back from the context file, the format
before this change), for every way a file enters the context (whole UTF-8 reads, decoded text,
streamed chunks with a restart, converted documents, the two-process load); a continued
conversation compares them without reading the context file back, and still sees a changed file."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
from loader_support import LATIN1_TEXT, SJIS_TEXT, git_env, kinds_tree, write  # noqa: F401

from rlm_cli.context import ContextWriter, text_digest
from rlm_cli.loader import LoadOptions, load_sources, parallel, read
from rlm_cli.run import session

pytestmark = pytest.mark.usefixtures("git_env")


def read_back_digests(loaded) -> dict[str, str]:
    """The fingerprints as sessions computed them before: each file's text read back from the context
    file, encoded as UTF-8 (surrogatepass), BLAKE2b with a 16-byte digest."""
    with open(loaded.path, encoding="utf-8", newline="") as fh:
        whole = fh.read()
    return {f.path: hashlib.blake2b(whole[f.offset:f.offset + f.chars].encode("utf-8", "surrogatepass"),
                                    digest_size=16).hexdigest() for f in loaded.files}


def mixed_tree(root, n: int = 120) -> None:
    """Files of every kind the loader writes differently: ASCII, UTF-8, latin-1 and Shift-JIS (decoded),
    no final newline, empty, binary (skipped), an HTML page (converted)."""
    kinds_tree(root, n, every=8, dirs=5, reps=(3000, 100, 200, 500))
    write(root, "page.html", b"<!doctype html><html><head><title>T</title></head><body><h1>Hello</h1>"
                             b"<p>caf\xc3\xa9 au lait</p></body></html>")


def test_the_loader_digests_equal_the_read_back_ones(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    mixed_tree(root)
    monkeypatch.setattr(parallel, "available", lambda *a: False)
    loaded = load_sources([str(root)], LoadOptions(), tmp_path / "ctx.txt")
    assert any(f.converted for f in loaded.files) and any(f.encoding != "utf-8" for f in loaded.files)
    assert any(f.chars == 0 for f in loaded.files)
    assert loaded.digests == read_back_digests(loaded)
    assert set(loaded.digests) == {f.path for f in loaded.files}


def test_streamed_files_and_restarts_are_digested_as_written(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    # streamed in small chunks; the latin-1 byte late in the file makes strict UTF-8 fail after
    # chunks were written: the file is rolled back and decoded again
    write(root, "late-latin1.log", ("é" * 3000 + "x\n" * 4000).encode("utf-8") + "caf\xe9\n".encode("latin-1"))
    write(root, "utf8.log", ("naïve line\n" * 5000).encode("utf-8"))
    monkeypatch.setattr(read, "WHOLE_READ_BYTES", 1024)
    monkeypatch.setattr(read, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(parallel, "available", lambda *a: False)
    loaded = load_sources([str(root)], LoadOptions(), tmp_path / "ctx.txt")
    assert {f.path.rsplit("/", 1)[1]: f.encoding for f in loaded.files}["late-latin1.log"] != "utf-8"
    assert loaded.digests == read_back_digests(loaded)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_the_two_process_load_carries_the_child_digests(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    mixed_tree(root, 300)
    used = []
    real = parallel.load_in_two

    def spy(*args, **kwargs):
        used.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(parallel, "available", lambda *a: True)
    monkeypatch.setattr(parallel, "load_in_two", spy)
    loaded = load_sources([str(root)], LoadOptions(), tmp_path / "ctx.txt")
    assert used
    assert loaded.digests == read_back_digests(loaded)
    assert len(loaded.digests) == len(loaded.files)


def test_a_writer_without_digests_and_a_part_without_them_fall_back_to_reading(tmp_path):
    plain = ContextWriter(tmp_path / "plain.txt")
    plain.add("a.txt", "alpha\n")
    plain.add("b.txt", "bêta, no newline")
    part = plain.finish()
    assert part.digests == {}
    assert session.fingerprints(part) == read_back_digests(part)
    # a report in the five-item shape (rlm serve's cached SOURCEs) appended to a digesting writer
    writer = ContextWriter(tmp_path / "ctx.txt", digests=True)
    writer.add("first.txt", "one\n")
    fd = os.open(part.path, os.O_RDONLY)
    try:
        files = [(f.path, f.offset, f.chars, f.lines, f.size_bytes, f.encoding, f.language, f.converted, f.pages)
                 for f in part.files]
        writer.append_part(fd, (0, part.total_bytes, part.total_chars, files, []))
    finally:
        os.close(fd)
    writer.add("last.txt", "three\n")
    loaded = writer.finish()
    assert set(loaded.digests) == {"first.txt", "last.txt"}
    assert session.fingerprints(loaded) == read_back_digests(loaded)


def test_rollback_drops_the_digests_of_dropped_files(tmp_path):
    writer = ContextWriter(tmp_path / "ctx.txt", digests=True)
    writer.add("keep.txt", "kept\n")
    writer.checkpoint()
    writer.add("dropped.txt", "gone\n")
    writer.begin("again.txt")
    writer.write("half")
    writer.rollback()
    writer.add("again.txt", "whole text\n")
    loaded = writer.finish()
    assert loaded.digests == {"keep.txt": text_digest("kept\n"), "again.txt": text_digest("whole text\n")}
    assert loaded.digests == read_back_digests(loaded)


def test_ls_options_compute_no_digests(tmp_path):
    write(tmp_path, "a.txt", b"alpha\n")
    options = LoadOptions()
    options.digests = False
    loaded = load_sources([str(tmp_path / "a.txt")], options, tmp_path / "ctx.txt")
    assert loaded.digests == {} and len(loaded.files) == 1


def _continued(fingerprints: dict[str, str]):
    link = session.new_session(["tree"])
    link.messages = [{"role": "system", "content": "SYSTEM"}, {"role": "user", "content": "Question: q1"},
                     {"role": "assistant", "content": "FINAL(A1)"}]
    link.record = {"turns": 1, "last": {"answer": "A1", "status": "answered"}, "fingerprints": fingerprints}
    link.prior_doc = {"session": {"turns": [{"question": "q1", "answer": "A1", "status": "answered"}]}}
    return link


def test_a_continued_run_never_reads_the_context_file_back_and_sees_a_change(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    mixed_tree(root, 40)
    first = load_sources([str(root)], LoadOptions(), tmp_path / "first.txt")
    stored = read_back_digests(first)  # what an older rlm stored for this load
    changed = next(f.path for f in first.files if f.path.endswith("f5.py"))
    (root / changed.split("tree/", 1)[1]).write_text("line 5 changed\n")
    write(root, "added.txt", b"new\n")
    loaded = load_sources([str(root)], LoadOptions(), tmp_path / "second.txt")
    reads = []
    real_open = open

    def watch_open(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(loaded.path):
            reads.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", watch_open)
    link = _continued(stored)
    monkeypatch.setattr(session, "window_tokens", lambda model: 10**6)
    opening = asyncio.run(link.opening("q2", loaded, None, "openai/x"))
    assert reads == []  # the fingerprints came from the load
    assert opening is not None
    assert link.turn_extra["files_changed"] == [changed]
    assert [p.rsplit("/", 1)[1] for p in link.turn_extra["files_added"]] == ["added.txt"]
    assert link.turn_extra["files_removed"] == []
    assert link.fingerprints == read_back_digests(loaded)
