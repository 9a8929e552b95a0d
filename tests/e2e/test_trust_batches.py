"""Issue #10, class 10 through the CLI: float options must be finite, ``--log`` with ``--no-log`` is a
usage error. Class 7 (batches refused before they are materialised, their maximum length, non-string
prompts, live REPLs bounded under ``rlm_query_batched``) is tested in process in
tests/unit/test_engine_budgets.py and tests/unit/test_engine_models.py."""

from __future__ import annotations

import pytest
from helpers import source_file


# -- class 10: option validation ------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["--request-timeout", "--timeout", "--step-timeout", "--max-cost"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1"])
def test_float_options_must_be_finite(cli, tmp_path, flag, value):
    p = cli("ask", source_file(tmp_path), "q?", "-m", "openai/root", flag, value)
    assert p.returncode == 2, p.stderr
    assert flag in p.stderr and "Traceback" not in p.stderr, p.stderr  # rlm's one line, or click's usage


def test_request_timeout_zero_refused(cli, tmp_path):
    p = cli("ask", source_file(tmp_path), "q?", "-m", "openai/root", "--request-timeout", "0")
    assert p.returncode == 2 and "--request-timeout" in p.stderr


@pytest.mark.parametrize("env_name", ["RLM_TIMEOUT", "RLM_MAX_COST", "RLM_STEP_TIMEOUT"])
def test_float_settings_from_env_must_be_finite(cli, tmp_path, env_name):
    p = cli("ask", source_file(tmp_path), "q?", "-m", "openai/root", **{env_name: "inf"})
    assert p.returncode == 2 and env_name in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_log_with_no_log_is_a_usage_error(cli, scripted_server, tmp_path):
    s = scripted_server
    s.default("root", "FINAL(x)")
    log = tmp_path / "t.json"
    p = cli("ask", source_file(tmp_path), "q?", "--log", str(log), "--no-log")
    assert p.returncode == 2
    assert "--log" in p.stderr and "--no-log" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert s.chat_requests() == [] and not log.exists()
