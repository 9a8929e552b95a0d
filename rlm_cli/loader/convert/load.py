"""The loader's side of conversions: a detected document goes to the worker process and its text
into the context file, or becomes a skip (found by walking) or an :class:`InputError` (named).

Converted text is kept in the user cache (:mod:`.cache`), keyed by the SHA-256 of the document's
bytes and the converter's identity, so loading the same documents again starts no worker: a cached
document enters the context exactly as a fresh conversion would (same text, note, page offsets,
and the same ``--max-input-size`` bound)."""

from __future__ import annotations

import hashlib
import os

from rlm_cli.context import ContextWriter
from rlm_cli.errors import InputError
from rlm_cli.loader.convert import ConversionError, Converted, over_budget
from rlm_cli.loader.convert.cache import ConvertCache, entry_key
from rlm_cli.loader.convert.progress import ConversionProgress
from rlm_cli.loader.convert.worker import ConverterProcess

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
_UNSET = object()
EARLY_KINDS = ("html", "pdf")  # the converters a worker started before the walk imports


def walked_key(directories: list[str]) -> str:
    """The convert cache key (hex) of the mark left by a load of ``directories`` (real paths,
    sorted): an empty entry that only says "loaded before, its documents are cached". A hint for
    :meth:`Conversions.before_walk`, never trusted for content."""
    return entry_key("walked", hashlib.sha256("\0".join(directories).encode("utf-8", "surrogatepass")).hexdigest())


