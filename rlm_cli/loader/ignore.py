"""Git's ignore rules (gitignore(5)), matched path by path the way git does while it walks a tree.

Why not ``pathspec.GitIgnoreSpec``: it decides for a whole file path at once and approximates
git's directory semantics with a priority rule, which gets two documented cases wrong: a file under
an excluded directory cannot be re-included (``build/`` then ``!build/keep.txt`` keeps it ignored in
git, not in pathspec), and ``*`` then ``!*/`` (the "allow-list" idiom) re-includes directories in git
while pathspec reports ``src/`` as ignored. Git itself matches each directory entry on its own while
walking and never descends into an excluded directory; :class:`RuleSet` matches one entry, and the
walker (``walk.py``) prunes. Pattern syntax follows git's ``wildmatch`` with ``WM_PATHNAME``: ``*``,
``?`` and ``[...]`` never match ``/``; ``**`` as a whole segment matches across directories; a
pattern with a ``/`` before its end is anchored to its file's directory, otherwise it matches the
entry's name at any depth; a trailing ``/`` matches directories only (not symlinks to them).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "blank": " \\t", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~", "punct": "!-/:-@\\[-`{-~",
    "space": " \\t\\n\\r\\f\\v", "upper": "A-Z", "xdigit": "0-9a-fA-F",
}
_NEVER = "(?!)"


@dataclass(frozen=True)
class Pattern:
    """One parsed gitignore line. ``regex`` is matched in full against the entry's name when
    ``basename`` is set, else against its path relative to the directory of the file the pattern
    came from (``base``)."""

    text: str
    negated: bool
    dir_only: bool
    regex: str
    source: str = ""
    basename: bool = False  # no slash before the end: ``regex`` matches the entry's name only


def _trim_trailing_spaces(line: str) -> str:
    """Git's ``trim_trailing_spaces``: drop unescaped trailing spaces."""
    last_space = None
    i = 0
    while i < len(line):
        c = line[i]
        if c == " ":
            if last_space is None:
                last_space = i
        elif c == "\\":
            i += 1
            if i >= len(line):
                return line
            last_space = None
        else:
            last_space = None
        i += 1
    return line if last_space is None else line[:last_space]


