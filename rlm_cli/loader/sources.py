"""Loading sources (files, directories, ``-`` for stdin) into a :class:`~rlm_cli.context.LoadedContext`.

Rules (``rlm ls`` shows their outcome):

* A directory loads git's file set (``walk.py``): tracked plus untracked-but-not-ignored files,
  hidden files included, computed from the ignore files when git cannot answer. On top of it the
  default excludes, ``--exclude`` and ``--include`` (``filters.py``), then ``--max-file-size``.
  Symlinks are skipped unless ``--follow-symlinks``. Nested repositories are reported, not entered.
* A file named explicitly is loaded whatever its name or ``--max-file-size`` (binary files
  excepted). A named FIFO (``<(cmd)``) or character device is read like stdin; a named socket or
  block device is skipped (``not a regular file (socket)``).
* ``-`` reads standard input (only then). Streams (stdin, FIFOs, devices) are sniffed from their
  first 8 KiB (a binary one, like ``/dev/zero``, is skipped without reading on), then spooled to a
  temporary file next to the context file, so a decoding restart never needs the data twice in
  memory. All streams are spooled before any file is read.
* ``--max-input-size`` bounds every source together, in bytes: walked and named files are counted
  from ``stat`` before anything is read (binary files do not count), and streams are counted while
  they are spooled, which stops as soon as the total passes the limit. Either way the load stops
  with a one-line :class:`InputError` (exit 2) instead of filling the disk.
* Documents (PDF, HTML, DOCX, notebooks, EPUB; ``convert/``) are converted to text in a worker
  process with memory and time limits; a document that cannot be converted (encrypted, corrupt, no
  text layer, a missing extra) is skipped with the reason when found by walking, and stops the load
  with :class:`InputError` when named explicitly. Its text is bounded by ``--max-input-size``.
* Other binary files are judged from their first 8 KiB and skipped; text is decoded by ``decode.py``.
  Unreadable files are skipped and reported; a missing source and an empty stdin stop the load with
  :class:`InputError` (exit 2).
* Displayed paths: under a directory, the directory as typed (normalised, no ``./``) joined with the
  path inside it; a file as typed; ``<stdin>``. The same file reached twice is loaded once.
* URLs and git remotes (``remote.py``) are fetched or cloned first, then loaded as a named file (shown
  as its URL) or a walked directory (shown under the remote's name); ``--max-input-size`` counts them.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

from rlm_cli.context import STDIN_PATH, ContextWriter, LoadedContext
from rlm_cli.errors import InputError
from rlm_cli.loader import parallel
from rlm_cli.loader.binary import PREFIX_BYTES, binary_reason
from rlm_cli.loader.convert import detect
from rlm_cli.loader.convert.load import Conversions
from rlm_cli.loader.convert.progress import ConversionProgress
from rlm_cli.loader.filters import NOT_INCLUDED, PathFilter
from rlm_cli.loader.options import LoadOptions, format_size
from rlm_cli.loader.read import OverBudget, load_file, spool, unreadable
from rlm_cli.loader.walk import WalkState, list_directory

__all__ = ["LoadOptions", "display_prefix", "load_sources"]

_SKIP_KINDS = {"repo", "missing", "special", "broken", "loop", "unreadable"}


class _Item(NamedTuple):
    path: str  # as displayed
    fs_path: str | None  # None: standard input (or a stream skipped as binary)
    size: int = 0  # bytes, from stat
    walked: bool = False
    stream: bool = False  # a FIFO or device: spool it first
    skip: str | None = None  # a spooled stream found binary: the reason (it holds its place in order)


@dataclass
class _Plan:
    items: list[_Item] = field(default_factory=list)
    skipped: list[tuple[str, str, int | None]] = field(default_factory=list)
    seen: dict[tuple[int, int], int] = field(default_factory=dict)  # (device, inode) -> source index
    walked_bytes: int = 0
    walked_files: int = 0
    named_bytes: int = 0  # regular files named explicitly


def display_prefix(source: str) -> str:
    """How a directory source prefixes the paths under it: ``"src/"``, ``""`` for ``.``, ``"/abs/"``."""
    p = source.replace(os.sep, "/") if os.sep != "/" else source
    p = posixpath.normpath(p)
    if p == ".":
        return ""
    return p if p.endswith("/") else p + "/"


def _safe(path: str) -> str:
    """A displayable path: undecodable bytes become ``\\xNN`` escapes (so names that differ only there
    stay distinct), line breaks are escaped. Names that still collide are told apart by
    :func:`_unique`."""
    if not path.isascii():
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:  # a file name that is not UTF-8, decoded with surrogateescape
            path = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if "\n" in path or "\r" in path:
        path = path.replace("\n", "\\n").replace("\r", "\\r")
    return path


def _unique(items: list[_Item]) -> list[_Item]:
    """``items`` with every display path distinct (they are the keys of ``files``): a path already
    taken gets `` (2)``, `` (3)``... appended, so no file's content is ever dropped."""
    taken: set[str] = set()
    out = []
    for item in items:
        path, n = item.path, 1
        while path in taken:
            n += 1
            path = f"{item.path} ({n})"
        taken.add(path)
        out.append(item if path == item.path else item._replace(path=path))
    return out


