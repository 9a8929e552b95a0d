"""Converted text kept between loads, so a document is converted once, not on every question.

Entries live in ``<cache dir>/convert`` (:func:`rlm_cli.settings.paths.cache_dir`, so under
``$RLM_HOME/cache`` when that is set), one file per document, named by its key: the SHA-256 of the
converter's identity (:func:`converter_identity`: rlm's version, the converters' own source, the
versions of pypdf, Beautiful Soup, python-docx and chardet, Python's version), the converter kind
and the SHA-256 of the original file's bytes. A change of any of them is a new key; old entries age
out. Only successful conversions are kept (a failure is converted afresh each time).

The cache is untrusted input: an entry is the header line (JSON: ``{"meta": {...}, "sha256": hex}``,
``meta`` holding the key, the note, the PDF page offsets and the text's length in characters), then
the text. On read it is opened without following symlinks (``O_NOFOLLOW``, relative to the
directory opened the same way), must be a regular file with one link, owned by this user and not
readable or writable by others, and its header must name the expected key and hash to the header's
``sha256`` together with the text. Anything else (tampered, truncated, foreign, renamed into place)
is removed and the document converted afresh. Entries are written atomically (a temporary file of
mode 0600 renamed into place; not flushed to disk, as a torn entry fails that check) into a directory of mode 0700 owned by the
user; a directory that is a symlink, not ours, or open to others (and cannot be made 0700) disables
the cache for the load.

Size: at most :data:`DEFAULT_MAX_BYTES` bytes in all, or ``RLM_CONVERT_CACHE_MAX`` (a size such as
``64MB``; ``0`` turns the cache off). A read marks an entry used (its mtime); after a write the
least recently used entries are removed until the total fits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
from pathlib import Path

from rlm_cli.loader.convert import Converted

DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # the cache's total size (bytes) unless RLM_CONVERT_CACHE_MAX says
ENV_MAX = "RLM_CONVERT_CACHE_MAX"
FORMAT = "rlm-convert-cache/1"
SUBDIR = "convert"
SUFFIX = ".txt"
STALE_TMP_SECONDS = 3600.0  # a temporary file older than this was left by a crash: removed
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# the converters' own code: a change to any of them is a new converter
_SOURCES = ("__init__.py", "pdf.py", "html.py", "docx.py", "epub.py", "notebook.py")
_LIBRARIES = (("pypdf", "pypdf"), ("bs4", "beautifulsoup4"), ("docx", "python_docx"), ("chardet", "chardet"))
_identity: str | None = None


def max_bytes_from_env() -> int:
    """The cache's bound in bytes: ``RLM_CONVERT_CACHE_MAX`` (``"64MB"``, ``"0"`` for off), else
    :data:`DEFAULT_MAX_BYTES`. An unreadable value turns the cache off (never fails a load)."""
    value = os.environ.get(ENV_MAX)
    if value is None or not value.strip():
        return DEFAULT_MAX_BYTES
    from rlm_cli.loader.options import parse_size

    try:
        return max(0, parse_size(value))
    except ValueError:
        return 0


def _library_versions() -> list[str]:
    """``dist-info`` directory names of the converters' libraries (their versions), found without
    importing them; a library that is not installed counts as ``"<module>:absent"``."""
    import importlib.util

    out, listings = [], {}
    for module, dist in _LIBRARIES:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin:
            out.append(f"{module}:absent")
            continue
        site = os.path.dirname(os.path.dirname(spec.origin))
        if site not in listings:
            try:
                listings[site] = os.listdir(site)
            except OSError:
                listings[site] = []
        found = sorted(n for n in listings[site]
                       if n.lower().startswith(dist.lower() + "-") and n.endswith(".dist-info"))
        out.append(",".join(found) or f"{module}:{spec.origin}")
    return out


def converter_identity() -> str:
    """A hex digest naming the converters as they are installed (see the module doc); computed once
    per process (about 20 ms, only for loads that hold documents)."""
    global _identity
    if _identity is None:
        import rlm_cli

        digest = hashlib.sha256(f"{FORMAT}\0{rlm_cli.__version__}\0{sys.version_info[:2]}\0".encode())
        here = Path(__file__).resolve().parent
        for name in (*_SOURCES, "../decode.py"):
            try:
                digest.update((here / name).read_bytes())
            except OSError:
                digest.update(b"missing:" + name.encode())
        digest.update("\0".join(_library_versions()).encode())
        _identity = digest.hexdigest()
    return _identity


def entry_key(kind: str, content_sha256: str) -> str:
    """The key (hex) of a document of converter ``kind`` whose bytes hash to ``content_sha256``."""
    return hashlib.sha256(f"{converter_identity()}\0{kind}\0{content_sha256}".encode()).hexdigest()


def _payload_digest(meta_json: str, text: str) -> str:
    digest = hashlib.sha256(meta_json.encode("utf-8"))
    digest.update(b"\n")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _meta_json(meta: dict) -> str:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def encode_entry(key: str, result: Converted) -> str:
    """The file content for ``result`` under ``key``: header line, then the text (see the module doc)."""
    meta = {"format": FORMAT, "key": key, "chars": len(result.text), "note": result.note,
            "pages": list(result.pages) if result.pages is not None else None}
    meta_json = _meta_json(meta)
    header = json.dumps({"meta": meta, "sha256": _payload_digest(meta_json, result.text)},
                        sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return header + "\n" + result.text


def decode_entry(key: str, data: bytes) -> Converted | None:
    """The :class:`Converted` an entry's bytes hold when they are a whole, untampered entry for
    ``key``; ``None`` otherwise."""
    newline = data.find(b"\n")
    if newline < 0:
        return None
    try:
        header = json.loads(data[:newline])
        text = data[newline + 1:].decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or not isinstance(header.get("meta"), dict):
        return None
    meta = header["meta"]
    if meta.get("format") != FORMAT or meta.get("key") != key or meta.get("chars") != len(text):
        return None
    if header.get("sha256") != _payload_digest(_meta_json(meta), text):
        return None
    note, pages = meta.get("note"), meta.get("pages")
    if not isinstance(note, str):
        return None
    if pages is not None and not (isinstance(pages, list) and all(
            type(p) is int and 0 <= p <= len(text) for p in pages)):
        return None
    return Converted(text, note, pages)


def _write_entry(directory: Path, name: str, content: str) -> None:
    """Write an entry atomically: a new temporary file (``O_EXCL``, mode 0600) in ``directory``, then
    renamed over ``name``. No ``fsync``: every entry is verified on read, so one torn by a crash is a
    miss (removed, converted afresh), and a load that stores eight documents does not wait for eight
    disk flushes. Raises ``OSError``; the temporary file is removed on failure."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass") as fh:
            fh.write(content)
        os.replace(tmp, directory / name)
    except BaseException:
        _unlink(Path(tmp))
        raise


