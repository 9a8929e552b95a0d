"""What the server's SOURCEs look like on disk, cheaply: a fingerprint that changes when they do.

:func:`fingerprint` stats every source and, under a directory source, every directory and every
entry (one ``lstat`` each, no read): a file written, truncated, replaced, renamed, added or removed
changes its own ``(size, mtime_ns, ctime_ns, inode)`` or its directory's, so the fingerprint differs.
Directories a load never enters are not walked (``.git``, whose ``index``, ``HEAD`` and
``info/exclude`` are stat'ed instead since they decide git's file set, and the default and
``--exclude`` directory patterns); a followed symbolic link (``--follow-symlinks``) adds its
target's stat, and a linked directory is walked once.

A write within the file system's timestamp granularity of the stat can leave every field equal
(git calls such an entry "racy"). :func:`is_racy` says whether any stamp is that recent; a cache
must then not trust the fingerprint and load again on the next request, until the stamps are older.
"""

from __future__ import annotations

import os
import stat
import time
from typing import Any

RACY_S = 2.0
"""Seconds within which a timestamp is too recent to prove a file unchanged (covers coarse clocks)."""
GIT_FILES = ("index", "HEAD", os.path.join("info", "exclude"))
"""Files under ``.git`` whose changes change git's file set (tracked, ignored)."""


def _entry(st: os.stat_result) -> tuple[int, int, int, int, int, int]:
    return (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def _stat(path: str, follow: bool = True) -> tuple | str:
    try:
        return _entry(os.stat(path) if follow else os.lstat(path))
    except OSError as exc:
        return f"error {exc.errno}"


class _Walk:
    """One fingerprint's state: the rows, the newest stamp seen and the real directories walked."""

    def __init__(self, options: Any) -> None:
        from rlm_cli.loader.filters import PathFilter

        self.rows: list[tuple] = []
        self.newest = 0
        self.follow = bool(getattr(options, "follow_symlinks", False))
        self.prune = PathFilter(options).dir_excluded if options is not None else (lambda rel: None)
        self.visited: set[tuple[int, int]] = set()

    def add(self, key: str, row: tuple | str) -> None:
        self.rows.append((key, row))
        if isinstance(row, tuple):
            self.newest = max(self.newest, row[2], row[3])

    def directory(self, fs_dir: str, rel: str, depth: int = 0) -> None:
        try:
            st = os.stat(fs_dir)
        except OSError as exc:
            self.add(rel, f"error {exc.errno}")
            return
        if (st.st_dev, st.st_ino) in self.visited or depth > 40:
            self.add(rel, "again")
            return
        self.visited.add((st.st_dev, st.st_ino))
        self.add(rel, _entry(st))
        try:
            with os.scandir(fs_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self.add(rel + "*", f"error {exc.errno}")
            return
        for e in entries:
            child = rel + e.name
            if e.name == ".git":
                self.add(child, _stat(e.path, follow=False))
                for name in GIT_FILES:
                    self.add(child + "/" + name, _stat(os.path.join(e.path, name)))
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except OSError as exc:
                self.add(child, f"error {exc.errno}")
                continue
            if stat.S_ISDIR(st.st_mode):
                if self.prune(child + "/") is not None:
                    self.add(child + "/", _entry(st))
                else:
                    self.directory(e.path, child + "/", depth + 1)
            elif stat.S_ISLNK(st.st_mode) and self.follow:
                self.add(child, _entry(st))
                target = _stat(e.path)
                self.add(child + " ->", target)
                if isinstance(target, tuple) and stat.S_ISDIR(target[0]) and self.prune(child + "/") is None:
                    self.directory(e.path, child + "/", depth + 1)
            else:
                self.add(child, _entry(st))


def fingerprint(sources: list[str], options: Any) -> tuple[tuple, int]:
    """``(fingerprint, newest)`` of local ``sources`` (files and directories) loaded with ``options``
    (a :class:`~rlm_cli.loader.options.LoadOptions`: symlinks, excludes): a tuple equal to an earlier
    one when nothing a load would see changed (modulo :func:`is_racy`), and the newest ``mtime`` or
    ``ctime`` seen (nanoseconds since the epoch). Never raises: an unreadable entry is a row too."""
    walk = _Walk(options)
    for index, src in enumerate(sources):
        key = f"{index}:"
        row = _stat(src)
        if isinstance(row, tuple) and stat.S_ISDIR(row[0]):
            walk.directory(src, key)
        else:
            walk.add(key, row)
    return tuple(walk.rows), walk.newest


def is_racy(newest_ns: int, taken_at: float) -> bool:
    """Whether a stamp of ``newest_ns`` (nanoseconds) is within :data:`RACY_S` of ``taken_at`` (the
    ``time.time()`` when the fingerprint was taken), or in the future: the fingerprint cannot prove
    the files unchanged."""
    return newest_ns >= int((taken_at - RACY_S) * 1e9)


def now() -> float:
    """``time.time()``: the wall clock the file stamps are compared with."""
    return time.time()
