"""The gitignore matcher against the real ``git check-ignore --no-index``, byte for byte.

Random patterns over an alphabet of wildmatch's special characters (``* ? [ ] ! ^ - : \\ /``),
POSIX class names (good and bogus), ASCII letters and non-ASCII ones (``é`` is two bytes, ``€``
three), matched against a real tree on disk (directories and files, non-UTF-8 names included):
every path git reports as ignored, and only those, must be ignored by :mod:`rlm_cli.loader.ignore`.
The measured differences of the issue are fixed cases at the top.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess

import pytest
from loader_support import git_env  # noqa: F401

from rlm_cli.loader.ignore import RuleSet, decide, fs_bytes, parse_lines

pytestmark = [pytest.mark.usefixtures("git_env"),
              pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")]

NAMES = [b"a", b"b", b"z", b"ab", b"\xc3\xa9", b"a\xc3\xa9", b"\xc3\xa9\xc3\xa9", b"\xe2\x82\xac", b"x y",
         b"[a]", b"-", b"!a", b"^", b"a-b", b"\\", b"*", b"?", b"a:", b"]", b"\xff", b"A", b"9", b"\t",
         b"o]", b"a.txt", b"b.py", b"\xc3\xa9.md", b"foo", b"foo.bar", b"#x", b" ", b"a ", b"\x7f", b"\x0b"]
ATOMS = ["a", "b", "z", "é", "€", "*", "**", "?", "??", "[", "]", "!", "^", "-", ":", "\\", "/", ".",
         "[a-c]", "[z-a]", "[!a]", "[^a]", "[é]", "[!é]", "[[:alpha:]]", "[[:bogus:]]", "[[:space:]]",
         "[[:punct:]]", "[[:digit:][:upper:]]", "[a-]", "[-a]", "[]a]", "[!]]", "[\\]]", "[a\\-z]", "[[:]",
         "[[:alpha:]", "[[:al]pha:]]", "[\\", "x", "foo", "txt", " ", "\\ ", "\\*", "\\?", "\\[", "\\é",
         "[\x01-\x7f]", "[\x80-\xff]", "[[:cntrl:]]", "[[:xdigit:]]", "[[:graph:]]", "[[:blank:]]"]


def _tree(root: str) -> list[bytes]:
    """Directories d1/, d2/ (and some NAMES as directories) with NAMES as files: every path, as bytes."""
    paths = []
    broot = os.fsencode(root)
    for i, name in enumerate(NAMES):
        if name in (b"\\",):
            continue
        if i % 4 == 0:
            os.makedirs(os.path.join(broot, name), exist_ok=True)
            paths.append(name)
            for sub in NAMES[i % 7::5]:
                with open(os.path.join(broot, name, sub), "wb"):
                    pass
                paths.append(name + b"/" + sub)
        else:
            with open(os.path.join(broot, name), "wb"):
                pass
            paths.append(name)
    return paths


def _git_ignored(root: str, paths: list[bytes]) -> set[bytes]:
    proc = subprocess.run(["git", "-c", "core.quotepath=off", "check-ignore", "--no-index", "-z", "--stdin"],
                          cwd=root, input=b"\0".join(paths) + b"\0", capture_output=True)
    assert proc.returncode in (0, 1), proc.stderr
    return {p for p in proc.stdout.split(b"\0") if p}


def _ours(root: str, lines: list[str], paths: list[bytes]) -> set[bytes]:
    """check-ignore's rule: a path is ignored when a leading directory, or the path itself, is."""
    rules = [RuleSet(parse_lines(lines))]
    out = set()
    for path in paths:
        parts = path.split(b"/")
        verdict = None
        for k in range(1, len(parts) + 1):
            sub = b"/".join(parts[:k])
            is_dir = os.path.isdir(os.path.join(os.fsencode(root), sub)) and not \
                os.path.islink(os.path.join(os.fsencode(root), sub))
            pat = decide(rules, sub, is_dir)
            if pat is not None and not pat.negated:
                verdict = True
                break
            verdict = False
        if verdict:
            out.add(path)
    return out


def _compare(tmp_path, lines: list[str]) -> None:
    root = str(tmp_path / "t")
    if os.path.exists(root):
        shutil.rmtree(root)
    os.makedirs(root)
    subprocess.run(["git", "init", "-q", root], check=True)
    paths = _tree(root)
    with open(os.path.join(root, ".gitignore"), "wb") as fh:
        fh.write(b"\n".join(fs_bytes(line) for line in lines) + b"\n")
    ours = _ours(root, [os.fsdecode(fs_bytes(line)) for line in lines], paths)
    theirs = _git_ignored(root, paths)
    assert ours == theirs, (lines, sorted(ours - theirs), sorted(theirs - ours))


@pytest.mark.parametrize("lines", [
    ["?"], ["??"], ["[!a]"], ["[!a][!a]"], ["a?"], ["a//"], ["a/"], ["[z-a]"], ["[[:bogus:]]"],
    ["[[:space:]]"], ["[[:al]pha:]]"], ["*", "!*/"], ["**\\/a"], ["d/**"], ["[é]"], ["[!é]?"],
], ids=repr)
def test_measured_differences(tmp_path, lines):
    _compare(tmp_path, lines)


def test_question_mark_is_one_byte():
    rs = RuleSet(parse_lines(["?"]))
    assert rs.match("a", False) is not None and rs.match("é", False) is None
    assert RuleSet(parse_lines(["??"])).match("é", False) is not None
    assert RuleSet(parse_lines(["[z-a]"])).match("z", False) is not None
    assert RuleSet(parse_lines(["[z-a]"])).match("m", False) is None
    assert RuleSet(parse_lines(["[[:bogus:]]"])).match("b", False) is None
    assert RuleSet(parse_lines(["a//"])).match("a", True) is None


@pytest.mark.parametrize("seed", range(6))
def test_random_patterns_match_git(tmp_path, seed):
    rng = random.Random(seed)
    for _ in range(25):
        lines = []
        for _ in range(rng.randint(1, 4)):
            pat = "".join(rng.choice(ATOMS) for _ in range(rng.randint(1, 4)))
            if rng.random() < 0.2:
                pat = "!" + pat
            if rng.random() < 0.2:
                pat += "/" * rng.randint(1, 2)
            if rng.random() < 0.15:
                pat = "/" + pat
            if pat.strip() and not pat.startswith("#") and "\n" not in pat and "\r" not in pat:
                lines.append(pat)
        if lines:
            _compare(tmp_path, lines)
