"""The loaded context: one UTF-8 file on disk plus per-file metadata.

The context string the root LM programs against (``context`` in the REPL) is every loaded source
concatenated, each file introduced by a header line ``==> PATH <==`` (the format ``head``/``tail``
use for several files). It is written once to disk by :class:`ContextWriter` and read once by the
REPL child, so a multi-gigabyte input never has to be held twice by the parent, nor serialised per
step. Sizes are in characters (Unicode code points) unless a name says bytes; token counts are
estimates (``chars / 4``, the usual rule of thumb for English text and code under BPE tokenisers).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

HEADER_TEMPLATE = "==> {path} <==\n"
DIGEST_SIZE = 16  # bytes of a file's BLAKE2b fingerprint (see :func:`text_digest`)
CHARS_PER_TOKEN = 4
STDIN_PATH = "<stdin>"

_LANGUAGES = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".jsx": "javascript", ".ts": "typescript", ".tsx": "typescript", ".go": "go", ".rs": "rust",
    ".java": "java", ".kt": "kotlin", ".scala": "scala", ".c": "c", ".h": "c", ".cc": "cpp",
    ".cpp": "cpp", ".hpp": "cpp", ".cs": "csharp", ".rb": "ruby", ".php": "php", ".swift": "swift",
    ".m": "objective-c", ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".fish": "shell",
    ".ps1": "powershell", ".sql": "sql", ".html": "html", ".htm": "html", ".css": "css",
    ".scss": "scss", ".md": "markdown", ".rst": "rst", ".txt": "text", ".json": "json",
    ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".ini": "ini", ".cfg": "ini", ".xml": "xml",
    ".csv": "csv", ".tsv": "tsv", ".log": "log", ".lua": "lua", ".r": "r", ".jl": "julia",
    ".ex": "elixir", ".exs": "elixir", ".erl": "erlang", ".hs": "haskell", ".ml": "ocaml",
    ".clj": "clojure", ".dart": "dart", ".vue": "vue", ".svelte": "svelte", ".tf": "terraform",
    ".proto": "protobuf", ".graphql": "graphql", ".dockerfile": "dockerfile",
}
_LANGUAGE_NAMES = {"Dockerfile": "dockerfile", "Makefile": "make", "CMakeLists.txt": "cmake"}


def language_for(path: str) -> str | None:
    """Language name guessed from a path's file name or extension, or ``None``."""
    name = path.rstrip("/").rpartition("/")[2]  # string ops: called once per loaded file
    if name in _LANGUAGE_NAMES:
        return _LANGUAGE_NAMES[name]
    dot = name.rfind(".")
    return _LANGUAGES.get(name[dot:].lower()) if 0 < dot < len(name) - 1 else None


