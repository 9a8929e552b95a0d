"""The trajectory written off the event loop (:mod:`rlm_cli.trajectory.background`): only the newest
snapshot is written, in order; secrets are redacted in the thread; the final document is whole on
disk once ``drained`` returns; a write failure is reported, never raised."""

from __future__ import annotations

import asyncio
import json

from rlm_cli.run.events import RunFinished, RunStarted
from rlm_cli.trajectory.background import TrajectoryWriter
from rlm_cli.trajectory.recorder import TrajectoryRecorder


def _run(rec: TrajectoryRecorder, question: str) -> None:
    rec(RunStarted("abc123", question, "openai/root", "openai/sub", {"total_chars": 1, "files": []}, {},
                   "2026-01-01T00:00:00Z", "rlm"))
    rec(RunFinished("answered", "42", None, {"total_cost_usd": None}, "2026-01-01T00:00:01Z", 1.0, {}))


def test_final_document_on_disk_after_drained_and_secrets_redacted(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-value-123456")
    path = tmp_path / "t.json"
    writer = TrajectoryWriter()
    rec = TrajectoryRecorder(path, writer=writer)
    _run(rec, "what is sk-very-secret-value-123456?")

    asyncio.run(writer.drained())
    doc = json.loads(path.read_text())
    assert doc["status"] == "answered" and doc["answer"] == "42"
    assert "sk-very-secret-value-123456" not in path.read_text()
    assert 1 <= writer.writes <= 2 and rec.write_errors == []
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]  # no temporary file left


def test_a_failed_write_is_reported_not_raised(tmp_path):
    target = tmp_path / "dir-in-the-way"
    target.mkdir()
    writer = TrajectoryWriter()
    rec = TrajectoryRecorder(target, writer=writer)
    _run(rec, "q")
    assert writer.flush(30)
    assert rec.write_errors  # renaming over a directory fails: recorded


def test_interrupted_run_leaves_a_valid_final_file(tmp_path):
    path = tmp_path / "t.json"
    writer = TrajectoryWriter()
    rec = TrajectoryRecorder(path, writer=writer)
    rec(RunStarted("abc123", "q", "openai/root", "openai/sub", {"total_chars": 1, "files": []}, {},
                   "2026-01-01T00:00:00Z", "rlm"))
    rec(RunFinished("interrupted", None, {"type": "interrupted", "message": "x"}, {}, "2026-01-01T00:00:01Z",
                    0.5, {}))
    assert writer.flush(30)
    assert json.loads(path.read_text())["status"] == "interrupted"
