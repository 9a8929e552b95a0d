"""A line of phrases (``a · b · c``) that breaks between phrases, never inside one.

The live view's footer is such a line: at 80 or 120 columns Rich's word wrap would cut it mid-phrase
(``left: sub-calls`` / ``992/1,000``); :class:`Phrases` starts a new line before the phrase that does
not fit, and crops (with ``…``) only a phrase longer than the whole width.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text


class Phrases:
    """Phrases laid out on as few lines as fit the width. ``add(text, sep)`` appends a phrase
    (a :class:`Text` or str) joined to the previous one by ``sep`` (default ``" · "``) when they
    share a line; a phrase that starts a line drops its separator."""

    def __init__(self, style: str = "") -> None:
        self.style = style
        self.parts: list[tuple[str, Text]] = []

    def add(self, text: Text | str, sep: str = " · ", style: str = "") -> Phrases:
        """Append one phrase; empty phrases are ignored. Returns self."""
        phrase = text.copy() if isinstance(text, Text) else Text(str(text), style=style)
        if phrase.plain:
            self.parts.append((sep, phrase))
        return self

    @property
    def plain(self) -> str:
        """All phrases on one line, without styles (for HTML and tests)."""
        return "".join((sep if i else "") + p.plain for i, (sep, p) in enumerate(self.parts))

    def lines(self, width: int) -> list[Text]:
        """The phrases broken into lines of at most ``width`` cells (cells, not characters)."""
        width = max(1, width)
        out: list[Text] = []
        line: Text | None = None
        for sep, phrase in self.parts:
            if line is not None and line.cell_len + len(sep) + phrase.cell_len <= width:
                line.append(sep)
                line.append_text(phrase)
                continue
            if line is not None:
                out.append(line)
            line = Text(style=self.style, no_wrap=True, overflow="ellipsis")
            line.append_text(phrase)
            if line.cell_len > width:
                line.truncate(width, overflow="ellipsis")
        if line is not None:
            out.append(line)
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.lines(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        longest = max((p.cell_len for _, p in self.parts), default=1)
        return Measurement(min(longest, options.max_width), min(len(self.plain), options.max_width))
