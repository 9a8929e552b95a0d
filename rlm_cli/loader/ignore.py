"""Git's ignore rules (gitignore(5)), matched path by path the way git does while it walks a tree.

Why not ``pathspec.GitIgnoreSpec``: it decides for a whole file path at once and approximates
git's directory semantics with a priority rule, which gets two documented cases wrong: a file under
an excluded directory cannot be re-included (``build/`` then ``!build/keep.txt`` keeps it ignored in
git, not in pathspec), and ``*`` then ``!*/`` (the "allow-list" idiom) re-includes directories in git
while pathspec reports ``src/`` as ignored. Git itself matches each directory entry on its own while
walking and never descends into an excluded directory; :class:`RuleSet` matches one entry, and the
walker (``walk.py``) prunes.

Matching is on bytes, as git's ``wildmatch.c`` does: a path (``str`` from ``os.fsdecode``, or bytes)
is matched as its file-system bytes, so ``?`` matches one byte (``?`` does not match ``é``, ``??``
does) and ``[...]`` tests one byte. Pattern syntax follows ``wildmatch`` with ``WM_PATHNAME`` and
``dir.c``: ``*``, ``?`` and ``[...]`` never match ``/``; ``**`` as a whole segment matches across
directories; only one trailing ``/`` is stripped (``a//`` is the anchored pattern ``a/``, which no
path matches) and means directories only (not symlinks to them); a pattern with a ``/`` before its
end is anchored to its file's directory, otherwise it matches the entry's name at any depth. In a
bracket, a range ``x-y`` covers the bytes from ``x`` to ``y`` (``[z-a]`` matches only ``z``: git
tests the first character literally), ``[:name:]`` is one of git's ASCII classes, and a bracket with
an unknown class (``[[:bogus:]]``) or without its ``]`` makes the whole pattern match nothing.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def _chars(spec: str) -> frozenset[int]:
    out: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo, 16), int(hi or lo, 16) + 1))
    return frozenset(out)


# git's sane-ctype.h (ASCII only, locale-independent); isblank and isgraph are the C library's
# ("C" or UTF-8 locale: ASCII only as well). Note git's isspace: space, \t, \n, \r (no \v, \f).
_POSIX_CLASSES: dict[bytes, frozenset[int]] = {
    b"alnum": _chars("30-39,41-5a,61-7a"), b"alpha": _chars("41-5a,61-7a"), b"blank": _chars("20,09"),
    b"cntrl": _chars("00-1f,7f"), b"digit": _chars("30-39"), b"graph": _chars("21-7e"),
    b"lower": _chars("61-7a"), b"print": _chars("20-7e"), b"punct": _chars("21-2f,3a-40,5b-60,7b-7e"),
    b"space": _chars("09,0a,0d,20"), b"upper": _chars("41-5a"), b"xdigit": _chars("30-39,41-46,61-66"),
}
_NEVER = b"(?!)"
_SLASH, _STAR, _BACKSLASH, _OPEN, _CLOSE = 0x2F, 0x2A, 0x5C, 0x5B, 0x5D


def fs_bytes(path: str | bytes) -> bytes:
    """A path as the bytes git compares: ``os.fsencode`` (UTF-8, surrogateescape on Linux)."""
    return path if isinstance(path, bytes) else path.encode(_FS_ENCODING, _FS_ERRORS)


@dataclass(frozen=True)
class Pattern:
    """One parsed gitignore line. ``regex`` (a bytes regex source) is matched in full against the
    entry's name when ``basename`` is set, else against its path relative to the directory of the
    file the pattern came from (``base``)."""

    text: str
    negated: bool
    dir_only: bool
    regex: bytes
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


def _byte_class(members: set[int] | frozenset[int]) -> bytes:
    """A regex matching one byte of ``members`` (``/`` never), or :data:`_NEVER` when none is left."""
    ordered = sorted(members - {_SLASH})
    if not ordered:
        return _NEVER
    parts, i = [], 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(b"\\x%02x" % ordered[i] if i == j else b"\\x%02x-\\x%02x" % (ordered[i], ordered[j]))
        i = j + 1
    return b"[" + b"".join(parts) + b"]"


def _bracket(pat: bytes, i: int) -> tuple[bytes, int] | None:
    """Translate the ``[...]`` at ``pat[i]`` as ``wildmatch.c`` reads it; ``None``: the whole pattern
    can never match (no closing ``]``, a trailing backslash, an unknown ``[:class:]``)."""
    n, j = len(pat), i + 1
    negated = j < n and pat[j] in b"!^"
    if negated:
        j += 1
    members: set[int] = set()
    prev = 0  # the previous literal byte (0 after a range or a class): the start of a range
    while True:
        if j >= n:
            return None
        c = pat[j]
        if c == _BACKSLASH:
            j += 1
            if j >= n:
                return None
            c = pat[j]
            members.add(c)
        elif c == 0x2D and prev and j + 1 < n and pat[j + 1] != _CLOSE:  # "-": a range from prev
            j += 1
            c = pat[j]
            if c == _BACKSLASH:
                j += 1
                if j >= n:
                    return None
                c = pat[j]
            members.update(range(prev, c + 1))  # empty when reversed: prev itself was added already
            c = 0
        elif c == _OPEN and j + 1 < n and pat[j + 1] == 0x3A:  # "[:"
            start = j + 2
            end = pat.find(b"]", start)
            if end < 0:
                return None
            if end - start - 1 < 0 or pat[end - 1] != 0x3A:  # no ":]": a literal "["
                members.add(c)
            else:
                cls = _POSIX_CLASSES.get(pat[start:end - 1])
                if cls is None:  # malformed [:class:]: git never matches
                    return None
                members.update(cls)
                j, c = end, 0
        else:
            members.add(c)
        prev = c
        j += 1
        if j < n and pat[j] == _CLOSE:
            break
    if negated:
        members = set(range(1, 256)) - members
    return _byte_class(members), j + 1


def glob_to_regex(pat: str | bytes) -> bytes:
    """Bytes regex source for a gitignore glob (no leading ``!``, no trailing ``/``), for ``fullmatch``
    on a path's bytes (:func:`fs_bytes`) with ``re.DOTALL``."""
    pat = fs_bytes(pat)
    out: list[bytes] = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        if c == _STAR:
            j = i
            while j < n and pat[j] == _STAR:
                j += 1
            after_slash = j < n and (pat[j] == _SLASH or (pat[j] == _BACKSLASH and pat[j + 1:j + 2] == b"/"))
            whole_segment = (i == 0 or pat[i - 1] == _SLASH) and (j == n or after_slash)
            if j - i >= 2 and whole_segment:
                if j == n:
                    out.append(b".*")
                elif pat[j] == _SLASH:  # "**/": zero or more directories
                    out.append(b"(?:.*/)?")
                    j += 1
                else:  # "**\/": wildmatch tries no empty match there, only "anything, then /"
                    out.append(b".*")
            else:
                out.append(b"[^/]*")
            i = j
            continue
        if c == 0x3F:  # "?": one byte
            out.append(b"[^/]")
        elif c == _OPEN:
            translated = _bracket(pat, i)
            if translated is None:
                return _NEVER
            if translated[0] == _NEVER:
                return _NEVER
            out.append(translated[0])
            i = translated[1]
            continue
        elif c == _BACKSLASH:
            if i + 1 >= n:  # a trailing backslash is invalid: never matches
                return _NEVER
            out.append(re.escape(pat[i + 1:i + 2]))
            i += 2
            continue
        else:
            out.append(re.escape(pat[i:i + 1]))
        i += 1
    return b"".join(out)


