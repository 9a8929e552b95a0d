"""What the REPL child can see of the filesystem: an allowlist, everything else absent.

Inside its mount namespace the child (``child_sandbox.py``) or bubblewrap builds a fresh root holding
only what :func:`visible_root` lists, at the same paths as on the host:

- the Python installation it runs, read-only: ``sys.prefix``, ``sys.exec_prefix``,
  ``sys.base_prefix``, ``sys.base_exec_prefix`` and the resolved interpreter (a venv's ``python`` is
  often a symlink to a base interpreter elsewhere, e.g. ``/root/.pyenv/versions/3.11.7``), each bound
  alone even under ``$HOME``. A prefix that is ``/``, ``/home``, ``/root`` or a home directory itself
  is never bound whole: only the ``sys.path`` directories under it and ``libpython`` are;
- the directory of the child's own modules (``rlm_cli/repl``), read-only;
- the system's programs and libraries, read-only: :data:`SYSTEM_PATHS`, :data:`ETC_FILES`;
- symlinks on the way to any of these, recreated as they are (``/lib -> usr/lib``);
- its own working directory (read-write), and, made fresh: a private ``/tmp`` (tmpfs), ``/dev``
  (harmless nodes only), and the ``/proc`` of its PID namespace.

Nothing else exists in there: no ``$HOME``, ``/home``, ``/root``, ``/tmp`` of the host, ``/var``,
``/etc`` beyond the two files, ``/sys``, ``/opt``, ``/mnt``, ``/run``, rlm's data, log, cache and
config directories, other runs' directories, or the run's own copy of the input (``context`` reaches
the child as an inherited descriptor).
"""

from __future__ import annotations

import os
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

# Programs and libraries: the dynamic loader, libc and the libraries Python's extension modules link
# (libssl, libffi, libsqlite3, zlib, ...), locale data (/usr/lib/locale), time zones
# (/usr/share/zoneinfo), /bin/sh for subprocess. On merged-/usr systems /bin and /lib* are symlinks.
SYSTEM_PATHS = ("/usr", "/bin", "/lib", "/lib32", "/lib64", "/libx32")
# /etc/ld.so.cache: where the loader finds shared libraries outside its default directories (e.g.
# multiarch ones) without scanning; /etc/localtime: local time for time.localtime() and datetime.
ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")
_MAX_LINKS = 40


@dataclass
class VisibleRoot:
    """The REPL's filesystem. ``read_only``: real absolute paths bound read-only at the same path;
    ``links``: ``[path, target]`` symlinks recreated as they are on the host (``target`` verbatim);
    the working directory is added by the launcher."""

    read_only: list[str] = field(default_factory=list)
    links: list[list[str]] = field(default_factory=list)

    def add(self, path: str) -> str | None:
        """Add ``path`` (resolving its symlinks, each recreated); returns the real path, or None when
        it does not exist or loops."""
        real = resolve(os.path.abspath(path), self.links)
        if real is None or not os.path.exists(real):
            return None
        self.read_only.append(real)
        return real

    def tidy(self) -> VisibleRoot:
        """Drop duplicates, paths inside another bound path, and links inside a bound directory (they
        are there already); parents first."""
        binds: list[str] = []
        for path in sorted(set(self.read_only), key=lambda p: (p.count("/"), p)):
            if not any(_inside(path, b) for b in binds):
                binds.append(path)
        links, seen = [], set()
        for path, target in self.links:
            if path not in seen and not any(_inside(path, b) for b in binds):
                seen.add(path)
                links.append([path, target])
        return VisibleRoot(sorted(binds), links)


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def resolve(path: str, links: list[list[str]]) -> str | None:
    """The real path of absolute ``path``, appending each symlink met on the way to ``links`` as
    ``[link path, target as written]``; None after :data:`_MAX_LINKS` links (a loop)."""
    todo = [p for p in path.split("/") if p]
    cur, hops = "/", 0
    while todo:
        name = todo.pop(0)
        if name == ".":
            continue
        if name == "..":
            cur = os.path.dirname(cur)  # ``cur`` has no symlink in it, so this is the real parent
            continue
        nxt = os.path.join(cur, name)
        if os.path.islink(nxt):
            hops += 1
            if hops > _MAX_LINKS:
                return None
            target = os.readlink(nxt)
            links.append([nxt, target])
            todo = [p for p in target.split("/") if p] + todo
            if target.startswith("/"):
                cur = "/"
            continue
        cur = nxt
    return cur


def _homes() -> set[str]:
    homes = {"/", "/home", "/root", str(Path.home())}
    if os.environ.get("HOME"):
        homes.add(os.environ["HOME"])
    return {os.path.realpath(h) for h in homes}


def _too_wide(prefix: str) -> bool:
    """Whether binding ``prefix`` whole would show a home: it is ``/``, ``/home``, ``/root``, this
    user's home, or a directory right under ``/home``."""
    real = os.path.realpath(prefix)
    return real in _homes() or os.path.dirname(real) == "/home"


def python_paths() -> list[str]:
    """What running this interpreter needs (absolute, possibly through symlinks): its prefixes, the
    interpreter and, for a prefix too wide to bind whole, the ``sys.path`` directories under it and
    ``libpython``."""
    out = [sys.executable, os.path.realpath(sys.executable)]
    for prefix in {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}:
        if not _too_wide(prefix):
            out.append(prefix)
            continue
        real = os.path.realpath(prefix)
        out += [p for p in sys.path if p and os.path.isdir(p) and _inside(os.path.realpath(p), real)]
        for key in ("stdlib", "platstdlib", "purelib", "platlib"):
            found = sysconfig.get_path(key)
            if found and _inside(os.path.realpath(found), real):
                out.append(found)
        libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
        if libdir and soname and os.path.exists(os.path.join(libdir, soname)):
            out.append(os.path.join(libdir, soname))
    return out


def visible_root() -> VisibleRoot:
    """The read-only part of the REPL's filesystem on this machine (see the module's docstring)."""
    root = VisibleRoot()
    for path in (*SYSTEM_PATHS, *ETC_FILES, *python_paths(), str(Path(__file__).parent)):
        if os.path.lexists(path):
            root.add(path)
    return root.tidy()


def workdir_links(workdir: str) -> tuple[str, list[list[str]]]:
    """The real path of ``workdir`` and the symlinks on the way to it (to recreate)."""
    links: list[list[str]] = []
    real = resolve(os.path.abspath(workdir), links)
    return real or os.path.realpath(workdir), links
