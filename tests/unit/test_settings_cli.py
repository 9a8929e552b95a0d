"""The Typer declarations of settings_cli: ``-o KEY VALUE`` pairs parse, and reach resolve()."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from rlm_cli.commands.options import (
    BUDGET,
    MODEL,
    AskCommand,
    OptionGroup,
    join_pair_options,
    option_groups,
)
from rlm_cli.settings.config_file import Config
from rlm_cli.settings.resolve import resolve


@pytest.mark.parametrize("argv, expected", [
    (["src", "-o", "temperature", "0.2", "q"], ["src", "-o", "temperature=0.2", "q"]),
    (["-o", "temperature=0.2", "q"], ["-o", "temperature=0.2", "q"]),
    (["--option", "stop", "a=b", "q"], ["--option", "stop=a=b", "q"]),
    (["--option=seed", "3", "q"], ["--option", "seed=3", "q"]),
    (["--option=seed=3", "q"], ["--option", "seed=3", "q"]),
    (["--sub-option", "reasoning_effort", "low", "-o", "x", "1"],
     ["--sub-option", "reasoning_effort=low", "-o", "x=1"]),
    (["q", "-o"], ["q", "-o"]),
    (["-o", "k"], ["-o", "k"]),
    (["--", "-o", "a", "b"], ["--", "-o", "a", "b"]),
    (["-m", "x", "--max-cost", "1"], ["-m", "x", "--max-cost", "1"]),
])
def test_join_pair_options(argv, expected):
    assert join_pair_options(argv) == expected


def _app(seen: dict) -> typer.Typer:
    app = typer.Typer()

    @app.command(cls=AskCommand)
    @option_groups(model=MODEL, budget=BUDGET)
    def ask(args: list[str], *, model, budget) -> None:
        seen["flags"] = {**model.flags(), **budget.flags()}
        seen["args"] = args

    @app.command()
    def other() -> None:  # a second command keeps `ask` a subcommand, as in rlm
        pass

    return app


def test_pairs_reach_resolve_through_typer():
    seen: dict = {}
    result = CliRunner().invoke(_app(seen), [
        "ask", "src/", "-o", "temperature", "0.2", "--sub-option", "reasoning_effort", "low",
        "-o", "extra_body", '{"top_k": 5}', "--price", "openai/q=0.1/0.2", "-m", "openai/q",
        "--max-iterations", "4", "what?"])
    assert result.exit_code == 0, result.output
    assert seen["args"] == ["src/", "what?"]
    flags = seen["flags"]
    assert flags["model"] == "openai/q" and flags["max_iterations"] == 4 and flags["max_cost"] is None
    s = resolve(flags, env={}, config=Config(path=Path("/none")), probe=False)
    assert s.options == {"root": {"temperature": 0.2, "extra_body": {"top_k": 5}},
                         "sub": {"reasoning_effort": "low"}}
    assert s.sources["max_iterations"] == "flag" and s.sources["max_cost"] == "default"
    assert s.prices["openai/q"].output_per_mtok == 0.2


def test_typer_still_validates_minimums():
    result = CliRunner().invoke(_app({}), ["ask", "--max-iterations", "0", "src", "q"])
    assert result.exit_code != 0


def test_help_lists_the_pair_options():
    result = CliRunner().invoke(_app({}), ["ask", "--help"], env={"NO_COLOR": "1", "COLUMNS": "200"})
    assert result.exit_code == 0
    for needle in ("--option", "KEY VALUE", "--sub-option", "--price", "MODEL=IN/OUT", "--max-cost", "--sub-api-base"):
        assert needle in result.output


def test_a_group_option_clashing_with_the_command_is_refused():
    with pytest.raises(TypeError, match="declared twice"):
        @option_groups(model=MODEL)
        def cmd(model_name: str = "", system: str = "", *, model) -> None:
            pass


def test_without_drops_options_and_keeps_defaults():
    group: OptionGroup = BUDGET.without("concurrency")
    assert "concurrency" not in [name for name, _t, _d in group.params]
    seen: dict = {}
    app = typer.Typer()

    @app.command()
    @option_groups(budget=group)
    def run(*, budget) -> None:
        seen["budget"] = budget

    @app.command()
    def other() -> None:
        pass

    assert CliRunner().invoke(app, ["run", "--concurrency", "3"]).exit_code != 0  # no such option
    assert CliRunner().invoke(app, ["run", "--max-depth", "2"]).exit_code == 0
    assert seen["budget"].max_depth == 2 and seen["budget"].concurrency is None
