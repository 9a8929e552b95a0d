"""A reader that stops early (``rlm show --full | head -5``) is not an error.

When the reader of stdout goes away, writing raises :class:`BrokenPipeError`; Typer would turn it
into exit status 1. :func:`stdout_may_close` ends the command with status 0 instead, as ``cat`` and
``git log`` do, with nothing printed: stdout is pointed at ``/dev/null`` first, so the flush at exit
(of what Python still buffers) cannot fail again.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


def silence_stdout() -> None:
    """Point file descriptor 1 at ``/dev/null`` (the reader is gone; later writes and flushes
    succeed and go nowhere). Never raises."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)


@contextlib.contextmanager
def stdout_may_close() -> Iterator[None]:
    """Run the body; if stdout's reader went away (:class:`BrokenPipeError`), end the command with
    exit status 0 (``typer.Exit(0)``) after :func:`silence_stdout`."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        import typer

        silence_stdout()
        raise typer.Exit(0) from None


def stdout_console(**kwargs):
    """A Rich :class:`~rich.console.Console` on stdout (``kwargs`` as Console's) whose closed pipe
    raises :class:`BrokenPipeError` (for :func:`stdout_may_close`) instead of Rich's own
    ``SystemExit(1)``."""
    from rich.console import Console

    class _PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            silence_stdout()
            raise BrokenPipeError

    return _PipeConsole(**kwargs)
