"""Writing a file atomically: the one way rlm replaces its own files (trajectories, config.toml),
so a reader never sees a half-written file and a crash leaves the old one."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path


def atomic_write_text(path: Path, text: str, durable: bool = True) -> None:
    """Write ``text`` to ``path`` atomically (same-directory temporary file, fsync, rename; with
    ``durable`` False no fsync: still whole after a crash of the process, not of the system). Never
    renames over anything but a regular file or a symlink: raises OSError (EEXIST) if ``path`` became
    a device, FIFO, socket or directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        with contextlib.suppress(FileNotFoundError):
            mode = os.lstat(path).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                raise OSError(errno.EEXIST, "not a regular file; not replaced", str(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
