"""The REPL child's side of saved state: pickling its own namespace, and restoring one.

Standard library only (``child.py`` loads it by file path before the lockdown). Only the sandboxed
child ever unpickles: the parent treats the saved bytes as opaque (``rlm_cli.repl.state``). Each
variable is pickled on its own, so one value that cannot be pickled is named and skipped instead of
losing them all; a module is saved by its name and imported again on restore. What rlm injects
(``context``, ``files``, the sub-call functions, ``FINAL``...) and dunder names are never saved.
"""

from __future__ import annotations

import importlib
import os
import pickle
import types

ENVELOPE = "rlm-repl-state/1"
MAX_NAMES = 10_000  # variables saved at most (more are named as skipped)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200] if str(exc) else type(exc).__name__


def save(ns: dict, protected, fd: int, limit_bytes: int) -> dict:
    """Pickle the variables of ``ns`` (except ``protected`` names and dunders) into the file ``fd``
    (truncated first; at most ``limit_bytes`` bytes in all). Returns the report sent to the parent:
    ``{"saved": [name], "skipped": [[name, reason]], "bytes": int, "error": str | None}``."""
    saved: dict[str, tuple[str, object]] = {}
    skipped: list[list[str]] = []
    used = 0
    for name, value in list(ns.items()):
        if name in protected or (name.startswith("__") and name.endswith("__")):
            continue
        if len(saved) >= MAX_NAMES:
            skipped.append([name, f"more than {MAX_NAMES:,} variables"])
            continue
        if isinstance(value, types.ModuleType):
            saved[name] = ("module", value.__name__)
            continue
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # noqa: BLE001 - any value's __reduce__ may raise anything
            skipped.append([name, "cannot be pickled (" + _reason(exc) + ")"])
            continue
        if used + len(data) > limit_bytes:
            skipped.append([name, f"too large ({len(data):,} bytes; {limit_bytes:,} bytes are kept in all)"])
            continue
        used += len(data)
        saved[name] = ("pickle", data)
    blob = pickle.dumps({"schema": ENVELOPE, "vars": saved}, protocol=pickle.HIGHEST_PROTOCOL)
    error = None
    try:
        os.ftruncate(fd, 0)
        view = memoryview(blob)
        offset = 0
        while offset < len(blob):
            offset += os.pwrite(fd, view[offset:], offset)
    except OSError as exc:
        error = f"cannot write the saved state: {exc.strerror or exc}"
        saved = {}
    return {"saved": list(saved), "skipped": skipped, "bytes": len(blob) if error is None else 0, "error": error}


def restore(ns: dict, protected, fd: int) -> dict:
    """Unpickle the state in file ``fd`` (written by :func:`save` in an earlier REPL) into ``ns``,
    never over a ``protected`` name. Returns ``{"restored": [name], "unrestored": [[name, reason]]}``."""
    restored: list[str] = []
    failed: list[list[str]] = []
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        envelope = pickle.loads(b"".join(chunks))
        if not isinstance(envelope, dict) or envelope.get("schema") != ENVELOPE:
            raise ValueError("not a saved REPL state")
        items = dict(envelope["vars"])
    except Exception as exc:
        return {"restored": [], "unrestored": [["*", "the saved state could not be read (" + _reason(exc) + ")"]]}
    finally:
        os.close(fd)
    for name, (kind, data) in items.items():
        if not isinstance(name, str) or not name.isidentifier() or name in protected:
            continue
        try:
            ns[name] = importlib.import_module(data) if kind == "module" else pickle.loads(data)
            restored.append(name)
        except BaseException as exc:  # noqa: BLE001 - a value's unpickling may raise anything
            failed.append([name, "cannot be restored (" + _reason(exc) + ")"])
    return {"restored": restored, "unrestored": failed}