def parse_pattern(line: str, source: str = "") -> Pattern | None:
    """Parse one gitignore line (as ``dir.c`` does); ``None`` for blanks, comments and empty patterns."""
    line = line.rstrip("\r")
    if not line or line.startswith("#"):
        return None
    text = line = _trim_trailing_spaces(line)
    negated = line.startswith("!")
    if negated:
        line = line[1:]
    dir_only = line.endswith("/")
    if dir_only:  # one slash only: "a//" is the pattern "a/", which no path matches
        line = line[:-1]
    if not line:
        return None
    anchored = "/" in line
    body = line[1:] if line.startswith("/") else line
    if not body:
        return None
    return Pattern(text=text, negated=negated, dir_only=dir_only, regex=glob_to_regex(body), source=source,
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
        self._base_len = len(fs_bytes(base))
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
        alts = [b"(?P<p%d>%s)" % (i, self.patterns[i].regex) for i in sorted(indexes, reverse=True)]
        return re.compile(b"|".join(alts), re.DOTALL) if alts else None

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def match(self, path: str | bytes, is_dir: bool) -> Pattern | None:
        """The deciding pattern for ``path`` (relative to the walk root, under ``base``), or ``None``.

        ``path`` is a ``str`` (as ``os.fsdecode`` gives) or its bytes (:func:`fs_bytes`: cheaper when
        several sets match one path); it is compared byte for byte, as git does.
        ``pattern.negated`` tells whether it re-includes (``True``) or excludes (``False``).
        """
        if not isinstance(path, bytes):
            path = path.encode(_FS_ENCODING, _FS_ERRORS)
        by_name, by_path = self._dirs if is_dir else self._others
        best = -1
        if by_name is not None:
            m = by_name.fullmatch(path, path.rfind(b"/") + 1)
            if m is not None:
                best = int(m.lastgroup[1:])
        if by_path is not None:
            m = by_path.fullmatch(path, self._base_len) if self._base_len else by_path.fullmatch(path)
            if m is not None:
                best = max(best, int(m.lastgroup[1:]))
        return self.patterns[best] if best >= 0 else None


def decide(rulesets: list[RuleSet], path: str | bytes, is_dir: bool) -> Pattern | None:
    """Git's precedence: the last ruleset (deepest ``.gitignore``) with a match decides."""
    path = fs_bytes(path)
    for rs in reversed(rulesets):
        pat = rs.match(path, is_dir)
        if pat is not None:
            return pat
    return None


def is_ignored(rulesets: list[RuleSet], path: str | bytes, is_dir: bool) -> bool:
    """True when git would ignore this entry (its parent directories are not checked here)."""
    pat = decide(rulesets, path, is_dir)
    return pat is not None and not pat.negated
