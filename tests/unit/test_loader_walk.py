"""The file set: git's exactly, with git (ls-files) and without it (the rules walk)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from loader_support import git, git_env, git_init, git_set, make_tree, write  # noqa: F401

from rlm_cli.loader import LoadOptions, load_sources
from rlm_cli.loader.walk import WalkState, list_directory, walk_rules

pytestmark = pytest.mark.usefixtures("git_env")

BINARIES = {"image.txt", "data.json"}


def rules_set(root: Path, **kw) -> set[str]:
    return {f.rel for f in walk_rules(str(root), **kw)}


def walked_set(root: Path) -> set[str]:
    return {f.rel for f in list_directory(str(root), WalkState())}


def loaded_set(root: Path, tmp_path: Path, **opts) -> tuple[set[str], dict[str, str]]:
    ctx = load_sources([str(root)], LoadOptions(default_excludes=False, **opts), tmp_path / "ctx.txt")
    prefix = str(root) + "/"
    return ({f.path.removeprefix(prefix) for f in ctx.files},
            {s.path.removeprefix(prefix): s.reason for s in ctx.skipped})


def test_walk_equals_git_ls_files(tmp_path):
    root = tmp_path / "repo"
    make_tree(root)
    expected = git_set(root)
    # sanity: the fixture exercises each rule the way git does
    assert {"a.py", "keep.log", "sub/anchored.txt", "sub/build", "docs/deep/b.tmp", "pkg/generated.py",
            "attempt.txt", "sub/debug.log", "sub/inner/local.cfg", "only/a.py",
            "only/deep/b.py", ".env", ".hidden/dir/file.txt", ".github/workflows/ci.yml"} <= expected
    assert not {"debug.log", "anchored.txt", "build/out.txt", "cache/x.txt", "sub/cache", "docs/a.tmp",
                "pkg/gen/x.py", "out/keep.txt", "Temp1.txt", "temp2.txt", "#hash.txt", "editor.swp", "spaced.txt",
                "sub/x.dat", "sub/local.cfg", "sub/inner/z.log", "only/a.txt", "only/deep/c.md",
                "only/.gitignore"} & expected
    assert walked_set(root) == expected
    assert rules_set(root) == expected  # the rules walk, on the same tree with .git present


def test_loaded_set_is_git_set_minus_binaries(tmp_path):
    root = tmp_path / "repo"
    make_tree(root)
    expected = git_set(root)
    loaded, skipped = loaded_set(root, tmp_path)
    assert loaded == expected - BINARIES
    assert {p: r.split(" ")[0] for p, r in skipped.items()} == {p: "binary" for p in BINARIES}


def test_without_dot_git_the_rules_give_the_same_set(tmp_path):
    root = tmp_path / "repo"
    make_tree(root)
    expected = git_set(root)
    bare = tmp_path / "copy"
    shutil.copytree(root, bare, symlinks=True)
    shutil.rmtree(bare / ".git")
    assert walked_set(bare) == expected
    loaded, _ = loaded_set(bare, tmp_path)
    assert loaded == expected - BINARIES


def test_info_exclude_and_global_excludes(tmp_path):
    root = tmp_path / "repo"
    git_init(root)
    (root / ".git" / "info").mkdir(exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("secret.env\n!keep.swp\n")
    for rel in ["secret.env", "sub/secret.env", "x.swp", "keep.swp", "ok.txt"]:
        write(root, rel)
    expected = git_set(root)
    assert expected == {"ok.txt", "keep.swp"}  # info/exclude outranks the global excludes file
    assert walked_set(root) == expected
    assert rules_set(root) == expected


def test_tracked_files_are_loaded_even_when_ignored(tmp_path):
    root = tmp_path / "repo"
    git_init(root)
    write(root, ".gitignore", "*.log\n")
    write(root, "forced.log")
    write(root, "other.log")
    git(root, "add", "-f", "forced.log")
    assert walked_set(root) == git_set(root) == {".gitignore", "forced.log"}


def test_subdirectory_of_a_repo_uses_the_parent_rules(tmp_path):
    root = tmp_path / "repo"
    make_tree(root)
    expected = {p.removeprefix("sub/") for p in git_set(root) if p.startswith("sub/")}
    assert walked_set(root / "sub") == expected
    assert rules_set(root / "sub") == expected


def test_a_named_ignored_directory_is_walked(tmp_path):
    root = tmp_path / "repo"
    git_init(root)
    write(root, ".gitignore", "build/\n")
    write(root, "build/out.txt")
    write(root, "build/.gitignore", "*.o\n")
    write(root, "build/x.o")
    assert git_set(root / "build") == set()
    assert walked_set(root / "build") == {".gitignore", "out.txt"}


def test_nested_repository_is_reported_not_entered(tmp_path):
    root = tmp_path / "repo"
    git_init(root)
    write(root, "a.txt")
    git_init(root / "inner")
    write(root, "inner/b.txt")
    expected = git_set(root)
    assert expected == {"a.txt", "inner/"}
    found = {f.rel: f.kind for f in list_directory(str(root), WalkState())}
    assert found == {"a.txt": "file", "inner/": "repo"}
    assert {f.rel: f.kind for f in walk_rules(str(root))} == found


@pytest.mark.parametrize("patterns, paths", [
    (["build/", "!build/keep.txt"], ["build/keep.txt", "build/x", "keep.txt"]),
    (["*", "!*/", "!*.py"], ["a.py", "a.txt", "s/b.py", "s/t/c.txt", "s/t/d.py"]),
    (["/*", "!/foo", "/foo/*", "!/foo/bar"], ["x", "foo/a", "foo/bar/c", "foo/bar/d/e"]),
    (["a/**/b", "**/c", "d/**"], ["a/b", "a/x/y/b", "x/a/b", "c", "x/y/c", "d/e", "d/f/g", "dd/e"]),
    (["[a-c]*.txt", "[!x]?.md", "\\!bang", "*.TXT"], ["a1.txt", "d.txt", "b.md", "xb.md", "yb.md",
                                                       "!bang", "Z.TXT", "z.txt"]),
    (["doc/*.md", "/doc/x/"], ["doc/a.md", "doc/b/c.md", "doc/x/y.txt", "s/doc/a.md"]),
    (["*.o", "!important.o", "lib/*.o"], ["a.o", "important.o", "lib/important.o", "lib/x/important.o"]),
])
def test_patterns_match_git(tmp_path, patterns, paths):
    root = tmp_path / "repo"
    git_init(root)
    write(root, ".gitignore", "\n".join(patterns) + "\n")
    for rel in paths:
        write(root, rel)
    assert walked_set(root) == git_set(root)
    assert rules_set(root) == git_set(root)


def test_symlinks_are_reported_not_followed(tmp_path):
    root = tmp_path / "repo"
    git_init(root)
    write(root, "a.py", "print(1)\n")
    os.symlink("a.py", root / "link.py")
    os.symlink(".", root / "loop")
    os.symlink("missing", root / "broken")
    assert git_set(root) == {"a.py", "link.py", "loop", "broken"}
    assert walked_set(root) == git_set(root)
    loaded, skipped = loaded_set(root, tmp_path)
    assert loaded == {"a.py"}
    assert all(skipped[p].startswith("symlink") for p in ("link.py", "loop", "broken"))


def test_follow_symlinks_survives_loops(tmp_path):
    root = tmp_path / "repo"
    git_init(root)
    write(root, "a.py", "print(1)\n")
    write(root, "d/b.py", "print(2)\n")
    write(root, "elsewhere/c.txt", "c\n")
    os.symlink("a.py", root / "link.py")  # the same file again: loaded once
    os.symlink("..", root / "d" / "up")  # a loop
    os.symlink(".", root / "self")  # another loop
    os.symlink("d", root / "dlink")  # a directory walked already, under another name
    os.symlink("nothing", root / "broken")
    os.symlink(str(tmp_path / "outside"), root / "ext")
    write(tmp_path, "outside/o.txt", "o\n")
    os.symlink("../loopA", tmp_path / "outside" / "loopB")
    os.symlink("../repo", tmp_path / "loopA")
    for _ in range(2):  # through git, then through the rules walk
        loaded, skipped = loaded_set(root, tmp_path, follow_symlinks=True)
        assert {"a.py", "d/b.py", "elsewhere/c.txt", "ext/o.txt"} <= loaded
        assert "link.py" not in loaded or "a.py" not in loaded
        assert skipped["broken"].startswith("broken symlink")
        shutil.rmtree(root / ".git", ignore_errors=True)


def test_unreadable_directory_as_non_root(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads anything: chmod cannot make a directory unreadable")
    root = tmp_path / "plain"
    write(root, "ok.txt")
    write(root, "locked/x.txt")
    os.chmod(root / "locked", 0)
    try:
        found = {f.rel: f.kind for f in walk_rules(str(root))}
    finally:
        os.chmod(root / "locked", 0o755)
    assert found["ok.txt"] == "file" and found["locked/"] == "unreadable"
