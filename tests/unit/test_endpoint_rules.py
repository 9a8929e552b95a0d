"""Which endpoint (base URL and key) each model and role gets (rlm_cli/settings/endpoints.py), and
that LMClient sends each request with its own endpoint only."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlm_cli.errors import UsageError
from rlm_cli.lm.client import LMClient
from rlm_cli.settings.config_file import Config
from rlm_cli.settings.endpoints import LOCAL_API_KEY, Endpoint, lm_endpoints
from rlm_cli.settings.resolve import resolve

A, B, C = "http://127.0.0.1:1001/v1", "http://127.0.0.1:1002/v1", "http://127.0.0.1:1003/v1"


def _cfg(**kw) -> Config:
    return Config(path=Path("/none"), **kw)


def _resolve(flags, env=None, config=None, session=None):
    return resolve(flags, env=env or {}, config=config or _cfg(), probe=False, session=session)


def _client(s) -> LMClient:
    return LMClient(**lm_endpoints(s))


def _sent(client, model, role):
    kw = client.request_kwargs(model, [], role)
    return kw.get("api_base"), kw.get("api_key")


def test_sub_api_base_splits_root_and_sub():
    s = _resolve({"model": "openai/r", "sub_model": "hosted_vllm/w", "api_base": A, "sub_api_base": B},
                 env={"OPENAI_API_KEY": "sk-o"})
    c = _client(s)
    assert _sent(c, "openai/r", "root") == (A, None)  # the SDK reads OPENAI_API_KEY itself
    assert _sent(c, "hosted_vllm/w", "sub") == (B, None)


def test_same_model_on_two_servers_is_told_apart_by_role():
    s = _resolve({"model": "openai/m", "api_base": A, "sub_api_base": B})
    c = _client(s)
    assert _sent(c, "openai/m", "root") == (A, LOCAL_API_KEY)
    assert _sent(c, "openai/m", "sub") == (B, LOCAL_API_KEY)


def test_without_sub_api_base_the_sub_model_uses_api_base_as_before():
    s = _resolve({"model": "openai/r", "sub_model": "openai/s", "api_base": A})
    assert _sent(_client(s), "openai/s", "sub") == (A, LOCAL_API_KEY)


def test_alias_key_goes_only_to_its_endpoint():
    cfg = _cfg(aliases={"w": "hosted_vllm/w", "fast": "openai/f"},
               alias_endpoints={"w": {"api_base": B, "api_key_env": "W_KEY"}})
    s = _resolve({"model": "openai/r", "sub_model": "w", "api_base": A}, env={"W_KEY": "sk-w"}, config=cfg)
    c = _client(s)
    assert _sent(c, "hosted_vllm/w", "sub") == (B, "sk-w")
    assert _sent(c, "hosted_vllm/w", "root") == (B, "sk-w")  # llm_query(model=...) from any role
    assert _sent(c, "openai/r", "root") == (A, LOCAL_API_KEY)
    assert _sent(c, "openai/f", "sub") == (A, LOCAL_API_KEY)
    assert "sk-w" not in repr(s.role_endpoints) and "sk-w" not in repr(s.endpoints)
    # a flag for the role wins over the alias's base URL, and the alias's key does not follow it
    s = _resolve({"model": "openai/r", "sub_model": "w", "api_base": A, "sub_api_base": C},
                 env={"W_KEY": "sk-w"}, config=cfg)
    assert _sent(_client(s), "hosted_vllm/w", "sub") == (C, None)


def test_a_root_alias_without_api_base_keeps_the_provider_endpoint_and_its_key_stays_there():
    cfg = _cfg(aliases={"work": "anthropic/claude-x"}, alias_endpoints={"work": {"api_key_env": "WORK_KEY"}})
    s = _resolve({"model": "work", "sub_model": "openai/s", "sub_api_base": B}, env={"WORK_KEY": "sk-a"}, config=cfg)
    c = _client(s)
    assert _sent(c, "anthropic/claude-x", "root") == (None, "sk-a")
    assert _sent(c, "openai/s", "sub") == (B, LOCAL_API_KEY)


def test_a_missing_key_variable_for_root_or_sub_is_a_usage_error():
    cfg = _cfg(aliases={"w": "hosted_vllm/w"}, alias_endpoints={"w": {"api_base": B, "api_key_env": "W_KEY"}})
    with pytest.raises(UsageError, match="W_KEY is not set"):
        _resolve({"model": "openai/r", "sub_model": "w"}, config=cfg)
    s = _resolve({"model": "openai/r"}, config=cfg)  # an alias nobody uses by default: no error
    assert s.endpoints["hosted_vllm/w"] == Endpoint(B, None, "W_KEY")


def test_session_ranks_below_flags_and_above_env_and_config():
    stored = {"model": "openai/r", "sub_model": None, "api_base": A, "sub_api_base": None, "max_cost": None,
              "max_iterations": 4, "api_key_env": {"root": None, "sub": None}}
    env = {"RLM_MODEL": "openai/gpt-5", "RLM_API_BASE": B, "RLM_MAX_COST": "1", "RLM_SUB_MODEL": "openai/x"}
    s = _resolve({}, env=env, config=_cfg(values={"max_iterations": 9}), session=stored)
    assert (s.model, s.sub_model, s.api_base, s.max_cost, s.max_iterations) == ("openai/r", "openai/r", A, None, 4)
    assert s.sources["model"] == "session"
    s = _resolve({"api_base": C, "max_iterations": 5}, env=env, session=stored)
    assert (s.api_base, s.max_iterations, s.sources["api_base"]) == (C, 5, "flag")
    with pytest.raises(UsageError, match="the conversation's max_iterations"):
        _resolve({}, session={**stored, "max_iterations": "many"})
