"""Resolution: flag > env > config > default, aliases, -o/--sub-option/--price parsing, default models."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rlm_cli.errors import UsageError
from rlm_cli.lm.client import Price
from rlm_cli.run.budget import Limits
from rlm_cli.settings import resolve as settings_mod
from rlm_cli.settings.config_file import Config
from rlm_cli.settings.resolve import (
    LOCAL_API_KEY,
    PROVIDER_DEFAULTS,
    expand_alias,
    parse_options,
    parse_prices,
    probe_local_servers,
    resolve,
)

CLOSED = "http://127.0.0.1:9"  # discard port: nothing listens there


@pytest.fixture(autouse=True)
def no_real_local_servers(monkeypatch):
    """Never probe this machine's real ports (a llama.cpp server may run on one)."""
    monkeypatch.setattr(settings_mod, "LOCAL_SERVERS", [("Ollama", CLOSED, "/api/tags")])


def cfg(**values) -> Config:
    aliases = values.pop("aliases", {})
    options = values.pop("options", {})
    sub_options = values.pop("sub_options", {})
    return Config(path=Path("/cfg/config.toml"), values=values, aliases=aliases, options=options,
                  sub_options=sub_options, exists=True)


def test_precedence_flag_env_config_default():
    env = {"RLM_MAX_COST": "2", "RLM_MAX_ITERATIONS": "9", "RLM_MODEL": "env-model"}
    config = cfg(max_cost=3.0, max_iterations=8, max_depth=2, timeout=60.0, model="cfg-model")
    s = resolve({"max_cost": 1.0, "model": None}, env=env, config=config)
    assert (s.max_cost, s.sources["max_cost"]) == (1.0, "flag")
    assert (s.max_iterations, s.sources["max_iterations"]) == (9, "env")
    assert (s.model, s.sources["model"]) == ("env-model", "env")
    assert (s.max_depth, s.sources["max_depth"]) == (2, "config")
    assert (s.timeout, s.sources["timeout"]) == (60.0, "config")
    assert (s.step_timeout, s.sources["step_timeout"]) == (Limits.step_timeout, "default")
    assert (s.concurrency, s.sources["concurrency"]) == (Limits.concurrency, "default")
    assert s.max_tokens is None and s.sources["max_tokens"] == "default"
    assert s.notes["max_iterations"] == "RLM_MAX_ITERATIONS" and s.notes["max_depth"] == "/cfg/config.toml"
    assert set(s.sources) == set(settings_mod.KEYS)


def test_flag_values_are_checked_too():
    with pytest.raises(UsageError, match="--api-base must be an http"):
        resolve({"model": "m", "api_base": "127.0.0.1:8000"}, env={}, config=cfg())
    with pytest.raises(UsageError, match="--max-depth must be >= 0"):
        resolve({"model": "m", "max_depth": -1}, env={}, config=cfg())


def test_empty_env_value_counts_as_unset():
    s = resolve({}, env={"RLM_MODEL": "", "RLM_MAX_COST": "  "}, config=cfg(model="m", max_cost=1.0))
    assert s.sources["model"] == s.sources["max_cost"] == "config"


@pytest.mark.parametrize("name, value, needle", [
    ("RLM_MAX_COST", "cheap", "RLM_MAX_COST must be a number, got 'cheap'"),
    ("RLM_MAX_ITERATIONS", "0", "RLM_MAX_ITERATIONS must be >= 1"),
    ("RLM_CONCURRENCY", "2.5", "RLM_CONCURRENCY must be an integer"),
    ("RLM_API_BASE", "localhost:8080", "RLM_API_BASE must be an http:// or https:// URL"),
])
def test_bad_environment_value(name, value, needle):
    with pytest.raises(UsageError) as info:
        resolve({"model": "m"}, env={name: value}, config=cfg())
    assert needle in str(info.value)


def test_sub_model_defaults_to_model_and_aliases_apply():
    config = cfg(aliases={"big": "openai/gpt-5", "small": "openai/gpt-5-mini", "chain": "small"}, model="big")
    s = resolve({}, env={}, config=config)
    assert (s.model, s.sub_model) == ("openai/gpt-5", "openai/gpt-5")
    assert s.sources["sub_model"] == "default" and s.notes["sub_model"] == "same as model"
    assert "(alias big)" in s.notes["model"]
    s = resolve({"sub_model": "chain"}, env={}, config=config)
    assert s.sub_model == "openai/gpt-5-mini" and s.sources["sub_model"] == "flag"
    assert s.expand("small") == "openai/gpt-5-mini" and s.expand("other/x") == "other/x"


