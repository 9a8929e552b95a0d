"""The two-process load gives exactly the sequential result, also when the child fails."""

from __future__ import annotations

import os
import threading
import time

import pytest
from loader_support import LATIN1_TEXT, SJIS_TEXT, git_env, kinds_tree, write  # noqa: F401

from rlm_cli.context import ContextWriter
from rlm_cli.loader import LoadOptions, decode, load_sources, parallel, read, sources

pytestmark = [pytest.mark.usefixtures("git_env"),
              pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")]


def big_tree(root):
    """300 files of every kind the loader tells apart: about 5 MB."""
    kinds_tree(root, 300, every=10, dirs=7, reps=(4000, 200, 300, 2000))


def snapshot(ctx):
    return (ctx.path.read_bytes(), ctx.files, ctx.skipped, ctx.total_chars, ctx.total_bytes)


def sequential(root, dest, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(parallel, "available", lambda *a: False)
        return snapshot(load_sources([str(root)], LoadOptions(), dest))


def force_parallel(monkeypatch, used):
    real = parallel.load_in_two

    def spy(*args, **kwargs):
        used.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(parallel, "available", lambda *a: True)
    monkeypatch.setattr(parallel, "load_in_two", spy)


def meet_in_the_middle(monkeypatch, tmp_path):
    """Make the parent wait (at its first file) until the child has loaded one: both surely work."""
    parent, marker = os.getpid(), tmp_path / "child-started"
    real = sources._load_item

    def load_item(writer, item, *rest):
        if os.getpid() != parent:
            marker.touch()
        else:
            deadline = time.monotonic() + 60
            while not marker.exists() and time.monotonic() < deadline:
                time.sleep(0.005)
        real(writer, item, *rest)

    monkeypatch.setattr(sources, "_load_item", load_item)


def test_two_processes_give_the_sequential_result(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    big_tree(root)
    expected = sequential(root, tmp_path / "seq.txt", monkeypatch)
    used: list = []
    force_parallel(monkeypatch, used)
    meet_in_the_middle(monkeypatch, tmp_path)
    got = snapshot(load_sources([str(root)], LoadOptions(), tmp_path / "par.txt"))
    assert used and (tmp_path / "child-started").exists()
    assert got == expected
    assert not (tmp_path / "par.txt.part").exists()


def test_the_parent_sends_its_encoding_samples_to_the_child(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    big_tree(root)  # latin-1 and Shift-JIS files all along: the parent meets some
    expected = sequential(root, tmp_path / "seq.txt", monkeypatch)
    force_parallel(monkeypatch, [])
    meet_in_the_middle(monkeypatch, tmp_path)
    monkeypatch.setattr(parallel, "ANSWER_TIMEOUT", 120)
    calls = []  # filled in the parent only: the child appends to its own copy
    real = decode.detect_here

    def detect_here(sample):
        calls.append(os.getpid())
        return real(sample)

    monkeypatch.setattr(decode, "detect_here", detect_here)
    in_parent, parent, load_item = [], os.getpid(), sources._load_item

    def record(writer, item, *rest):
        if os.getpid() == parent:
            in_parent.append(item.path)
        load_item(writer, item, *rest)

    monkeypatch.setattr(sources, "_load_item", record)
    got = snapshot(load_sources([str(root)], LoadOptions(), tmp_path / "par.txt"))
    assert got == expected
    encodings = {f.path: f.encoding for f in got[1]}
    assert any(encodings.get(p) == "cp1252" for p in in_parent)  # the parent met latin-1 files...
    assert calls == []  # ...and never ran chardet itself
    assert decode._delegate is None


def test_streamed_files_in_the_child(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    big_tree(root)
    monkeypatch.setattr(read, "WHOLE_READ_BYTES", 10_000)  # most text files are streamed in chunks
    monkeypatch.setattr(read, "CHUNK_BYTES", 4096)
    expected = sequential(root, tmp_path / "seq.txt", monkeypatch)
    force_parallel(monkeypatch, [])
    meet_in_the_middle(monkeypatch, tmp_path)
    assert snapshot(load_sources([str(root)], LoadOptions(), tmp_path / "par.txt")) == expected


@pytest.mark.parametrize("failure", ["raise", "exit", "garbage"])
def test_a_failing_child_changes_nothing(tmp_path, monkeypatch, failure):
    root = tmp_path / "tree"
    big_tree(root)
    expected = sequential(root, tmp_path / "seq.txt", monkeypatch)
    force_parallel(monkeypatch, [])
    parent = os.getpid()
    real = sources._load_item
    real_dumps = parallel.marshal.dumps

    def load_item(writer, item, *rest):
        if os.getpid() != parent and failure != "garbage":
            if failure == "exit":
                os._exit(3)
            raise RuntimeError("child broke")
        real(writer, item, *rest)

    monkeypatch.setattr(sources, "_load_item", load_item)
    if failure == "garbage":
        monkeypatch.setattr(parallel.marshal, "dumps", lambda obj: real_dumps(obj)[:-5])
    assert snapshot(load_sources([str(root)], LoadOptions(), tmp_path / "par.txt")) == expected


def test_report_and_append_round_trip(tmp_path):
    part = ContextWriter(tmp_path / "part.txt")
    part.add("skipped-before", "x\n")
    mark = part.mark()
    part.add("a.txt", "héllo\nworld")  # no final newline: one is added
    part.skip("b.bin", "binary (NUL bytes)", 12)
    part.add_utf8("c.py", b"print(1)\n", 9)
    report = part.report_since(mark)
    part.finish()
    whole = ContextWriter(tmp_path / "whole.txt")
    whole.add("first", "1\n")
    with open(tmp_path / "part.txt", "rb") as fh:
        whole.append_part(fh.fileno(), report)
    whole.add("last", "z")
    ctx = whole.finish()
    text = ctx.read()
    assert len(text) == ctx.total_chars and ctx.total_bytes == len(text.encode())
    assert {f.path: text[f.offset:f.offset + f.chars] for f in ctx.files} == {
        "first": "1\n", "a.txt": "héllo\nworld", "c.py": "print(1)\n", "last": "z"}
    assert [(s.path, s.size_bytes) for s in ctx.skipped] == [("b.bin", 12)]
    assert text.startswith("==> first <==\n1\n==> a.txt <==\nhéllo\nworld\n==> c.py <==")


def test_chunks_cover_every_item_once():
    sizes = [0, 5, 10**6, 3, 3, 3, 10**5] * 50
    bounds = parallel.chunk_bounds(sizes, 16)
    assert bounds[0] == 0 and bounds[-1] == len(sizes)
    assert all(a < b for a, b in zip(bounds, bounds[1:], strict=False))
    assert parallel.chunk_bounds([7], 16) == [0, 1]


def test_not_used_with_other_threads_or_small_loads():
    assert not parallel.available(10, 10**9) and not parallel.available(1000, 1000)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not parallel.available(10**5, 10**9)
    finally:
        stop.set()
        thread.join()


def test_documents_convert_alike_in_two_processes(tmp_path, monkeypatch):
    """PDFs and HTML pages at both ends of the item list: the child converts its share through the
    parent's worker, and the result is the sequential one."""
    from convert_support import make_html, make_pdf

    root = tmp_path / "tree"
    big_tree(root)
    for name in ("a0", "zz9"):  # sorted first and last: one lands in each process's chunks
        (root / name).mkdir(parents=True, exist_ok=True)
        make_pdf(root / name / "report.pdf", [f"{name} page one", f"{name} page two"])
        make_html(root / name / "page.html")
    expected = sequential(root, tmp_path / "seq.txt", monkeypatch)
    assert sum(1 for f in expected[1] if f.converted) == 4
    used: list = []
    force_parallel(monkeypatch, used)
    meet_in_the_middle(monkeypatch, tmp_path)
    got = snapshot(load_sources([str(root)], LoadOptions(), tmp_path / "par.txt"))
    assert used and got == expected
