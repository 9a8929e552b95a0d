"""Saved runs: finding trajectory files in the log directory, loading and summarizing them.

Trajectory files are ``<log_dir>/<UTC stamp>-<run id>.json`` (see ``rlm_cli/commands/ask.py``), so
their names sort by start time; a file named otherwise sorts by its modification time.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from rlm_cli.errors import UsageError

SCHEMA_PREFIX = "rlm-trajectory/"
_STAMPED = re.compile(r"^(\d{8}T\d{6}Z)-(.+)\.json$")


def _sort_key(path: Path) -> str:
    m = _STAMPED.match(path.name)
    if m:
        return m.group(1)
    try:
        return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    except OSError:
        return ""


def run_id_of(path: Path) -> tuple[str, str] | None:
    """``(UTC stamp, run id)`` from a trajectory file's name (``<stamp>-<id>.json``); None for a file
    named otherwise. Reads no file."""
    m = _STAMPED.match(path.name)
    return (m.group(1), m.group(2)) if m else None


def list_runs(directory: Path) -> list[Path]:
    """Trajectory files in ``directory``, newest first (none if it does not exist). Symlinks are
    skipped: a conversation's earlier turns leave links to its newest file (rlm_cli.run.session)."""
    if not directory.is_dir():
        return []
    files = [p for p in directory.glob("*.json")
             if not p.name.startswith(".") and not p.is_symlink() and p.is_file()]
    return sorted(files, key=lambda p: (_sort_key(p), p.name), reverse=True)


def resolve(arg: str | None, directory: Path) -> Path:
    """The trajectory ``arg`` names: a path, or a run id (or its prefix) in ``directory``; the latest
    run when ``arg`` is None. Raises :class:`UsageError` when there is none."""
    if arg is None:
        runs = list_runs(directory)
        if not runs:
            raise UsageError(f"no saved runs in {directory} (run `rlm ask` first, or give a trajectory file)")
        for path in runs:  # the latest one that is a trajectory (skip a stray or damaged file)
            try:
                load(path)
            except UsageError:
                continue
            return path
        raise UsageError(f"no readable trajectory in {directory} ({len(runs)} damaged file(s))")
    path = Path(arg).expanduser()
    if path.exists():
        if path.is_dir():
            raise UsageError(f"{arg} is a directory, not a trajectory file")
        return path
    if "/" not in arg and "\\" not in arg and not arg.endswith(".json"):
        matches = [p for p in list_runs(directory)
                   if (m := _STAMPED.match(p.name)) and m.group(2).startswith(arg)]
        if len({_STAMPED.match(p.name).group(2) for p in matches}) == 1:  # one run (a session: its newest file)
            return matches[0]
        if len(matches) > 1:
            raise UsageError(f"run id {arg!r} is ambiguous: {len(matches)} runs match in {directory}")
    raise UsageError(f"no such trajectory: {arg}")


def load(path: Path) -> dict:
    """The trajectory document at ``path``; :class:`UsageError` when unreadable or not a trajectory."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc.__class__.__name__}: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith(SCHEMA_PREFIX):
        raise UsageError(f"{path} is not an rlm trajectory (no \"schema\": \"{SCHEMA_PREFIX}1\")")
    if not isinstance(doc.get("iterations", []), list):
        raise UsageError(f"{path} is not a valid rlm trajectory (\"iterations\" is not a list)")
    return doc


def _count(iterations: list) -> tuple[int, int]:
    """(iterations, sub-calls) over all depths."""
    its = calls = 0
    for it in iterations or []:
        its += 1
        for step in it.get("steps") or []:
            for call in step.get("sub_calls") or []:
                calls += 1
                sub_its, sub_calls = _count(call.get("iterations") or [])
                its, calls = its + sub_its, calls + sub_calls
    return its, calls


def local_time(iso: str | None) -> str:
    """An ISO 8601 UTC time as local ``YYYY-MM-DD HH:MM:SS`` (the input unchanged if unparsable)."""
    if not iso:
        return "?"
    try:
        when = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def summarize(path: Path) -> dict:
    """One line's worth about a saved run (for ``rlm logs``); ``status`` is ``unreadable`` for a bad file."""
    try:
        doc = load(path)
    except UsageError as exc:
        return {"path": str(path), "status": "unreadable", "error": str(exc), "id": None, "started_at": None,
                "question": None, "iterations": None, "sub_calls": None, "cost_usd": None, "duration_s": None}
    iterations = doc.get("iterations") or []
    total_its, counted_calls = _count(iterations)
    usage = doc.get("usage") or {}
    return {"path": str(path), "id": doc.get("id"), "started_at": doc.get("started_at"),
            "ended_at": doc.get("ended_at"), "status": doc.get("status"), "question": doc.get("question"),
            "models": doc.get("models"), "iterations": len(iterations), "iterations_all_depths": total_its,
            "sub_calls": counted_calls, "cost_usd": usage.get("total_cost_usd"), "duration_s": doc.get("duration_s"),
            "answered": doc.get("answer") is not None, "turns": _turns(doc)}


def _turns(doc: dict) -> int:
    """Questions asked in the run's conversation (1 for a single question)."""
    session = doc.get("session")
    turns = session.get("turns") if isinstance(session, dict) else None
    return len(turns) if isinstance(turns, list) and turns else 1
