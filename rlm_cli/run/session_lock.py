"""One run at a time per conversation: an advisory lock per session id.

``rlm ask -c`` (and ``--resume``, ``rlm chat``) holds the lock of its session from before it reads
the saved conversation until it has stored the new turn (:meth:`SessionLink.finish`), so two
continuations of one conversation never both start from the same turn (one turn lost, one
trajectory deleted). A second continuation waits up to ``RLM_SESSION_WAIT`` seconds (default
:data:`DEFAULT_WAIT_S`) for the first to finish and then goes on from its turn; if the first is
still running it stops with :class:`SessionBusy` (exit 1: the conversation is fine, try again).

The lock is ``flock`` on ``<data dir>/session-locks/<id>.lock`` (mode 0600, opened without
following links): the kernel drops it when the holder exits, also on SIGKILL, so a crashed run
never leaves a conversation locked. Within one process the lock is re-entrant (``rlm chat`` takes
it again each turn). Lock files of sessions that no longer exist are removed by whoever holds them
(a holder checks, after locking, that its file is still the one at the path). On a platform without
``fcntl`` the lock is a no-op.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from rlm_cli.errors import RlmError

DEFAULT_WAIT_S = 5.0  # seconds a continuation waits for the session's current run
_POLL_S = 0.05
_held: dict[str, int] = {}  # session id -> the open, locked file descriptor (this process)


class SessionBusy(RlmError):
    """Another run of the same conversation is in progress and did not end in time (exit 1)."""


def _locks_dir() -> Path:
    from rlm_cli.settings.paths import data_dir

    return data_dir() / "session-locks"


def _wait_s() -> float:
    from rlm_cli.loader.remote import env_number

    return env_number("RLM_SESSION_WAIT", DEFAULT_WAIT_S)


def _try_lock(path: Path) -> int | None:
    """An open descriptor of ``path`` holding its exclusive lock, or None when another holds it.
    Raises OSError when the file cannot be opened (a link, a directory)."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    try:  # removed (or replaced) by a sweeper between open and lock: not a lock on the path any more
        st, now = os.fstat(fd), os.stat(path, follow_symlinks=False)
        same = (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)
    except OSError:
        same = False
    if not same:
        os.close(fd)
        return _try_lock(path)
    return fd


def acquire(session_id: str, wait_s: float | None = None) -> None:
    """Hold the lock of ``session_id`` (an id as :func:`session_store.session_dir` accepts), waiting
    up to ``wait_s`` seconds (None: ``RLM_SESSION_WAIT``, default :data:`DEFAULT_WAIT_S`). Returns at
    once when this process holds it already. Raises :class:`SessionBusy` when another run still
    holds it, :class:`~rlm_cli.errors.UsageError` for a bad ``RLM_SESSION_WAIT``; an id that is not
    a plain id, an unwritable data directory or a platform without ``fcntl`` lock nothing."""
    from rlm_cli.run.session_store import session_dir

    if session_id in _held or session_dir(session_id) is None:
        return
    try:
        import fcntl  # noqa: F401
    except ImportError:
        return
    wait = _wait_s() if wait_s is None else wait_s
    path = _locks_dir() / f"{session_id}.lock"
    deadline = time.monotonic() + wait
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        while (fd := _try_lock(path)) is None:
            if time.monotonic() >= deadline:
                raise SessionBusy(f"conversation {session_id} is in use by another run (waited {wait:g} s, "
                                  "RLM_SESSION_WAIT); try again when it has finished")
            time.sleep(_POLL_S)
    except OSError:
        return  # no lock can be kept here (read-only data directory): run as before
    _held[session_id] = fd


def release(session_id: str) -> None:
    """Let go of ``session_id``'s lock (idempotent), first removing the lock files of sessions that
    are gone (pruned, or never saved)."""
    if session_id not in _held:
        return
    with contextlib.suppress(OSError):
        _sweep()
    os.close(_held.pop(session_id))


def _sweep() -> None:
    import fcntl

    from rlm_cli.run.session_store import session_dir

    for entry in os.scandir(_locks_dir()):
        sid = entry.name.removesuffix(".lock")
        folder = session_dir(sid)
        if not entry.name.endswith(".lock") or (folder is not None and folder.is_dir()):
            continue
        if sid in _held:  # ours: unlinked while held (a re-locker notices the new file)
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
            continue
        try:
            fd = _try_lock(Path(entry.path))
        except OSError:
            continue
        if fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
