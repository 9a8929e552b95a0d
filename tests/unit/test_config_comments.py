"""`rlm config set` / `unset` edit config.toml in place: the user's comments and layout survive."""

from __future__ import annotations

import tomllib

import pytest

from rlm_cli.errors import UsageError
from rlm_cli.settings.config_file import HEADER, load_config, set_value, unset_value

USER_FILE = """\
# my rlm settings
model = "openai/gpt-5"   # the big one
max_cost = 1.0

# cheap models live here
[aliases]
fast = "openai/gpt-5-mini"  # for sub-calls

[options]
# keep answers tame
temperature = 0.2
"""


@pytest.fixture
def cfg_path(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(USER_FILE, encoding="utf-8")
    return path


def test_set_keeps_every_comment_and_replaces_in_place(cfg_path):
    set_value("model", "openai/gpt-5.1", cfg_path)
    set_value("aliases.fast", "openai/gpt-5-nano", cfg_path)
    set_value("options.temperature", "0.5", cfg_path)
    text = cfg_path.read_text(encoding="utf-8")
    for comment in ("# my rlm settings", "# the big one", "# cheap models live here", "# for sub-calls",
                    "# keep answers tame"):
        assert comment in text, f"{comment!r} lost:\n{text}"
    assert 'model = "openai/gpt-5.1"   # the big one' in text
    assert 'fast = "openai/gpt-5-nano"  # for sub-calls' in text
    cfg = load_config(cfg_path)
    assert cfg.values["model"] == "openai/gpt-5.1" and cfg.options == {"temperature": 0.5}


def test_new_flat_key_goes_after_the_last_flat_key_not_under_a_table_comment(cfg_path):
    set_value("max_iterations", "7", cfg_path)
    lines = cfg_path.read_text(encoding="utf-8").splitlines()
    at = lines.index("max_iterations = 7")
    assert lines[at - 1] == "max_cost = 1.0"
    assert lines.index("# cheap models live here") > at
    assert load_config(cfg_path).values["max_iterations"] == 7


def test_new_table_and_entries_are_added_at_the_end(cfg_path):
    set_value("sub_options.reasoning_effort", "low", cfg_path)
    set_value("aliases.slow", "openai/gpt-5", cfg_path)
    text = cfg_path.read_text(encoding="utf-8")
    assert text.startswith(USER_FILE.split("[aliases]")[0])
    doc = tomllib.loads(text)
    assert doc["sub_options"] == {"reasoning_effort": "low"}
    assert list(doc["aliases"]) == ["fast", "slow"]
    assert "# for sub-calls" in text and "# keep answers tame" in text


def test_unset_removes_only_that_line(cfg_path):
    assert unset_value("max_cost", cfg_path) is True
    assert unset_value("options.temperature", cfg_path) is True
    text = cfg_path.read_text(encoding="utf-8")
    assert "max_cost" not in text and "temperature" not in text
    assert "# my rlm settings" in text and "# the big one" in text and "# cheap models live here" in text
    assert load_config(cfg_path).aliases == {"fast": "openai/gpt-5-mini"}


def test_a_refused_value_leaves_the_file_untouched(cfg_path):
    with pytest.raises(UsageError, match="max_iterations must be >= 1"):
        set_value("max_iterations", "0", cfg_path)
    with pytest.raises(UsageError, match="set by rlm itself"):
        set_value("options.model", "x", cfg_path)
    assert cfg_path.read_text(encoding="utf-8") == USER_FILE


def test_a_new_file_starts_with_the_header(tmp_path):
    path = tmp_path / "new" / "config.toml"
    set_value("aliases.fast", "openai/gpt-5-mini", path)
    set_value("model", "fast", path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith(HEADER)
    assert text.index('model = "fast"') < text.index("[aliases]")
    assert load_config(path).aliases == {"fast": "openai/gpt-5-mini"}


def test_inline_and_dotted_tables_are_edited_where_they_are(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('aliases = { fast = "a" }  # inline\n', encoding="utf-8")
    set_value("aliases.slow", "b", path)
    assert "# inline" in path.read_text(encoding="utf-8")
    assert load_config(path).aliases == {"fast": "a", "slow": "b"}
    path.write_text('# dotted\noptions.seed = 1\n', encoding="utf-8")
    set_value("options.temperature", "0", path)
    assert path.read_text(encoding="utf-8").startswith("# dotted\n")
    assert load_config(path).options == {"seed": 1, "temperature": 0}
