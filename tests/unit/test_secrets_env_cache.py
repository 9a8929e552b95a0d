"""The environment scan behind redaction is cached (issue 24, serve throughput) but any change to the
environment is seen: a secret set, changed or renamed after a scan is still redacted everywhere
(texts, events, trajectories), and a secret-named path is exempt only while the file exists."""

from __future__ import annotations

from rlm_cli import secrets
from rlm_cli.run.events import EventBus, Notice
from rlm_cli.secrets import REDACTED, Redactor, known_secrets, redact


def test_unchanged_environment_is_scanned_once(monkeypatch):
    monkeypatch.setenv("RLM_TEST_API_KEY", "sk-cached-0123456789")
    first = secrets._env_candidates()
    assert secrets._env_candidates() is first  # the cached scan, not a new one
    assert "sk-cached-0123456789" in first


def test_a_secret_set_after_a_scan_is_redacted(monkeypatch):
    monkeypatch.delenv("RLM_TEST_API_KEY", raising=False)
    assert redact("nothing yet sk-late-0123456789") == "nothing yet sk-late-0123456789"
    monkeypatch.setenv("RLM_TEST_API_KEY", "sk-late-0123456789")
    assert redact("key sk-late-0123456789 here") == f"key {REDACTED} here"
    assert "sk-late-0123456789" in known_secrets()


def test_a_changed_value_is_redacted(monkeypatch):
    monkeypatch.setenv("RLM_TEST_TOKEN", "first-value-0123456789")
    assert redact("first-value-0123456789") == REDACTED
    monkeypatch.setenv("RLM_TEST_TOKEN", "second-value-0123456789")
    assert redact("second-value-0123456789") == REDACTED


def test_a_renamed_secret_variable_is_redacted(monkeypatch):
    monkeypatch.setenv("RLM_TEST_PLAIN", "renamed-secret-0123456789")
    assert redact("renamed-secret-0123456789") == "renamed-secret-0123456789"  # not a secret name
    monkeypatch.delenv("RLM_TEST_PLAIN")
    monkeypatch.setenv("RLM_TEST_PASSWORD", "renamed-secret-0123456789")
    assert redact("renamed-secret-0123456789") == REDACTED


def test_path_exemption_is_checked_on_every_scan(monkeypatch, tmp_path):
    sock = tmp_path / "agent.sock"
    sock.write_text("")
    monkeypatch.setenv("RLM_TEST_AUTH_SOCK", str(sock))
    assert redact(f"at {sock}") == f"at {sock}"  # the path of an existing file is not a secret
    sock.unlink()
    assert redact(f"at {sock}") == f"at {REDACTED}"  # no longer a file: redacted, without an env change


def test_events_of_a_new_bus_carry_no_secret_set_after_a_scan(monkeypatch):
    EventBus([]).emit(Notice("warm-up"))  # a scan before the secret exists
    monkeypatch.setenv("RLM_TEST_SECRET", "sk-event-0123456789")
    seen = []
    bus = EventBus([seen.append])
    bus.emit(Notice("provider said: bad key sk-event-0123456789", level="info"))
    assert "sk-event-0123456789" not in repr(seen[0]) and REDACTED in seen[0].message


def test_trajectory_redactor_made_after_the_change_redacts(monkeypatch):
    Redactor().obj({"a": "b"})
    monkeypatch.setenv("RLM_TEST_CREDENTIAL", "cred-0123456789abcdef")
    doc = Redactor().obj({"steps": [{"stdout": "printed cred-0123456789abcdef"}]})
    assert doc == {"steps": [{"stdout": f"printed {REDACTED}"}]}
