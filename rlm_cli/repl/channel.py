"""The parent's side of the REPL channel's trust boundary: message validation and output captures.

Everything the REPL child sends is hostile input. Messages are bounded (:data:`MAX_MESSAGE_BYTES`) and
validated (:func:`parse_message`) before the parent acts on them, and the child's output is captured
in anonymous files the parent made and reads through its own descriptors (:func:`capture_file`,
:func:`read_bounded`): the parent never opens by path anything the REPL can create or replace.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import tempfile

# The largest message either side sends on the REPL channel (bytes of one JSON line). The child
# refuses to send more (an error to the model's code); a parent that receives more kills the REPL.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_OPS = ("llm_query", "llm_query_batched", "rlm_query", "rlm_query_batched")


def read_bounded(fd: int, limit_bytes: int) -> str:
    """Text of the open file ``fd`` (read with ``pread``, its offset untouched); if larger than
    ``limit_bytes``, its head and tail with the omission stated. Never follows a path: the parent
    only reads files it opened itself. Returns "" when ``fd`` cannot be read."""
    try:
        size = os.fstat(fd).st_size
        if size <= limit_bytes:
            return os.pread(fd, size, 0).decode("utf-8", "replace")
        half = limit_bytes // 2
        head = os.pread(fd, half, 0)
        tail = os.pread(fd, half, size - half)
    except OSError:
        return ""
    return (head.decode("utf-8", "replace") + f"\n[... {size - 2 * half:,} bytes of output omitted ...]\n"
            + tail.decode("utf-8", "replace"))


def anonymous_file(data: bytes = b"", append: bool = True) -> int:
    """A private, anonymous file: created with ``O_EXCL`` (mode 0600) in the temporary directory and
    unlinked at once, holding ``data``, opened for appending when ``append``. Returns its descriptor,
    not inheritable (pass it with ``pass_fds`` or as fd 1/2; the caller closes it). Used for the REPL's
    output captures and its file index: nothing the REPL does to paths can redirect or replace it.
    Raises OSError when no temporary file can be made."""
    fd, path = tempfile.mkstemp(prefix="rlm-")
    try:
        os.unlink(path)
        view = memoryview(data)
        while view:  # a write may be partial
            view = view[os.write(fd, view):]
        if append:
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(path: str | os.PathLike) -> int:
    """A read-only descriptor of the regular file ``path``: opened without following a final symlink
    and without blocking (a FIFO or device never hangs the parent), then checked to be a regular
    file. Raises OSError otherwise (``ELOOP`` for a link, ``EINVAL`` for anything not regular)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return fd


class ProtocolError(ValueError):
    """A message from the REPL that breaks the channel's protocol (oversized, not JSON, wrong shape)."""


def parse_message(line: bytes) -> dict:
    """One message from the REPL child, validated: a JSON object whose ``type`` is a known kind with
    fields of the right types. Raises :class:`ProtocolError` otherwise (the REPL is hostile input)."""
    if len(line) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"a message of {len(line):,} bytes (limit {MAX_MESSAGE_BYTES:,})")
    try:
        msg = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"a message that is not JSON ({type(exc).__name__})") from None
    if not isinstance(msg, dict):
        raise ProtocolError("a message that is not a JSON object")
    kind = msg.get("type")
    if kind != "ready" and (not isinstance(msg.get("id"), int) or isinstance(msg.get("id"), bool)):
        raise ProtocolError("a message without an integer id")
    if kind == "request":
        if msg.get("op") not in _OPS or not isinstance(msg.get("args", {}), dict):
            raise ProtocolError("a request with an unknown op or malformed arguments")
    elif kind == "done":
        if not all(isinstance(msg.get(k), str | None) for k in ("error", "final")) or not all(
                isinstance(n, str) for n in msg.get("notes") or []):
            raise ProtocolError("a malformed step result")
    elif kind == "var":
        if not isinstance(msg.get("value"), str | None):
            raise ProtocolError("a malformed variable value")
    elif kind == "state_saved":
        if not (_str_list(msg.get("saved")) and isinstance(msg.get("bytes"), int)
                and isinstance(msg.get("error"), str | None) and _pairs(msg.get("skipped"))):
            raise ProtocolError("a malformed state report")
    elif kind != "ready":
        raise ProtocolError(f"a message of unknown type {str(kind)[:40]!r}")
    return msg


def _str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _pairs(value: object) -> bool:
    """A list of ``[str, str]`` pairs (a name and why)."""
    return isinstance(value, list) and all(
        isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v) for v in value)
