"""The live tree: a Rich ``Live`` display on stderr, redrawn at a bounded rate while the run goes on.

The event sink (:meth:`LiveView.__call__`, on the engine's thread) only updates the view-model under
a lock: O(1) per event, no rendering. Rich's refresh thread asks for the renderable at most
``refresh_per_second`` times a second; :meth:`LiveView.__rich_console__` then builds the tree from
the model (under the lock: proportional to what is shown, not to the number of events) and renders
it outside the lock. A tree taller than the terminal keeps its header, the newest lines and the
footer, with a count of the lines hidden in between, so the bottom of the tree (where the work is
happening) stays in view. The tree is laid out by :func:`tree_lines` (the same drawing as Rich's
``Tree``, at half the cost).

When the run finishes (or :meth:`LiveView.close` is called, on error or Ctrl-C) the live display is
erased and a compact summary (one line per iteration, failures, the footer) is printed in its place.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
import time
from collections.abc import Callable

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.text import Text
from rich.tree import Tree

from rlm_cli.run.events import Notice, RunFinished, RunStarted
from rlm_cli.view.fmt import cost_report
from rlm_cli.view.render import Renderer, RenderOptions
from rlm_cli.view.safe import visible
from rlm_cli.view.tree import RunModel
from rlm_cli.view.words import is_sandbox_notice, sandbox_line, sandbox_warning_wanted

HEADER_LINES = 2  # the question and the models line stay at the top when the tree is cropped


class LiveView:
    """Event sink drawing the run as a live tree on ``console`` (a terminal console on stderr).

    ``refresh_per_second`` bounds the redraw rate; ``summary`` prints the compact tree when the
    run ends; ``clock`` is the model's clock (tests pass a fake one).
    """

    def __init__(self, console: Console, refresh_per_second: float = 8.0, summary: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.refresh_per_second = refresh_per_second
        self.summary = summary
        self.model = RunModel(clock)
        self.opts = RenderOptions.live()
        self._lock = threading.Lock()
        self._live = None
        self._stderr = None  # the real sys.stderr while ours is redirected above the display
        self._usage: dict | None = None
        self._closed = False
        self._said_sandbox = False
        self.renders = 0  # frames built (for tests and the benchmark)

    # --- the sink ------------------------------------------------------------------------------
    def __call__(self, ev) -> None:
        with self._lock:
            self.model.apply(ev)
        if isinstance(ev, RunStarted):
            self.start()
        elif isinstance(ev, Notice) and is_sandbox_notice(ev.message):
            self.say_once(ev.message)
        elif isinstance(ev, RunFinished):
            self._usage = ev.usage
            self.close()

    def say_once(self, message: str) -> None:
        """Print the weaker-sandbox warning once, on one line above the live tree (not in it), unless
        the user acknowledged it (:func:`rlm_cli.view.words.sandbox_warning_wanted`)."""
        if self._said_sandbox or self._closed:
            return
        self._said_sandbox = True
        if sandbox_warning_wanted():
            with contextlib.suppress(Exception):
                self.console.print(Text(sandbox_line(message), style="yellow"), soft_wrap=True)

    def start(self) -> None:
        """Start the live display (idempotent; does nothing once closed)."""
        if self._live is not None or self._closed:
            return
        from rich.live import Live

        live = Live(console=self.console, get_renderable=lambda: self, auto_refresh=True,
                    refresh_per_second=self.refresh_per_second, transient=True, redirect_stdout=False,
                    redirect_stderr=False, vertical_overflow="crop")
        try:
            live.start(refresh=False)
        except Exception:  # a terminal that cannot be drawn on: stay silent rather than break the run
            self._closed = True
            with contextlib.suppress(Exception):
                live.stop()
            return
        self._live = live
        # Our own redirection, not Rich's: Rich's decodes ANSI codes in what is written (an OSC 8
        # link in a library's warning would become a real link); ours shows them made visible.
        self._stderr, sys.stderr = sys.stderr, SafeStderr(self.console, sys.stderr)

    def close(self) -> None:
        """Stop the live display and print the summary. Safe to call twice, on error or on interrupt."""
        if self._closed:
            return
        self._closed = True
        live, self._live = self._live, None
        real, self._stderr = self._stderr, None
        if real is not None:
            proxy, sys.stderr = sys.stderr, real
            if isinstance(proxy, SafeStderr):
                with contextlib.suppress(Exception):
                    proxy.flush()
        if live is not None:
            try:
                live.stop()
            except Exception:  # the terminal went away: nothing more to draw
                return
        if self.summary and self.model.run_id:
            try:
                with self._lock:
                    renderable = Renderer(self.model, RenderOptions.summary()).build()
                self.console.print(renderable)
                for line in cost_report(self._usage):
                    self.console.print(line, markup=False, highlight=False, style="dim")
            except Exception:
                pass

    # --- rendering (Rich's refresh thread) -----------------------------------------------------
    def frame(self, width: int) -> tuple:
        """The tree and footer renderables of the model now (built under the lock)."""
        with self._lock:
            r = Renderer(self.model, self.opts)
            r.o.preview = max(40, width)
            self.renders += 1
            return r.tree(), r.footer()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        try:
            tree, footer = self.frame(options.max_width)
            lines = tree_lines(tree, options.max_width, console)
            foot = console.render_lines(footer, options.update(height=None), pad=False)
        except Exception as exc:  # never kill Rich's refresh thread
            yield Text(f"rlm: the live view failed: {exc!r}")
            return
        height = options.height or console.height
        room = max(HEADER_LINES + 2, height - len(foot) - 1)
        if len(lines) > room:
            tail = room - HEADER_LINES - 1
            hidden = len(lines) - HEADER_LINES - tail
            lines = [*lines[:HEADER_LINES], Text(f"  ⋮ {hidden:,} line(s) above", style="dim"),
                     *lines[len(lines) - tail:]]
        new_line = Segment.line()
        for line in lines:
            yield from line.render(console)
            yield new_line
        for segments in foot:
            yield from segments
            yield new_line


class SafeStderr(io.TextIOBase):
    """``sys.stderr`` while the live display is up: each complete line written to it is printed
    above the display by ``console``, with its control characters made visible (text only, never
    markup or decoded ANSI codes); an unfinished line waits for its newline or :meth:`flush`.
    ``file`` is the real stderr (``fileno`` and ``isatty`` are its own)."""

    def __init__(self, console: Console, file) -> None:
        self._console, self._file = console, file
        self._buffer: list[str] = []
        self._lock = threading.Lock()

    @property
    def rich_proxied_file(self):
        """The real stderr (Rich looks for this attribute on a redirected stream)."""
        return self._file

    def write(self, text: str) -> int:
        """Print the complete lines of ``text`` above the display; returns ``len(text)``.
        Raises TypeError for a non-string, as a text stream does."""
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            *done, rest = text.split("\n")
            if done:
                done[0] = "".join(self._buffer) + done[0]
                self._buffer = [rest] if rest else []
            elif rest:
                self._buffer.append(rest)
        if done:
            self._print("\n".join(done))
        return len(text)

    def flush(self) -> None:
        """Print an unfinished line, if any."""
        with self._lock:
            pending, self._buffer = "".join(self._buffer), []
        if pending:
            self._print(pending)

    def _print(self, text: str) -> None:
        self._console.print(Text(visible(text)), soft_wrap=True)

    def fileno(self) -> int:
        """The real stderr's descriptor."""
        return self._file.fileno()

    def isatty(self) -> bool:
        """Whether the real stderr is a terminal."""
        return self._file.isatty()


