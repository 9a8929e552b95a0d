"""``grep`` in the REPL: a line-aware search over ``files``. Standard library only (``child.py``
loads it by file path, like its other siblings).

The search runs over ``context`` itself, one file's span at a time (``pattern.search(context, pos,
endpos)``), so no file is copied or split into lines. After a hit, the search goes on from the next
line: each matching line is reported once. Line numbers are counted with ``str.count("\\n")`` between
one hit and the next, so one call costs one pass over the files it searches (a newline count runs at
memory speed, far faster than the regex itself) and holds nothing per line; a 100 MB ``files`` has no
line table to build or keep.
"""

from __future__ import annotations

import fnmatch
import re
import sys

MAX_LINE_CHARS = 300  # characters of a matching line returned; a longer line is a window around the hit
DEFAULT_MAX_HITS = 200


def _compile(pattern, flags: int) -> re.Pattern:
    """``pattern`` (a str or compiled str pattern) compiled with ``flags`` and ``re.MULTILINE`` (``^``
    and ``$`` anchor at line starts and ends). Raises TypeError for bytes, re.error for a bad regex."""
    if isinstance(pattern, re.Pattern):
        if not isinstance(pattern.pattern, str):
            raise TypeError("grep: the pattern must be a str (or a compiled str pattern), not bytes")
        return re.compile(pattern.pattern, pattern.flags | flags | re.MULTILINE)
    if not isinstance(pattern, str):
        raise TypeError(f"grep: the pattern must be a str or a compiled pattern, not {type(pattern).__name__}")
    return re.compile(pattern, flags | re.MULTILINE)


def _selector(paths):
    """A predicate over file paths: None (every file), a glob or exact path, or a list of them. Globs
    are fnmatch-style (``*`` also matches ``/``: ``"*.py"`` selects ``src/app.py``)."""
    if paths is None:
        return lambda path: True
    globs = [paths] if isinstance(paths, str) else list(paths)
    if not all(isinstance(g, str) for g in globs):
        raise TypeError("grep: paths must be None, a glob string or a list of glob strings")
    return lambda path: any(path == g or fnmatch.fnmatchcase(path, g) for g in globs)


def _clip(line: str, col: int, length: int) -> str:
    """``line`` cut to :data:`MAX_LINE_CHARS` characters around the hit at ``col`` (``length`` long)."""
    if len(line) <= MAX_LINE_CHARS:
        return line
    start = max(0, min(col - (MAX_LINE_CHARS - min(length, MAX_LINE_CHARS)) // 2, len(line) - MAX_LINE_CHARS))
    return ("..." if start else "") + line[start:start + MAX_LINE_CHARS] + (
        "..." if start + MAX_LINE_CHARS < len(line) else "")


def grep(context: str, spans: dict, pattern, paths=None, flags: int = 0,
         max_hits: int = DEFAULT_MAX_HITS) -> list[tuple[str, int, str]]:
    """Search the files (``spans``: path -> (start, end) character offsets into ``context``) for
    ``pattern``; see :func:`make_grep` for the arguments the model passes and the result."""
    rx = _compile(pattern, flags)
    wanted = _selector(paths)
    if isinstance(max_hits, bool) or not isinstance(max_hits, int) or max_hits < 0:
        raise ValueError("grep: max_hits must be an int >= 0")
    hits: list[tuple[str, int, str]] = []
    for path, (start, end) in spans.items():
        if not wanted(path):
            continue
        pos, line_no, counted = start, 1, start  # newlines counted up to `counted`
        while pos < end:
            m = rx.search(context, pos, end)
            if m is None:
                break
            if len(hits) >= max_hits:
                print(f"[grep: stopped at max_hits={max_hits}; pass a larger max_hits= or narrow paths= "
                      "for more]", file=sys.stderr)
                return hits
            hit = m.start()
            if hit == end and context[end - 1] == "\n":  # past the last line's newline: no line there
                break
            line_start = context.rfind("\n", start, hit) + 1 or start
            line_no += context.count("\n", counted, line_start)
            counted = line_start
            line_end = context.find("\n", hit, end)
            if line_end < 0:
                line_end = end
            text = context[line_start:line_end].removesuffix("\r") if line_end - line_start <= MAX_LINE_CHARS \
                else _clip(context[line_start:line_end], hit - line_start, m.end() - hit)
            hits.append((path, line_no, text))
            pos = line_end + 1
    return hits


def make_grep(context: str, spans: dict):
    """The ``grep`` function of the REPL namespace, over ``context`` and the file spans."""

    def grep_files(pattern, paths=None, flags=0, max_hits=DEFAULT_MAX_HITS) -> list:
        """Search ``files`` line by line: ``grep(pattern, paths=None, flags=0, max_hits=200)`` ->
        ``[(path, line_number, line_text), ...]``.

        ``pattern``: a regular expression (str or compiled), searched with ``re.MULTILINE`` (``^``/``$``
        match at each line); ``flags``: ``re`` flags such as ``re.IGNORECASE``; ``paths``: a glob or
        exact path, or a list of them (``"*.py"``, ``"src/*"``; ``*`` also matches ``/``), None for
        every file. Each matching line is listed once, in file order; line numbers start at 1 (cite
        them as ``path:line``); the line text is cut to 300 characters around the match. Stops after
        ``max_hits`` hits and says so on stderr."""
        return grep(context, spans, pattern, paths, flags, max_hits)

    grep_files.__name__ = grep_files.__qualname__ = "grep"
    return grep_files
