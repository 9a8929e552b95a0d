"""The parent's side of saved REPL state: asking the child to save its variables, and what it reports.

The parent never unpickles anything. The sandboxed child pickles its own namespace
(``child_state.py``) into an anonymous file the parent made and holds (as it does for the output
captures, :mod:`rlm_cli.repl.channel`), and the parent reads those bytes, bounded, through its own
descriptor: opaque, hostile data, stored for the next run (:mod:`rlm_cli.run.session`) and handed to
that run's child, which unpickles it inside its own sandbox. The names and reasons the child reports
are validated and bounded before they reach a prompt or a file.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rlm_cli.repl.channel import ProtocolError, parse_message

if TYPE_CHECKING:
    from rlm_cli.repl.process import ReplProcess

MAX_STATE_BYTES = 64 * 1024 * 1024
"""Bytes of pickled variables kept per session (the child skips, and names, what does not fit)."""
ENVELOPE_SLACK = 1024 * 1024  # bytes of the envelope around the variables (names, framing)
MAX_NAMES = 10_000
MAX_NAME_CHARS = 200
MAX_REASON_CHARS = 200
SAVE_TIMEOUT_S = 60.0


@dataclass
class SavedState:
    """What a REPL saved: ``blob`` (opaque bytes, at most :data:`MAX_STATE_BYTES` plus the envelope),
    the ``saved`` variable names and the ``skipped`` ones (``[[name, reason]]``)."""

    blob: bytes
    saved: list[str] = field(default_factory=list)
    skipped: list[list[str]] = field(default_factory=list)


def _name(value: object) -> str:
    text = str(value)[:MAX_NAME_CHARS]
    return text if text.isidentifier() or text == "*" else repr(text)[:MAX_NAME_CHARS]


def _pairs(value: object) -> list[list[str]]:
    if not isinstance(value, list):
        return []
    return [[_name(p[0]), str(p[1])[:MAX_REASON_CHARS]] for p in value[:MAX_NAMES]
            if isinstance(p, list) and len(p) == 2]


def restore_report(ready: dict) -> dict:
    """The child's restore report (fields ``restored``, ``unrestored`` of its ``ready`` message),
    validated and bounded: ``{"restored": [name], "unrestored": [[name, reason]]}``."""
    restored = ready.get("restored")
    names = [_name(n) for n in restored[:MAX_NAMES]] if isinstance(restored, list) else []
    return {"restored": names, "unrestored": _pairs(ready.get("unrestored"))}


def _read_all(fd: int, size: int) -> bytes:
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, min(size - offset, 1 << 22), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


async def save_state(repl: ReplProcess, timeout_s: float = SAVE_TIMEOUT_S,
                     limit_bytes: int = MAX_STATE_BYTES) -> SavedState | str:
    """Ask ``repl``'s child (started with ``keep_state``) to pickle its variables; returns the
    :class:`SavedState`, or a one-line reason why nothing was saved (the REPL is gone, broke the
    protocol, took over ``timeout_s`` seconds, or the file is over ``limit_bytes`` + the envelope).
    Never raises for the child's behaviour; a child that breaks the protocol is killed."""
    fd = repl._fds.get("state_out")
    if fd is None or repl._writer is None or repl._reader is None:
        return "the REPL is not running"
    sid = next(repl._ids)
    try:
        await repl._send({"type": "save_state", "id": sid, "limit": limit_bytes})
        async with asyncio.timeout(timeout_s):
            while True:
                line = await repl._reader.readline()
                if not line:
                    return "the REPL exited while saving its variables"
                msg = parse_message(line)
                if msg["type"] == "state_saved" and msg["id"] == sid:
                    break
    except TimeoutError:
        await repl.kill()
        return f"saving the variables took over {timeout_s:g}s"
    except (ProtocolError, ValueError) as exc:
        await repl.kill()
        return f"the REPL broke the protocol while saving ({exc})"
    except (ConnectionError, AssertionError):
        return "the REPL exited while saving its variables"
    if msg.get("error"):
        return str(msg["error"])[:MAX_REASON_CHARS]
    try:
        size = os.fstat(fd).st_size
        if size > limit_bytes + ENVELOPE_SLACK:
            return f"the saved variables are {size:,} bytes, over the limit of {limit_bytes:,}"
        blob = _read_all(fd, size)
    except OSError as exc:
        return f"cannot read the saved variables: {exc.strerror or exc}"
    return SavedState(blob, [_name(n) for n in msg["saved"][:MAX_NAMES]], _pairs(msg["skipped"]))
