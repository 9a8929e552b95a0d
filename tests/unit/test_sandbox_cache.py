"""plan_sandbox's cached look-ups (issue 24, serve throughput): the visible root and the programs found
on PATH are reused only while they still describe the filesystem; a changed symlink, a path that became
a symlink or vanished, a removed program or another PATH makes them looked up again."""

from __future__ import annotations

import os
import stat

import pytest

from rlm_cli.repl import sandbox, visible
from rlm_cli.repl.visible import VisibleRoot


@pytest.fixture(autouse=True)
def _fresh_caches():
    sandbox._ROOTS.clear()
    sandbox._WHICH.clear()
    yield
    sandbox._ROOTS.clear()
    sandbox._WHICH.clear()


def test_cached_root_equals_a_fresh_one_and_is_a_copy(tmp_path):
    first = sandbox._visible_root()
    assert first == visible.visible_root()
    first.read_only.append(str(tmp_path))  # a caller extending its copy...
    first.links.append(["/x", "y"])
    again = sandbox._visible_root()
    assert str(tmp_path) not in again.read_only and ["/x", "y"] not in again.links  # ...never the cache's
    assert again == visible.visible_root()


def test_plan_uses_the_same_root_as_before(tmp_path):
    workdir = tmp_path / "w"
    workdir.mkdir()
    plan = sandbox.plan_sandbox(str(workdir))
    if plan.kind == "none":
        pytest.skip("no namespaces here: the plan has no visible root")
    assert plan.root == visible.visible_root()
    assert sandbox.plan_sandbox(str(workdir)).root == plan.root


def _root(tmp_path):
    real = tmp_path / "real"
    (real / "lib").mkdir(parents=True)
    other = tmp_path / "other"
    (other / "lib").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to("real")
    return VisibleRoot([str(real / "lib")], [[str(link), "real"]]), real, other, link


def test_valid_while_nothing_changed(tmp_path):
    root, *_ = _root(tmp_path)
    assert sandbox._still_valid(root)


def test_a_retargeted_link_invalidates(tmp_path):
    root, _real, _other, link = _root(tmp_path)
    link.unlink()
    link.symlink_to("other")
    assert not sandbox._still_valid(root)


def test_a_removed_link_invalidates(tmp_path):
    root, _real, _other, link = _root(tmp_path)
    link.unlink()
    assert not sandbox._still_valid(root)


def test_a_path_that_became_a_symlink_invalidates(tmp_path):
    root, real, other, _link = _root(tmp_path)
    (real / "lib").rmdir()
    (real / "lib").symlink_to(other / "lib")  # the bound path now leads elsewhere
    assert not sandbox._still_valid(root)


def test_a_vanished_path_invalidates(tmp_path):
    root, real, *_ = _root(tmp_path)
    (real / "lib").rmdir()
    assert not sandbox._still_valid(root)


def test_an_invalid_cached_root_is_recomputed(monkeypatch):
    stale = VisibleRoot(["/nonexistent-rlm-test-path"], [])
    key_root = sandbox._visible_root()  # fills the cache under the current key
    (key,) = sandbox._ROOTS
    sandbox._ROOTS[key] = stale
    assert sandbox._visible_root() == key_root  # the stale entry was not used
    assert sandbox._ROOTS[key] != stale


def test_another_interpreter_layout_is_another_key(monkeypatch, tmp_path):
    sandbox._visible_root()
    monkeypatch.setenv("HOME", str(tmp_path))
    sandbox._visible_root()
    assert len(sandbox._ROOTS) == 1  # recomputed under the new key, the old entry dropped
    (key,) = sandbox._ROOTS
    assert key[-1] == str(tmp_path)


def _program(directory, name="rlmprobe"):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n")
    path.chmod(stat.S_IRWXU)
    return path


def test_which_follows_path_changes(monkeypatch, tmp_path):
    one, two = _program(tmp_path / "one"), _program(tmp_path / "two")
    monkeypatch.setenv("PATH", str(one.parent))
    assert sandbox._which("rlmprobe") == str(one)
    monkeypatch.setenv("PATH", str(two.parent))
    assert sandbox._which("rlmprobe") == str(two)


def test_which_forgets_a_removed_or_no_longer_executable_program(monkeypatch, tmp_path):
    one, two = _program(tmp_path / "one"), _program(tmp_path / "two")
    monkeypatch.setenv("PATH", os.pathsep.join([str(one.parent), str(two.parent)]))
    assert sandbox._which("rlmprobe") == str(one)
    one.unlink()
    assert sandbox._which("rlmprobe") == str(two)
    two.chmod(stat.S_IRUSR)  # no execute bit: not executable, even for root
    assert sandbox._which("rlmprobe") is None


def test_which_never_remembers_not_found(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert sandbox._which("rlmprobe") is None
    prog = _program(tmp_path / "bin")
    assert sandbox._which("rlmprobe") == str(prog)
