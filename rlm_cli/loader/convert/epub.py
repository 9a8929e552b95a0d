"""EPUB to text: the book's XHTML documents in reading order (the OPF spine), each through the HTML
converter. The ZIP is checked for its declared size first (a zip bomb is refused). Each document is
read once, however often the spine names it (directly or through several manifest ids), and the
documents' markup together is bounded (:func:`markup_limit`): a small book whose spine repeats one
large text-less chapter thousands of times converts at the cost of one chapter."""

from __future__ import annotations

import posixpath
import zipfile
from xml.etree import ElementTree

from rlm_cli.loader.convert import ConversionError, Converted, clean, over_budget
from rlm_cli.loader.convert.docx import check_zip
from rlm_cli.loader.convert.html import html_to_text

MAX_MARKUP_BYTES = 256 * 1024 * 1024  # markup parsed per book, at most
MARKUP_PER_CHAR = 16  # markup bytes allowed per character of the text budget


def markup_limit(max_chars: int) -> int:
    """Bytes of XHTML one book may hand the HTML converter: :data:`MARKUP_PER_CHAR` per character
    of ``max_chars`` plus 1 MB, at most :data:`MAX_MARKUP_BYTES`."""
    return min(MAX_MARKUP_BYTES, MARKUP_PER_CHAR * max(max_chars, 0) + 1_000_000)


_NS = {"c": "urn:oasis:names:tc:opendocument:xmlns:container", "o": "http://www.idpf.org/2007/opf"}


def _xml(zf: zipfile.ZipFile, name: str):
    data = zf.read(name)
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:  # no entity expansion (billion laughs)
        raise ConversionError(f"EPUB part {name} declares a DTD: refused")
    return ElementTree.fromstring(data)


def convert_epub(fs_path: str, max_chars: int, progress=None) -> Converted:
    """The text of the EPUB at ``fs_path``, chapter by chapter (each document once). Raises
    :class:`ConversionError` for a corrupt book, a zip bomb, a DTD in its XML, markup over
    :func:`markup_limit`, and past ``max_chars`` characters."""
    check_zip(fs_path, "EPUB")
    try:
        with zipfile.ZipFile(fs_path) as zf:
            container = _xml(zf, "META-INF/container.xml")
            rootfile = container.find(".//c:rootfile", _NS)
            opf_path = rootfile.get("full-path") if rootfile is not None else None
            if not opf_path:
                raise ConversionError("corrupt EPUB (no rootfile)")
            opf = _xml(zf, opf_path)
            base = posixpath.dirname(opf_path)
            manifest = {item.get("id"): item.get("href") for item in opf.iterfind(".//o:manifest/o:item", _NS)}
            spine = [ref.get("idref") for ref in opf.iterfind(".//o:spine/o:itemref", _NS)]
            parts, size, markup, seen = [], 0, 0, set()
            limit = markup_limit(max_chars)
            for n, idref in enumerate(spine, 1):
                href = manifest.get(idref)
                name = posixpath.normpath(posixpath.join(base, href.split("#")[0])) if href else None
                if name is None or name in seen:  # each document once, in its first place
                    continue
                seen.add(name)
                try:
                    info = zf.getinfo(name)
                except KeyError:
                    continue
                markup += info.file_size
                if markup > limit:
                    raise ConversionError(f"EPUB documents hold over {limit:,} bytes of markup: refused")
                text = html_to_text(zf.read(info).decode("utf-8", "replace"))
                if text:
                    size += len(text) + 1
                    if size > max_chars:
                        raise over_budget(max_chars)
                    parts.append(text)
                if progress is not None:
                    progress(n, len(spine))
    except ConversionError:
        raise
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, ValueError, EOFError) as exc:
        raise ConversionError(f"corrupt EPUB ({' '.join(str(exc).split())[:100]})") from None
    return Converted(clean("\n".join(parts)), f"converted from EPUB, {len(seen)} documents")
