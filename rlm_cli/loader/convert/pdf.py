"""PDF to text with pypdf, page by page, each page introduced by a marker line ``--- page N ---``."""

from __future__ import annotations

from rlm_cli.loader.convert import ConversionError, Converted, clean, over_budget

PAGE_MARKER = "--- page {n} ---\n"


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:120]
    return text or exc.__class__.__name__


def convert_pdf(fs_path: str, max_chars: int, progress=None) -> Converted:
    """The text of the PDF at ``fs_path``: for each page its marker line then its text.

    ``Converted.pages`` holds each marker's character offset. Raises :class:`ConversionError` for an
    encrypted PDF that the empty password does not open, a corrupt one, one with no text layer
    (every page empty: scanned images), and text past ``max_chars`` characters. A page whose text
    cannot be extracted is kept as a line saying so. ``progress(done, total)`` after each page.
    """
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

    try:
        reader = PdfReader(fs_path, strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError) as exc:
                raise ConversionError(f"encrypted PDF: cannot decrypt ({_short(exc)})") from None
            if not opened:
                raise ConversionError("encrypted PDF: needs a password")
        total = len(reader.pages)
    except ConversionError:
        raise
    except FileNotDecryptedError:
        raise ConversionError("encrypted PDF: needs a password") from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, AssertionError,
            OSError, EOFError, ZeroDivisionError) as exc:
        raise ConversionError(f"corrupt PDF ({_short(exc)})") from None
    if total == 0:
        raise ConversionError("PDF with no pages")
    parts: list[str] = []
    pages: list[int] = []
    pos = 0
    with_text = 0
    failure = ""  # the first page failure, for the reason when no page had text
    for i in range(total):
        marker = PAGE_MARKER.format(n=i + 1)
        try:
            text = reader.pages[i].extract_text() or ""
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:  # noqa: BLE001 - any failure inside one page: keep the others
            failure = failure or _short(exc)
            text = f"[the text of this page could not be extracted: {_short(exc)}]"
        else:
            text = clean(text).strip("\n")
            if text.strip():
                with_text += 1
        piece = marker + text + ("\n" if text else "")
        if pos + len(piece) > max_chars:
            raise over_budget(max_chars)
        pages.append(pos)
        parts.append(piece)
        pos += len(piece)
        if progress is not None:
            progress(i + 1, total)
    if not with_text and failure:
        raise ConversionError(f"PDF text could not be extracted ({failure})")
    if not with_text:
        raise ConversionError(f"PDF with no text layer ({total} page{'s' if total != 1 else ''} "
                              f"of images?): run OCR first")
    return Converted("".join(parts), f"converted from PDF, {total} page{'s' if total != 1 else ''}", pages)
