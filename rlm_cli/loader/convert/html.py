"""HTML to readable text with Beautiful Soup (the standard library's ``html.parser`` backend).

Dropped: ``script``, ``style``, ``noscript``, ``template`` and other non-text elements, hidden ones
(``hidden``, ``aria-hidden="true"``), and navigation: ``nav``, ``role="navigation"`` (and the
banner, contentinfo and search landmarks), and page-level ``header``/``footer`` (those not inside
an ``article``, ``section``, ``main`` or ``aside``). Kept: the title and headings (as markdown
``#``), paragraphs, list items (``- `` or ``1. ``), link text, ``pre`` blocks as they are, and
table rows with their cells joined by `` | ``. Whitespace elsewhere is collapsed as a browser does.
The tree is walked with an explicit stack, so deep nesting cannot exhaust Python's recursion.
"""

from __future__ import annotations

import re
import sys

from rlm_cli.loader.convert import Converted, clean, over_budget

_DROP = frozenset({"script", "style", "noscript", "template", "nav", "svg", "math", "iframe", "object",
                   "embed", "canvas", "audio", "video", "picture", "map", "head", "button", "select",
                   "datalist", "dialog"})
_NAV_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "menu", "menubar"})
_SECTIONING = frozenset({"article", "section", "main", "aside"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCKS = frozenset({"p", "div", "section", "article", "main", "aside", "blockquote", "ul", "ol", "dl",
                     "dt", "dd", "table", "thead", "tbody", "tfoot", "figure", "figcaption", "address",
                     "header", "footer", "hr", "form", "fieldset", "details", "summary", "body", "center",
                     "caption"})
_BLOCK, _LINE = "\x00B", "\x00L"  # break markers (NULs never survive clean() in the text itself)
_KEEP = "\x00K"  # before a pre block: the spaces after it are the block's own
_SPACES = re.compile(r"[ \t\r\n\f\v]+")
_BREAKS = re.compile(r"[ \t]*(?:\x00[BL][ \t]*)+")


# Beautiful Soup imports these when they are installed, for what rlm never asks of it: other tree
# builders (lxml, html5lib), CSS selectors (soupsieve), and encoding detection for markup given as
# bytes (rlm passes text). Hidden while bs4 is imported, they cost nothing (about 0.05 s of CPU
# otherwise, in the worker of every load that converts a page); the html.parser builder and the
# tree are the same.
_UNUSED_BY_BS4 = ("lxml", "html5lib", "soupsieve", "cchardet", "chardet", "charset_normalizer")


def import_bs4():
    """The ``bs4`` module, imported (on first call) with :data:`_UNUSED_BY_BS4` hidden from it.

    A hidden module that is not loaded yet is left unloaded, and importable again afterwards; one
    already loaded (python-docx brings lxml) is not hidden. Raises ``ImportError`` when bs4 is
    missing."""
    bs4 = sys.modules.get("bs4")
    if bs4 is not None:
        return bs4
    hidden = [name for name in _UNUSED_BY_BS4 if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # `import name` raises ImportError, which bs4 expects of a missing extra
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bs4.css warns that CSS selectors are unavailable
            import bs4
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return bs4


def _hidden(tag) -> bool:
    attrs = tag.attrs
    if not attrs:
        return False
    if "hidden" in attrs or str(attrs.get("aria-hidden", "")).lower() == "true":
        return True
    role = attrs.get("role")
    return isinstance(role, str) and role.strip().lower() in _NAV_ROLES


def _page_landmark(tag) -> bool:
    """A ``header``/``footer`` of the page (not of an article or section)."""
    return not any(p.name in _SECTIONING for p in tag.parents)


def _cells(row) -> str:
    cells = row.find_all(["td", "th"], recursive=False)
    return " | ".join(_SPACES.sub(" ", c.get_text(" ")).strip() for c in cells)


def _render(root) -> str:
    bs4 = import_bs4()
    Comment, Declaration, Doctype = bs4.Comment, bs4.Declaration, bs4.Doctype
    NavigableString, ProcessingInstruction, Tag = bs4.NavigableString, bs4.ProcessingInstruction, bs4.Tag
    skip_types = (Comment, Declaration, Doctype, ProcessingInstruction)
    out: list[str] = []
    numbers: dict[int, int] = {}  # id of an <ol> -> items seen (document order)
    stack: list = [(root, False)]
    while stack:
        node, closing = stack.pop()
        if closing:
            out.append(node)  # a marker pushed for the end of a block
            continue
        if isinstance(node, NavigableString):
            if not isinstance(node, skip_types):
                out.append(_SPACES.sub(" ", str(node)))
            continue
        if not isinstance(node, Tag):
            continue
        name = node.name
        if name in _DROP or _hidden(node) or (name in ("header", "footer") and _page_landmark(node)):
            continue
        if name in _HEADINGS:
            text = _SPACES.sub(" ", node.get_text(" ")).strip()
            if text:
                out += [_BLOCK, "#" * _HEADINGS[name] + " " + text, _BLOCK]
            continue
        if name == "tr":
            out += [_LINE, _cells(node), _LINE]
            continue
        if name == "pre":
            out += [_BLOCK, _KEEP, node.get_text().strip("\n"), _BLOCK]
            continue
        if name == "br":
            out.append(_LINE)
            continue
        if name == "li":
            parent = node.parent
            if parent is not None and parent.name == "ol":
                number = numbers[id(parent)] = numbers.get(id(parent), 0) + 1
                out += [_LINE, f"{number}. "]
            else:
                out += [_LINE, "- "]
            stack.append((_LINE, True))
        elif name in _BLOCKS:
            out.append(_BLOCK)
            stack.append((_BLOCK, True))
        stack.extend((child, False) for child in reversed(node.contents))
    return _assemble(out)


def _assemble(pieces: list[str]) -> str:
    text = "".join(pieces)
    # a run of markers: a blank line if any of them is a block break, else one newline
    text = _BREAKS.sub(lambda m: "\n\n" if _BLOCK in m.group(0) else "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text.replace(_KEEP, ""))
    return text.strip("\n") + "\n" if text.strip() else ""


def html_to_text(markup: str) -> str:
    """Readable text of an HTML document (see the module doc); the ``<title>`` first, as a ``#`` heading."""
    soup = import_bs4().BeautifulSoup(markup, "html.parser")
    title = soup.find("title")
    title_text = _SPACES.sub(" ", title.get_text(" ")).strip() if title is not None else ""
    body = _render(soup)
    if title_text and not body.startswith("# "):
        body = f"# {title_text}\n\n{body}"
    return body


def convert_html_bytes(data: bytes, max_chars: int) -> Converted:
    """An HTML file's bytes to text: decoded as the loader decodes text (BOM, UTF-8, else detected),
    then :func:`html_to_text`. Raises :class:`ConversionError` past ``max_chars`` characters."""
    from rlm_cli.loader.decode import decode_bytes

    markup, _ = decode_bytes(data)
    text = clean(html_to_text(markup))
    if len(text) > max_chars:
        raise over_budget(max_chars)
    return Converted(text, "converted from HTML")
