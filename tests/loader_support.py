"""Shared helpers for the loader tests (no tests here): fixture trees and git's answer (the ``cli``
fixture runs ``rlm``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

RLM = str(Path(sys.executable).parent / "rlm")

LATIN1_TEXT = "Où est la bibliothèque ? Élève, août, garçon, Noël, déjà vu, naïve façade.\n"
SJIS_TEXT = "これは日本語のテキストです。ファイルの文字コードを判定します。\n"
UTF16_TEXT = "UTF-16 with a byte order mark: Grüße, 你好.\n"


@pytest.fixture
def git_env(tmp_path, monkeypatch):
    """A hermetic git: HOME and XDG_CONFIG_HOME in the test's directory, no system config.

    The global excludes file (``$XDG_CONFIG_HOME/git/ignore``) ignores ``*.swp``.
    """
    home = tmp_path / "home"
    xdg = home / ".config"
    (xdg / "git").mkdir(parents=True)
    (xdg / "git" / "ignore").write_text("*.swp\n")
    for key in list(os.environ):
        if key.startswith("GIT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "t")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "t@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "t")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "t@example.com")
    return home


def git(root: Path, *args: str) -> str:
    """Run git in ``root``; returns stdout."""
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True).stdout


def git_init(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")


def git_set(root: Path) -> set[str]:
    """``git ls-files -co --exclude-standard``, as a set of paths."""
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "-co", "--exclude-standard"],
                         check=True, capture_output=True).stdout
    return {os.fsdecode(p) for p in out.split(b"\0") if p}


def write(root: Path, rel: str, data: str | bytes = "x\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def make_tree(root: Path) -> None:
    """The main fixture: ignore rules of every kind, hidden, binary, encoded and empty files.

    Nothing is committed, so git's answer depends on the ignore rules alone and can be compared
    with the rules walk on the same tree without ``.git``.
    """
    git_init(root)
    write(root, ".gitignore", (
        "# a comment\n"
        "*.log\n"
        "!keep.log\n"           # negation
        "/anchored.txt\n"       # anchored: only at the top
        "build/\n"              # directory only
        "cache\n"               # file or directory, any depth
        "docs/*.tmp\n"          # anchored by its middle slash; * does not cross /
        "**/gen/**\n"           # everything inside any gen/
        "out/\n!out/keep.txt\n"  # cannot re-include below an excluded directory
        "[Tt]emp*\n"            # a character class
        "\\#hash.txt\n"         # an escaped leading #
        "spaced.txt   \n"       # trailing spaces are dropped
    ))
    for rel in ["a.py", "debug.log", "keep.log", "anchored.txt", "sub/anchored.txt", "build/out.txt",
                "sub/build", "cache/x.txt", "sub/cache", "docs/a.tmp", "docs/deep/b.tmp",
                "pkg/gen/x.py", "pkg/gen/deep/y.py", "pkg/generated.py", "out/keep.txt", "out/other.txt",
                "Temp1.txt", "temp2.txt", "attempt.txt", "#hash.txt", "spaced.txt", "editor.swp"]:
        write(root, rel)
    # nested .gitignore: deeper files win; anchored patterns are relative to their directory
    write(root, "sub/.gitignore", "!debug.log\n*.dat\n/local.cfg\n")
    for rel in ["sub/debug.log", "sub/x.dat", "sub/local.cfg", "sub/inner/local.cfg", "sub/inner/z.log"]:
        write(root, rel)
    # the allow-list idiom: ignore everything but directories and .py files
    write(root, "only/.gitignore", "*\n!*/\n!*.py\n")
    for rel in ["only/a.py", "only/a.txt", "only/deep/b.py", "only/deep/c.md"]:
        write(root, rel)
    # hidden files are git's to decide
    for rel in [".env", ".hidden/dir/file.txt", ".github/workflows/ci.yml"]:
        write(root, rel)
    # binary files with text extensions, encodings, empty files
    write(root, "image.txt", b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    write(root, "data.json", b'{"a": 1}\x00\x00\x00')
    write(root, "latin1.txt", (LATIN1_TEXT * 3).encode("latin-1", "replace"))
    write(root, "sjis.txt", (SJIS_TEXT * 20).encode("shift_jis"))
    write(root, "utf16.txt", b"\xff\xfe" + UTF16_TEXT.encode("utf-16-le"))
    write(root, "utf8bom.md", b"\xef\xbb\xbf# title\n")
    write(root, "empty.py", b"")
    write(root, "sub/empty.txt", b"")


def kinds_tree(root, n: int, every: int, dirs: int, reps: tuple[int, int, int, int]) -> None:
    """``n`` files under ``dirs`` directories, of every kind the loader writes differently, cycling
    every ``every`` files: binary (skipped), latin-1 and Shift-JIS (decoded), empty, no final newline,
    and plain Python for the rest. ``reps``: (binary pairs, decoded text repeats, no-newline
    repeats, base line count of the Python files)."""
    binary, decoded, no_newline, lines = reps
    for i in range(n):
        kind, d = i % every, f"d{i % dirs}"
        if kind == 0:
            write(root, f"{d}/bin{i}.dat", b"\x00\x01" * binary)
        elif kind == 1:
            write(root, f"{d}/latin{i}.txt", (LATIN1_TEXT * decoded).encode("latin-1", "replace"))
        elif kind == 2:
            write(root, f"{d}/sjis{i}.txt", (SJIS_TEXT * decoded).encode("shift_jis"))
        elif kind == 3:
            write(root, f"{d}/empty{i}.py", b"")
        elif kind == 4:
            write(root, f"{d}/nonl{i}.md", "déjà vu, no newline at the end " * no_newline)
        else:
            write(root, f"{d}/f{i}.py", f"line {i}\n" * (lines + 10 * i))

