"""The server's settings and how one tool call's arguments may lower them (never raise them)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from rlm_cli.errors import UsageError

MAX_QUESTION_CHARS = 100_000
"""Characters a question may hold (a longer one is a tool error: put the text in a file)."""
MAX_SOURCES = 1000
"""Sources one call may name."""


@dataclass
class McpConfig:
    """What every call starts from: the server's ``sources`` (local paths given at start, always in
    scope), ``load_options`` (a :class:`~rlm_cli.loader.options.LoadOptions`; ``allow_remote`` says
    whether URLs and git remotes may be named), resolved ``settings`` (model may be None: ``ask``
    then answers with an error), ``limits`` (the ceilings a call may lower), ``system`` (extra root
    instructions), ``request_timeout`` (seconds per LM request), ``repl_network``; for ``--http``:
    ``host``, ``port`` and ``api_key`` (None: no authentication, loopback only)."""

    sources: list[str]
    load_options: Any
    settings: Any
    limits: Any
    system: str | None = None
    request_timeout: float = 300.0
    repl_network: bool = False
    host: str | None = None
    port: int = 0
    api_key: str | None = None
    max_lm_calls: int = 16
    extra_models: list[str] = field(default_factory=list)

    def models(self) -> list[str]:
        """Model names a call may choose (``model``/``sub_model``): the configured root and sub
        models, the aliases (and what they name) and ``--allow-model`` names."""
        s = self.settings
        names = [m for m in (s.model, s.sub_model) if m]
        names += list(s.aliases) + list(s.aliases.values()) + list(s.allow_models)
        return list(dict.fromkeys(names))


def _number(name: str, value: Any, integer: bool, least: float) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not float(value).is_integer()):
        raise UsageError(f"{name} must be {'an integer' if integer else 'a number'}")
    if not math.isfinite(value) or value < least:
        raise UsageError(f"{name} must be at least {least:g}")
    return int(value) if integer else float(value)


def lowered_limits(limits: Any, *, max_cost: Any = None, max_sub_calls: Any = None, timeout: Any = None) -> Any:
    """A copy of ``limits`` (:class:`~rlm_cli.run.budget.Limits`) where each budget given is the
    smaller of the server's and the call's (``max_cost`` USD, ``max_sub_calls`` count, ``timeout``
    seconds); None leaves the server's. Raises :class:`UsageError` for a value of the wrong type or
    below its floor (0, 0, 0.1)."""
    changes = {}
    for name, value, integer, least in (("max_cost", max_cost, False, 0), ("max_sub_calls", max_sub_calls, True, 0),
                                        ("timeout", timeout, False, 0.1)):
        if value is None:
            continue
        value = _number(name, value, integer, least)
        current = getattr(limits, name)
        changes[name] = value if current is None else min(current, value)
    return dataclasses.replace(limits, **changes)


def chosen_settings(cfg: McpConfig, model: str | None, sub_model: str | None) -> Any:
    """The server's settings with the call's ``model``/``sub_model`` (aliases applied), each one of
    :meth:`McpConfig.models`. Raises :class:`UsageError` for another model, or when no model is
    configured at all."""
    from rlm_cli.settings.resolve import NO_MODEL_HELP

    s = cfg.settings
    allowed = cfg.models()
    changes: dict[str, str] = {}
    for name, value in (("model", model), ("sub_model", sub_model)):
        if value is None:
            continue
        if not isinstance(value, str) or value not in allowed:
            shown = repr(str(value)[:80])
            raise UsageError(f"{name} {shown} is not one this server may use; choose one of: {', '.join(allowed)}")
        changes[name] = s.expand(value)
    if not (changes.get("model") or s.model):
        raise UsageError(NO_MODEL_HELP.replace("pass -m/--model", "start `rlm mcp` with -m/--model"))
    out = dataclasses.replace(s, **changes)
    if "model" in changes and "sub_model" not in changes and s.sub_model == s.model:
        out.sub_model = out.model  # the sub-model followed the model at start; it still does
    return out
