"""``definitions`` and ``callers`` in the REPL: where a name is defined, and which functions call it,
found with regular expressions over ``files`` (no parser: any language, any size, text that does not
parse). Standard library only (``child.py`` loads it by file path, like its other siblings).

A definition is a line that starts (after indentation) with a defining keyword and the name:
``def``, ``class``, ``function``, ``func`` (Go methods too), ``fn``, ``struct``, ``interface``,
``enum``, ``trait``, ``type``, ``const``, ``let``, ``var`` (with ``export``, ``pub``, ``async``,
``static`` before it), or a module-level assignment ``NAME =``. A call is the name followed by ``(``
on a line that neither defines it nor imports it; its caller is the nearest line above it, in the same
file and less indented, that defines a function (``None`` at module level).
"""

from __future__ import annotations

import re

MAX_NAME_CHARS = 200
MAX_CALLS = 500  # call sites examined by one callers() call
_PREFIX = r"(?:(?:export|default|pub(?:\([^)]*\))?|async|static|public|private|protected|final|abstract)[ \t]+)*"
_KEYWORDS = r"(?:def|class|function\*?|func|fn|struct|interface|enum|trait|type|const|let|var)"
_FUNCTION = re.compile(r"^(\s*)" + _PREFIX + r"(?:def|function\*?|func|fn)\s+(?:\([^)]*\)\s*)?(\w+)")
_IMPORT = re.compile(r"^\s*(?:from\s+\S+\s+import\b|import\b|use\b|#include\b|require\b)")


def _name(name, what: str) -> str:
    """``name`` checked: a non-empty str of word characters (a dotted name gives its last part)."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        raise TypeError(f"{what}: name must be a function, class or variable name (a short str)")
    last = name.strip().rsplit(".", 1)[-1]
    if not re.fullmatch(r"\w+", last):
        raise ValueError(f"{what}: {name!r} is not a name (letters, digits and _ only)")
    return last


def _definition_pattern(name: str) -> str:
    word = re.escape(name)
    return (rf"^[ \t]*{_PREFIX}{_KEYWORDS}[ \t]+(?:\([^)\n]*\)[ \t]*)?{word}\b"  # def f, func (r *T) F, class C
            rf"|^{word}[ \t]*(?::[^=\n]*)?=(?!=)")  # NAME = ..., NAME: int = ...


def make_code_tools(context: str, spans: dict, grep) -> dict:
    """``definitions`` and ``callers`` over ``context`` (file spans ``spans``: path -> (start, end)
    character offsets), built on the REPL's ``grep``."""

    def definitions(name: str, paths=None) -> list:
        """The lines defining ``name`` (a function, class, method, type, constant): ``[(path,
        line_number, line_text), ...]`` in file order, as ``grep`` returns them. ``paths``: a glob or
        list of globs, as for ``grep``."""
        return grep(_definition_pattern(_name(name, "definitions")), paths=paths)

    def callers(name: str, paths=None) -> list:
        """The calls of ``name`` and the function each is in: ``[(path, line_number, caller,
        line_text), ...]`` in file order; ``caller`` is the enclosing function's name, or None for a
        call at module level. Definitions and import lines of ``name`` are not calls."""
        word = _name(name, "callers")
        defining = re.compile(_definition_pattern(word))
        lines_of: dict = {}
        out = []
        for path, number, text in grep(rf"(?<!\w){re.escape(word)}[ \t]*\(", paths=paths, max_hits=MAX_CALLS):
            if defining.search(text) or _IMPORT.match(text):
                continue
            if path not in lines_of:
                start, end = spans[path]
                lines_of[path] = context[start:end].split("\n")
            out.append((path, number, _enclosing(lines_of[path], number), text))
        return out

    return {"definitions": definitions, "callers": callers}


def _enclosing(lines: list, number: int):
    """The name of the function whose body holds line ``number`` (1-based) of ``lines``: the nearest
    function definition above it that is less indented; None at module level."""
    target = lines[number - 1]
    indent = len(target) - len(target.lstrip())
    for text in reversed(lines[:number - 1]):
        if not text.strip():
            continue
        depth = len(text) - len(text.lstrip())
        if depth >= indent:
            continue
        found = _FUNCTION.match(text)
        if found:
            return found.group(2)
        if depth == 0:
            return None  # a class or other top-level statement: no enclosing function above it
        indent = depth
    return None
