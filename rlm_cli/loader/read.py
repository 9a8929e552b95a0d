"""Reading one file (or standard input) into the context: binary sniffing, decoding, errors."""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from rlm_cli.context import ContextWriter
from rlm_cli.errors import InputError
from rlm_cli.loader.binary import PREFIX_BYTES, binary_reason
from rlm_cli.loader.convert import detect
from rlm_cli.loader.decode import CHUNK_BYTES, add_decoded, stream_into

if TYPE_CHECKING:
    from rlm_cli.loader.convert.load import Conversions

WHOLE_READ_BYTES = 16 * 1024 * 1024  # files up to this size are read and decoded in one piece
SMALL_FILE_BYTES = 64 * 1024  # files up to this size are read in one call, before sniffing
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0)


def unreadable(exc: OSError) -> str:
    """The skip reason for an OSError: ``"unreadable: Permission denied"``."""
    return f"unreadable: {exc.strerror or exc.__class__.__name__}"


def read_to_end(fd: int, expected: int) -> bytes:
    """The rest of the open file ``fd``, expected to be ``expected`` bytes long.

    One ``read(2)`` when ``expected`` is right (the common case: it comes from ``stat``); when the
    file turns out longer or shorter (it changed, or it is a /proc file whose size reads as 0), reads
    on to end of file. Raises ``OSError``.
    """
    data = os.read(fd, expected + 1)
    if len(data) == expected:
        return data
    chunks = [data]
    while data:
        data = os.read(fd, max(CHUNK_BYTES // 4, expected))
        chunks.append(data)
    return b"".join(chunks)


def _read_prefix(fd: int) -> bytes:
    """Up to :data:`PREFIX_BYTES` from the start of ``fd`` (fewer only at end of file)."""
    prefix = os.read(fd, PREFIX_BYTES)
    while prefix and len(prefix) < PREFIX_BYTES:
        more = os.read(fd, PREFIX_BYTES - len(prefix))
        if not more:
            break
        prefix += more
    return prefix


def load_file(writer: ContextWriter, path: str, fs_path: str, size_hint: int = 0,
              whole_read_bytes: int | None = None, conversions: Conversions | None = None,
              strict: bool = False) -> bool:
    """Add the file at ``fs_path`` to ``writer`` as ``path``; returns whether it was loaded.

    Binary files (judged from the first :data:`PREFIX_BYTES` bytes) and unreadable ones are recorded
    with :meth:`ContextWriter.skip`. ``size_hint`` is the file's size in bytes from ``stat``. Files up
    to :data:`SMALL_FILE_BYTES` are read in one call and sniffed from that read; larger ones are
    sniffed from a prefix first. Files larger than ``whole_read_bytes`` (default
    :data:`WHOLE_READ_BYTES`) are streamed in chunks; smaller ones are read whole (a file whose stat
    size is wrong, like those of /proc, is simply read whole). ``OSError`` from writing the context
    file propagates.

    With ``conversions``, a document (PDF, HTML, DOCX, notebook, EPUB: judged from the prefix and the
    names, :func:`~rlm_cli.loader.convert.detect`) is converted instead; a failed conversion is a
    skip, or with ``strict`` (a file named explicitly) an :class:`InputError`.
    """
    if whole_read_bytes is None:
        whole_read_bytes = WHOLE_READ_BYTES
    try:
        fd = os.open(fs_path, _OPEN_FLAGS)
    except OSError as exc:
        writer.skip(path, unreadable(exc), size_hint or None)
        return False
    try:
        # small files (most source files) in one read; larger ones are sniffed from a prefix first
        small = size_hint <= SMALL_FILE_BYTES
        prefix = read_to_end(fd, size_hint) if small else _read_prefix(fd)
        head = prefix[:PREFIX_BYTES] if len(prefix) > PREFIX_BYTES else prefix
        kind = detect(head, path, fs_path) if conversions is not None else None
        if kind is not None:
            del prefix, head
            os.close(fd)
            fd = -1
            return conversions.add(writer, path, fs_path, size_hint, kind, strict)
        reason = binary_reason(head)
        if reason:
            writer.skip(path, reason, size_hint or None)
            return False
        if size_hint > whole_read_bytes:
            with open(fd, "rb", closefd=False) as fh:  # positioned just after the prefix
                stream_into(writer, path, fh, prefix, size_hint, chunk_bytes=CHUNK_BYTES)
            return True
        data = prefix if small else prefix + read_to_end(fd, size_hint - len(prefix))
        del prefix
    except OSError as exc:
        writer.skip(path, unreadable(exc), size_hint or None)
        return False
    finally:
        if fd >= 0:
            os.close(fd)
    add_decoded(writer, path, data)
    return True


class Spooled(NamedTuple):
    """What :func:`spool` did with a stream: ``path`` (a temporary file, the caller deletes it) and
    ``size`` in bytes, or ``binary`` (the skip reason) with ``path`` ``None`` when the stream's first
    :data:`PREFIX_BYTES` bytes were binary and it was not read further."""

    path: str | None
    size: int
    binary: str | None = None


class OverBudget(Exception):
    """A stream went past its byte budget; ``read`` bytes were read (budget + 1), then reading stopped."""

    def __init__(self, read: int) -> None:
        super().__init__(read)
        self.read = read


def _read_up_to(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes, fewer only at end of stream (a pipe's read may return less)."""
    data = stream.read(n)
    while data and len(data) < n:
        more = stream.read(n - len(data))
        if not more:
            break
        data += more
    return data


def spool(stream: BinaryIO, directory: str, name: str, max_bytes: int | None = None,
          empty_hint: str = "nothing was piped or redirected into it") -> Spooled:
    """Copy a non-seekable stream (stdin, a pipe, a device) to a temporary file in ``directory``.

    The first :data:`PREFIX_BYTES` bytes are sniffed first: a binary stream (``/dev/zero``, an
    image piped in) is not read further (``Spooled.binary``), unless it is a document to convert
    (a PDF, DOCX or EPUB piped in). Otherwise the stream is copied in
    chunks until its end, or until it passes ``max_bytes`` (bytes; at most ``max_bytes + 1`` bytes,
    or the sniffed prefix, are read): then the partial copy is deleted and :class:`OverBudget` is
    raised, so an endless stream never fills the disk. Raises
    :class:`InputError` when the stream is empty or is an interactive terminal; ``OSError`` from
    reading or writing propagates (the temporary file is deleted). ``empty_hint`` ends the message
    for an empty stream.
    """
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        raise InputError(f"{name} is a terminal: pipe or redirect the input into `-`")
    limit = -1 if max_bytes is None else max(0, max_bytes)
    first = _read_up_to(stream, PREFIX_BYTES)
    if not first:
        raise InputError(f"{name} is empty: {empty_hint}")
    reason = binary_reason(first)
    if reason and detect(first, name) is None:  # a document (a PDF piped in) is spooled to be converted
        return Spooled(None, len(first), reason)
    if 0 <= limit < len(first):
        raise OverBudget(len(first))
    fd, tmp = tempfile.mkstemp(prefix=".rlm-spool-", dir=directory)
    total = len(first)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(first)
            del first
            while limit < 0 or total <= limit:
                chunk = stream.read(CHUNK_BYTES if limit < 0 else min(CHUNK_BYTES, limit + 1 - total))
                if not chunk:
                    break
                out.write(chunk)
                total += len(chunk)
        if 0 <= limit < total:
            raise OverBudget(total)
    except BaseException:
        os.unlink(tmp)
        raise
    return Spooled(tmp, total)
