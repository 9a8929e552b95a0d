"""The option groups shared by ``rlm ask``, ``chat``, ``serve`` and ``bench``, each declared once.

Typer has no parameter groups, so :func:`option_groups` splices a group's parameters (name,
``Annotated`` type, default) into the command function's ``__signature__`` (which Typer reads) and
calls the function with one object per group instead::

    @option_groups(model=MODEL, budget=BUDGET, load=LOADING, session=SESSION, out=OUTPUT)
    def ask_command(args: list[str] = typer.Argument(...), *, model: ModelOptions, budget: BudgetOptions,
                    load: LoadOptions, session: SessionOptions, out: OutputOptions) -> None:
        settings = resolve_settings(model, budget)

A new option is one change here (its declaration and its field); every command using the group gets
it, in its help panel. Groups: :data:`MODEL` (panel "Model"), :data:`BUDGET` ("Budget"),
:data:`LOADING` (:mod:`rlm_cli.commands.loader_options`, "Loading"), :data:`SESSION` ("Session"),
:data:`OUTPUT` ("Output"). Setting options default to None ("not given") so
:func:`rlm_cli.settings.resolve.resolve` applies flag > conversation > environment > config >
default. Commands are registered with ``cls=AskCommand``: ``-o KEY VALUE`` (two words) parses, and
the plain (Rich-free) help prints one section per panel.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from rlm_cli.errors import UsageError
from rlm_cli.run.budget import Limits

PAIR_FLAGS = ("-o", "--option", "--sub-option")
PANELS = ("Options", "Model", "Budget", "Loading", "Session", "Output")
"""Help sections in the order printed (a command's own ungrouped options under "Options")."""
SETTINGS_HELP = ("Settings: flag > conversation (-c) > environment RLM_<NAME> (e.g. RLM_SUB_API_BASE) > "
                 "config.toml > default; `rlm config show` says where each comes from.")
DEFAULT_MAX_OUTPUT_CHARS = Limits.max_output_chars
"""Characters of a step's output shown to the root LM, by default."""
DEFAULT_REQUEST_TIMEOUT_S = 300.0
"""Seconds one LM request may take, by default."""


def _opt(*decls: str, panel: str, help: str, **kw: Any) -> Any:
    return typer.Option(*decls, rich_help_panel=panel, help=help, **kw)


M, B = "Model", "Budget"
ModelOpt = Annotated[str | None, _opt("--model", "-m", panel=M, metavar="MODEL",
                                      help="Root LM: a litellm model string or an alias.")]
SubModelOpt = Annotated[str | None, _opt("--sub-model", panel=M, metavar="MODEL",
                                         help="Sub-LM for llm_query (default: the root model).")]
ApiBaseOpt = Annotated[str | None, _opt("--api-base", panel=M, metavar="URL",
                                        help="The root LM's server (e.g. http://127.0.0.1:8080/v1).")]
SubApiBaseOpt = Annotated[str | None, _opt("--sub-api-base", panel=M, metavar="URL",
                                           help="The sub-LM's own server (default: --api-base).")]
OptionOpt = Annotated[list[str] | None, _opt("--option", "-o", panel=M, metavar="KEY VALUE",
                                             help="Request option of the root LM (-o temperature 0.2).")]
SubOptionOpt = Annotated[list[str] | None, _opt("--sub-option", panel=M, metavar="KEY VALUE",
                                                help="Request option for sub-calls (repeatable).")]
PriceOpt = Annotated[list[str] | None, _opt("--price", panel=M, metavar="MODEL=IN/OUT",
                                            help="USD per million in/out tokens of a model.")]
AllowModelOpt = Annotated[list[str] | None, _opt("--allow-model", panel=M, metavar="MODEL",
                                                 help="Let model code call MODEL too (repeatable).")]
RequestTimeoutOpt = Annotated[float, _opt(
    "--request-timeout", panel=M, min=1, metavar="SECONDS", show_default=False,
    help=f"Seconds one LM request may take (default {DEFAULT_REQUEST_TIMEOUT_S:g}).")]
MaxRetriesOpt = Annotated[int | None, _opt("--max-retries", panel=M, min=0, metavar="N",
                                           help="Retries after a 429 or 5xx reply (default 3).")]
ModeOpt = Annotated[str | None, _opt("--mode", panel=M, metavar="auto|rlm|direct",
                                    help="rlm: the loop; direct: one call with the input; auto: direct if it fits.")]
SystemOpt = Annotated[str | None, _opt("--system", "-s", panel=M, metavar="TEXT",
                                       help="Extra instructions for the root LM.")]
MaxIterationsOpt = Annotated[int | None, _opt(
    "--max-iterations", panel=B, min=1, metavar="N",
    help=f"Root LM calls before a last best answer (default {Limits.max_iterations}).")]
MaxDepthOpt = Annotated[int | None, _opt("--max-depth", panel=B, min=0, metavar="N",
                                         help=f"Recursion depth of rlm_query (default {Limits.max_depth}).")]
MaxSubCallsOpt = Annotated[int | None, _opt("--max-sub-calls", panel=B, min=0, metavar="N",
                                            help=f"Sub-calls over all depths (default {Limits.max_sub_calls}).")]
MaxCostOpt = Annotated[float | None, _opt("--max-cost", panel=B, min=0, metavar="USD",
                                          help="USD over all LM calls.")]
MaxTokensOpt = Annotated[int | None, _opt("--max-tokens", panel=B, min=1, metavar="N",
                                          help="Input + output tokens over all LM calls.")]
TimeoutOpt = Annotated[float | None, _opt("--timeout", panel=B, min=0.1, metavar="SECONDS",
                                          help="Seconds for the whole run.")]
StepTimeoutOpt = Annotated[float | None, _opt(
    "--step-timeout", panel=B, min=0.1, metavar="SECONDS",
    help=f"Seconds one REPL step may run (default {Limits.step_timeout:g}).")]
ConcurrencyOpt = Annotated[int | None, _opt("--concurrency", panel=B, min=1, metavar="N",
                                            help=f"LM calls in flight at once (default {Limits.concurrency}).")]
MaxOutputCharsOpt = Annotated[int, _opt(
    "--max-output-chars", panel=B, min=100, metavar="N", show_default=False,
    help=f"Characters of a step's output the root LM sees (default {DEFAULT_MAX_OUTPUT_CHARS}).")]
ReplNetworkOpt = Annotated[bool, _opt("--repl-network", panel=B,
                                      help="Let REPL code use the network (off by default).")]
ContinueOpt = Annotated[bool, _opt("--continue", "-c", panel="Session",
                                   help="Continue the latest run, with its models and limits.")]
ResumeOpt = Annotated[str | None, _opt("--resume", panel="Session", metavar="RUN_ID",
                                       help="Continue the run RUN_ID (see rlm logs), like -c.")]
JsonOpt = Annotated[bool, _opt("--json", panel="Output", help="One JSON object on stdout.")]
QuietOpt = Annotated[bool, _opt("--quiet", "-q", panel="Output", help="No progress on stderr.")]


def check_request_timeout(seconds: float) -> None:
    """Raises :class:`UsageError` (exit 2) for a ``--request-timeout`` that is not finite (nan, inf)."""
    import math

    if not math.isfinite(seconds):
        raise UsageError(f"--request-timeout must be a finite number of seconds (>= 1), got {seconds!r}")


# -- the grouped values ----------------------------------------------------------------------------
@dataclass
class ModelOptions:
    """The Model panel's values (None: not given)."""

    model: str | None = None
    sub_model: str | None = None
    api_base: str | None = None
    sub_api_base: str | None = None
    option: list[str] | None = None
    sub_option: list[str] | None = None
    price: list[str] | None = None
    allow_model: list[str] | None = None
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S
    max_retries: int | None = None
    system: str | None = None
    mode: str | None = None

    def __post_init__(self) -> None:
        check_request_timeout(self.request_timeout)

    def flags(self) -> dict[str, Any]:
        """The model part of :func:`~rlm_cli.settings.resolve.resolve`'s ``flags``."""
        return {"model": self.model, "sub_model": self.sub_model, "api_base": self.api_base,
                "sub_api_base": self.sub_api_base, "max_retries": self.max_retries, "options": self.option,
                "sub_options": self.sub_option, "prices": self.price, "allow_models": self.allow_model,
                "mode": self.mode}


BUDGET_SETTINGS = ("max_iterations", "max_depth", "max_sub_calls", "max_cost", "max_tokens", "timeout",
                   "step_timeout", "concurrency")


@dataclass
class BudgetOptions:
    """The Budget panel's values (None: not given)."""

    max_iterations: int | None = None
    max_depth: int | None = None
    max_sub_calls: int | None = None
    max_cost: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None
    step_timeout: float | None = None
    concurrency: int | None = None
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS
    repl_network: bool = False

    def flags(self) -> dict[str, Any]:
        """The budget part of :func:`~rlm_cli.settings.resolve.resolve`'s ``flags``."""
        return {name: getattr(self, name) for name in BUDGET_SETTINGS}


@dataclass
class SessionOptions:
    """``-c/--continue`` and ``--resume RUN_ID``; raises :class:`UsageError` when both are given."""

    continue_: bool = False
    resume: str | None = None

    def __post_init__(self) -> None:
        if self.continue_ and self.resume is not None:
            raise UsageError("--continue and --resume contradict each other; give one of them")

    @property
    def following(self) -> bool:
        """Whether this run continues an earlier one."""
        return self.continue_ or self.resume is not None


@dataclass
class OutputOptions:
    """``--json`` and ``-q/--quiet``."""

    as_json: bool = False
    quiet: bool = False


# -- groups and the decorator ----------------------------------------------------------------------
@dataclass(frozen=True)
class OptionGroup:
    """Parameters declared once (``(name, Annotated type, default)``) and ``build``, which turns their
    values (a dict by name) into the object the command receives."""

    params: tuple[tuple[str, Any, Any], ...]
    build: Callable[[dict[str, Any]], Any]

    def without(self, *names: str) -> OptionGroup:
        """The group minus the options ``names`` (they keep their dataclass defaults)."""
        return OptionGroup(tuple(p for p in self.params if p[0] not in names), self.build)


def _group(cls: type, types: dict[str, Any]) -> OptionGroup:
    defaults = {f.name: f.default for f in fields(cls)}
    return OptionGroup(tuple((name, typ, defaults[name]) for name, typ in types.items()), lambda v: cls(**v))


MODEL = _group(ModelOptions, {
    "model": ModelOpt, "sub_model": SubModelOpt, "api_base": ApiBaseOpt, "sub_api_base": SubApiBaseOpt,
    "option": OptionOpt, "sub_option": SubOptionOpt, "price": PriceOpt, "allow_model": AllowModelOpt,
    "request_timeout": RequestTimeoutOpt, "max_retries": MaxRetriesOpt, "system": SystemOpt, "mode": ModeOpt})
BUDGET = _group(BudgetOptions, {
    "max_iterations": MaxIterationsOpt, "max_depth": MaxDepthOpt, "max_sub_calls": MaxSubCallsOpt,
    "max_cost": MaxCostOpt, "max_tokens": MaxTokensOpt, "timeout": TimeoutOpt, "step_timeout": StepTimeoutOpt,
    "concurrency": ConcurrencyOpt, "max_output_chars": MaxOutputCharsOpt, "repl_network": ReplNetworkOpt})
SESSION = _group(SessionOptions, {"continue_": ContinueOpt, "resume": ResumeOpt})
OUTPUT = _group(OutputOptions, {"as_json": JsonOpt, "quiet": QuietOpt})


def _loading() -> OptionGroup:
    from rlm_cli.commands import loader_options as lo

    return OptionGroup((
        ("include", lo.IncludeOpt, None), ("exclude", lo.ExcludeOpt, None),
        ("no_default_excludes", lo.NoDefaultExcludesShortOpt, False),
        ("max_file_size", lo.MaxFileSizeOpt, lo.DEFAULT_MAX_FILE_SIZE_TEXT),
        ("max_input_size", lo.MaxInputSizeOpt, lo.DEFAULT_MAX_INPUT_SIZE_TEXT),
        ("follow_symlinks", lo.FollowSymlinksOpt, False)), lambda v: lo.load_options_from(**v))


LOADING = _loading()
"""Builds a :class:`rlm_cli.loader.options.LoadOptions` (a bad size: :class:`UsageError`)."""


def option_groups(**groups: OptionGroup) -> Callable[[Callable], Callable]:
    """Decorator: the command receives keyword ``NAME`` (one per group) built from the group's
    options, which Typer sees as the command's own parameters (after the command's). Raises
    TypeError at import time when a group's option name clashes with the command's parameters."""

    def wrap(func: Callable) -> Callable:
        sig = inspect.signature(func, eval_str=True)
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in sig.parameters.values() if p.name not in groups]
        names = {p.name for p in own}
        spliced = []
        for group in groups.values():
            for name, typ, default in group.params:
                if name in names:
                    raise TypeError(f"{func.__name__}: option {name!r} declared twice")
                names.add(name)
                spliced.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                                 annotation=typ))

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            for keyword, group in groups.items():
                kwargs[keyword] = group.build({name: kwargs.pop(name) for name, _t, _d in group.params})
            return func(**kwargs)

        params = own + spliced
        command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return wrap


