"""rlm serve's source cache: SOURCEs loaded once, loaded again when they change on disk, and each
request's messages in its own context file only."""

from __future__ import annotations

import os
import threading
import time

import pytest

from rlm_cli.loader.options import LoadOptions
from rlm_cli.serve import fingerprint as fp
from rlm_cli.serve.cache import SourceCache

OLD = 1_600_000_000  # a stamp far from now: a fingerprint with it is not racy


def _age(*paths) -> None:
    for p in paths:
        os.utime(p, (OLD, OLD))


@pytest.fixture
def no_racy(monkeypatch):
    """ctime cannot be set back: let only the stamps of the last few milliseconds count as racy."""
    monkeypatch.setattr(fp, "RACY_S", 0.0)


@pytest.fixture
def cache(tmp_path):
    caches = []

    def make(*sources, **opts):
        options = LoadOptions(**opts)
        options.allow_remote = False
        options.progress = False
        c = SourceCache([str(s) for s in sources], options)
        caches.append(c)
        return c

    yield make
    for c in caches:
        c.close()


def _text(loaded) -> str:
    return loaded.read()


def test_loaded_once_across_requests(tmp_path, cache, no_racy):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("alpha\n")
    (tree / "sub" / "b.txt").write_text("beta\n")
    time.sleep(0.05)
    c = cache(tree)
    for i in range(5):
        loaded = c.build(tmp_path / f"run{i}.txt")
        assert [f.path for f in loaded.files] == [f"{tree}/a.txt", f"{tree}/sub/b.txt"]
        assert "alpha" in _text(loaded) and "beta" in _text(loaded)
    assert c.loads == 1


def test_changed_added_and_removed_files_are_seen_next_time(tmp_path, cache, no_racy):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    a, b = tree / "a.txt", tree / "sub" / "b.txt"
    a.write_text("alpha one\n")
    b.write_text("beta\n")
    time.sleep(0.05)
    c = cache(tree)
    assert "alpha one" in _text(c.build(tmp_path / "r1.txt"))
    a.write_text("alpha two\n")  # same size: only the stamps differ
    second = _text(c.build(tmp_path / "r2.txt"))
    assert "alpha two" in second and "alpha one" not in second
    os.unlink(b)
    third = c.build(tmp_path / "r3.txt")
    assert [f.path for f in third.files] == [f"{tree}/a.txt"] and "beta" not in _text(third)
    (tree / "sub" / "new.txt").write_text("gamma\n")
    assert "gamma" in _text(c.build(tmp_path / "r4.txt"))
    assert c.loads == 4


def test_same_size_same_mtime_rewrite_is_seen(tmp_path, cache, no_racy):
    """A rewrite that keeps size and mtime (cp -p, rsync -t) still changes ctime."""
    doc = tmp_path / "doc.txt"
    doc.write_text("version A\n")
    _age(doc)
    time.sleep(0.05)
    c = cache(doc)
    assert "version A" in _text(c.build(tmp_path / "r1.txt"))
    time.sleep(0.05)
    doc.write_text("version B\n")
    _age(doc)
    assert "version B" in _text(c.build(tmp_path / "r2.txt"))


def test_racy_stamps_load_again_until_they_are_old(tmp_path, cache, monkeypatch):
    doc = tmp_path / "doc.txt"
    doc.write_text("fresh\n")
    c = cache(doc)
    c.build(tmp_path / "r1.txt")
    c.build(tmp_path / "r2.txt")
    assert c.loads == 2  # just written: the stamps cannot prove it unchanged
    monkeypatch.setattr(fp, "now", lambda: time.time() + 10 * fp.RACY_S)
    c.build(tmp_path / "r3.txt")
    c.build(tmp_path / "r4.txt")
    assert c.loads == 3


def test_vanished_source_is_an_input_error_then_recovers(tmp_path, cache, no_racy):
    from rlm_cli.errors import InputError

    doc = tmp_path / "doc.txt"
    doc.write_text("here\n")
    time.sleep(0.05)
    c = cache(doc)
    c.build(tmp_path / "r1.txt")
    doc.unlink()
    with pytest.raises(InputError):
        c.build(tmp_path / "r2.txt")
    doc.write_text("back\n")
    assert "back" in _text(c.build(tmp_path / "r3.txt"))


def test_messages_stay_in_their_own_request(tmp_path, cache, no_racy):
    """Many concurrent builds, each with its own messages file: each context holds the sources and
    its own messages, never another request's."""
    doc = tmp_path / "doc.txt"
    doc.write_text("shared source text\n" * 1000)
    time.sleep(0.05)
    c = cache(doc)
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            d = tmp_path / f"req{i}"
            d.mkdir()
            msgs = d / "conversation.txt"
            msgs.write_text(f"[system]\nMARK-{i}-END\n")
            loaded = c.build(d / "context.txt", msgs)
            assert loaded.files[-1].path == str(msgs)
            text = loaded.read()
            f = loaded.files[-1]
            assert text[f.offset:f.offset + f.chars] == f"[system]\nMARK-{i}-END\n"
            results[i] = text
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, text in results.items():
        assert text.count("shared source text") == 1000
        assert [m for m in range(12) if f"MARK-{m}-END" in text] == [i]
    assert c.loads == 1


def test_index_offsets_point_into_the_copy(tmp_path, cache, no_racy):
    (tmp_path / "t").mkdir()
    for name, body in (("x.txt", "één\n"), ("y.txt", "plain\n")):
        (tmp_path / "t" / name).write_text(body, encoding="utf-8")
    time.sleep(0.05)
    c = cache(tmp_path / "t")
    msgs = tmp_path / "m.txt"
    msgs.write_text("[user]\nhi\n")
    loaded = c.build(tmp_path / "ctx.txt", msgs)
    text = loaded.read()
    assert len(text) == loaded.total_chars
    assert [text[f.offset:f.offset + f.chars] for f in loaded.files] == ["één\n", "plain\n", "[user]\nhi\n"]


def test_over_max_input_size_with_the_messages(tmp_path, cache, no_racy):
    from rlm_cli.errors import InputError

    doc = tmp_path / "doc.txt"
    doc.write_text("x" * 900 + "\n")
    time.sleep(0.05)
    c = cache(doc, max_input_size=1000)
    msgs = tmp_path / "m.txt"
    msgs.write_text("y" * 200)
    with pytest.raises(InputError, match="max-input-size"):
        c.build(tmp_path / "ctx.txt", msgs)


def test_close_removes_the_cache_directory(tmp_path, cache):
    doc = tmp_path / "doc.txt"
    doc.write_text("x\n")
    c = cache(doc)
    c.build(tmp_path / "ctx.txt")
    directory = c._dir
    assert directory is not None and directory.is_dir()
    c.close()
    assert not directory.exists()
    from rlm_cli.errors import InputError

    with pytest.raises(InputError, match="shutting down"):  # a late request makes no new directory
        c.build(tmp_path / "late.txt")
    assert c._dir is None


def test_a_removed_cache_copy_is_loaded_again(tmp_path, cache, no_racy):
    """A temporary-files cleaner that deletes the server's copy costs a load, not a failed request."""
    from rlm_cli.repl.sandbox import remove_tree

    doc = tmp_path / "doc.txt"
    doc.write_text("kept\n")
    time.sleep(0.05)
    c = cache(doc)
    c.build(tmp_path / "r1.txt")
    remove_tree(c._dir)
    assert "kept" in _text(c.build(tmp_path / "r2.txt"))
    assert c.loads == 2
