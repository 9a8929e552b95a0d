"""Typer option declarations for the resolved settings, shared by ``rlm ask`` (and any later command).

Every option defaults to None, meaning "not given", so :func:`rlm_cli.settings.resolve.resolve` can apply
flag > environment > config file > default and record the source. No ``envvar=`` here: the resolver
reads ``RLM_*`` itself. Use::

    from rlm_cli.commands.options import ModelOpt, SubModelOpt, ..., OptionOpt, SubOptionOpt, PriceOpt

    def ask_command(args: ..., model: ModelOpt = None, ..., option: OptionOpt = None, ...):
        settings = resolve({"model": model, ..., "options": option, "sub_options": sub_option,
                            "prices": price})

and register the command with ``cls=AskCommand`` so ``-o KEY VALUE`` (two words) parses: Typer
cannot declare a repeatable two-value option, so :class:`AskCommand` joins each pair into
``KEY=VALUE`` before parsing (``-o KEY=VALUE`` works without it).
"""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperCommand

from rlm_cli.errors import UsageError
from rlm_cli.run.budget import Limits

PAIR_FLAGS = ("-o", "--option", "--sub-option")


def _src(key: str) -> str:
    return f"env RLM_{key.upper()}, config {key}"


ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="Root LM: a litellm model string (e.g. openai/gpt-5) or an alias from the config. "
    f"({_src('model')}; default: see `rlm config show`)")]
SubModelOpt = Annotated[str | None, typer.Option(
    "--sub-model", help=f"Sub-LM for llm_query (default: the root model). ({_src('sub_model')})")]
ApiBaseOpt = Annotated[str | None, typer.Option(
    "--api-base", help="Base URL of an OpenAI-compatible server (vLLM, llama.cpp, Ollama: "
    f"http://127.0.0.1:11434/v1). ({_src('api_base')})")]
MaxIterationsOpt = Annotated[int | None, typer.Option(
    "--max-iterations", min=1, help="Root LM calls before a last best-answer call. "
    f"(default {Limits.max_iterations}; {_src('max_iterations')})")]
MaxDepthOpt = Annotated[int | None, typer.Option(
    "--max-depth", min=0, help="Recursion depth for rlm_query (0: rlm_query acts as llm_query). "
    f"(default {Limits.max_depth}; {_src('max_depth')})")]
MaxSubCallsOpt = Annotated[int | None, typer.Option(
    "--max-sub-calls", min=0, help="Sub-calls over all depths (hard limit). "
    f"(default {Limits.max_sub_calls}; {_src('max_sub_calls')})")]
MaxCostOpt = Annotated[float | None, typer.Option(
    "--max-cost", min=0, help=f"USD over all LM calls (hard limit). (default none; {_src('max_cost')})")]
MaxTokensOpt = Annotated[int | None, typer.Option(
    "--max-tokens", min=1, help="Input + output tokens over all LM calls (hard limit). "
    f"(default none; {_src('max_tokens')})")]
TimeoutOpt = Annotated[float | None, typer.Option(
    "--timeout", min=0.1, help=f"Seconds for the whole run (hard limit). (default none; {_src('timeout')})")]
DEFAULT_MAX_OUTPUT_CHARS = Limits.max_output_chars
"""Characters of a step's output shown to the root LM, by default."""
DEFAULT_REQUEST_TIMEOUT_S = 300.0
"""Seconds one LM request may take, by default."""
MaxOutputCharsOpt = Annotated[int, typer.Option(
    "--max-output-chars", min=100, help="Characters of a step's output shown to the root LM.")]
RequestTimeoutOpt = Annotated[float, typer.Option(
    "--request-timeout", min=1, help="Seconds one LM request may take.")]


def check_request_timeout(seconds: float) -> None:
    """Raises :class:`UsageError` (exit 2) for a ``--request-timeout`` that is not finite (nan, inf)."""
    import math

    if not math.isfinite(seconds):
        raise UsageError(f"--request-timeout must be a finite number of seconds (>= 1), got {seconds!r}")


StepTimeoutOpt = Annotated[float | None, typer.Option(
    "--step-timeout", min=0.1, help="Seconds one REPL step may run before it is killed. "
    f"(default {Limits.step_timeout:g}; {_src('step_timeout')})")]
ConcurrencyOpt = Annotated[int | None, typer.Option(
    "--concurrency", min=1, help="LM calls in flight at once, over the whole run; also child RLMs (REPLs) "
    "running at once per depth. "
    f"(default {Limits.concurrency}; {_src('concurrency')})")]
OptionOpt = Annotated[list[str] | None, typer.Option(
    "--option", "-o", metavar="KEY VALUE", help="A request option for the root LM (a litellm argument; for openai/ models a field of the request body), e.g. -o temperature 0.2 "
    "-o reasoning_effort high; VALUE is parsed as JSON when it can be. Repeatable; over the config's options table.")]
SubOptionOpt = Annotated[list[str] | None, typer.Option(
    "--sub-option", metavar="KEY VALUE", help="A request option for sub-calls (like -o). Repeatable; over the "
    "config's sub_options table.")]
PriceOpt = Annotated[list[str] | None, typer.Option(
    "--price", metavar="MODEL=IN/OUT", help="USD per million input/output tokens for a model litellm cannot "
    "price, e.g. --price openai/qwen3=0.2/0.6. Repeatable. With --max-cost, every model called needs a price.")]
AllowModelOpt = Annotated[list[str] | None, typer.Option(
    "--allow-model", metavar="MODEL", help="Let model code call MODEL with llm_query(prompt, model=MODEL), besides "
    "the root model, the sub-model and the config's aliases; any other name gets an error string. Repeatable. "
    "(env RLM_ALLOW_MODELS, comma-separated)")]

SETTING_PARAMS = ("model", "sub_model", "api_base", "max_iterations", "max_depth", "max_sub_calls", "max_cost",
                  "max_tokens", "timeout", "step_timeout", "concurrency")
"""Parameter names of the options above that are :data:`rlm_cli.settings.config_file.KEYS` (same names)."""


def flags_from(params: dict, option=None, sub_option=None, price=None, allow_model=None) -> dict:
    """The ``flags`` mapping for :func:`rlm_cli.settings.resolve.resolve` from a command's parameters
    (e.g. ``flags_from(locals(), option, sub_option, price, allow_model)``)."""
    flags = {name: params.get(name) for name in SETTING_PARAMS}
    flags.update(options=option, sub_options=sub_option, prices=price, allow_models=allow_model)
    return flags


def join_pair_options(args: list[str]) -> list[str]:
    """Rewrite ``-o KEY VALUE`` / ``--option KEY VALUE`` / ``--sub-option KEY VALUE`` (also
    ``--option=KEY VALUE``) as ``FLAG KEY=VALUE``; a KEY already holding ``=`` is left alone, and so
    is everything after ``--``."""
    out: list[str] = []
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":
            out.extend(args[i:])
            break
        name, eq, attached = tok.partition("=") if tok.startswith("--") else (tok, "", "")
        if name not in PAIR_FLAGS:
            out.append(tok)
            i += 1
            continue
        if eq:
            key, i = attached, i + 1
        elif i + 1 < len(args):
            key, i = args[i + 1], i + 2
        else:
            out.append(tok)
            break
        if "=" not in key and i < len(args):
            key, i = f"{key}={args[i]}", i + 1
        out += [name, key]
    return out


class AskCommand(TyperCommand):
    """A Typer command that accepts ``-o KEY VALUE`` pairs (see :func:`join_pair_options`)."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        """Join option pairs, then parse as usual."""
        return super().parse_args(ctx, join_pair_options(list(args)))