def resolve_settings(model: ModelOptions, budget: BudgetOptions | None = None, session: dict | None = None,
                     **overrides: Any):
    """:func:`~rlm_cli.settings.resolve.resolve` over the grouped flags (``overrides`` replace
    single flags, e.g. ``concurrency=...``; ``session``: a continued conversation's stored settings),
    then :func:`~rlm_cli.settings.resolve.check_prices`. Returns the Settings."""
    from rlm_cli.settings.resolve import check_prices, resolve

    flags = {**model.flags(), **(budget.flags() if budget is not None else {}), **overrides}
    settings = resolve(flags, session=session)
    check_prices(settings)
    return settings


# -- parsing and help ------------------------------------------------------------------------------
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
    """A Typer command that accepts ``-o KEY VALUE`` pairs (see :func:`join_pair_options`) and prints
    its plain help with one section per ``rich_help_panel`` (the command's own options first)."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        """Join option pairs, then parse as usual."""
        return super().parse_args(ctx, join_pair_options(list(args)))

    def format_options(self, ctx, formatter) -> None:
        """Arguments, then the panels of :data:`PANELS` in that order (others after them)."""
        args: list = []
        panels: dict[str, list] = {name: [] for name in PANELS}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append(record)
            else:
                panels.setdefault(getattr(param, "rich_help_panel", None) or "Options", []).append(record)
        for title, records in (("Arguments", args), *panels.items()):
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)
