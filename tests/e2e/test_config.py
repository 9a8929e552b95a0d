"""config.toml: reading, validation errors (one line, file and key named, exit 2), writing, ``rlm config``."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest
from helpers import Cli

from rlm_cli.errors import EXIT_USAGE, UsageError
from rlm_cli.settings.config_file import (
    KEYS,
    Config,
    config_file,
    dumps,
    load_config,
    parse_option_value,
    save_config,
    set_value,
    unset_value,
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """RLM_HOME in a temp dir, no RLM_* variable from the outer environment."""
    for name in list(os.environ):
        if name.startswith("RLM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RLM_HOME", str(tmp_path))
    return tmp_path


def write(home: Path, text: str) -> Path:
    path = home / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def cli(home) -> Cli:
    """The shared CLI runner with its home at this module's ``home``, and no model or key set."""
    return Cli(home, RLM_MODEL=None, RLM_SUB_MODEL=None, OPENAI_API_KEY=None)


def test_config_file_is_under_rlm_home(home):
    assert config_file() == home / "config.toml"


def test_missing_file_is_empty_config(home):
    cfg = load_config()
    assert cfg.values == {} and cfg.aliases == {} and not cfg.exists


def test_full_file_loads(home):
    write(home, 'model = "fast"\nmax_cost = 1\nmax_iterations = 7\ntimeout = 30.5\n'
                '[aliases]\nfast = "openai/gpt-5-mini"\n[options]\ntemperature = 0.2\n'
                '[sub_options]\nreasoning_effort = "low"\nextra_body = {top_k = 5}\n')
    cfg = load_config()
    assert cfg.values == {"model": "fast", "max_cost": 1.0, "max_iterations": 7, "timeout": 30.5}
    assert isinstance(cfg.values["max_cost"], float)
    assert cfg.aliases == {"fast": "openai/gpt-5-mini"}
    assert cfg.options == {"temperature": 0.2}
    assert cfg.sub_options == {"reasoning_effort": "low", "extra_body": {"top_k": 5}}


@pytest.mark.parametrize("text, needle", [
    ("model = \n", "invalid TOML"),
    ("modl = 'x'\n", "unknown key 'modl'; did you mean 'model'?"),
    ("max_iterations = '5'\n", "key 'max_iterations' must be an integer, got string \"5\""),
    ("max_iterations = 2.5\n", "key 'max_iterations' must be an integer"),
    ("max_depth = true\n", "key 'max_depth' must be an integer, got boolean"),
    ("max_cost = 'cheap'\n", "key 'max_cost' must be a number"),
    ("max_iterations = 0\n", "key 'max_iterations' must be >= 1, got 0"),
    ("concurrency = -1\n", "key 'concurrency' must be >= 1"),
    ("model = ''\n", "key 'model' must not be empty"),
    ("model = 3\n", "key 'model' must be a string"),
    ("aliases = 'x'\n", "'aliases' must be a table"),
    ("[aliases]\nfast = 1\n", "key 'aliases.fast' must be a model string"),
    ("[options]\nmessages = []\n", "key 'options.messages': 'messages' is set by rlm itself"),
    ("[options]\nwhen = 1979-05-27\n", "key 'options.when' must be a string, number, boolean, array or table"),
    ("[colors]\nx = 1\n", "unknown key 'colors'"),
])
def test_invalid_config_is_one_line_usage_error(home, text, needle):
    path = write(home, text)
    with pytest.raises(UsageError) as info:
        load_config()
    message = str(info.value)
    assert message.startswith(str(path) + ": ")
    assert needle in message
    assert "\n" not in message
    assert info.value.exit_code == EXIT_USAGE


def test_non_utf8_file(home):
    (home / "config.toml").write_bytes(b'model = "\xff"\n')
    with pytest.raises(UsageError, match="not valid UTF-8"):
        load_config()


def test_dumps_round_trips_through_tomllib():
    doc = {"model": 'we"ird\\name\u00e9\x7f\n', "max_cost": 0.5, "max_tokens": 10, "timeout": 1e-05,
           "aliases": {"fast": "openai/gpt-5-mini", "with.dot": "x", "": "empty-key"},
           "options": {"temperature": 0.0, "stop": ["a", "b"], "flag": True, "nested": {"k": [1, 2.5, {"z": "y"}]}}}
    assert tomllib.loads(dumps(doc)) == doc