class ConvertCache:
    """The cache directory of one load (see the module doc).

    :meth:`get` returns a verified :class:`Converted` or ``None``; :meth:`put` stores one; neither
    raises (a cache that cannot be used is a miss). ``directory`` defaults to ``<cache dir>/convert``;
    ``max_bytes`` to :func:`max_bytes_from_env`. :meth:`open` returns ``None`` when the cache is off
    or its directory is unsafe.
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes

    @classmethod
    def open(cls, directory: Path | None = None, max_bytes: int | None = None) -> ConvertCache | None:
        """The cache in ``directory``, created 0700 if missing, or ``None`` (off, or unsafe)."""
        max_bytes = max_bytes_from_env() if max_bytes is None else max_bytes
        if max_bytes <= 0:
            return None
        if directory is None:
            from rlm_cli.settings.paths import cache_dir

            directory = cache_dir() / SUBDIR
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(directory, 0o700)
            if not _safe_directory(directory):
                return None
        except OSError:
            return None
        return cls(directory, max_bytes)

    def has(self, key: str) -> bool:
        """Whether an entry file for ``key`` exists (not verified: a hint for starting the worker)."""
        try:
            return stat.S_ISREG(os.lstat(self.directory / (key + SUFFIX)).st_mode)
        except OSError:
            return False

    def get(self, key: str) -> Converted | None:
        """The verified entry for ``key``, marked as used; ``None`` (and a bad entry removed) otherwise."""
        name = key + SUFFIX
        try:
            dfd = os.open(self.directory, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
        except OSError:
            return None
        try:
            try:
                fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0),
                             dir_fd=dfd)
            except FileNotFoundError:
                return None
            except OSError:  # a symlink (ELOOP) or worse planted here
                self._remove(name, dfd)
                return None
            try:
                st = os.fstat(fd)
                result = None
                if _trusted_file(st) and st.st_size <= self.max_bytes:
                    result = decode_entry(key, _read_all(fd, st.st_size))
            finally:
                os.close(fd)
            if result is None:
                self._remove(name, dfd)
                return None
            with contextlib.suppress(OSError, NotImplementedError):
                os.utime(name, dir_fd=dfd, follow_symlinks=False)  # least recently used goes first
            return result
        except OSError:
            return None
        finally:
            os.close(dfd)

    def put(self, key: str, result: Converted, evict: bool = True) -> None:
        """Store ``result`` under ``key`` (atomically, 0600), then (unless ``evict`` is false: a caller
        storing many small entries trims now and then) evict down to the bound; an entry larger than
        the whole bound is not stored. Never raises."""
        content = encode_entry(key, result)
        if len(content) > self.max_bytes or len(content.encode("utf-8", "surrogatepass")) > self.max_bytes:
            return
        try:
            if not _safe_directory(self.directory):
                return
            _write_entry(self.directory, key + SUFFIX, content)
        except OSError:
            return
        if evict:
            self.evict()

    def evict(self) -> None:
        """Remove least recently used entries (oldest mtime first) until the total fits
        ``max_bytes``; also temporary files left by a crash and anything that is not an entry."""
        import time

        entries, total, now = [], 0, time.time()
        try:
            with os.scandir(self.directory) as it:
                for item in it:
                    try:
                        st = item.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if item.name.startswith("."):
                        if stat.S_ISREG(st.st_mode) and now - st.st_mtime > STALE_TMP_SECONDS:
                            _unlink(self.directory / item.name)
                        continue
                    if not stat.S_ISREG(st.st_mode) or not item.name.endswith(SUFFIX):
                        _unlink(self.directory / item.name)  # symlinks and strays (never a directory)
                        continue
                    entries.append((st.st_mtime_ns, item.name, st.st_size))
                    total += st.st_size
        except OSError:
            return
        entries.sort()
        for _, name, size in entries:
            if total <= self.max_bytes:
                break
            _unlink(self.directory / name)
            total -= size

    def _remove(self, name: str, dfd: int) -> None:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dfd)


def _trusted_file(st: os.stat_result) -> bool:
    """A regular file with one link, ours, closed to others."""
    owner_ok = not hasattr(os, "geteuid") or st.st_uid == os.geteuid()
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and owner_ok and not st.st_mode & 0o077


def _safe_directory(directory: Path) -> bool:
    """Whether ``directory`` is a real directory (not a symlink) of ours, made 0700 if it was wider."""
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode):
        return False
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return False
    if st.st_mode & 0o077:
        os.chmod(directory, 0o700)  # checked above: not a symlink
        return not os.lstat(directory).st_mode & 0o077
    return True


def _read_all(fd: int, size: int) -> bytes:
    chunks, left = [], size + 1
    while left > 0:
        data = os.read(fd, min(left, 1 << 24))
        if not data:
            break
        chunks.append(data)
        left -= len(data)
    return b"".join(chunks)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