def file_signature(st: os.stat_result) -> tuple:
    """What tells a file's version apart without reading it: device, inode, size, mtime and ctime (ns)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Conversions:
    """Converts the documents of one load (see :mod:`rlm_cli.loader.convert`).

    ``max_chars`` bounds one document's text (characters; the load passes ``--max-input-size``,
    read as characters). ``progress`` is shown on a terminal for slow conversions. ``cache``: a
    :class:`ConvertCache`, ``None`` for none, or (default) the user's, opened at the first document.
    :meth:`close` ends the worker process and the bar. ``converted`` counts the documents sent to
    the worker, ``cached`` those taken from the cache.
    """

    def __init__(self, max_chars: int, progress: ConversionProgress | None = None, cache=_UNSET) -> None:
        self.max_chars = max_chars
        self.process = ConverterProcess()
        self.progress = progress if progress is not None else ConversionProgress()
        self._cache = cache
        self._hashes: dict[str, tuple[tuple, str]] = {}  # fs_path -> (signature, SHA-256 of its bytes)
        self.converted = self.cached = 0
        self._walked: list[str] = []  # real paths of the directories of this load (before_walk)

    def cache(self) -> ConvertCache | None:
        """The cache in use (opened on first call), or ``None``."""
        if self._cache is _UNSET:
            self._cache = ConvertCache.open()
        return self._cache

    def _hash(self, fs_path: str, fd: int | None = None, start: bytes = b"") -> tuple[tuple, str] | None:
        """``(signature, hex SHA-256)`` of the file's bytes (remembered per signature), or ``None``
        when it cannot be read. With ``fd`` (positioned after ``start``, its first bytes), that open
        file is hashed."""
        try:
            if fd is None:
                known = self._hashes.get(fs_path)
                if known is not None and file_signature(os.stat(fs_path)) == known[0]:
                    return known
                fd = os.open(fs_path, _OPEN_FLAGS)
                own = True
            else:
                own = False
            try:
                sig = file_signature(os.fstat(fd))
                digest = hashlib.sha256(start)
                while chunk := os.read(fd, 1 << 20):
                    digest.update(chunk)
            finally:
                if own:
                    os.close(fd)
        except OSError:
            return None
        self._hashes[fs_path] = (sig, digest.hexdigest())
        return self._hashes[fs_path]

    def add(self, writer: ContextWriter, path: str, fs_path: str, size_bytes: int, kind: str,
            strict: bool) -> bool:
        """Convert the file at ``fs_path`` (``kind`` from :func:`~rlm_cli.loader.convert.detect`)
        into ``writer`` as ``path``; returns whether it was loaded. A verified cache entry for the
        same bytes is used instead of the worker; a fresh conversion is stored when the file did not
        change while it was converted.

        A failure is a skip with the reason, or with ``strict`` (the file was named explicitly) an
        :class:`InputError`: ``cannot convert PATH: REASON``. ``OSError`` from writing propagates.
        """
        cache = self.cache()
        hashed = self._hash(fs_path) if cache is not None else None
        key = entry_key(kind, hashed[1]) if hashed is not None else None
        result = cache.get(key) if key is not None else None
        if result is not None:
            self.cached += 1
            if len(result.text) > self.max_chars:  # as the converter itself would have stopped
                return self._failed(writer, path, size_bytes, strict, str(over_budget(self.max_chars)))
            return self._write(writer, path, size_bytes, result)
        self.progress.start(path)
        try:
            self.converted += 1
            result = self.process.convert(kind, fs_path, self.max_chars, self.progress.update)
        except ConversionError as exc:
            return self._failed(writer, path, size_bytes, strict, str(exc))
        finally:
            self.progress.done()
        if key is not None:
            try:
                unchanged = file_signature(os.stat(fs_path)) == hashed[0]
            except OSError:
                unchanged = False
            if unchanged:
                cache.put(key, result)
        return self._write(writer, path, size_bytes, result)

    @staticmethod
    def _write(writer: ContextWriter, path: str, size_bytes: int, result: Converted) -> bool:
        writer.add(path, result.text, size_bytes=size_bytes,
                   converted=result.note, pages=tuple(result.pages) if result.pages else None)
        return True

    @staticmethod
    def _failed(writer: ContextWriter, path: str, size_bytes: int, strict: bool, reason: str) -> bool:
        if strict:
            from rlm_cli.view.safe import inline

            raise InputError(f"cannot convert {inline(path)}: {inline(reason, 300)}") from None
        writer.skip(path, reason, size_bytes or None)
        return False

    def before_walk(self, directories: list[str]) -> None:
        """Start the worker importing the usual converters (:data:`EARLY_KINDS`) before
        ``directories`` (paths) are walked, when a second CPU is free to do it and this user's cache
        has no mark that they were loaded before (:func:`walked_key`): a walk finds its documents
        late (Django's PDFs come after its 2,700 source files), and a worker started only then
        competes with the load for the CPUs (issue 24: `rlm ls` on Django, first run, 0.56 s ->
        0.47 s against files-to-prompt's 0.36 s). :meth:`prestart` kills it when the plan holds
        nothing to convert, and :meth:`close` marks the directories, so a second question of the same
        tree (its documents cached) starts no worker at all. Never raises."""
        self._walked = sorted({os.path.realpath(d) for d in directories})
        if not self._walked:
            return
        cache = self.cache()
        if cache is not None and cache.has(walked_key(self._walked)):
            return
        try:
            if len(os.sched_getaffinity(0)) < 2:
                return
        except (AttributeError, OSError):
            return
        self.process.prestart(list(EARLY_KINDS))

    def prestart(self, names: list[str], fs_paths: list[str | None] | None = None) -> None:
        """Start the worker early when any of ``names`` (paths) has a document's extension, unless
        (given ``fs_paths``, the files on disk in the same order) every such document is in the
        cache already; a miss found later starts it then."""
        from rlm_cli.loader.convert import extension_kind

        docs = [(i, kind) for i, kind in enumerate(map(extension_kind, names)) if kind]
        if not docs or (fs_paths is not None and self.cache() is not None and self._all_cached(
                [(names[i], fs_paths[i]) for i, _ in docs if i < len(fs_paths)])):
            self.process.stop()  # started by before_walk for nothing: no CPU spent on it from now on
            return
        self.process.prestart(sorted({kind for _, kind in docs}))

    def _all_cached(self, documents: list[tuple[str, str | None]]) -> bool:
        """Whether every one of ``documents`` (``(name, fs_path)``: files with a document's
        extension) that is one by its first bytes has a cache entry; stops at the first that has
        none. Hashes are remembered for :meth:`add`."""
        from rlm_cli.loader.binary import PREFIX_BYTES
        from rlm_cli.loader.convert import detect

        cache = self.cache()
        for name, fs_path in documents:
            if fs_path is None:
                continue
            try:
                fd = os.open(fs_path, _OPEN_FLAGS)
            except OSError:
                continue
            try:
                prefix = os.read(fd, PREFIX_BYTES)
                kind = detect(prefix, name, fs_path)
                hashed = self._hash(fs_path, fd, prefix) if kind is not None else None
            except OSError:
                continue
            finally:
                os.close(fd)
            if kind is not None and (hashed is None or not cache.has(entry_key(kind, hashed[1]))):
                return False
        return True

    def close(self, loaded: bool = False) -> None:
        """End the worker process and remove the bar; after a load that succeeded (``loaded``),
        mark its directories as loaded (see :meth:`before_walk`). A worker that was never asked to
        convert (started ahead of a walk that ended in an error) is killed, not waited for."""
        if self.converted == 0:
            self.process.stop()
        self.process.close()
        self.progress.close()
        if loaded and self._walked and self._cache is not _UNSET and self._cache is not None:
            key = walked_key(self._walked)
            if not self._cache.has(key):
                self._cache.put(key, Converted("", ""), evict=False)