def _class_char(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c


def _bracket(pat: str, i: int) -> tuple[str, int] | None:
    """Translate the ``[...]`` starting at ``pat[i]``; ``None`` when it is not closed."""
    n, j = len(pat), i + 1
    negate = j < n and pat[j] in "!^"
    if negate:
        j += 1
    items: list[str] = []
    first = True
    while j < n:
        c = pat[j]
        if c == "]" and not first:
            body = "".join(items)
            if not body:
                return (_NEVER if not negate else "[^/]"), j + 1
            return "(?!/)[" + ("^" if negate else "") + body + "]", j + 1
        first = False
        if c == "[" and pat.startswith("[:", j):
            end = pat.find(":]", j + 2)
            if end != -1 and pat[j + 2:end] in _POSIX_CLASSES:
                items.append(_POSIX_CLASSES[pat[j + 2:end]])
                j = end + 2
                continue
        if c == "\\" and j + 1 < n:
            j += 1
            c = pat[j]
        if j + 2 < n and pat[j + 1] == "-" and pat[j + 2] != "]":
            hi_at = j + 2
            if pat[hi_at] == "\\" and hi_at + 1 < n:
                hi_at += 1
            items.append(_class_char(c) + "-" + _class_char(pat[hi_at]))
            j = hi_at + 1
            continue
        items.append(_class_char(c))
        j += 1
    return None


def glob_to_regex(pat: str) -> str:
    """Regex source for a gitignore glob (no leading ``!``, no trailing ``/``), for ``fullmatch``."""
    out: list[str] = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        if c == "*":
            j = i
            while j < n and pat[j] == "*":
                j += 1
            whole_segment = (i == 0 or pat[i - 1] == "/") and (j == n or pat[j] == "/")
            if j - i >= 2 and whole_segment:
                if j == n:
                    out.append(".*")
                else:  # "**/": zero or more directories
                    out.append("(?:.*/)?")
                    j += 1
            else:
                out.append("[^/]*")
            i = j
            continue
        if c == "?":
            out.append("[^/]")
        elif c == "[":
            translated = _bracket(pat, i)
            if translated is None:  # wildmatch aborts on an unclosed bracket: the pattern never matches
                return _NEVER
            out.append(translated[0])
            i = translated[1]
            continue
        elif c == "\\":
            if i + 1 >= n:  # a trailing backslash is invalid: never matches
                return _NEVER
            out.append(re.escape(pat[i + 1]))
            i += 2
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def parse_pattern(line: str, source: str = "") -> Pattern | None:
    """Parse one gitignore line; ``None`` for blanks and comments."""
    line = line.rstrip("\r")
    if not line or line.startswith("#"):
        return None
    text = line = _trim_trailing_spaces(line)
    negated = line.startswith("!")
    if negated:
        line = line[1:]
    dir_only = line.endswith("/")
    if dir_only:
        line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    body = line[1:] if line.startswith("/") else line
    if not body:
        return None
    regex = glob_to_regex(body)
    try:
        re.compile(regex)
    except re.error:  # e.g. a reversed range [z-a]: git's wildmatch just never matches it
        regex = _NEVER
    return Pattern(text=text, negated=negated, dir_only=dir_only, regex=regex, source=source,
                   basename=not anchored)


def parse_lines(lines: list[str], source: str = "") -> list[Pattern]:
    """Parse gitignore lines (comments and blanks dropped)."""
    return [p for p in (parse_pattern(line, source) for line in lines) if p is not None]


def read_ignore_file(path: str, source: str = "", nofollow: bool = False) -> list[Pattern]:
    """Patterns from a gitignore-format file; ``[]`` when it is missing or unreadable.

    ``nofollow``: refuse a symlink, as git (>= 2.32) does for in-tree ``.gitignore`` files.
    """
    flags = os.O_RDONLY | (getattr(os, "O_NOFOLLOW", 0) if nofollow else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return []
    try:
        with os.fdopen(fd, "rb") as fh:
            data = fh.read()
    except OSError:
        return []
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return parse_lines(data.decode("utf-8", "surrogateescape").split("\n"), source or path)


class RuleSet:
    """The patterns of one file (or of the command line), for paths under ``base``.

    ``base`` is a directory prefix (``""`` or ``"a/b/"``) of the paths passed to :meth:`match`.
    Within a set the last matching pattern decides, as in git.
    """

    def __init__(self, patterns: list[Pattern], base: str = "") -> None:
        self.base = base
        self.patterns = patterns
        # (regex over names, regex over paths) for directories, then for other entries
        self._dirs = self._pair(range(len(patterns)))
        self._others = self._pair(i for i, p in enumerate(patterns) if not p.dir_only)

    def _pair(self, indexes) -> tuple[re.Pattern | None, re.Pattern | None]:
        indexes = list(indexes)
        return (self._combine(i for i in indexes if self.patterns[i].basename),
                self._combine(i for i in indexes if not self.patterns[i].basename))

    def _combine(self, indexes) -> re.Pattern | None:
        # Alternatives in reverse order: fullmatch takes the first alternative that matches, i.e.
        # the last pattern of the file that matches, which is git's rule.
        alts = [f"(?P<p{i}>{self.patterns[i].regex})" for i in sorted(indexes, reverse=True)]
        return re.compile("|".join(alts), re.DOTALL) if alts else None

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def match(self, path: str, is_dir: bool) -> Pattern | None:
        """The deciding pattern for ``path`` (relative to the walk root, under ``base``), or ``None``.

        ``pattern.negated`` tells whether it re-includes (``True``) or excludes (``False``).
        """
        by_name, by_path = self._dirs if is_dir else self._others
        best = -1
        if by_name is not None:
            m = by_name.fullmatch(path, path.rfind("/") + 1)
            if m is not None:
                best = int(m.lastgroup[1:])
        if by_path is not None:
            m = by_path.fullmatch(path[len(self.base):] if self.base else path)
            if m is not None:
                best = max(best, int(m.lastgroup[1:]))
        return self.patterns[best] if best >= 0 else None


def decide(rulesets: list[RuleSet], path: str, is_dir: bool) -> Pattern | None:
    """Git's precedence: the last ruleset (deepest ``.gitignore``) with a match decides."""
    for rs in reversed(rulesets):
        pat = rs.match(path, is_dir)
        if pat is not None:
            return pat
    return None


def is_ignored(rulesets: list[RuleSet], path: str, is_dir: bool) -> bool:
    """True when git would ignore this entry (its parent directories are not checked here)."""
    pat = decide(rulesets, path, is_dir)
    return pat is not None and not pat.negated
