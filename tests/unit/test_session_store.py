"""Saved conversations on disk (issue #11), in process: the session id from a trajectory (a file the
user or anyone with write access to the log directory may have edited) never becomes a path; the
saved REPL state is never read through a link, from a FIFO or past its size bound; the stored
history is redacted of known secrets; old sessions are pruned."""

from __future__ import annotations

import json
import os
import stat

import pytest

from rlm_cli.errors import UsageError
from rlm_cli.run import session_store
from rlm_cli.run.session import continue_session, new_session


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RLM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _trajectory(home, run_id: str) -> None:
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    doc = {"schema": "rlm-trajectory/1", "id": run_id, "iterations": [], "status": "answered"}
    name = run_id if session_store.session_dir(run_id) else "run"
    (logs / f"20260101T000000Z-{name}.json").write_text(json.dumps(doc))


def test_a_trajectory_id_that_is_a_path_is_not_followed(home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "session.json").write_text(json.dumps({"schema": session_store.SCHEMA, "messages": [],
                                                      "sources": [{"arg": "/etc/passwd", "abs": "/etc/passwd"}]}))
    rel = os.path.relpath(outside, home / "data" / "sessions")
    _trajectory(home, rel)
    assert session_store.session_dir(rel) is None
    with pytest.raises(UsageError, match="cannot be continued"):
        continue_session(None, [])


def test_saved_state_is_never_read_through_a_link_a_fifo_or_past_its_bound(home, tmp_path, monkeypatch):
    folder = home / "data" / "sessions" / "abc123"
    folder.mkdir(parents=True)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"not yours")
    (folder / "repl.pickle").symlink_to(secret)
    assert session_store.load_state("abc123") is None
    (folder / "repl.pickle").unlink()
    os.mkfifo(folder / "repl.pickle")
    assert session_store.load_state("abc123") is None  # returns at once: never blocks on a FIFO
    (folder / "repl.pickle").unlink()
    monkeypatch.setattr(session_store, "MAX_STATE_BYTES", 10)
    monkeypatch.setattr(session_store, "ENVELOPE_SLACK", 0)
    (folder / "repl.pickle").write_bytes(b"x" * 11)
    assert session_store.load_state("abc123") is None
    (folder / "repl.pickle").write_bytes(b"x" * 10)
    assert session_store.load_state("abc123") == b"x" * 10


def test_the_stored_history_is_redacted_and_private(home, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-0123456789-secret")
    link = new_session(["a.txt"])
    link.transcript = [{"role": "user", "content": "q"},
                       {"role": "assistant", "content": "the token is tok-0123456789-secret"}]
    assert link.finish("an answer", "answered", None) == []
    path = home / "data" / "sessions" / link.id / "session.json"
    text = path.read_text()
    assert "tok-0123456789-secret" not in text and "[REDACTED]" in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    record = session_store.load_record(link.id)
    assert record["last"] == {"answer": "an answer", "status": "answered"} and record["turns"] == 1


def test_old_sessions_are_pruned(home):
    ids = []
    for n in range(5):
        link = new_session(["a.txt"])
        link.finish(None, "answered", None)
        path = home / "data" / "sessions" / link.id / "session.json"
        os.utime(path, (1_000_000 + n, 1_000_000 + n))
        ids.append(link.id)
    session_store.prune(keep=2)
    assert sorted(p.name for p in (home / "data" / "sessions").iterdir()) == sorted(ids[-2:])


def test_only_standard_input_cannot_be_continued_without_input(home, monkeypatch):
    link = new_session(["-"])
    link.finish("x", "answered", None)
    _trajectory(home, link.id)
    with pytest.raises(UsageError, match="standard input"):
        continue_session(None, [])
    assert continue_session(link.id[:5], ["-"]).sources == ["-"]


def _loaded(tmp_path):
    from rlm_cli.context import ContextWriter

    writer = ContextWriter(tmp_path / "ctx.txt")
    writer.add("a.txt", "alpha\n")
    return writer.finish()


def _continued_link(history_chars: int) -> object:
    link = new_session(["a.txt"])
    link.messages = [{"role": "system", "content": "SYSTEM"}, {"role": "user", "content": "Question: q1"},
                     {"role": "assistant", "content": "x" * history_chars}]
    link.record = {"turns": 1, "last": {"answer": "A1", "status": "answered"}, "fingerprints": {}}
    link.prior_doc = {"session": {"turns": [{"question": "q1", "answer": "A1", "status": "answered"}]}}
    return link


def test_history_near_the_root_window_is_compacted_and_recorded(tmp_path, monkeypatch):
    import asyncio

    from rlm_cli.run import events, session
    from rlm_cli.trajectory.recorder import TrajectoryRecorder

    monkeypatch.setattr(session, "window_tokens", lambda model: 1000)
    small = asyncio.run(_continued_link(100).opening("q2", _loaded(tmp_path), None, "openai/x"))
    assert [m["content"] for m in small[:3]] == ["SYSTEM", "Question: q1", "x" * 100]  # append-only
    link = _continued_link(5000)
    big = asyncio.run(link.opening("q2", _loaded(tmp_path), None, "openai/x"))
    assert [m["role"] for m in big] == ["system", "user"] and big[0]["content"] == "SYSTEM"
    assert "Question 1: q1" in big[1]["content"] and "Answer: A1" in big[1]["content"]
    assert "q2" in big[1]["content"] and "x" * 100 not in big[1]["content"]
    rec = TrajectoryRecorder(None, prior=link.prior_doc, turn_extra=link.turn_extra)
    rec(events.RunStarted(link.id, "q2", "openai/x", "openai/x", {}, {}, "2026-01-01T00:00:00Z"))
    rec(events.RunFinished("answered", "A2", None, {}, "2026-01-01T00:00:01Z", 1.0, {}))
    compactions = rec.doc["session"]["compactions"]
    assert len(compactions) == 1 and compactions[0]["questions_summarized"] == 1
    assert compactions[0]["chars_before"] > 5000 > compactions[0]["chars_after"]
    assert rec.doc["session"]["turns"][1]["compaction"] == compactions[0]


def test_urls_and_remotes_are_kept_as_given_paths_made_absolute(home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    link = new_session(["gh:org/repo", "https://example.com/a.html", "rel.txt"])
    assert [r["abs"] for r in link.source_records] == ["gh:org/repo", "https://example.com/a.html",
                                                       str(tmp_path / "rel.txt")]
    link.finish("x", "answered", None)
    _trajectory(home, link.id)
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    assert continue_session(None, ["gh:org/repo"]).sources == ["gh:org/repo", "https://example.com/a.html",
                                                                str(tmp_path / "rel.txt")]
