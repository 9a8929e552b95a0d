"""Running a coroutine as the whole process's work, ending cleanly on SIGINT, SIGTERM and SIGHUP.

The first signal cancels the run (so the engine still writes the trajectory and kills its REPLs); a
second one exits at once, after killing every REPL process group still alive. After SIGHUP (the
terminal was closed) fds 1 and 2 that are terminals are pointed at /dev/null first, so writing the
ending cannot fail; a redirected stdout keeps the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any


def run_until_signal(coro: Coroutine[Any, Any, Any], received: list[int]) -> Any:
    """Run ``coro`` in a fresh event loop and return its result, or None if a signal cancelled it.

    ``received`` gets the number of each SIGINT, SIGTERM or SIGHUP that arrived (the first decides
    the exit status: 128 + its number). A second signal exits the process at once with that status.
    """
    from rlm_cli.repl.process import kill_all_now

    loop = asyncio.new_event_loop()
    task = loop.create_task(coro)

    def on_signal(signum: int) -> None:
        received.append(signum)
        if signum == signal.SIGHUP:
            detach_terminal()
        if len(received) == 1:
            with contextlib.suppress(OSError):
                print("\nrlm: interrupting (press Ctrl-C again to exit at once)...", file=sys.stderr)
            task.cancel()
        else:
            kill_all_now()
            os._exit(128 + received[0])

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        return None
    finally:
        kill_all_now()
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def detach_terminal() -> None:
    """Point fds 1 and 2 at /dev/null where they are terminals (after SIGHUP nothing reads them)."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                if os.isatty(fd):
                    os.dup2(null, fd)
    finally:
        os.close(null)
