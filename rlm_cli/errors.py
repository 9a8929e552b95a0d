"""Errors with the contract's exit codes (see ``../shared/contract.md``, "Exit codes").

Every error the user can cause or meet is an :class:`RlmError` subclass carrying the process exit
code; the CLI prints ``str(error)`` as one line on stderr and exits with ``error.exit_code``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1  # runtime or provider error
EXIT_USAGE = 2  # usage error or unusable input
EXIT_BUDGET = 3  # a budget or the iteration limit ran out before an answer
EXIT_INTERRUPTED = 130  # SIGINT


class RlmError(Exception):
    """Base class: a one-line, user-facing error with an exit code."""

    exit_code: int = EXIT_ERROR


class UsageError(RlmError):
    """Bad flags, bad configuration or unusable input (exit 2)."""

    exit_code = EXIT_USAGE


class InputError(UsageError):
    """A source that cannot be loaded: missing path, empty stdin, input over ``--max-input-size``."""


class ProviderError(RlmError):
    """The LM provider failed in a way retries cannot fix (auth, unknown model, bad request) (exit 1)."""

    exit_code = EXIT_ERROR


class ReplError(RlmError):
    """The REPL subprocess could not be started or kept alive (exit 1)."""

    exit_code = EXIT_ERROR


class BudgetExceeded(RlmError):
    """A budget refused an LM call. ``budget`` names it: ``sub_calls``, ``cost``, ``tokens``, ``timeout``.

    Raised by :meth:`rlm_cli.run.budget.Budget.reserve` before any call is started; inside REPL code it
    becomes an error string, and when it ends the run the exit code is 3.
    """

    exit_code = EXIT_BUDGET

    def __init__(self, budget: str, message: str) -> None:
        super().__init__(message)
        self.budget = budget


def debug_enabled() -> bool:
    """True when tracebacks were asked for: ``--debug`` on the command line, or ``RLM_DEBUG`` set
    (not ``0``)."""
    import os
    import sys

    return os.environ.get("RLM_DEBUG", "") not in ("", "0") or "--debug" in sys.argv[1:]


def debug_traceback(exc: BaseException) -> None:
    """Print ``exc``'s traceback (with what it wraps) on stderr under ``--debug``; nothing otherwise.
    For unexpected exceptions that a run turns into a one-line error."""
    if debug_enabled():
        import sys
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
