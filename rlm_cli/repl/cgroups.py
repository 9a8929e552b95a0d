"""``pids`` cgroups for REPL launches: root ignores ``RLIMIT_NPROC``, so where a cgroup directory is
writable each launch gets its own cgroup with a task limit (see ``docs/sandbox.md``)."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sys
import time

_CGROUP_SEQ = itertools.count(1)



_CGROUP_PARENT: list[str | None] = []


def cgroup_parent() -> str | None:
    """A writable directory of a ``pids`` cgroup hierarchy (v1 or v2) holding this process, or None
    (found once per process)."""
    if not _CGROUP_PARENT:
        _CGROUP_PARENT.append(_find_cgroup_parent())
    return _CGROUP_PARENT[0]


def _find_cgroup_parent() -> str | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as fh:
            own = [line.rstrip("\n").split(":", 2) for line in fh]
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            mounts = [line.split() for line in fh]
    except OSError:
        return None
    candidates = []
    for fields in mounts:
        sep = fields.index("-")
        fstype, opts, mountpoint = fields[sep + 1], fields[sep + 3], fields[4]
        if fstype == "cgroup" and "pids" in opts.split(","):
            rel = next((p for _, ctl, p in own if "pids" in ctl.split(",")), None)
        elif fstype == "cgroup2":
            rel = next((p for hid, _, p in own if hid == "0"), None)
        else:
            continue
        if rel is not None:
            candidates.append(os.path.join(mountpoint, rel.lstrip("/")))
    for path in candidates:
        if os.access(path, os.W_OK) and _try_cgroup(path):
            return path
    return None


def _try_cgroup(parent: str) -> bool:
    probe = make_cgroup(parent, 16)
    if probe is None:
        return False
    remove_cgroup(probe)
    return True


def make_cgroup(parent: str, max_tasks: int) -> str | None:
    _sweep_cgroups(parent)
    path = os.path.join(parent, f"rlm-{os.getpid()}-{next(_CGROUP_SEQ)}")
    try:
        os.mkdir(path)
    except OSError:
        return None
    try:
        with open(os.path.join(path, "pids.max"), "w") as fh:
            fh.write(str(max_tasks))
    except OSError:
        remove_cgroup(path)
        return None
    return path


def _sweep_cgroups(parent: str) -> None:
    """Remove empty cgroups left by rlm processes that are gone."""
    with contextlib.suppress(OSError):
        for name in os.listdir(parent):
            m = re.fullmatch(r"rlm-(\d+)-\d+", name)
            if m and int(m.group(1)) != os.getpid() and not os.path.exists(f"/proc/{m.group(1)}"):
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(parent, name))


def remove_cgroup(path: str | None, wait_s: float = 2.0) -> None:
    """Remove a cgroup made for one launch, waiting up to ``wait_s`` seconds for its tasks to go."""
    if not path:
        return
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)


