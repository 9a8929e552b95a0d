"""Issue #10, class 9: provider error text that quotes the API key back (a 401 or 400 echoing the
``Authorization`` header) must reach neither model code, nor the next root prompt, stderr, the
``--json`` answer nor the trajectory."""

from __future__ import annotations

import json
import os

import pytest
from helpers import last_trajectory, source_file, trajectories
from scripted_server import Reply

from rlm_cli import secrets
from rlm_cli.lm.errors import FatalLMError, TransientLMError, short_message
from rlm_cli.run.events import EventBus, Notice, RunFinished

KEY = "sk-proj-trustboundary-0123456789abcdefghijklmnopqrstuvwxyz"
OTHER_KEY = "sk-from-an-option-9876543210-zyxwvutsrqponm"




def _nowhere(key: str, p, home) -> None:
    assert key not in p.stdout, p.stdout
    assert key not in p.stderr, p.stderr
    for path in trajectories(home):
        assert key not in path.read_text(encoding="utf-8")


def test_a_key_quoted_back_by_the_provider_reaches_no_output(cli, scripted_server, tmp_path):
    s = scripted_server
    s.script("root",
             Reply("Rate limited for key", status=429, echo_auth=True, headers={"Retry-After": "0"}),
             "```repl\nr = llm_query('hello')\nprint('SUB SAID:', r)\n```",
             Reply("Incorrect API key provided:", status=401, echo_auth=True))
    s.default("sub", Reply("Invalid request, you sent", status=400, echo_auth=True))
    home = tmp_path / "home"
    p = cli("ask", source_file(tmp_path), "q?", "--json", OPENAI_API_KEY=KEY)
    assert p.returncode == 1, p.stderr
    assert s.requests_for("sub")[0].headers["authorization"] == f"Bearer {KEY}"  # the server did echo it
    # The code's error string, as the root LM saw it in its next prompt:
    fed_back = s.requests_for("root")[2].prompt_text
    assert "SUB SAID: Error:" in fed_back and "[REDACTED]" in fed_back
    assert KEY not in fed_back
    out = json.loads(p.stdout)
    assert out["status"] == "error" and "authentication failed" in out["error"]["message"]
    assert "[REDACTED]" in out["error"]["message"]
    assert "authentication failed" in p.stderr and "retrying" in p.stderr
    doc = last_trajectory(home)
    call = doc["iterations"][0]["steps"][0]["sub_calls"][0]
    assert "[REDACTED]" in call["error"]
    _nowhere(KEY, p, home)


def test_a_key_given_as_a_request_option_is_redacted_too(cli, scripted_server, tmp_path):
    s = scripted_server
    s.script("root", Reply("Incorrect API key provided:", status=401, echo_auth=True))
    home = tmp_path / "home"
    p = cli("ask", source_file(tmp_path), "q?", "-o", "api_key", OTHER_KEY, OPENAI_API_KEY=KEY)
    assert p.returncode == 1, p.stderr
    assert s.requests_for("root")[0].headers["authorization"] == f"Bearer {OTHER_KEY}"
    assert "authentication failed" in p.stderr
    _nowhere(OTHER_KEY, p, home)


# --- the redaction rule --------------------------------------------------------------------------

@pytest.fixture
def clean_secrets(monkeypatch):
    """A process-wide registry emptied for the test, and an environment without secret names."""
    monkeypatch.setattr(secrets, "_remembered", set())
    for name in list(os.environ):
        if secrets.is_secret_name(name):
            monkeypatch.delenv(name)


def test_the_redaction_rule(clean_secrets, monkeypatch, tmp_path):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-abcdefgh12345")
    monkeypatch.setenv("SHORT_KEY", "abc1234")  # 7 chars: never redacted
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Jane Developer")  # a name, not a key
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path))  # the path of an existing directory
    secrets.remember("Bearer remembered-credential-42", None, 12345, "tiny")
    text = (f"tok-abcdefgh12345 abc1234 Jane Developer {tmp_path} remembered-credential-42 "
            "Bearer remembered-credential-42 tiny")
    assert secrets.redact(text) == (f"[REDACTED] abc1234 Jane Developer {tmp_path} [REDACTED] [REDACTED] tiny")


def test_secret_options_are_remembered(clean_secrets):
    secrets.remember_options({"temperature": 0.2, "api_key": "option-secret-123456",
                              "extra_headers": {"Authorization": "Bearer header-secret-abcdef"}})
    assert secrets.redact("option-secret-123456 header-secret-abcdef 0.2") == "[REDACTED] [REDACTED] 0.2"


def test_lm_errors_are_redacted_when_made_and_before_they_are_cut(clean_secrets):
    secrets.remember(KEY)
    assert KEY not in str(FatalLMError(f"bad {KEY}")) and KEY not in str(TransientLMError(f"slow {KEY}"))
    long = Exception("x" * 280 + f" Bearer {KEY}")
    cut = short_message(long)
    assert "sk-proj" not in cut and len(cut) <= 300  # no prefix of the key survives the cut


def test_events_are_redacted_before_any_sink(clean_secrets):
    seen = []
    bus = EventBus([seen.append])
    secrets.remember(KEY)  # remembered after the bus was made: still applies
    bus.emit(Notice(f"retrying: {KEY}"))
    bus.emit(RunFinished("error", f"answer {KEY}", {"type": "X", "message": f"m {KEY}"}, {}, "t", 1.0))
    assert seen[0].message == "retrying: [REDACTED]"
    assert seen[1].answer == "answer [REDACTED]" and seen[1].error["message"] == "m [REDACTED]"
    assert KEY not in repr(seen)


def test_config_show_never_prints_a_key_set_in_the_config_file(cli):
    """``rlm config show`` (text and --json) redacts secret-looking request options."""
    key = "sk-config-file-secret-0123456789"
    cli.home.mkdir()
    (cli.home / "config.toml").write_text(f'[options]\napi_key = "{key}"\ntemperature = 0.5\n')
    for extra in ([], ["--json"]):
        proc = cli("config", "show", "--no-probe", *extra, RLM_MODEL=None, RLM_SUB_MODEL=None, OPENAI_API_KEY=None)
        assert proc.returncode == 0, proc.stderr
        assert key not in proc.stdout + proc.stderr
        assert "temperature" in proc.stdout
