"""Bytes to text without ever failing: BOM, else strict UTF-8, else chardet, else cp1252.

1. A byte order mark (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE) decides; bad sequences become U+FFFD.
2. Otherwise strict UTF-8 (ASCII is UTF-8). A sequence cut by the end of the data is UTF-8 with one
   replacement character, not a reason to guess.
3. Otherwise chardet (>= 7) on a bounded sample (:data:`SAMPLE_BYTES`) taken where UTF-8 failed, so an
   ASCII head does not hide the non-ASCII part. The guess is used, with replacement, when chardet's
   confidence reaches :data:`MIN_CONFIDENCE` (chardet's own threshold) and Python knows the codec.
4. Otherwise cp1252 with replacement (it maps every byte but five to a character).

Large inputs are decoded chunk by chunk with an incremental decoder (:func:`stream_into`), straight
into the :class:`~rlm_cli.context.ContextWriter`, so at most one chunk is held decoded.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import BinaryIO

from rlm_cli.context import ContextWriter

SAMPLE_BYTES = 64 * 1024  # bytes given to chardet
LOOKBEHIND_BYTES = 2048  # bytes before the first UTF-8 error included in the sample
MIN_CONFIDENCE = 0.20  # chardet.MINIMUM_THRESHOLD: below it, chardet's own answer is a guess
FALLBACK = "cp1252"
CHUNK_BYTES = 4 * 1024 * 1024  # bytes read per step when streaming

# Longest first: UTF-32-LE's BOM begins with UTF-16-LE's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


def bom_encoding(prefix: bytes) -> str | None:
    """The codec for a byte order mark at the start of ``prefix`` (which the codec strips), or ``None``."""
    for bom, name in _BOMS:
        if prefix.startswith(bom):
            return name
    return None


# Where detect_encoding sends its samples instead, when set (see set_detector); None: here.
_delegate: Callable[[bytes], str | None] | None = None


def set_detector(delegate: Callable[[bytes], str | None] | None) -> Callable[[bytes], str | None] | None:
    """Route :func:`detect_encoding` through ``delegate(sample) -> codec or None``; returns the previous one.

    The two-process load (``parallel.py``) sends the parent's samples to its child, so chardet's
    models (about 0.1 s to load) are loaded in one process only. ``delegate`` must give what
    :func:`detect_encoding` gives; when it returns ``None`` the sample is detected here.
    """
    global _delegate
    previous, _delegate = _delegate, delegate
    return previous


def detect_encoding(sample: bytes) -> str:
    """A Python codec name for non-UTF-8 bytes: chardet's guess on the first :data:`SAMPLE_BYTES`
    bytes of ``sample`` when confident enough, else cp1252. Never raises."""
    sample = sample[:SAMPLE_BYTES]
    if _delegate is not None:
        name = _delegate(sample)
        if name is not None:
            return name
    return detect_here(sample)


def detect_here(sample: bytes) -> str:
    """:func:`detect_encoding` in this process, whatever :func:`set_detector` says: the answer kept
    for these bytes in the user's cache (:mod:`rlm_cli.loader.detect_cache`), else chardet's (then
    kept). Never raises."""
    sample = sample[:SAMPLE_BYTES]
    try:
        from rlm_cli.loader.detect_cache import detect_cached

        return detect_cached(sample, _chardet_here)
    except Exception:  # noqa: BLE001 - the cache's own failure: detect without it
        return _chardet_here(sample)


def _chardet_here(sample: bytes) -> str:
    """chardet's answer for ``sample`` (see :func:`detect_encoding`). Never raises."""
    try:
        import chardet

        guess = chardet.detect(sample[:SAMPLE_BYTES], prefer_superset=True, compat_names=False,
                               max_bytes=SAMPLE_BYTES)
    except Exception:  # a detector bug must not stop a load
        return FALLBACK
    name, confidence = guess.get("encoding"), guess.get("confidence") or 0.0
    if not name or confidence < MIN_CONFIDENCE:
        return FALLBACK
    try:
        name = codecs.lookup(name).name
    except LookupError:
        return FALLBACK
    return FALLBACK if name == "ascii" else name


def _sample_at(data: bytes, pos: int) -> bytes:
    """Up to :data:`SAMPLE_BYTES` of ``data`` from a line start shortly before byte ``pos``."""
    start = max(0, pos - LOOKBEHIND_BYTES)
    nl = data.rfind(b"\n", start, pos)
    start = nl + 1 if nl >= 0 else start
    return data[start:start + SAMPLE_BYTES]