def _plan_directory(src: str, index: int, options: LoadOptions, plan: _Plan, prefix: str) -> None:
    pf = PathFilter(options)
    state = WalkState(follow_symlinks=options.follow_symlinks, prune=pf.dir_excluded)
    excluded_dirs: dict[str, list] = {}
    not_included = 0
    file_reason, max_size = pf.file_reason, options.max_file_size
    items, skipped, seen = plan.items, plan.skipped, plan.seen
    for found in list_directory(src, state):
        kind = found.kind
        if kind == "excluded":
            entry = excluded_dirs.setdefault(_safe(prefix + found.rel), [found.detail, 0])
            entry[1] = -1 if found.size < 0 else entry[1] + 1
            continue
        if kind in _SKIP_KINDS:
            skipped.append((_safe(prefix + found.rel), found.detail, None))
            continue
        reason = file_reason(found.rel)
        if reason is not None:
            if reason == NOT_INCLUDED:
                not_included += 1
            else:
                skipped.append((_safe(prefix + found.rel), reason, found.size or None))
            continue
        shown = _safe(prefix + found.rel)
        if kind == "symlink":
            skipped.append((shown, "symlink (not followed; use --follow-symlinks)", None))
            continue
        size = found.size
        if size > max_size:
            skipped.append((shown, f"over --max-file-size ({format_size(max_size)})", size))
            continue
        # hard links inside one tree are distinct files to git; a file reached again through another
        # source or a followed symlink is the same file, loaded once
        key = found.key
        prev = seen.get(key)
        if prev is not None and (found.linked or prev != index):
            continue
        if prev is None:
            seen[key] = index
        items.append(_Item(shown, found.fs_path, size, walked=True))
        plan.walked_bytes += size
        plan.walked_files += 1
    for shown, (reason, count) in excluded_dirs.items():
        # git listed the files of an excluded directory; the rules walk never entered it
        detail = "directory" if count < 0 else f"{count} file{'s' if count != 1 else ''}"
        plan.skipped.append((shown, f"{reason} ({detail})", None))
    if not_included:
        plan.skipped.append((prefix or "./", f"{not_included} files not matched by --include", None))


def _plan_file(src: str, index: int, plan: _Plan, shown: str) -> None:
    try:
        st = os.stat(src)
    except OSError as exc:
        raise InputError(f"cannot read {src}: {exc.strerror}") from None
    key = (st.st_dev, st.st_ino)
    if key in plan.seen:
        return
    plan.seen[key] = index
    mode = st.st_mode
    if stat.S_ISREG(mode):
        plan.items.append(_Item(_safe(shown), src, st.st_size))
        plan.named_bytes += st.st_size
    elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):  # <(cmd), /dev/stdin, a device: read as a stream
        plan.items.append(_Item(_safe(shown), src, 0, stream=True))
    else:
        what = "socket" if stat.S_ISSOCK(mode) else "block device" if stat.S_ISBLK(mode) else "special file"
        plan.skipped.append((_safe(shown), f"not a regular file ({what})", None))