def text_digest(data: bytes | str) -> str:
    """A file's fingerprint: the hex BLAKE2b digest (:data:`DIGEST_SIZE` bytes) of its text as UTF-8
    (``data``: the text, or its UTF-8 bytes; lone surrogates encoded with ``surrogatepass``). The
    format saved sessions store (``rlm_cli.run.session.fingerprints``): keep it stable."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).hexdigest()


def estimate_tokens(chars: int) -> int:
    """Estimated token count for ``chars`` characters (``ceil(chars / 4)``)."""
    return -(-chars // CHARS_PER_TOKEN)


class FileEntry(NamedTuple):
    """One loaded file (immutable; a named tuple, as one is made per file of a load).

    ``offset`` is the character offset of the file's text inside ``context`` (just after its header
    line); ``chars`` and ``lines`` measure that text; ``size_bytes`` is the size on disk (or read
    from stdin) before decoding; ``encoding`` is the codec it was decoded with. A converted document
    (PDF, HTML, DOCX...) has ``converted``, what it became (``"converted from PDF, 31 pages"``), and
    a PDF ``pages``: the character offset, relative to ``offset``, of each page's marker line
    ``--- page N ---`` (page 1 first).
    """

    path: str
    offset: int
    chars: int
    lines: int
    size_bytes: int = 0
    encoding: str = "utf-8"
    language: str | None = None
    converted: str | None = None
    pages: tuple[int, ...] | None = None


class SkippedFile(NamedTuple):
    """A file the loader passed over, with a short human reason (``"binary"``, ``"ignored"``...)."""

    path: str
    reason: str
    size_bytes: int | None = None


@dataclass
class LoadedContext:
    """The loaded input: the context file on disk and its metadata.

    ``path`` is a UTF-8 file holding exactly ``total_chars`` characters (the whole ``context``
    string); ``files`` index it. ``skipped`` lists what was not loaded and why; ``origins`` what each
    URL or git remote became (fetched, cloned). ``digests``: ``{path: fingerprint}``
    (:func:`text_digest` of each file's text, computed while it was written) for the files whose
    writer computed one; a file missing from it is hashed from the context file when needed.
    """

    path: Path
    files: list[FileEntry]
    skipped: list[SkippedFile] = field(default_factory=list)
    total_chars: int = 0
    total_bytes: int = 0
    origins: list = field(default_factory=list)  # remote sources: loader.remote.SourceOrigin
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def est_tokens(self) -> int:
        """Estimated tokens of the whole context (characters / 4)."""
        return estimate_tokens(self.total_chars)

    def read(self) -> str:
        """The whole context string (reads the file; costs one copy in memory)."""
        return self.path.read_text(encoding="utf-8")

    def index(self) -> list[list]:
        """The file index as the REPL child expects it: ``[[path, offset, chars], ...]``."""
        return [[f.path, f.offset, f.chars] for f in self.files]

    def log_dict(self) -> dict:
        """The trajectory's ``context`` field: ``{"total_chars", "est_tokens", "files": [...]}``."""
        return {
            "total_chars": self.total_chars,
            "est_tokens": self.est_tokens,
            "files": [
                {"path": f.path, "chars": f.chars, "lines": f.lines, "offset": f.offset,
                 "language": f.language, "encoding": f.encoding,
                 **({"converted": f.converted} if f.converted else {}),
                 **({"pages": list(f.pages)} if f.pages else {})}
                for f in self.files
            ],
            "skipped": [s._asdict() for s in self.skipped],
            **({"sources": [o._asdict() for o in self.origins]} if self.origins else {}),
        }


class ContextWriter:
    """Streams files into the context file, tracking offsets, characters and lines.

    Use :meth:`add` for a whole text, :meth:`add_utf8` for a file's raw bytes already known to be
    valid UTF-8 (written as they are, never re-encoded), or :meth:`begin`/:meth:`write`/:meth:`end`
    to stream a large file in chunks (nothing is held beyond the chunk). :meth:`finish` returns the
    :class:`LoadedContext`. Raises ``OSError`` if the destination cannot be written.

    With ``digests``, each file's fingerprint (:func:`text_digest`) is computed from the bytes as
    they are written (``LoadedContext.digests``), so nobody has to read the file back to hash it.
    """

    BUFFER_BYTES = 1 << 20  # bytes buffered before a write(2)

    def __init__(self, dest: Path, digests: bool = False) -> None:
        self._dest = Path(dest)
        self.digesting = digests
        # Only the user can read it (it holds a copy of the input); never written through a link, into
        # a FIFO (O_NONBLOCK: no reader fails at once) or a device.
        fd = os.open(self._dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK
                     | os.O_CLOEXEC, 0o600)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "not a regular file", str(self._dest))
        self._fh = open(fd, "wb", buffering=self.BUFFER_BYTES)  # noqa: SIM115 - closed by finish/abort
        self._pos = 0  # characters written so far
        self._bytes = 0  # bytes written so far (UTF-8)
        self._files: list[FileEntry] = []
        self._digests: list[str | None] = []  # one per entry of _files (None: not computed)
        self._skipped: list[SkippedFile] = []
        self._current: dict | None = None
        self._mark: tuple[int, int, int, int] | None = None

    def _header(self, path: str) -> None:
        header = HEADER_TEMPLATE.format(path=path)
        raw = header.encode("utf-8")
        self._fh.write(raw)
        self._pos += len(header)
        self._bytes += len(raw)

    def begin(self, path: str, size_bytes: int = 0, encoding: str = "utf-8", converted: str | None = None,
              pages: tuple[int, ...] | None = None) -> None:
        """Start a file: writes its header line. ``converted`` and ``pages``: see :class:`FileEntry`."""
        if self._current is not None:
            raise RuntimeError("begin() called while a file is open")
        self._header(path)
        self._current = {"path": path, "offset": self._pos, "chars": 0, "lines": 0,
                         "size_bytes": size_bytes, "encoding": encoding, "last": "",
                         "converted": converted, "pages": pages,
                         "hash": hashlib.blake2b(digest_size=DIGEST_SIZE) if self.digesting else None}

    def write(self, chunk: str) -> None:
        """Append a chunk of the current file's text (characters; written as UTF-8).

        Raises ``UnicodeEncodeError`` for lone surrogates, which UTF-8 cannot hold.
        """
        cur = self._current
        if cur is None:
            raise RuntimeError("write() called with no file open")
        if not chunk:
            return
        raw = chunk.encode("utf-8")
        self._fh.write(raw)
        if cur["hash"] is not None:
            cur["hash"].update(raw)
        self._bytes += len(raw)
        cur["chars"] += len(chunk)
        cur["lines"] += chunk.count("\n")
        cur["last"] = chunk[-1]
        self._pos += len(chunk)

    def end(self, encoding: str | None = None) -> FileEntry:
        """Close the current file (adds a newline if its text lacks one) and index it."""
        cur = self._current
        if cur is None:
            raise RuntimeError("end() called with no file open")
        self._current = None
        digest = cur["hash"].hexdigest() if cur["hash"] is not None else None
        return self._close(cur["path"], cur["offset"], cur["chars"], cur["lines"], cur["last"] == "\n",
                           cur["size_bytes"], encoding or cur["encoding"], cur["converted"], cur["pages"],
                           digest)

    def _close(self, path: str, offset: int, chars: int, newlines: int, ends_with_newline: bool,
               size_bytes: int, encoding: str, converted: str | None = None,
               pages: tuple[int, ...] | None = None, digest: str | None = None) -> FileEntry:
        missing = bool(chars) and not ends_with_newline
        entry = FileEntry(path=path, offset=offset, chars=chars, lines=newlines + missing,
                          size_bytes=size_bytes, encoding=encoding, language=language_for(path),
                          converted=converted, pages=pages)
        if missing:
            self._fh.write(b"\n")
            self._pos += 1
            self._bytes += 1
        self._files.append(entry)
        self._digests.append(digest)
        return entry

    def add(self, path: str, text: str, size_bytes: int | None = None, encoding: str = "utf-8",
            converted: str | None = None, pages: tuple[int, ...] | None = None) -> FileEntry:
        """Add one whole file (``size_bytes`` defaults to its length in characters); ``converted`` and
        ``pages`` for a converted document (see :class:`FileEntry`)."""
        self.begin(path, size_bytes=len(text) if size_bytes is None else size_bytes, encoding=encoding,
                   converted=converted, pages=pages)
        self.write(text)
        return self.end()

    def add_utf8(self, path: str, data: bytes, chars: int, encoding: str = "utf-8") -> FileEntry:
        """Add one whole file from ``data``, bytes that are valid UTF-8 and decode to ``chars`` characters.

        The bytes are written as they are (no decoding or re-encoding); the caller has checked them
        (``len(data)`` characters when ASCII, else ``len(data.decode("utf-8"))``). ``size_bytes`` is
        ``len(data)``. Raises ``RuntimeError`` while a file is open (:meth:`begin`), ``OSError`` from writing.
        """
        if self._current is not None:
            raise RuntimeError("add_utf8() called while a file is open")
        self._header(path)
        offset = self._pos
        self._fh.write(data)
        self._pos += chars
        self._bytes += len(data)
        return self._close(path, offset, chars, data.count(b"\n"), data.endswith(b"\n"), len(data), encoding,
                           digest=text_digest(data) if self.digesting else None)

    def skip(self, path: str, reason: str, size_bytes: int | None = None) -> None:
        """Record a file that was not loaded."""
        self._skipped.append(SkippedFile(path=path, reason=reason, size_bytes=size_bytes))

    def checkpoint(self) -> None:
        """Remember the end of what is written (between files) for :meth:`rollback`."""
        if self._current is not None:
            raise RuntimeError("checkpoint() called while a file is open")
        self._mark = (self._bytes, self._pos, len(self._files), len(self._skipped))

    def rollback(self) -> None:
        """Drop everything written since the last :meth:`checkpoint`, an open file included.

        For a file that must be decoded again with another encoding, or that failed to read half-way.
        """
        if self._mark is None:
            raise RuntimeError("rollback() called without checkpoint()")
        self._bytes, self._pos, n_files, n_skipped = self._mark
        self._fh.seek(self._bytes)
        self._fh.truncate()
        del self._files[n_files:], self._digests[n_files:], self._skipped[n_skipped:]
        self._current = None

    def mark(self) -> tuple[int, int, int, int]:
        """Where the writer is, between files: ``(bytes, chars, files, skipped)``, for :meth:`report_since`.

        Raises ``RuntimeError`` while a file is open.
        """
        if self._current is not None:
            raise RuntimeError("mark() called while a file is open")
        return (self._bytes, self._pos, len(self._files), len(self._skipped))

    def report_since(self, mark: tuple[int, int, int, int]) -> tuple:
        """What was written since ``mark`` as plain data, for :meth:`append_part` in another writer.

        ``(byte_start, byte_end, chars, files, skipped, digests)``: the byte range in this writer's
        file, the characters in it, each file's fields as a tuple with its offset made relative to
        ``chars`` at the mark, each skip as ``(path, reason, size_bytes)``, and each file's
        fingerprint (or None).
        """
        byte_start, char_start, n_files, n_skipped = mark
        files = [(f.path, f.offset - char_start, f.chars, f.lines, f.size_bytes, f.encoding, f.language,
                  f.converted, f.pages) for f in self._files[n_files:]]
        skipped = [(s.path, s.reason, s.size_bytes) for s in self._skipped[n_skipped:]]
        return (byte_start, self._bytes, self._pos - char_start, files, skipped, self._digests[n_files:])

    def append_part(self, fd: int, report: tuple) -> None:
        """Append a part another writer wrote (its :meth:`report_since`) from that writer's file ``fd``.

        The bytes are copied file to file (``copy_file_range`` where the system has it) and the
        entries are indexed with their offsets moved to where the part lands. A report without its
        sixth item (fingerprints) leaves those files without one. Raises ``OSError``, and
        ``RuntimeError`` while a file is open.
        """
        if self._current is not None:
            raise RuntimeError("append_part() called while a file is open")
        byte_start, byte_end, chars, files, skipped = report[:5]
        digests = list(report[5]) if len(report) > 5 else []
        self._fh.flush()
        _copy_range(fd, self._fh.fileno(), byte_start, self._bytes, byte_end - byte_start)
        self._bytes += byte_end - byte_start
        self._fh.seek(self._bytes)  # the buffered writer's position follows the copy
        base = self._pos
        self._files.extend(FileEntry(path, base + offset, n_chars, lines, size_bytes, encoding, language,
                                     converted, pages)
                           for path, offset, n_chars, lines, size_bytes, encoding, language, converted, pages
                           in files)
        digests += [None] * (len(files) - len(digests))
        self._digests.extend(digests[:len(files)])
        self._skipped.extend(SkippedFile(path, reason, size_bytes) for path, reason, size_bytes in skipped)
        self._pos += chars

    @property
    def chars(self) -> int:
        """Characters written so far, headers included."""
        return self._pos

    def finish(self) -> LoadedContext:
        """Flush and close the file; returns the :class:`LoadedContext`."""
        if self._current is not None:
            self.end()
        self._fh.close()
        digests = {f.path: d for f, d in zip(self._files, self._digests, strict=True) if d is not None}
        return LoadedContext(path=self._dest, files=self._files, skipped=self._skipped,
                             total_chars=self._pos, total_bytes=self._bytes, digests=digests)

    def abort(self) -> None:
        """Close and delete the partial file."""
        self._fh.close()
        self._dest.unlink(missing_ok=True)


def _copy_range(src: int, dst: int, src_offset: int, dst_offset: int, count: int) -> None:
    """Copy ``count`` bytes between open files at the given offsets (file positions untouched)."""
    copy = getattr(os, "copy_file_range", None)
    while count > 0:
        n = 0
        if copy is not None:
            try:
                n = copy(src, dst, count, src_offset, dst_offset)
            except OSError:  # e.g. EXDEV or ENOSYS: copy through memory
                copy = None
        if not n:
            data = os.pread(src, min(count, 1 << 20), src_offset)
            if not data:
                raise OSError(f"part file ended {count} bytes early")
            n = os.pwrite(dst, data, dst_offset)
        src_offset, dst_offset, count = src_offset + n, dst_offset + n, count - n
