"""Private run directories (``<tmp>/rlm-run-*``) and the removal of those a killed run left behind.

A run's directory holds a copy of its input (``context.txt``) and its REPL's working directory; the
run removes it when it ends, but a run killed with SIGKILL (or a crashed machine) cannot. So each
directory records its owner in a small marker file, ``owner`` (``"<pid> <start time>"``, the start
time in clock ticks since boot from ``/proc/<pid>/stat``, empty where there is no ``/proc``), and
every new run first removes the directories whose owner is gone (:func:`sweep_stale`):

* only entries named ``rlm-run-*`` in the temporary directory that are real directories (never a
  symbolic link, never followed) owned by the current user;
* never the directory of a live process: the owner counts as alive while a process with its pid
  exists and (where ``/proc`` tells) started at the recorded time (a reused pid is not the owner);
* a directory without a marker (made by an rlm from before markers) only once a day old.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

PREFIX = "rlm-run-"
MARKER = "owner"
LEGACY_AGE_S = 24 * 3600.0  # a directory without a marker is removed once this old (seconds)


def _start_time(pid: int) -> str:
    """The start time of process ``pid`` in clock ticks since boot ("" when unknown: no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return ""
    fields = stat.rpartition(b")")[2].split()  # after the command name, which may hold spaces
    return fields[19].decode("ascii", "replace") if len(fields) > 19 else ""


def _alive(pid: int, started: str) -> bool:
    """Whether the process that wrote a marker ``pid``/``started`` still runs."""
    if pid <= 0:
        return False
    if os.path.isdir("/proc/self"):
        now = _start_time(pid)
        return bool(now) and (not started or now == started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _owner(path: str) -> tuple[int, str] | None:
    """``(pid, start time)`` from the marker in ``path`` (not following links), or None."""
    try:
        fd = os.open(os.path.join(path, MARKER), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        words = os.read(fd, 100).decode("ascii", "replace").split()
    except OSError:
        return None
    finally:
        os.close(fd)
    if not words or not words[0].isdigit():
        return None
    return int(words[0]), (words[1] if len(words) > 1 else "")


def sweep_stale(tmp: str | None = None) -> list[str]:
    """Remove the run directories in ``tmp`` (default: :func:`tempfile.gettempdir`) whose owner
    process is gone, by the rules of the module doc. Returns the removed paths. Never raises for a
    directory it cannot read or remove."""
    from rlm_cli.repl.sandbox import remove_tree

    tmp = tmp or tempfile.gettempdir()
    uid, removed, now = os.geteuid(), [], time.time()
    try:
        entries = list(os.scandir(tmp))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(PREFIX):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not entry.is_dir(follow_symlinks=False) or st.st_uid != uid:
                continue
        except OSError:
            continue
        owner = _owner(entry.path)
        if owner is None:
            if now - st.st_mtime < LEGACY_AGE_S:
                continue
        elif owner[0] == os.getpid() or _alive(*owner):
            continue
        remove_tree(entry.path)
        if not os.path.lexists(entry.path):
            removed.append(entry.path)
    return removed


def make_run_dir() -> Path:
    """A new private run directory (mode 0700; 0711 as root, so a REPL dropped to an unprivileged
    uid reaches its own subdirectory) holding this process's marker, after removing stale ones."""
    with contextlib.suppress(OSError):
        sweep_stale()
    workdir = Path(tempfile.mkdtemp(prefix=PREFIX))
    if os.geteuid() == 0:  # searchable (not listable)
        os.chmod(workdir, 0o711)
    fd = os.open(workdir / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{os.getpid()} {_start_time(os.getpid())}\n")
    return workdir