GUIDES = ("├── ", "└── ", "│   ", "    ")


def tree_lines(tree: Tree, width: int, console: Console) -> list[Text]:
    """Lay out a tree whose labels are :class:`Text` as one cropped line of text per label line.

    What Rich's :class:`~rich.tree.Tree` draws for such a tree (same guides), without its general
    layout machinery: about twice as fast, which matters for a view redrawn eight times a second.
    """
    guide = console.get_style(tree.guide_style)
    out: list[Text] = []

    def emit(label, first: str, rest: str) -> None:
        text = label if isinstance(label, Text) else Text(str(label))
        parts = text.split("\n", allow_blank=True) if "\n" in text.plain else [text]
        for i, part in enumerate(parts):
            line = Text(first if i == 0 else rest, style=guide, no_wrap=True, overflow="ellipsis", end="")
            line.append_text(part)
            line.truncate(width, overflow="ellipsis")
            out.append(line)

    def walk(node: Tree, prefix: str) -> None:
        kids = node.children
        for i, child in enumerate(kids):
            last = i == len(kids) - 1
            cont = prefix + (GUIDES[3] if last else GUIDES[2])
            emit(child.label, prefix + GUIDES[1 if last else 0], cont)
            walk(child, cont)

    emit(tree.label, "", "")
    walk(tree, "")
    return out
