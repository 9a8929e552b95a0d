"""EPUB to text: the book's XHTML documents in reading order (the OPF spine), each through the HTML
converter. The ZIP is checked for its declared size first (a zip bomb is refused)."""

from __future__ import annotations

import posixpath
import zipfile
from xml.etree import ElementTree

from rlm_cli.loader.convert import ConversionError, Converted, clean, over_budget
from rlm_cli.loader.convert.docx import check_zip
from rlm_cli.loader.convert.html import html_to_text

_NS = {"c": "urn:oasis:names:tc:opendocument:xmlns:container", "o": "http://www.idpf.org/2007/opf"}


def _xml(zf: zipfile.ZipFile, name: str):
    data = zf.read(name)
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:  # no entity expansion (billion laughs)
        raise ConversionError(f"EPUB part {name} declares a DTD: refused")
    return ElementTree.fromstring(data)


def convert_epub(fs_path: str, max_chars: int, progress=None) -> Converted:
    """The text of the EPUB at ``fs_path``, chapter by chapter. Raises :class:`ConversionError` for
    a corrupt book, a zip bomb, a DTD in its XML, and past ``max_chars`` characters."""
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
            parts, size = [], 0
            for n, idref in enumerate(spine, 1):
                href = manifest.get(idref)
                if not href:
                    continue
                name = posixpath.normpath(posixpath.join(base, href.split("#")[0]))
                try:
                    markup = zf.read(name).decode("utf-8", "replace")
                except KeyError:
                    continue
                text = html_to_text(markup)
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
    return Converted(clean("\n".join(parts)), f"converted from EPUB, {len(spine)} documents")