def test_save_and_load_round_trip(home):
    cfg = Config(path=home / "sub" / "config.toml", values={"model": "m", "max_sub_calls": 5},
                 aliases={"a": "openai/x"}, options={"temperature": 1}, sub_options={"seed": 3})
    save_config(cfg)
    back = load_config(cfg.path)
    assert (back.values, back.aliases, back.options, back.sub_options) == (
        cfg.values, cfg.aliases, cfg.options, cfg.sub_options)
    assert not list(cfg.path.parent.glob(".config-*")), "temporary file left behind"


def test_set_converts_types_and_unset_removes(home):
    assert set_value("max_cost", "0.25") == 0.25
    assert set_value("max_iterations", " 12 ") == 12
    assert set_value("model", "fast") == "fast"
    assert set_value("aliases.fast", "openai/gpt-5-mini") == "openai/gpt-5-mini"
    assert set_value("options.temperature", "0.2") == 0.2
    assert set_value("options.reasoning_effort", "high") == "high"
    assert set_value("sub_options.response_format", '{"type": "json_object"}') == {"type": "json_object"}
    cfg = load_config()
    assert cfg.values == {"max_cost": 0.25, "max_iterations": 12, "model": "fast"}
    assert cfg.options == {"temperature": 0.2, "reasoning_effort": "high"}
    assert unset_value("max_cost") is True
    assert unset_value("max_cost") is False
    assert unset_value("options.temperature") is True
    cfg = load_config()
    assert "max_cost" not in cfg.values and cfg.options == {"reasoning_effort": "high"}


@pytest.mark.parametrize("key, value, needle", [
    ("max_cost", "abc", "max_cost must be a number, got 'abc'"),
    ("max_iterations", "0", "max_iterations must be >= 1"),
    ("maxcost", "1", "unknown configuration key 'maxcost'; did you mean 'max_cost'?"),
    ("aliases.", "x", "unknown configuration key"),
    ("options.model", "x", "'model' is set by rlm itself"),
    ("options.x", "null", "null cannot be stored"),
])
def test_set_rejects_bad_values(home, key, value, needle):
    with pytest.raises(UsageError, match=None) as info:
        set_value(key, value)
    assert needle in str(info.value)
    assert not (home / "config.toml").exists()


def test_unset_repairs_an_unknown_key(home):
    write(home, "bogus = 1\nmodel = 'x'\n")
    with pytest.raises(UsageError, match="unknown key 'bogus'"):
        load_config()
    assert unset_value("bogus") is True
    assert load_config().values == {"model": "x"}


def test_parse_option_value():
    assert parse_option_value("0.2") == 0.2
    assert parse_option_value("true") is True
    assert parse_option_value("high") == "high"
    assert parse_option_value('["a", 1]') == ["a", 1]
    assert parse_option_value("{not json") == "{not json"


def test_every_key_has_an_env_name():
    assert {k.env for k in KEYS.values()} >= {"RLM_MODEL", "RLM_SUB_MODEL", "RLM_API_BASE", "RLM_MAX_COST"}


# -- the command ---------------------------------------------------------------------------------
def test_cli_path_set_show_unset(cli, home):
    assert cli("config", "path").stdout.strip() == str(home / "config.toml")
    proc = cli("config", "set", "max_cost", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert cli("config", "set", "aliases.fast", "openai/gpt-5-mini").returncode == 0
    assert cli("config", "set", "model", "fast").returncode == 0
    proc = cli("config", "show", "--json", "--no-probe", RLM_MAX_ITERATIONS="5")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    values = doc["values"]
    assert doc["schema"] == "rlm-config/1" and doc["aliases"] == {"fast": "openai/gpt-5-mini"}
    assert values["max_cost"] == {"value": 0.5, "source": "config", "detail": str(home / "config.toml")}
    assert values["max_iterations"]["value"] == 5 and values["max_iterations"]["source"] == "env"
    assert values["model"]["value"] == "openai/gpt-5-mini" and values["model"]["source"] == "config"
    assert values["max_depth"]["source"] == "default"
    text = cli("config", "show", "--no-probe", RLM_MAX_ITERATIONS="5").stdout
    assert "max_iterations" in text and "env: RLM_MAX_ITERATIONS" in text
    assert cli("config", "unset", "max_cost").returncode == 0
    assert "max_cost" not in load_config(home / "config.toml").values


def test_cli_invalid_config_exits_2_naming_file_and_key(cli, home):
    path = write(home, "max_cost = 'lots'\n")
    proc = cli("config", "show")
    assert proc.returncode == EXIT_USAGE
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "max_cost" in lines[0]
    proc = cli("config", "set", "max_cost", "abc")
    assert proc.returncode == EXIT_USAGE and "max_cost" in proc.stderr
