"""Text that did not come from rlm, made safe to show on a terminal.

Model replies and code, sub-LM replies, REPL output, model names chosen by code, provider error
messages, file names and saved trajectories can all carry terminal escape sequences: OSC 52 (write
the clipboard), OSC 0 (window title), OSC 8 (hyperlinks), clear-screen, cursor moves. Every view
passes such text through :func:`visible` (or :func:`inline`) before it reaches a terminal, a pipe
read by a human, or a log on stderr.

The convention: each character a terminal could act on is replaced by the escape Python writes for
it in a string literal, so it is shown, not obeyed, and stays recognisable:

- C0 controls (U+0000-U+001F) other than newline and tab, DEL (U+007F) and the C1 controls
  (U+0080-U+009F): ``\\x1b``, ``\\x07``, ``\\x7f``, ``\\x9b``; carriage return as ``\\r``
  (a lone one would let text overwrite its own line); ``\\r\\n`` becomes a plain newline;
- the Unicode bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069, "Trojan Source"):
  ``\\u202e``;
- lone surrogates (undecodable bytes of a file name): ``\\udcff``;
- newline and tab too in :func:`inline` (one-line fields: names, paths, error lines): ``\\n``,
  ``\\t``.

Machine formats stay exact: JSON output goes through :func:`json_text`, which escapes the few
characters ``json.dumps(..., ensure_ascii=False)`` leaves raw (DEL, C1, bidi controls, lone
surrogates) as ``\\u`` escapes: the same JSON value, nothing a terminal would act on.

Rich markup is a second channel: text like ``[link=file:///etc]x[/link]`` or ``[bold red]`` must
never be parsed as markup. Views therefore put such text in :class:`rich.text.Text` objects
(:func:`rich_text`), never in markup strings.
"""

from __future__ import annotations

import re

_BIDI = "\u202a-\u202e\u2066-\u2069"
_SURROGATES = "\ud800-\udfff"
# Characters made visible when newlines and tabs are kept (multi-line text) ...
_UNSAFE_BLOCK = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_BIDI}{_SURROGATES}]")
# ... and on one line (every control character, newline and tab included).
_UNSAFE_INLINE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_BIDI}{_SURROGATES}]")
# What json.dumps(ensure_ascii=False) leaves raw (it escapes C0 itself).
_UNSAFE_JSON = re.compile(f"[\\x7f-\\x9f{_BIDI}{_SURROGATES}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match) -> str:
    ch = m.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: object, *, newlines: bool = True) -> str:
    """``text`` with every control character made visible (see the module docstring).

    ``text`` is any object (``None`` gives ``""``, a non-string its ``str``). ``newlines`` keeps
    ``\\n`` and ``\\t`` as they are (``\\r\\n`` is turned into ``\\n`` first); without it they are
    escaped too (as :func:`inline` does). Returns ``text`` itself when there is nothing to escape.
    Never raises.
    """
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    if newlines and "\r\n" in text:
        text = text.replace("\r\n", "\n")
    pattern = _UNSAFE_BLOCK if newlines else _UNSAFE_INLINE
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escape, text)


def inline(text: object, limit: int = 0) -> str:
    """``text`` on one line: every control character made visible, newlines and tabs included.

    For names, paths and error messages. ``limit`` > 0 cuts the result to that many characters
    (an ellipsis ``…`` included). Never raises.
    """
    out = visible(text, newlines=False)
    if limit and len(out) > limit:
        return out[: max(0, limit - 1)] + "…"
    return out


def rich_text(text: object, style: str = "", *, one_line: bool = False):
    """A :class:`rich.text.Text` of ``text`` made visible (:func:`visible`, or :func:`inline` when
    ``one_line``), with ``style``. Rich markup in ``text`` is shown literally, never interpreted."""
    from rich.text import Text

    return Text(inline(text) if one_line else visible(text), style=style)


def json_text(value: object, *, indent: int | None = None) -> str:
    """``value`` as JSON text (no trailing newline), non-ASCII text kept readable, and every
    character a terminal could act on written as a ``\\uXXXX`` escape: the same JSON value as
    ``json.dumps(value, ensure_ascii=False)``. Raises what :func:`json.dumps` raises (TypeError for
    a value JSON cannot hold, ValueError for a circular one)."""
    import json

    text = json.dumps(value, ensure_ascii=False, indent=indent)
    if _UNSAFE_JSON.search(text) is None:
        return text
    return _UNSAFE_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
