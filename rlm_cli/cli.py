"""Entry point of the ``rlm`` command (the console script and ``python -m rlm_cli``). The Typer app
and the mapping of every ending to an exit code live in :mod:`rlm_cli.commands.app`: Typer is used
only in ``commands/``."""

from rlm_cli.commands.app import app, debug_enabled, main

__all__ = ["app", "debug_enabled", "main"]
