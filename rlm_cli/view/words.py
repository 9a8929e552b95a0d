"""Human words for what the views show: how a run ended, and the weaker-sandbox warning.

The status codes (``answered``, ``max_iterations``, ``budget_exhausted``, ``interrupted``,
``error``) and the budget names (``cost``, ``tokens``, ``timeout``, ``sub_calls``) stay in the
JSON output and the trajectories; a person reads :func:`outcome` instead, e.g. ``stopped: iteration
limit (8) reached after 0.75s``.

The sandbox warning (a :class:`~rlm_cli.run.events.Notice` whose message starts with
:data:`SANDBOX_PREFIX`) is said once, on one line, above the live tree or among the plain lines,
followed by what the user can do about it (:func:`sandbox_line`); ``sandbox_warning = "off"`` in
config.toml (``rlm config set sandbox_warning off``, or ``RLM_SANDBOX_WARNING=off``) acknowledges it
and hides it (:func:`sandbox_warning_wanted`). The trajectory keeps it either way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rlm_cli.view.fmt import seconds
from rlm_cli.view.safe import inline

SANDBOX_PREFIX = "REPL sandbox"
OFF_WORDS = frozenset({"off", "false", "no", "0", "acknowledged"})

_BUDGETS = {  # RunFinished.extra["exhausted"] -> (words, limits key, unit formatter)
    "cost": ("cost budget", "max_cost", lambda v: f"${v:g}"),
    "tokens": ("token budget", "max_tokens", lambda v: f"{v:,} tokens"),
    "timeout": ("time limit", "timeout", lambda v: f"{v:g}s"),
    "sub_calls": ("sub-call budget", "max_sub_calls", lambda v: f"{v:,} sub-calls"),
}

STATUS_WORDS = {"answered": "answered", "max_iterations": "iter. limit", "budget_exhausted": "budget spent",
                "interrupted": "interrupted", "error": "error", "running": "running", "unreadable": "unreadable"}
"""Short words for a status in a table column (``rlm logs``); at most 12 characters each."""


def budget_words(exhausted: str | None, limits: Mapping[str, Any] | None) -> str:
    """``cost budget ($0.5)``, ``time limit (30s)``...: the budget named by ``exhausted`` (the
    engine's budget name) with its limit from ``limits`` when known; ``a budget`` when unknown."""
    words, key, unit = _BUDGETS.get(str(exhausted), ("a budget", "", str))
    value = (limits or {}).get(key) if key else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{words} ({unit(value)})"
    return words


def outcome(status: str, duration_s: float | None, *, exhausted: str | None = None,
            limits: Mapping[str, Any] | None = None) -> str:
    """How a run ended, in words: ``answered in 1.20s``, ``stopped: iteration limit (8) reached after
    0.75s``, ``stopped: cost budget ($0.5) reached after 6.78s``, ``interrupted after 5.45s``,
    ``failed after 2.0s``. ``duration_s`` in seconds (None: no time is given); ``limits`` is the
    trajectory's ``limits`` object. An unknown status is shown (control characters made visible)."""
    took = f" {seconds(duration_s)}" if duration_s is not None else ""
    if status == "answered":
        return f"answered{' in' + took if took else ''}"
    after = f" after{took}" if took else ""
    if status == "max_iterations":
        n = (limits or {}).get("max_iterations")
        limit = f" ({n})" if isinstance(n, int) and not isinstance(n, bool) else ""
        return f"stopped: iteration limit{limit} reached{after}"
    if status == "budget_exhausted":
        return f"stopped: {budget_words(exhausted, limits)} reached{after}"
    if status == "interrupted":
        return f"interrupted{after}"
    if status == "error":
        return f"failed{after}"
    return f"{inline(status, 40)}{after}"


def is_sandbox_notice(message: str) -> bool:
    """True for the engine's weaker-sandbox notice (see :data:`SANDBOX_PREFIX`)."""
    return str(message).startswith(SANDBOX_PREFIX)


def sandbox_warning_wanted(environ: Mapping[str, str] | None = None) -> bool:
    """False when the user acknowledged the weaker sandbox: ``RLM_SANDBOX_WARNING`` (if set) or the
    config file's ``sandbox_warning`` is one of :data:`OFF_WORDS` (case-insensitive). An unreadable
    config file counts as "not acknowledged". Reads the config file only when called (once per run,
    and only on a system where the sandbox is weaker)."""
    env = os.environ if environ is None else environ
    value = env.get("RLM_SANDBOX_WARNING", "").strip()
    if not value:
        try:
            from rlm_cli.settings.config_file import load_config

            value = str(load_config().values.get("sandbox_warning") or "")
        except Exception:  # a broken config file is reported by the command itself
            value = ""
    return value.strip().lower() not in OFF_WORDS


def _remedies(message: str) -> list[str]:
    """What the user can do, from the reasons the sandbox notice names."""
    out = []
    if "runs as root" in message:
        out.append("run rlm as a normal user")
    if "namespaces" in message:
        out.append("install util-linux `unshare` or `bwrap` and allow unprivileged user namespaces")
    elif "network" in message:
        out.append("allow network namespaces (`unshare -n`)")
    return out


def sandbox_line(message: str) -> str:
    """The one-line warning for a weaker-sandbox notice: what is weaker (the notice itself, made
    visible and on one line), then what to do about it and how to stop the warning."""
    text = " ".join(inline(message, 600).split())
    fixes = _remedies(message)
    todo = ("To fix: " + "; or ".join(fixes) + ". ") if fixes else ""
    return (f"rlm: warning: {text} {todo}To stop this warning: rlm config set sandbox_warning off "
            "(details: docs/sandbox.md).")


def skipped_words(context: Mapping[str, Any] | None) -> str:
    """``"; 4 skipped (rlm ls on the same sources says why)"`` for a trajectory ``context`` that
    skipped files, else ``""``: a walk that left files out says so next to what it loaded."""
    skipped = (context or {}).get("skipped") or []
    if not isinstance(skipped, list) or not skipped:
        return ""
    return f"; {len(skipped)} skipped (rlm ls on the same sources says why)"
