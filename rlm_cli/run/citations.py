"""Checking the ``path:line`` references an answer cites against the files that were loaded.

The root LM is asked to back claims about files with references such as ``src/app.py:42``,
``src/app.py:40-58`` or ``src/app.py:42:7`` (the column is ignored). After the run,
:func:`check_answer` finds them in the answer and checks each against the parent's own index of the
loaded files (path -> line count, :class:`~rlm_cli.context.FileEntry`), never anything the REPL
reported: a reference is *valid* when its path is a loaded file and its lines lie within that file,
*invalid* otherwise (with a reason).

What counts as a reference: a bare token of path characters (letters, digits, ``. - / + @ ~ _``)
not glued to a preceding path character, ``:`` or ``\\`` (so ``http://host:8080`` and
``C:\\dir\\f.py:3`` are not references), followed by ``:LINE``, optionally ``-END`` (or an en dash)
and ``:COL``, or by GitHub's ``#LLINE`` or ``#LLINE-LEND``; or the same inside backticks, where the path may hold spaces. ``<stdin>:12`` names
standard input. A path that is no loaded file counts as a (bad) reference only if it looks like a
file: no spaces (unless in backticks), and a ``/`` or an extension with a letter in it, and not a
host name (``a.com:443``)
— so times (``12:30``), ratios, versions (``v1.2:3``) and addresses (``127.0.0.1:8080``) are never
flagged. A path that is no loaded file but names exactly one by a ``/``-suffix (``app.py`` for
``src/app.py``, or ``/home/me/proj/src/app.py`` for ``src/app.py``) is checked against that file.

Bounded work on a hostile answer: one linear-time scan (every regex alternative is anchored by a
look-behind that forbids starting inside a run of path characters, and quantifiers are bounded) of
at most :data:`MAX_SCAN_CHARS` characters, at most :data:`MAX_CANDIDATES` matches looked at and
:data:`MAX_REFS` distinct references checked; ``truncated`` says when a bound cut the check short.

Page references into converted PDFs (``report.pdf p.12``, ``report.pdf, p. 3-5``, ``report.pdf page
7``), the form the first message asks for, are checked when :func:`check_answer` is given ``pages``
(path -> page count, from :class:`~rlm_cli.context.FileEntry`): valid when the path names a loaded
file with pages and the pages lie within it. A ``.pdf`` path that names no loaded file is invalid;
a page reference to a loaded file without pages is not a reference. Same bounds as above.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MAX_SCAN_CHARS = 1_000_000  # characters of the answer scanned for references
MAX_CANDIDATES = 20_000  # regex matches looked at
MAX_REFS = 500  # distinct references checked
MAX_PATH_CHARS = 512

_PATH_CHARS = r"\w.\-/+@~"
_LOC = (r"(?::(?P<{p}line>\d{{1,9}})(?:[-\u2013](?P<{p}end>\d{{1,9}}))?(?::\d{{1,9}})?"
        r"|#L(?P<{p}hline>\d{{1,9}})(?:-L?(?P<{p}hend>\d{{1,9}}))?)")
_REF_RE = re.compile(
    # inside backticks: the path may hold spaces; the closing backtick must follow the location
    rf"`(?P<qpath>[^`\n:]{{1,{MAX_PATH_CHARS}}}){_LOC.format(p='q')}`"
    # bare: not glued to a path character, ':' or '\' before it; no word character, '-' or '/' after
    rf"|(?<![{_PATH_CHARS}:\\])(?P<path><stdin>|[{_PATH_CHARS}]{{1,{MAX_PATH_CHARS}}}){_LOC.format(p='')}"
    rf"(?![\w\-/])"
)
_PAGE_RE = re.compile(
    rf"(?<![{_PATH_CHARS}:\\])(?P<path>[{_PATH_CHARS}]{{1,{MAX_PATH_CHARS}}}),?[ \t]{{0,3}}"
    r"(?:pp?\.|page)[ \t]{0,2}(?P<page>\d{1,6})(?:[-\u2013](?P<end>\d{1,6}))?(?![\w\-])", re.IGNORECASE)
_EXTENSION_RE = re.compile(r"\.(?=[0-9]*[A-Za-z])[A-Za-z0-9]{1,10}$")
_PLAIN_PATH_RE = re.compile(rf"[{_PATH_CHARS}]+")
_HOST_SUFFIXES = frozenset({"com", "org", "net", "io", "dev", "ai", "app", "edu", "gov", "local", "internal",
                            "localhost", "lan", "cloud", "co", "uk", "de", "fr"})


@dataclass(frozen=True)
class Ref:
    """One reference found in an answer: ``path`` as written (whitespace stripped), ``line`` and
    ``end`` (1-based; ``end == line`` for a single line; 0 when written so). ``text`` is its normal
    form, ``path:line`` or ``path:line-end``."""

    path: str
    line: int
    end: int
    quoted: bool = False  # written inside backticks

    @property
    def text(self) -> str:
        """``path:line`` or ``path:line-end``."""
        return f"{self.path}:{self.line}" if self.end == self.line else f"{self.path}:{self.line}-{self.end}"


def looks_like_file(path: str, quoted: bool = False) -> bool:
    """Whether ``path`` (no loaded file) is plausibly meant as a file: only path characters (any but a
    backtick when ``quoted``), and a ``/`` or a final extension holding a letter, and no host-name
    suffix (``.com``...) when it has no ``/``."""
    if path == "<stdin>":
        return True
    if not quoted and not _PLAIN_PATH_RE.fullmatch(path):
        return False
    if "/" in path:
        return not path.startswith("//")
    ext = _EXTENSION_RE.search(path)
    return bool(ext) and ext.group()[1:].lower() not in _HOST_SUFFIXES


def find_refs(answer: str, limit: int = MAX_REFS) -> tuple[list[Ref], bool]:
    """The distinct ``path:line`` candidates in ``answer`` (in order of first appearance) and whether
    a bound (:data:`MAX_SCAN_CHARS`, :data:`MAX_CANDIDATES`, ``limit``) cut the scan short. Candidates
    are not yet filtered by :func:`looks_like_file`: :func:`check_answer` does that, knowing the files."""
    truncated = len(answer) > MAX_SCAN_CHARS
    seen: dict[tuple[str, int, int], Ref] = {}
    for n, m in enumerate(_REF_RE.finditer(answer, 0, MAX_SCAN_CHARS)):
        if n >= MAX_CANDIDATES or len(seen) >= limit:
            truncated = True
            break
        quoted = m.group("qpath") is not None
        path = (m.group("qpath") if quoted else m.group("path")).strip()
        q = "q" if quoted else ""
        line = int(m.group(f"{q}line") or m.group(f"{q}hline"))
        end = m.group(f"{q}end") or m.group(f"{q}hend")
        if path:
            last = line if end is None else int(end)
            seen.setdefault((path, line, last), Ref(path, line, last, quoted))
    return list(seen.values()), truncated


class FileIndex:
    """The loaded files as the checker sees them: ``path -> line count``, with lookups by
    ``/``-suffix built on first need. ``files``: ``(path, lines)`` pairs (or ``FileEntry`` objects)."""

    def __init__(self, files: Iterable) -> None:
        self.lines: dict[str, int] = {}
        for f in files:
            path, lines = (f.path, f.lines) if hasattr(f, "path") else f
            self.lines[path] = int(lines)
        self._suffixes: dict[str, list[str]] | None = None

    def resolve(self, path: str) -> tuple[str | None, str | None]:
        """``(loaded path, None)`` for the file ``path`` names, else ``(None, reason)``: exact, then
        without a leading ``./``, then the longest ``/``-suffix of ``path`` that is a loaded file,
        then the one loaded file ending in ``/`` + ``path`` (two or more: ambiguous)."""
        if path in self.lines:
            return path, None
        bare = path[2:] if path.startswith("./") else path
        if bare in self.lines:
            return bare, None
        parts = bare.split("/")
        for i in range(1, len(parts)):
            tail = "/".join(parts[i:])
            if tail in self.lines:
                return tail, None
        matches = self._by_suffix().get(bare.lstrip("/"), [])
        if len(matches) == 1:
            return matches[0], None
        if len(matches) > 1:
            return None, f"ambiguous: {len(matches)}+ loaded files end with {bare}"
        return None, "no such file was loaded"

    def _by_suffix(self) -> dict[str, list[str]]:
        if self._suffixes is None:
            index: dict[str, list[str]] = {}
            for path in self.lines:
                parts = path.split("/")
                for i in range(1, len(parts)):
                    found = index.setdefault("/".join(parts[i:]), [])
                    if len(found) < 2:
                        found.append(path)
            self._suffixes = index
        return self._suffixes


def check_answer(answer: str | None, files: Iterable | FileIndex,
                 pages: Mapping[str, int] | None = None) -> dict | None:
    """Check the references in ``answer`` against ``files`` (``FileEntry`` objects, ``(path, lines)``
    pairs or a :class:`FileIndex`). Returns None when there is no answer, else
    ``{"checked": int, "valid": [ref, ...], "invalid": [{"ref", "reason"}, ...], "truncated": bool}``
    (refs as written, normalised to ``path:line`` or ``path:line-end``; ``checked`` counts both lists).

    ``pages`` (path -> page count, for converted PDFs): page references (``PATH p.N``, ``PATH
    p.N-M``) are checked too, normalised to ``PATH p.N`` / ``PATH p.N-M``. Never raises on any
    answer text.
    """
    if answer is None:
        return None
    index = files if isinstance(files, FileIndex) else FileIndex(files)
    refs, truncated = find_refs(answer)
    valid: list[str] = []
    invalid: list[dict] = []
    for ref in refs:
        target, reason = index.resolve(ref.path)
        if target is None and not looks_like_file(ref.path, ref.quoted):
            continue  # a time, a version, a host: not a reference
        if target is not None:
            reason = _line_problem(ref, index.lines[target], target)
        if reason is None:
            valid.append(ref.text)
        else:
            invalid.append({"ref": ref.text, "reason": reason})
    if pages:
        truncated = _check_pages(answer, index, pages, valid, invalid) or truncated
    return {"checked": len(valid) + len(invalid), "valid": valid, "invalid": invalid, "truncated": truncated}


def _check_pages(answer: str, index: FileIndex, pages: Mapping[str, int], valid: list[str],
                 invalid: list[dict]) -> bool:
    """Check the page references in ``answer`` (appended to ``valid`` / ``invalid``); returns
    whether a bound cut the scan short."""
    seen: set[str] = set()
    for n, m in enumerate(_PAGE_RE.finditer(answer, 0, MAX_SCAN_CHARS)):
        if n >= MAX_CANDIDATES or len(seen) >= MAX_REFS:
            return True
        path, page = m.group("path"), int(m.group("page"))
        end = int(m.group("end")) if m.group("end") else page
        text = f"{path} p.{page}" + (f"-{end}" if end != page else "")
        if text in seen:
            continue
        target, reason = index.resolve(path)
        if target is None and not path.lower().endswith(".pdf"):
            continue  # "see p.3", or a page of something that is no loaded file: not a reference
        if target is not None and target not in pages:
            continue  # a loaded file without pages: nothing to check
        seen.add(text)
        if target is not None:
            count = pages[target]
            reason = None if 1 <= page <= end <= count else (
                "page numbers start at 1" if page < 1 else "the range ends before it starts" if end < page
                else f"page {end} is past the end of the document, which has {count:,} page(s)")
        if reason is None:
            valid.append(text)
        else:
            invalid.append({"ref": text, "reason": reason})
    return len(answer) > MAX_SCAN_CHARS


def _line_problem(ref: Ref, lines: int, target: str) -> str | None:
    """Why ``ref``'s lines do not lie within a file of ``lines`` lines (None when they do)."""
    shown = "" if target == ref.path else f" ({target})"
    if ref.line < 1:
        return "line numbers start at 1"
    if ref.end < ref.line:
        return f"the range ends before it starts{shown}"
    if ref.end > lines:
        return f"line {ref.end} is past the end of the file{shown}, which has {lines:,} line(s)"
    return None


def summary(report: object, limit: int = 10) -> tuple[str, list[str]]:
    """A report (also one read back from a saved, possibly edited trajectory) as text for people:
    ``(headline, lines)``, the headline ``"N reference(s) checked: V valid, I invalid"`` and one line
    ``"REF: REASON"`` per invalid reference, at most ``limit`` of them (0: all) plus a line saying how
    many more. Strings are returned raw: callers make them safe for their terminal or page. Never raises."""
    if not isinstance(report, dict):
        return "", []
    valid = report.get("valid") if isinstance(report.get("valid"), list) else []
    invalid = [i for i in report.get("invalid") or [] if isinstance(i, dict)] \
        if isinstance(report.get("invalid"), list) else []
    checked = len(valid) + len(invalid)
    headline = f"{checked} reference(s) checked: {len(valid)} valid, {len(invalid)} invalid"
    if report.get("truncated") is True:
        headline += " (the check stopped at its bounds)"
    lines = [f"{i.get('ref')}: {i.get('reason')}" for i in (invalid[:limit] if limit > 0 else invalid)]
    if len(invalid) > len(lines):
        lines.append(f"... and {len(invalid) - len(lines)} more invalid reference(s)")
    return headline, lines
