"""Choosing the view of a run, and printing its answer.

:func:`attach_view` picks, for ``rlm ask``:

- ``--quiet``: no view at all;
- the live tree (:class:`~rlm_cli.view.live.LiveView`) when stderr is a terminal, ``NO_COLOR`` is
  unset and ``TERM`` is not ``dumb``; ``FORCE_COLOR`` forces it on a non-terminal too (``NO_COLOR``
  wins over ``FORCE_COLOR``: the contract promises no colour or redraw when it is set);
- otherwise plain progress lines (:class:`~rlm_cli.view.plain.PlainView`).

:func:`print_answer` renders the answer as Markdown when stdout is a terminal, with its control
characters made visible (:mod:`rlm_cli.view.safe`) and links shown as text with their target (never
as terminal hyperlinks); it writes the raw text exactly (plus a final newline if missing) when
stdout is a pipe or a file.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping
from typing import TextIO


def _set(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "") != ""


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def wants_live(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` should get the live tree (see the module docstring for the rules)."""
    env = os.environ if environ is None else environ
    if _set(env, "NO_COLOR") or env.get("TERM") == "dumb":
        return False
    return _isatty(stream) or _set(env, "FORCE_COLOR")


class ViewHandle:
    """The view attached to a run. ``kind`` is ``"quiet"``, ``"plain"`` or ``"live"``; ``sink`` the
    event sink (None when quiet); ``stream_root`` True when the view shows streamed root tokens
    (set :attr:`rlm_cli.run.config.RunConfig.stream_root` from it)."""

    def __init__(self, kind: str, sink=None) -> None:
        self.kind = kind
        self.sink = sink
        self.stream_root = kind == "live"

    def close(self) -> None:
        """Stop the live display, if any (idempotent; safe in ``finally`` on errors and Ctrl-C)."""
        close = getattr(self.sink, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()

    def print_answer(self, answer: str, stdout: TextIO | None = None) -> None:
        """Print the answer on ``stdout`` (see :func:`print_answer`)."""
        print_answer(answer, stdout)


def attach_view(bus, *, quiet: bool, stream: TextIO | None = None) -> ViewHandle:
    """Add the right view for ``stream`` (default: stderr) to ``bus``; returns its handle."""
    if quiet:
        return ViewHandle("quiet")
    stream = sys.stderr if stream is None else stream
    if wants_live(stream):
        from rich.console import Console

        from rlm_cli.view.live import LiveView

        sink = LiveView(Console(file=stream, stderr=stream is sys.stderr, highlight=False))
        handle = ViewHandle("live", sink)
    else:
        from rlm_cli.view.plain import PlainView

        handle = ViewHandle("plain", PlainView(stream))
    bus.add(handle.sink)
    return handle


def print_answer(answer: str, stdout: TextIO | None = None) -> None:
    """Write ``answer`` (model text: hostile) on ``stdout`` (default: ``sys.stdout``).

    A terminal gets Markdown with control characters made visible and links as ``text (target)``,
    so no escape sequence, Rich markup or hidden link target in the answer acts on the terminal. A
    pipe or file gets ``answer`` exactly (the contract), with a final newline if missing.
    """
    stdout = sys.stdout if stdout is None else stdout
    if _isatty(stdout):
        from rich.console import Console
        from rich.markdown import Markdown

        from rlm_cli.view.safe import visible

        Console(file=stdout, highlight=False).print(Markdown(visible(answer), hyperlinks=False))
    else:
        stdout.write(answer if answer.endswith("\n") else answer + "\n")
    stdout.flush()