def _plan(sources: list[str], options: LoadOptions, names: dict[str, str]) -> _Plan:
    plan = _Plan()
    stdin_seen = False
    for index, src in enumerate(sources):
        if src == "-":
            if not stdin_seen:
                plan.items.append(_Item(STDIN_PATH, None, stream=True))
            stdin_seen = True
        elif not os.path.exists(src):
            broken = " (a broken symbolic link)" if os.path.islink(src) else ""
            raise InputError(f"no such file or directory: {src}{broken}")
        elif os.path.isdir(src):
            _plan_directory(src, index, options, plan, names.get(src) or display_prefix(src))
        else:
            _plan_file(src, index, plan, names.get(src, src))
    return plan


def _check_input_size(plan: _Plan, sources: list[str], options: LoadOptions, names: dict[str, str]) -> int:
    """Stop before reading anything when the files exceed ``--max-input-size``; returns the bytes counted.

    Walked and named files count with their ``stat`` size (bytes); binary files do not: when over
    the limit, the files are sniffed (first 8 KiB) first. Streams are counted while they are spooled.
    """
    total = plan.walked_bytes + plan.named_bytes
    if total <= options.max_input_size:
        return total
    text_files, total, named = 0, 0, []
    for item in plan.items:
        if item.stream:
            continue
        try:
            with open(item.fs_path, "rb") as fh:
                prefix = fh.read(PREFIX_BYTES)
                if binary_reason(prefix) and detect(prefix, item.path, item.fs_path) is None:
                    continue
        except OSError:
            continue
        total += item.size
        text_files += 1
        if not item.walked:
            named.append(item.path)
    if total <= options.max_input_size:
        return total
    limit = format_size(options.max_input_size)
    dirs = [names.get(s, s) for s in sources if s != "-" and os.path.isdir(s)]
    what = dirs + named[:3] + ([f"{len(named) - 3} more files"] if len(named) > 3 else [])
    if not dirs:
        raise InputError(f"{', '.join(what)} would load {format_size(total)}, over --max-input-size "
                         f"({limit}): raise --max-input-size (e.g. --max-input-size {_round_up(total)})")
    raise InputError(
        f"{', '.join(what)} would load {format_size(total)} in {text_files:,} files, over --max-input-size "
        f"({limit}): narrow it with --include (e.g. --include 'src/' --include '*.py') or --exclude, "
        f"or raise --max-input-size"
    )


def _round_up(n: int) -> str:
    """A size at least ``n`` bytes, for a suggestion: ``"300MB"``, ``"2GB"``."""
    for unit, scale in (("MB", 10**6), ("GB", 10**9)):
        if n < 1000 * scale or unit == "GB":
            return f"{-(-n // scale)}{unit}"
    raise AssertionError("unreachable")