def _truncated_tail(exc: UnicodeDecodeError, total: int) -> bool:
    return exc.end >= total and exc.reason == "unexpected end of data"


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Decode a whole byte string; returns ``(text, codec name)``. Never raises."""
    bom = bom_encoding(data)
    if bom:
        return data.decode(bom, "replace"), bom
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        return _decode_non_utf8(data, exc)


def _decode_non_utf8(data: bytes, exc: UnicodeDecodeError) -> tuple[str, str]:
    if _truncated_tail(exc, len(data)):
        return data.decode("utf-8", "replace"), "utf-8"
    encoding = detect_encoding(_sample_at(data, exc.start))
    return data.decode(encoding, "replace"), encoding


def add_decoded(writer: ContextWriter, path: str, data: bytes) -> str:
    """Decode a whole file's bytes into ``writer`` as ``path``, like :func:`decode_bytes`; returns the codec.

    Valid UTF-8 without a BOM (nearly every source file) is written as the bytes it is, never
    decoded and encoded again: ASCII is not even decoded (its length in characters is its length in
    bytes). Never raises for the data; ``OSError`` from writing propagates.
    """
    if data.isascii():  # no BOM starts with an ASCII byte sequence
        writer.add_utf8(path, data, len(data))
        return "utf-8"
    bom = bom_encoding(data)
    if bom is None:
        try:
            chars = len(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            text, encoding = _decode_non_utf8(data, exc)
        else:
            writer.add_utf8(path, data, chars)
            return "utf-8"
    else:
        text, encoding = data.decode(bom, "replace"), bom
    writer.add(path, text, size_bytes=len(data), encoding=encoding)
    return encoding


class _StreamError(Exception):
    def __init__(self, pos: int, truncated: bool) -> None:
        super().__init__(pos)
        self.pos, self.truncated = pos, truncated


def _pump(writer: ContextWriter, path: str, fh: BinaryIO, first: bytes, size_bytes: int,
          encoding: str, errors: str, chunk_bytes: int) -> int:
    """Decode ``first`` then the rest of ``fh`` into one file of the writer; returns bytes read."""
    decoder = codecs.getincrementaldecoder(encoding)(errors)
    writer.begin(path, size_bytes=size_bytes, encoding=encoding)
    done, chunk = 0, first
    while True:
        final = not chunk
        pending = len(decoder.getstate()[0])  # bytes of an unfinished sequence from the last chunk
        try:
            writer.write(decoder.decode(chunk, final=final))
        except UnicodeDecodeError as exc:
            raise _StreamError(done - pending + exc.start, final) from None
        if final:
            break
        done += len(chunk)
        chunk = fh.read(chunk_bytes)
    writer.end(encoding=encoding)
    return done


def stream_into(writer: ContextWriter, path: str, fh: BinaryIO, prefix: bytes, size_bytes: int,
                chunk_bytes: int = CHUNK_BYTES) -> str:
    """Decode a seekable binary file into ``writer`` as ``path``, chunk by chunk; returns the codec.

    ``prefix`` holds the bytes already read from ``fh`` (its position is just after them). When strict
    UTF-8 fails part-way, what was written is rolled back and the file is decoded again from byte 0
    with the detected encoding. OSError from reading propagates, with the partial file rolled back.
    """
    writer.checkpoint()
    try:
        bom = bom_encoding(prefix)
        if bom:
            _pump(writer, path, fh, prefix, size_bytes, bom, "replace", chunk_bytes)
            return bom
        try:
            _pump(writer, path, fh, prefix, size_bytes, "utf-8", "strict", chunk_bytes)
            return "utf-8"
        except _StreamError as err:
            writer.rollback()
            if err.truncated:
                encoding = "utf-8"
            else:
                fh.seek(max(0, err.pos - LOOKBEHIND_BYTES))
                window = fh.read(SAMPLE_BYTES + LOOKBEHIND_BYTES)
                encoding = detect_encoding(_sample_at(window, min(err.pos, LOOKBEHIND_BYTES)))
        fh.seek(0)
        _pump(writer, path, fh, fh.read(chunk_bytes), size_bytes, encoding, "replace", chunk_bytes)
        return encoding
    except BaseException:
        writer.rollback()
        raise