def test_alias_cycle_stops():
    assert expand_alias("a", {"a": "b", "b": "a"}) in ("a", "b")


def test_limits_from_settings():
    s = resolve({"model": "m", "max_sub_calls": 3, "timeout": 9.0}, env={}, config=cfg())
    lim = s.limits(max_output_chars=500)
    assert isinstance(lim, Limits)
    assert (lim.max_sub_calls, lim.timeout, lim.max_output_chars, lim.max_iterations) == (
        3, 9.0, 500, Limits.max_iterations)


# -- -o / --sub-option / --price ------------------------------------------------------------------
def test_parse_options_json_values_and_forms():
    got = parse_options([("temperature", "0.2"), "reasoning_effort=high", ("stop", '["\\n"]'),
                         ("extra_body", '{"top_k": 5}'), ("seed", "7"), ("flag", "false"), ("text", "a=b")])
    assert got == {"temperature": 0.2, "reasoning_effort": "high", "stop": ["\n"], "extra_body": {"top_k": 5},
                   "seed": 7, "flag": False, "text": "a=b"}
    assert parse_options([("t", "1"), ("t", "2")]) == {"t": 2}
    assert parse_options(None) == {}


@pytest.mark.parametrize("item, needle", [
    ("temperature", "expected KEY VALUE"),
    (("model", "x"), "set by rlm itself"),
    (("messages", "[]"), "set by rlm itself"),
    (("", "1"), "non-empty word"),
])
def test_parse_options_errors(item, needle):
    with pytest.raises(UsageError, match=None) as info:
        parse_options([item])
    assert needle in str(info.value)


def test_options_merge_over_config():
    config = cfg(model="m", options={"temperature": 1.0, "top_p": 0.5}, sub_options={"seed": 1})
    s = resolve({"options": [("temperature", "0")], "sub_options": ["seed=2", "max_tokens=100"]},
                env={}, config=config)
    assert s.options == {"root": {"temperature": 0, "top_p": 0.5}, "sub": {"seed": 2, "max_tokens": 100}}


def test_parse_prices():
    got = parse_prices(["openai/local=0.2/0.6", "fast=1/2", "odd=name=0/0"], {"fast": "openai/gpt-5-mini"})
    assert got == {"openai/local": Price(0.2, 0.6), "openai/gpt-5-mini": Price(1.0, 2.0), "odd=name": Price(0, 0)}
    for bad in ("nomodel", "m=1", "m=a/b", "=1/2", "m=-1/2"):
        with pytest.raises(UsageError, match="--price"):
            parse_prices([bad])


def test_prices_reach_settings():
    s = resolve({"model": "m", "prices": ["m=3/15"]}, env={}, config=cfg())
    assert s.prices == {"m": Price(3.0, 15.0)}


# -- default model ---------------------------------------------------------------------------------
def test_no_model_anywhere_is_one_line_error_naming_three_ways():
    with pytest.raises(UsageError) as info:
        resolve({}, env={}, config=cfg())
    msg = str(info.value)
    assert "\n" not in msg
    for needle in ("-m/--model", "RLM_MODEL", "rlm config set model", "OPENAI_API_KEY", "Ollama", "--api-base"):
        assert needle in msg


def test_no_model_without_require_is_none():
    s = resolve({}, env={}, config=cfg(), require_model=False)
    assert s.model is None and s.sub_model is None


@pytest.mark.parametrize("names, root, sub", PROVIDER_DEFAULTS)
def test_provider_key_picks_its_pair(names, root, sub):
    s = resolve({}, env={names[-1]: "key"}, config=cfg(), probe=False)
    assert (s.model, s.sub_model) == (root, sub)
    assert s.sources["model"] == s.sources["sub_model"] == "auto"
    assert s.notes["model"] == f"{names[-1]} is set"


