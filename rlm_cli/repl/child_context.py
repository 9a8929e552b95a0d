"""Loading ``context`` in the REPL child. Standard library only (``child.py`` loads it by file path).

``open(path, encoding="utf-8").read()`` holds the file's whole bytes and the whole decoded str at the
same time: twice the input for ASCII text. :func:`load_context` builds the str without ever holding
the whole bytes. A first pass reads the file in chunks and measures the text: its length in
characters and its CPython *kind* (bytes per character: 1 for ASCII and Latin-1, 2 below U+10000, 4
above; the canonical kind is the widest any chunk needs). Then a str of exactly that length and kind
is allocated (``char * length``: a fresh object, never hashed, interned or shared) and a second pass
copies each decoded chunk into it in place (``ctypes.memmove``), checking every chunk afterwards with
a slice comparison. Peak memory: the str plus about three chunks.

The in-place fill relies on CPython's compact str layout (the characters follow the object header,
whose size is taken from ``sys.getsizeof`` and checked on a probe first). On another interpreter or
version, when anything does not check out, or when the text has fewer than 2 characters, the plain
read is used instead. Model code only ever sees the finished, immutable str.
"""

from __future__ import annotations

import codecs
import os
import sys

CHUNK_BYTES = 256 * 1024  # bytes read at a time: the transient cost is about three chunks
# Layouts checked: 3.11 - 3.14 (the compact str layout is the same). Newer versions use the plain read.
_VERSIONS = ((3, 11), (3, 14))
# One character of each kind (0 = ASCII, 1 = Latin-1, 2 = UCS-2, 4 = UCS-4): ``char * n`` is a fresh
# str of that kind; and a sample whose widest character needs exactly that kind, for the probe.
_FILL = {0: "a", 1: "\x80", 2: "\u0100", 4: "\U00010000"}
_SAMPLE = {0: "rlm!", 1: "\xe9t\xe9!", 2: "\u3042\u3044a\xe9", 4: "\U0001f600a\u3042\xe9"}
_ORDER = "le" if sys.byteorder == "little" else "be"
_CODEC = {0: "ascii", 1: "latin-1", 2: f"utf-16-{_ORDER}", 4: f"utf-32-{_ORDER}"}


class _Mismatch(Exception):
    """The in-place fill cannot be trusted here; use the plain read."""


def _open(source: str | int, **kwargs):
    """Open ``source`` for reading from its start: a path, or an inherited descriptor (duplicated, so
    the caller's stays open for another read)."""
    if isinstance(source, int):
        fd = os.dup(source)
        os.lseek(fd, 0, os.SEEK_SET)
        return open(fd, **kwargs)
    return open(source, **kwargs)


def load_context(path: str | int, chunk_bytes: int = CHUNK_BYTES) -> tuple[str, str]:
    """The text of the UTF-8 file ``path`` (a path, or a readable descriptor the REPL inherited;
    newlines kept as they are) and how it was built.

    ``chunk_bytes``: bytes read at a time. Returns ``(text, method)``, ``method`` being ``"in place"``
    or ``"read"`` (the plain ``read()``: another interpreter or version, a text shorter than 2
    characters, or any check that failed). Raises ``OSError`` when the file cannot be read and
    ``UnicodeDecodeError`` when it is not valid UTF-8.
    """
    try:
        text = _in_place(path, max(1, chunk_bytes))
    except Exception:  # a failed check, or OSError/UnicodeDecodeError that the plain read raises again
        text = None
    if text is not None:
        return text, "in place"
    with _open(path, mode="r", encoding="utf-8", newline="") as fh:
        return fh.read(), "read"


def _header(text: str, kind: int) -> int:
    """Bytes before the characters in ``text``'s object (its size minus its characters and NUL)."""
    return sys.getsizeof(text) - (len(text) + 1) * max(kind, 1)


_COMPACT_HEADER = _header("\xe9\xe9", 1)  # the same for kinds 1, 2 and 4


def _kind(text: str) -> int:
    """``text``'s kind (0 for ASCII; else 1, 2 or 4 bytes per character). Raises :class:`_Mismatch`."""
    if text.isascii():
        return 0
    kind, rest = divmod(sys.getsizeof(text) - _COMPACT_HEADER, len(text) + 1)
    if rest or kind not in (1, 2, 4):
        raise _Mismatch(f"unexpected str size for kind: {kind}, {rest}")
    return kind


def _data_address(text: str, kind: int, memmove) -> int:
    """Address of ``text``'s first character, after checking the layout on a probe of the same kind:
    a fresh str whose characters, written at the same offset, must read back as the sample."""
    sample = _SAMPLE[kind]
    probe = _FILL[kind] * len(sample)
    offset = _header(probe, kind)
    raw = sample.encode(_CODEC[kind])
    if offset != _header(text, kind) or not 0 < offset <= 256 or len(raw) != len(sample) * max(kind, 1):
        raise _Mismatch("unexpected str header")
    if sys.getrefcount(probe) != 2:  # ours and the argument's: not shared
        raise _Mismatch("the probe is shared")
    memmove(id(probe) + offset, raw, len(raw))
    if probe != sample or _kind(probe) != kind:
        raise _Mismatch("the probe did not read back")
    return id(text) + offset


def _measure(fh, chunk_bytes: int) -> tuple[int, int]:
    """First pass: (characters, canonical kind) of the UTF-8 file ``fh``. Raises UnicodeDecodeError."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    chars = kind = 0
    while raw := fh.read(chunk_bytes):
        if raw.isascii() and not decoder.getstate()[0]:
            chars += len(raw)
            continue
        part = decoder.decode(raw)
        chars += len(part)
        kind = max(kind, _kind(part))
    decoder.decode(b"", True)  # a character cut off at the end
    return chars, kind


def _in_place(path: str | int, chunk_bytes: int) -> str | None:
    """The text built in place (see the module docstring), or None where that is not supported.
    Raises :class:`_Mismatch` when a check fails, OSError and UnicodeDecodeError as the read does."""
    if sys.implementation.name != "cpython" or not _VERSIONS[0] <= sys.version_info[:2] <= _VERSIONS[1]:
        return None
    import ctypes

    with _open(path, mode="rb") as fh:
        chars, kind = _measure(fh, chunk_bytes)
        if chars < 2:  # "" and 1-character strings are shared singletons: never write into those
            return None
        text = _FILL[kind] * chars
        if sys.getrefcount(text) != 2:  # ours and the argument's: a fresh str nobody else holds
            raise _Mismatch("the str is shared")
        base = _data_address(text, kind, ctypes.memmove)
        width, codec = max(kind, 1), _CODEC[kind]
        decoder = codecs.getincrementaldecoder("utf-8")()
        fh.seek(0)
        pos = widest = 0
        while True:
            raw = fh.read(chunk_bytes)
            part = decoder.decode(raw, not raw)
            if part:
                part_kind = _kind(part)
                src = raw if kind == 0 else part.encode(codec)
                if part_kind > kind or pos + len(part) > chars or len(src) != len(part) * width:
                    raise _Mismatch("the file changed between the passes")
                ctypes.memmove(base + pos * width, src, len(src))
                if text[pos:pos + len(part)] != part:
                    raise _Mismatch(f"chunk at character {pos} did not read back")
                widest = max(widest, part_kind)
                pos += len(part)
            if not raw:
                break
    if pos != chars or widest != kind or len(text) != chars:
        raise _Mismatch("the text is not the measured length or kind")
    return text
