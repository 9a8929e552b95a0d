"""Reading one file (or standard input) into the context: binary sniffing, decoding, errors."""

from __future__ import annotations

import os
import tempfile
from typing import BinaryIO

from rlm_cli.context import ContextWriter
from rlm_cli.errors import InputError
from rlm_cli.loader.binary import PREFIX_BYTES, binary_reason
from rlm_cli.loader.decode import CHUNK_BYTES, decode_bytes, stream_into

WHOLE_READ_BYTES = 16 * 1024 * 1024  # files up to this size are read and decoded in one piece
SMALL_FILE_BYTES = 64 * 1024  # files up to this size are read in one call, before sniffing


def unreadable(exc: OSError) -> str:
    """The skip reason for an OSError: ``"unreadable: Permission denied"``."""
    return f"unreadable: {exc.strerror or exc.__class__.__name__}"


def load_file(writer: ContextWriter, path: str, fs_path: str, size_hint: int = 0,
              whole_read_bytes: int | None = None) -> bool:
    """Add the file at ``fs_path`` to ``writer`` as ``path``; returns whether it was loaded.

    Binary files (judged from the first :data:`PREFIX_BYTES` bytes) and unreadable ones are recorded
    with :meth:`ContextWriter.skip`. Files larger than ``whole_read_bytes`` (``size_hint``, bytes) are
    streamed in chunks; smaller ones are read whole (a file whose stat size is wrong, like those of
    /proc, is simply read whole). ``whole_read_bytes`` defaults to :data:`WHOLE_READ_BYTES`.
    """
    if whole_read_bytes is None:
        whole_read_bytes = WHOLE_READ_BYTES
    try:
        fh = open(fs_path, "rb")  # noqa: SIM115 - closed below, with errors reported per file
    except OSError as exc:
        writer.skip(path, unreadable(exc), size_hint or None)
        return False
    with fh:
        try:
            # small files (most source files) in one read; larger ones are sniffed from a prefix first
            small = size_hint <= SMALL_FILE_BYTES
            prefix = fh.read() if small else fh.read(PREFIX_BYTES)
            reason = binary_reason(prefix[:PREFIX_BYTES])
            if reason:
                writer.skip(path, reason, size_hint or None)
                return False
            if size_hint <= whole_read_bytes:
                data = prefix if small else _read_rest(fh, prefix)
                del prefix
                n = len(data)
                text, encoding = decode_bytes(data)
                del data
                writer.add(path, text, size_bytes=n, encoding=encoding)
            else:
                stream_into(writer, path, fh, prefix, size_hint, chunk_bytes=CHUNK_BYTES)
        except OSError as exc:
            writer.skip(path, unreadable(exc), size_hint or None)
            return False
    return True


def _read_rest(fh: BinaryIO, prefix: bytes) -> bytes:
    """The whole file, without concatenating copies when the file can seek."""
    try:
        fh.seek(0)
    except OSError:
        return prefix + fh.read()
    return fh.read()


def spool(stream: BinaryIO, directory: str, name: str) -> tuple[str, int]:
    """Copy a non-seekable stream (stdin, a pipe) to a temporary file in ``directory``, in chunks.

    Returns ``(temp path, bytes)``; the caller deletes the file. Raises :class:`InputError` when the
    stream is empty or is an interactive terminal.
    """
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        raise InputError(f"{name} is a terminal: pipe or redirect the input into `-`")
    fd, tmp = tempfile.mkstemp(prefix=".rlm-spool-", dir=directory)
    total = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = stream.read(CHUNK_BYTES)
                if not chunk:
                    break
                out.write(chunk)
                total += len(chunk)
    except BaseException:
        os.unlink(tmp)
        raise
    if total == 0:
        os.unlink(tmp)
        raise InputError(f"{name} is empty: nothing was piped or redirected into it")
    return tmp, total