def test_first_provider_wins_and_explicit_model_beats_pair():
    env = {"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o"}
    assert resolve({}, env=env, config=cfg(), probe=False).model == "openai/gpt-5"
    s = resolve({"model": "anthropic/claude-opus-4-5"}, env=env, config=cfg(), probe=False)
    assert s.sub_model == "anthropic/claude-opus-4-5" and s.sources["model"] == "flag"


def test_default_pairs_exist_in_litellms_cost_map():
    """Checked at test time so the CLI never imports litellm to pick a default."""
    from rlm_cli.lm.client import load_litellm

    lt = load_litellm()
    for _names, root, sub in PROVIDER_DEFAULTS:
        for model in (root, sub):
            info = lt.get_model_info(model)
            assert info.get("mode") == "chat", model
            assert info.get("input_cost_per_token") is not None, model


def test_local_openai_compatible_server_is_used(monkeypatch, scripted_server):
    scripted_server.default("qwen3-8b", "hi")
    root = scripted_server.base_url.removesuffix("/v1")
    monkeypatch.setattr(settings_mod, "LOCAL_SERVERS",
                        [("Ollama", CLOSED, "/api/tags"), ("OpenAI-compatible server", root, "/v1/models")])
    s = resolve({}, env={}, config=cfg())
    assert (s.model, s.sub_model, s.api_base) == ("openai/qwen3-8b", "openai/qwen3-8b", root + "/v1")
    assert s.sources["model"] == s.sources["api_base"] == "auto"
    assert s.notes["model"] == f"OpenAI-compatible server at {root}"
    assert s.api_key == LOCAL_API_KEY
    assert [r.path for r in scripted_server.requests if r.method == "GET"] == ["/v1/models"]


def test_provider_key_beats_local_server(monkeypatch, scripted_server):
    scripted_server.default("local", "hi")
    root = scripted_server.base_url.removesuffix("/v1")
    monkeypatch.setattr(settings_mod, "LOCAL_SERVERS", [("x", root, "/v1/models")])
    s = resolve({}, env={"OPENAI_API_KEY": "k"}, config=cfg())
    assert s.model == "openai/gpt-5" and s.api_base is None and s.api_key is None


class _OllamaTags(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - stdlib name
        body = json.dumps({"models": [{"name": "llama3.2:latest"}, {"name": "qwen3:8b"}]}).encode()
        status = 200 if self.path == "/api/tags" else 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_ollama_tags_are_understood(monkeypatch):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _OllamaTags)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        root = f"http://127.0.0.1:{httpd.server_address[1]}"
        assert probe_local_servers([("Ollama", root, "/api/tags")]) == ("Ollama", root, "llama3.2:latest")
        monkeypatch.setattr(settings_mod, "LOCAL_SERVERS", [("Ollama", root, "/api/tags")])
        s = resolve({}, env={}, config=cfg())
        assert (s.model, s.api_base) == ("openai/llama3.2:latest", root + "/v1")
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_probe_none_answering_is_none():
    assert probe_local_servers([("a", CLOSED, "/v1/models"), ("b", "http://127.0.0.1:1", "/api/tags")]) is None


def test_probe_false_never_touches_the_network(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("probed")

    monkeypatch.setattr(settings_mod, "list_server_models", boom)
    s = resolve({"api_base": "http://127.0.0.1:9/v1"}, env={}, config=cfg(), probe=False, require_model=False)
    assert s.model is None


def test_api_base_without_model_uses_its_first_model(scripted_server):
    scripted_server.default("served", "hi")
    s = resolve({"api_base": scripted_server.base_url}, env={}, config=cfg())
    assert s.model == "openai/served" and s.sources["model"] == "auto" and s.sources["api_base"] == "flag"
    assert s.api_key == LOCAL_API_KEY


def test_api_base_listing_nothing_is_usage_error():
    with pytest.raises(UsageError, match="lists none"):
        resolve({"api_base": CLOSED + "/v1"}, env={"OPENAI_API_KEY": "k"}, config=cfg())


def test_no_placeholder_key_when_openai_key_is_set_or_model_is_not_openai(scripted_server):
    s = resolve({"api_base": scripted_server.base_url, "model": "openai/x"}, env={"OPENAI_API_KEY": "k"},
                config=cfg())
    assert s.api_key is None
    s = resolve({"api_base": scripted_server.base_url, "model": "anthropic/x"}, env={}, config=cfg())
    assert s.api_key is None
