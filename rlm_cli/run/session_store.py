"""Saved conversations on disk: one private directory per session under the user data directory.

``<data dir>/sessions/<session id>/session.json`` holds what continuing needs (schema
``rlm-session/1``: the sources, the file fingerprints, the root LM's history, the REPL variables'
names), redacted of known secrets like a trajectory; ``repl.pickle`` holds the REPL's pickled
variables as opaque bytes (only a sandboxed REPL child ever unpickles them, see
:mod:`rlm_cli.repl.state`). Directories are mode 0700, files 0600, written atomically. Only the
:data:`KEEP_SESSIONS` most recently used sessions are kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path

from rlm_cli.atomic import atomic_write_text
from rlm_cli.repl.channel import open_regular
from rlm_cli.repl.state import ENVELOPE_SLACK, MAX_STATE_BYTES
from rlm_cli.secrets import Redactor

SCHEMA = "rlm-session/1"
KEEP_SESSIONS = 50
RECORD = "session.json"
STATE = "repl.pickle"
MAX_RECORD_BYTES = 256 * 1024 * 1024
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def sessions_dir() -> Path:
    """Where saved sessions live: ``<data dir>/sessions``."""
    from rlm_cli.settings.paths import data_dir

    return data_dir() / "sessions"


def session_dir(session_id: str) -> Path | None:
    """The directory of ``session_id``, or None when the id is not a plain id (it may come from a
    trajectory file: never a path)."""
    return sessions_dir() / session_id if isinstance(session_id, str) and _ID.match(session_id) else None


def _read(path: Path, limit: int) -> bytes | None:
    """The bytes of the regular file ``path`` (no link followed), or None when missing, not regular
    or over ``limit`` bytes."""
    try:
        fd = open_regular(path)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            return None
        chunks, offset = [], 0
        while offset < size:
            chunk = os.pread(fd, min(1 << 22, size - offset), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def load_record(session_id: str) -> dict | None:
    """The saved record of ``session_id`` (a dict of schema :data:`SCHEMA`), or None when there is
    none or it is unreadable."""
    folder = session_dir(session_id)
    raw = _read(folder / RECORD, MAX_RECORD_BYTES) if folder else None
    try:
        doc = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("messages"), list):
        return None
    return doc


def load_state(session_id: str) -> bytes | None:
    """The saved REPL state bytes of ``session_id`` (opaque; never unpickled here), or None."""
    folder = session_dir(session_id)
    return _read(folder / STATE, MAX_STATE_BYTES + ENVELOPE_SLACK) if folder else None


def _write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(session_id: str, record: dict, state: bytes | None) -> None:
    """Write ``record`` (redacted of known secrets) and, when not None, the REPL ``state`` bytes for
    ``session_id``; then prune old sessions. Raises OSError when the files cannot be written, and
    ValueError for an id that is not a plain id."""
    folder = session_dir(session_id)
    if folder is None:
        raise ValueError(f"not a session id: {session_id!r}")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(folder.parent, 0o700)
    os.chmod(folder, 0o700)
    if state is not None:
        _write_bytes(folder / STATE, state)
    text = json.dumps(Redactor().obj({**record, "schema": SCHEMA, "id": session_id}), ensure_ascii=False)
    atomic_write_text(folder / RECORD, text)
    prune()


def prune(keep: int = KEEP_SESSIONS) -> None:
    """Remove all but the ``keep`` most recently saved sessions."""
    from rlm_cli.repl.sandbox import remove_tree

    root = sessions_dir()
    try:
        entries = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and _ID.match(p.name)]
    except OSError:
        return

    def mtime(p: Path) -> float:
        try:
            return (p / RECORD).lstat().st_mtime
        except OSError:
            return 0.0

    for old in sorted(entries, key=mtime, reverse=True)[keep:]:
        remove_tree(old)
