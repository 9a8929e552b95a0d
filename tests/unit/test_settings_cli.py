"""The Typer declarations of settings_cli: ``-o KEY VALUE`` pairs parse, and reach resolve()."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from rlm_cli.commands.options import (
    AskCommand,
    MaxCostOpt,
    MaxIterationsOpt,
    ModelOpt,
    OptionOpt,
    PriceOpt,
    SubOptionOpt,
    flags_from,
    join_pair_options,
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
    def ask(args: list[str], model: ModelOpt = None, max_iterations: MaxIterationsOpt = None,
            max_cost: MaxCostOpt = None, option: OptionOpt = None, sub_option: SubOptionOpt = None,
            price: PriceOpt = None) -> None:
        seen["flags"] = flags_from(locals(), option, sub_option, price)
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
    for needle in ("--option", "KEY VALUE", "--sub-option", "--price", "MODEL=IN/OUT", "RLM_MAX_COST"):
        assert needle in result.output