def _spool_streams(plan: _Plan, budget: int, options: LoadOptions, directory: str,
                   stdin: BinaryIO | None, spooled: list[str]) -> list[_Item]:
    """Spool every stream (stdin, FIFOs, devices) to a temporary file, within ``budget`` bytes.

    Returns the items with each stream replaced by its spooled file, or by a skip when it was binary;
    appends temporary paths to ``spooled`` (the caller deletes them). Raises :class:`InputError` when
    a stream is empty, a terminal, or takes the input over ``--max-input-size``.
    """
    items = []
    for item in plan.items:
        if not item.stream:
            items.append(item)
            continue
        if item.fs_path is None:
            name, hint = "standard input", "nothing was piped or redirected into it"
            stream = stdin if stdin is not None else sys.stdin.buffer
        else:
            name, hint = item.fs_path, "the pipe or device gave no data"
            try:
                stream = open(item.fs_path, "rb")  # noqa: SIM115 - closed below
            except OSError as exc:
                items.append(item._replace(fs_path=None, stream=False, skip=unreadable(exc)))
                continue
        try:
            result = spool(stream, directory, name, budget, empty_hint=hint)
        except OverBudget as over:
            others = options.max_input_size - budget
            with_others = f", of which the other sources take {format_size(others)}" if others else ""
            raise InputError(
                f"{name} goes over --max-input-size ({format_size(options.max_input_size)}{with_others}): "
                f"stopped reading after {format_size(over.read)}; raise --max-input-size "
                f"(e.g. --max-input-size {_round_up(2 * options.max_input_size)})") from None
        except OSError as exc:
            items.append(item._replace(fs_path=None, stream=False, skip=unreadable(exc)))
            continue
        finally:
            if item.fs_path is not None:
                stream.close()
        if result.path is None:
            items.append(item._replace(fs_path=None, stream=False, skip=result.binary))
            continue
        spooled.append(result.path)
        items.append(item._replace(fs_path=result.path, size=result.size, stream=False))
        budget -= result.size
    return items


def _load_item(writer: ContextWriter, item: _Item, conversions: Conversions | None = None) -> None:
    """Load one planned item; a file named explicitly converts strictly (an error, not a skip)."""
    if item.skip is not None:
        writer.skip(item.path, item.skip, None)
    else:
        load_file(writer, item.path, item.fs_path, item.size, conversions=conversions, strict=not item.walked)


def load_sources(sources: list[str], options: LoadOptions, dest: Path,
                 stdin: BinaryIO | None = None) -> LoadedContext:
    """Load ``sources`` into the context file ``dest`` (created or overwritten); see the module doc.

    Every source is checked, every directory walked and every stream spooled before any file is
    read. Raises :class:`InputError` (exit 2) for a missing source, an empty or interactive stdin,
    and input over ``options.max_input_size`` bytes (all sources together); unreadable and binary
    files are only reported (``LoadedContext.skipped``). ``OSError`` from writing ``dest`` or the
    spool files in its directory propagates.
    """
    if not sources:
        raise InputError("no source given: name files, directories, or - for standard input")
    from rlm_cli.loader.remote import resolve_remote

    dest = Path(dest)
    remote = resolve_remote(sources, options.max_input_size, str(dest.parent), allow_remote=options.allow_remote,
                            progress=options.progress)
    spooled: list[str] = remote.temp_files
    conversions = Conversions(options.max_input_size,
                              ConversionProgress(enabled=getattr(options, "progress", True)))
    loaded = None
    try:
        sources = remote.sources
        conversions.before_walk([src for src in sources if src != "-" and os.path.isdir(src)])
        plan = _plan(sources, options, remote.names)
        counted = _check_input_size(plan, sources, options, remote.names)
        items = _unique(_spool_streams(plan, options.max_input_size - counted, options, str(dest.parent),
                                       stdin, spooled))
        writer = ContextWriter(dest, digests=getattr(options, "digests", True))
        conversions.prestart([item.path for item in items], [item.fs_path for item in items])

        def load_item(writer: ContextWriter, item: _Item) -> None:
            _load_item(writer, item, conversions)  # looked up at each call (tests wrap it)
        try:
            for path, reason, size in plan.skipped:
                writer.skip(path, reason, size)
            if parallel.available(len(items), sum(item.size for item in items)):
                parallel.load_in_two(writer, items, load_item, dest.with_name(dest.name + ".part"))
            else:
                for item in items:
                    load_item(writer, item)
            loaded = writer.finish()
            loaded.origins = remote.origins
            return loaded
        except BaseException:
            writer.abort()
            raise
    except BaseException:
        remote.discard_checkouts()  # a clone made for a load that failed is not kept
        raise
    finally:
        conversions.close(loaded=loaded is not None)
        for tmp in spooled:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
