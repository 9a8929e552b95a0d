"""Conversations: one run as a turn of a session (``rlm ask -c``, ``--resume``, ``rlm chat``).

A :class:`SessionLink` joins one run to its session. Before the run it says what to load (the
session's sources plus any new ones) and carries the root LM's earlier history and the REPL's saved
variables (opaque bytes); the engine asks it for the root's opening messages
(:meth:`SessionLink.opening`: the earlier history, unchanged, so provider prefix caches still apply,
plus one new user message naming the question, what changed in the files and which variables came
back) and leaves it the root's history and the REPL's newly saved state. After the run,
:meth:`SessionLink.finish` stores them (:mod:`rlm_cli.run.session_store`) and moves the session's
trajectory to its new name. Every run of ``rlm ask`` starts a session (unless ``--no-log``), so any
run can be continued.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_cli.context import CHARS_PER_TOKEN
from rlm_cli.errors import UsageError
from rlm_cli.run import session_lock, session_store

MAX_LISTED = 40  # file and variable names listed to the root LM per kind
ANSWER_CHARS = 4000  # of the previous answer repeated in the follow-up message
DEFAULT_WINDOW_TOKENS = 128_000  # the root model's context window when litellm's map does not know it
COMPACT_AT = 0.5  # compact earlier questions once the history would fill this share of the window
SUMMARY_ANSWER_CHARS = 1500  # of each earlier answer kept in a compaction summary


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fingerprints(loaded: Any) -> dict[str, str]:
    """``{path: hex digest}`` of each loaded file's text (BLAKE2b, 16 bytes:
    :func:`rlm_cli.context.text_digest`, the format saved sessions hold).

    The loader computes them while it writes the context file (``loaded.digests``); only a file it
    has none for (a context assembled elsewhere) is read back from the context file and hashed, one
    file at a time (memory: the largest file)."""
    from rlm_cli.context import text_digest

    known = getattr(loaded, "digests", None) or {}
    out: dict[str, str] = {}
    missing = []
    for entry in loaded.files:
        digest = known.get(entry.path)
        if digest is None:
            missing.append(entry)
        out[entry.path] = digest
    if missing:
        pos = 0
        with open(loaded.path, encoding="utf-8", newline="") as fh:
            for entry in sorted(missing, key=lambda f: f.offset):
                if entry.offset > pos:
                    fh.read(entry.offset - pos)
                text = fh.read(entry.chars)
                pos = entry.offset + len(text)
                out[entry.path] = text_digest(text)
    return out


def _names(items: list[str], more_word: str = "more") -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} {more_word}" if len(items) > MAX_LISTED else "")


@dataclass
class SessionLink:
    """One run's place in a session. ``id``: the session id (the run id ``rlm logs`` shows);
    ``sources``: what to load; ``source_records``: ``[{"arg", "abs"}]`` as stored; ``messages``: the
    root LM's earlier history (empty for a new session); ``repl_state``: saved variables (opaque
    bytes, or None); ``prior_doc``/``prior_path``: the session's trajectory so far and its file;
    ``record``: the stored session record. Filled during the run: ``transcript`` (the root's live
    history), ``saved`` (a :class:`~rlm_cli.repl.state.SavedState`, a reason string, or None when
    not saved), ``fingerprints`` and ``turn_extra`` (merged into the trajectory's turn). ``settings``:
    the run's resolved :class:`~rlm_cli.settings.resolve.Settings`, set by the command; its models,
    endpoints and limits are stored (:func:`settings_record`) so that a continuation keeps them."""

    id: str
    sources: list[str]
    source_records: list[dict]
    cwd: str
    messages: list[dict] = field(default_factory=list)
    repl_state: bytes | None = None
    prior_doc: dict | None = None
    prior_path: Path | None = None
    record: dict | None = None
    persist: bool = True
    transcript: list[dict] | None = None
    saved: Any = None
    fingerprints: dict[str, str] = field(default_factory=dict)
    turn_extra: dict = field(default_factory=dict)
    settings: Any = None  # the run's resolved Settings, stored (without keys) by finish()
    _hashing: Any = field(default=None, repr=False)  # the fingerprints being computed (a new session)

    def stored_settings(self) -> dict | None:
        """The settings the conversation stored (:func:`settings_record`'s shape), or None when it
        stored none (sessions from before rlm kept them)."""
        stored = (self.record or {}).get("settings")
        return stored if isinstance(stored, dict) else None

    @property
    def continued(self) -> bool:
        """Whether this run continues an earlier one."""
        return bool(self.messages)

    async def opening(self, question: str, loaded: Any, restore: dict | None,
                      root_model: str = "") -> list[dict] | None:
        """The root LM's opening messages for a continued session (the earlier history plus one new
        user message), or None for a new session (the engine's usual opening). ``restore``: the REPL's
        restore report (``{"restored", "unrestored"}``) or None. When the history would fill over
        :data:`COMPACT_AT` of ``root_model``'s context window, the earlier questions' messages are
        replaced by a summary (:meth:`compact`)."""
        if not self.continued:  # nothing to compare with: hash while the run goes on (see keep())
            self._hashing = asyncio.ensure_future(asyncio.to_thread(fingerprints, loaded))
            return None
        self.fingerprints = await asyncio.to_thread(fingerprints, loaded)
        old = (self.record or {}).get("fingerprints") or {}
        old = old if isinstance(old, dict) else {}
        changed = sorted(p for p, h in self.fingerprints.items() if p in old and old[p] != h)
        added = sorted(p for p in self.fingerprints if p not in old)
        removed = sorted(p for p in old if p not in self.fingerprints)
        restored = (restore or {}).get("restored") or []
        unrestored = [f"{n} ({why})" for n, why in (restore or {}).get("unrestored") or []]
        repl_info = (self.record or {}).get("repl") or {}
        unsaved = [f"{n} ({why})" for n, why in (repl_info.get("skipped") or []) if isinstance(n, str)]
        self.turn_extra.update({"files_changed": changed, "files_added": added, "files_removed": removed,
                                "variables_restored": restored, "variables_unrestored": unrestored})
        last = (self.record or {}).get("last") or {}
        parts = [f"Follow-up question {int((self.record or {}).get('turns') or 1) + 1} of this conversation."]
        answer = last.get("answer")
        parts.append(f"Your previous question ended with status {last.get('status', 'unknown')}"
                     + (f"; your answer was:\n<previous_answer>\n{str(answer)[:ANSWER_CHARS]}\n</previous_answer>"
                        if answer else " and no answer."))
        parts.append(f"The REPL was started again with `context` and `files` loaded afresh: {len(loaded.files)} "
                     f"file(s), {loaded.total_chars:,} characters (about {loaded.est_tokens:,} tokens).")
        if changed or added or removed:
            for label, items in (("Changed since your last question", changed), ("Added", added),
                                 ("No longer loaded", removed)):
                if items:
                    parts.append(f"{label}: {_names(items)}.")
            parts.append("Earlier findings about these files may be out of date; check them again.")
        else:
            parts.append("No file changed since your last question.")
        if restored:
            parts.append(f"Variables restored from before: {_names(restored)}.")
        if unrestored or unsaved:
            parts.append(f"Variables that could not be restored: {_names(unsaved + unrestored)}.")
        if not restored and not unrestored and not unsaved:
            parts.append("No variables were kept from before.")
        parts.append(f"Question: {question}\n\nExplore with ```repl blocks as before (the context is still only in "
                     "the REPL), then answer with FINAL(...).")
        follow_up = {"role": "user", "content": "\n".join(parts)}
        window = window_tokens(root_model)
        chars = sum(len(m["content"]) for m in self.messages) + len(follow_up["content"])
        if chars / CHARS_PER_TOKEN > COMPACT_AT * window:
            return self.compact(follow_up, window)
        return [*self.messages, follow_up]

    def compact(self, follow_up: dict, window: int) -> list[dict]:
        """The system prompt, then one user message: a summary of the earlier questions (each one's
        question, status and answer, from the session's trajectory) followed by ``follow_up``. The
        compaction is recorded in this turn (``compaction``) and in the session's ``compactions``."""
        turns = []
        session = (self.prior_doc or {}).get("session")
        if isinstance(session, dict) and isinstance(session.get("turns"), list):
            turns = [t for t in session["turns"] if isinstance(t, dict)]
        lines = ["[Summary of the earlier questions of this conversation. Their step-by-step history was "
                 "removed to fit your context window; the REPL's variables are not affected.]"]
        for n, turn in enumerate(turns, 1):
            answer = turn.get("answer")
            lines.append(f"Question {n}: {str(turn.get('question'))[:SUMMARY_ANSWER_CHARS]}\n"
                         f"Status: {turn.get('status')}\nAnswer: "
                         + (str(answer)[:SUMMARY_ANSWER_CHARS] if answer is not None else "(none)"))
        system = [m for m in self.messages[:1] if m["role"] == "system"]
        summary = "\n\n".join(lines)
        out = [*system, {"role": "user", "content": summary + "\n\n" + follow_up["content"]}]
        self.turn_extra["compaction"] = {
            "at_turn": len(turns), "questions_summarized": len(turns), "messages_before": len(self.messages) + 1,
            "messages_after": len(out), "chars_before": sum(len(m["content"]) for m in [*self.messages, follow_up]),
            "chars_after": sum(len(m["content"]) for m in out), "window_tokens": window, "summary": summary}
        return out

    async def keep(self, repl: Any) -> None:
        """At the end of a run that was not interrupted: save the root REPL's variables
        (:func:`rlm_cli.repl.state.save_state`) and wait for the files' fingerprints."""
        from rlm_cli.repl.state import save_state

        self.saved = await save_state(repl)
        if self._hashing is not None:
            self.fingerprints = await self._hashing

    def finish(self, answer: str | None, status: str, log_path: Path | None) -> list[str]:
        """Store the session after a run that ended with ``status`` and ``answer`` and wrote its
        trajectory to ``log_path``: the root history, the fingerprints, the REPL state (the new one;
        the previous one stays when this run saved none). Returns warnings (one line each)."""

        if not self.persist:
            return []
        try:
            return self._store(answer, status, log_path)
        finally:
            session_lock.release(self.id)

    def _store(self, answer: str | None, status: str, log_path: Path | None) -> list[str]:
        from rlm_cli.repl.state import SavedState

        hashing = self._hashing
        if not self.fingerprints and hashing is not None and hashing.done() and not hashing.cancelled() \
                and hashing.exception() is None:
            self.fingerprints = hashing.result()
        warnings: list[str] = []
        repl_info = dict((self.record or {}).get("repl") or {})
        blob = None
        if isinstance(self.saved, SavedState):
            blob, repl_info = self.saved.blob, {"saved": self.saved.saved, "skipped": self.saved.skipped}
        elif isinstance(self.saved, str):
            warnings.append(f"the REPL's variables were not saved: {self.saved}")
        messages = self.transcript if self.transcript is not None else self.messages
        record = {"cwd": self.cwd, "sources": self.source_records, "fingerprints": self.fingerprints or
                  (self.record or {}).get("fingerprints") or {}, "messages": messages, "repl": repl_info,
                  "turns": int((self.record or {}).get("turns") or 0) + 1, "updated_at": _now(),
                  "last": {"answer": answer, "status": status},
                  "settings": settings_record(self.settings) if self.settings is not None else
                  (self.record or {}).get("settings"),
                  "trajectory": str(log_path) if log_path else (self.record or {}).get("trajectory")}
        try:
            session_store.save(self.id, record, blob)
        except (OSError, ValueError) as exc:
            warnings.append(f"could not save the session: {exc}")
        self._retire_old_trajectory(log_path)
        return warnings

    def _retire_old_trajectory(self, log_path: Path | None) -> None:
        """Once the new trajectory file (holding all the turns) is written under another name in the
        same log directory, the session's previous file becomes a link to it, and so do the links
        earlier turns left (``<stamp>-<id>.json``, this session's id): a path printed after any turn
        (``rlm chat``, ``rlm ask -c``) still opens the whole conversation. ``rlm logs`` and run ids
        see only the newest file (:func:`rlm_cli.trajectory.store.list_runs` skips links)."""
        old = self.prior_path
        if old is None or log_path is None or not log_path.is_file() or log_path.is_symlink():
            return
        try:
            if old.resolve() == log_path.resolve() or old.parent.resolve() != log_path.parent.resolve():
                return
            earlier = [p for p in log_path.parent.glob(f"*-{self.id}.json") if p.is_symlink()]
            for link in {old, *earlier}:
                _link_to(link, log_path)
        except OSError:
            pass


def _link_to(link: Path, target: Path) -> None:
    """Make ``link`` a relative symlink to ``target`` (a file in the same directory), atomically
    (a new link renamed over it). Raises OSError."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.link")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target.name, tmp)
    os.replace(tmp, link)


def settings_record(settings: Any) -> dict:
    """What a conversation keeps of a run's :class:`~rlm_cli.settings.resolve.Settings`: the keys of
    :data:`~rlm_cli.settings.resolve.SESSION_KEYS` (``model``, ``sub_model``: None when it is the
    root model; ``api_base`` and ``sub_api_base``: the root's and sub-LM's effective base URLs, the
    latter None when it is the root's; the limits) and ``api_key_env`` (``{"root", "sub"}``: names of
    the variables holding the keys). Never a key."""
    from rlm_cli.settings.resolve import SESSION_KEYS

    out = {k: settings.value(k) for k in SESSION_KEYS}
    roles = settings.role_endpoints or {}
    root, sub = roles.get("root"), roles.get("sub")
    if root is not None and sub is not None:
        out["api_base"] = root.api_base
        out["sub_api_base"] = sub.api_base if sub.api_base != root.api_base else None
        out["api_key_env"] = {"root": root.api_key_env, "sub": sub.api_key_env}
    if settings.sources.get("sub_model") != "flag" and settings.sub_model == settings.model:
        out["sub_model"] = None
    return out


def changed_settings(settings: Any, stored: dict | None) -> list[str]:
    """What flags changed of a continued conversation's ``stored`` settings, one phrase each
    (``"model openai/a -> openai/b (given with -m)"``); empty when nothing changed."""
    from rlm_cli.settings.resolve import SESSION_KEYS

    out = []
    for name in SESSION_KEYS:
        if stored is None or name not in stored or settings.sources.get(name) != "flag":
            continue
        old, new = stored[name], settings.value(name)
        if old != new:
            flag = "-m" if name == "model" else "--" + name.replace("_", "-")
            out.append(f"{name} {_shown(old)} -> {_shown(new)} (given with {flag})")
    return out


def _shown(value: Any) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def window_tokens(model: str) -> int:
    """The root model's context window in tokens (litellm's map; :data:`DEFAULT_WINDOW_TOKENS` when
    unknown). Never imports litellm."""
    from rlm_cli.lm.pricing import context_window

    try:
        return context_window(model) or DEFAULT_WINDOW_TOKENS
    except Exception:
        return DEFAULT_WINDOW_TOKENS


def _absolute(source: str) -> str:
    """A source as it can be found again from any directory: a path made absolute; standard input
    (``-``), a URL or a git remote as given."""
    from rlm_cli.loader.remote import looks_remote

    return source if source == "-" or looks_remote(source) else os.path.abspath(source)


def _source_records(sources: list[str]) -> list[dict]:
    return [{"arg": s, "abs": _absolute(s)} for s in sources]


def new_session(sources: list[str], persist: bool = True) -> SessionLink:
    """A link for a fresh run over ``sources`` (a new session id, locked while the run goes on when
    it is to be stored: :mod:`rlm_cli.run.session_lock`)."""
    link = SessionLink(id=uuid.uuid4().hex[:12], sources=list(sources), source_records=_source_records(sources),
                       cwd=os.getcwd(), persist=persist)
    if persist:
        session_lock.acquire(link.id)
    return link


def continue_session(run: str | None, sources: list[str], persist: bool = True) -> SessionLink:
    """A link continuing the run ``run`` names (an id or id prefix as ``rlm logs`` shows it, or a
    trajectory file; None: the latest run), loading its sources plus ``sources``. Raises
    :class:`~rlm_cli.errors.UsageError` (exit 2) when there is no such run, it cannot be continued, or
    nothing would be loaded, and :class:`~rlm_cli.run.session_lock.SessionBusy` (exit 1) when
    another run of the conversation holds it past ``RLM_SESSION_WAIT``."""
    from rlm_cli.settings.paths import log_dir
    from rlm_cli.trajectory.store import load, resolve

    path = resolve(run, log_dir())
    doc = load(path)
    sid = doc.get("id")
    if persist and isinstance(sid, str) and session_store.session_dir(sid) is not None:
        session_lock.acquire(sid)  # waits for a run of this conversation in progress (SessionBusy)
        path = resolve(sid, log_dir())  # that run may have stored a turn and moved the trajectory
        doc = load(path)
    record = session_store.load_record(sid) if isinstance(sid, str) else None
    if record is None:
        raise UsageError(f"run {sid or path} cannot be continued: no saved conversation state for it "
                         "(runs from before rlm kept them, --no-log runs and pruned ones cannot)")
    same_dir = record.get("cwd") == os.getcwd()
    old = [r for r in record.get("sources") or [] if isinstance(r, dict) and isinstance(r.get("abs"), str)]
    kept = [r if same_dir and isinstance(r.get("arg"), str) else {"arg": r["abs"], "abs": r["abs"]}
            for r in old if r["abs"] != "-"]  # another directory: the paths as absolute
    loads = [r["arg"] for r in kept]
    new = [s for s in sources if s == "-" or _absolute(s) not in {r["abs"] for r in kept}]
    if not loads and not new:
        raise UsageError(f"run {sid} read only standard input, which is not kept; give the input again "
                         "(e.g. `... | rlm ask -c - QUESTION`)")
    return SessionLink(id=sid, sources=loads + new, source_records=kept + _source_records(new), cwd=os.getcwd(),
                       messages=[m for m in record["messages"] if _message(m)],
                       repl_state=session_store.load_state(sid), prior_doc=doc, prior_path=path, record=record,
                       persist=persist)


def _message(m: object) -> bool:
    return (isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
            and isinstance(m.get("content"), str))
