"""Loading sources (files, directories, ``-`` for stdin) into a :class:`~rlm_cli.context.LoadedContext`.

Rules (``rlm ls`` shows their outcome):

* A directory loads git's file set (``walk.py``): tracked plus untracked-but-not-ignored files,
  hidden files included, computed from the ignore files when git cannot answer. On top of it the
  default excludes, ``--exclude`` and ``--include`` (``filters.py``), then ``--max-file-size``.
  Symlinks are skipped unless ``--follow-symlinks``. Nested repositories are reported, not entered.
* A file named explicitly is always loaded, whatever its size or name (binary files excepted); a
  named FIFO (``<(cmd)``) is read like stdin.
* ``-`` reads standard input (only then), spooled to a temporary file next to the context file so a
  decoding restart never needs the data twice in memory.
* Binary files are judged from their first 8 KiB and skipped; text is decoded by ``decode.py``.
  Unreadable files are skipped and reported; a missing source, an empty stdin and walked files
  totalling more than ``--max-input-size`` stop the load with :class:`InputError` (exit 2).
* Displayed paths: under a directory, the directory as typed (normalised, no ``./``) joined with the
  path inside it; a file as typed; ``<stdin>``. The same file reached twice is loaded once.
"""

from __future__ import annotations

import os
import posixpath
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from rlm_cli.context import STDIN_PATH, ContextWriter, LoadedContext
from rlm_cli.errors import InputError
from rlm_cli.loader.binary import PREFIX_BYTES, binary_reason
from rlm_cli.loader.filters import NOT_INCLUDED, PathFilter
from rlm_cli.loader.options import LoadOptions, format_size
from rlm_cli.loader.read import load_file, spool
from rlm_cli.loader.walk import WalkState, list_directory

__all__ = ["LoadOptions", "display_prefix", "load_sources"]

_SKIP_KINDS = {"repo", "missing", "special", "broken", "loop", "unreadable"}


@dataclass
class _Item:
    path: str  # as displayed
    fs_path: str | None  # None: standard input
    size: int = 0  # bytes, from stat
    walked: bool = False
    stream: bool = False  # a FIFO or device: spool it first


@dataclass
class _Plan:
    items: list[_Item] = field(default_factory=list)
    skipped: list[tuple[str, str, int | None]] = field(default_factory=list)
    seen: dict[tuple[int, int], int] = field(default_factory=dict)  # (device, inode) -> source index
    walked_bytes: int = 0
    walked_files: int = 0


def display_prefix(source: str) -> str:
    """How a directory source prefixes the paths under it: ``"src/"``, ``""`` for ``.``, ``"/abs/"``."""
    p = source.replace(os.sep, "/") if os.sep != "/" else source
    p = posixpath.normpath(p)
    if p == ".":
        return ""
    return p if p.endswith("/") else p + "/"


def _safe(path: str) -> str:
    """A displayable path: undecodable bytes become U+FFFD, line breaks are escaped."""
    if not path.isascii():
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:  # a file name that is not UTF-8, decoded with surrogateescape
            path = path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if "\n" in path or "\r" in path:
        path = path.replace("\n", "\\n").replace("\r", "\\r")
    return path


def _plan_directory(src: str, index: int, options: LoadOptions, plan: _Plan) -> None:
    prefix = display_prefix(src)
    pf = PathFilter(options)
    state = WalkState(follow_symlinks=options.follow_symlinks, prune=pf.dir_excluded)
    excluded_dirs: dict[str, list] = {}
    not_included = 0
    for found in list_directory(src, state):
        shown = _safe(prefix + found.rel)
        if found.kind == "excluded":
            entry = excluded_dirs.setdefault(shown, [found.detail, 0])
            entry[1] = -1 if found.size < 0 else entry[1] + 1
            continue
        if found.kind in _SKIP_KINDS:
            plan.skipped.append((shown, found.detail, None))
            continue
        reason = pf.file_reason(found.rel)
        if reason == NOT_INCLUDED:
            not_included += 1
            continue
        if reason is not None:
            plan.skipped.append((shown, reason, found.size or None))
            continue
        if found.kind == "symlink":
            plan.skipped.append((shown, "symlink (not followed; use --follow-symlinks)", None))
            continue
        if found.size > options.max_file_size:
            plan.skipped.append((shown, f"over --max-file-size ({format_size(options.max_file_size)})",
                                 found.size))
            continue
        # hard links inside one tree are distinct files to git; a file reached again through another
        # source or a followed symlink is the same file, loaded once
        if found.key in plan.seen and (found.linked or plan.seen[found.key] != index):
            continue
        plan.seen.setdefault(found.key, index)
        plan.items.append(_Item(shown, found.fs_path, found.size, walked=True))
        plan.walked_bytes += found.size
        plan.walked_files += 1
    for shown, (reason, count) in excluded_dirs.items():
        # git listed the files of an excluded directory; the rules walk never entered it
        detail = "directory" if count < 0 else f"{count} file{'s' if count != 1 else ''}"
        plan.skipped.append((shown, f"{reason} ({detail})", None))
    if not_included:
        plan.skipped.append((prefix or "./", f"{not_included} files not matched by --include", None))


def _plan_file(src: str, index: int, plan: _Plan) -> None:
    try:
        st = os.stat(src)
    except OSError as exc:
        raise InputError(f"cannot read {src}: {exc.strerror}") from None
    key = (st.st_dev, st.st_ino)
    if key in plan.seen:
        return
    plan.seen[key] = index
    if stat.S_ISREG(st.st_mode):
        plan.items.append(_Item(_safe(src), src, st.st_size))
    elif stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
        plan.items.append(_Item(_safe(src), src, 0, stream=True))
    else:
        plan.skipped.append((_safe(src), "not a regular file", None))


def _plan(sources: list[str], options: LoadOptions) -> _Plan:
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
            _plan_directory(src, index, options, plan)
        else:
            _plan_file(src, index, plan)
    return plan


def _check_input_size(plan: _Plan, sources: list[str], options: LoadOptions) -> None:
    """Stop before reading anything when the walked files exceed ``--max-input-size`` (bytes).

    Binary files do not count: when over the limit, walked files are sniffed (first 8 KiB) first.
    """
    total = plan.walked_bytes
    if total <= options.max_input_size:
        return
    text_files = 0
    total = 0
    for item in plan.items:
        if not item.walked:
            continue
        try:
            with open(item.fs_path, "rb") as fh:
                if binary_reason(fh.read(PREFIX_BYTES)):
                    continue
        except OSError:
            continue
        total += item.size
        text_files += 1
    if total <= options.max_input_size:
        return
    dirs = ", ".join(s for s in sources if s != "-" and os.path.isdir(s))
    raise InputError(
        f"{dirs} would load {format_size(total)} in {text_files:,} files, over --max-input-size "
        f"({format_size(options.max_input_size)}): narrow it with --include (e.g. --include 'src/' "
        f"--include '*.py') or --exclude, or raise --max-input-size"
    )


def load_sources(sources: list[str], options: LoadOptions, dest: Path,
                 stdin: BinaryIO | None = None) -> LoadedContext:
    """Load ``sources`` into the context file ``dest`` (created or overwritten); see the module doc.

    Every source is checked and every directory walked before anything is read. Raises
    :class:`InputError` (exit 2) for a missing source, an empty or interactive stdin, and walked
    files over ``options.max_input_size`` bytes; unreadable and binary files are only reported
    (``LoadedContext.skipped``).
    """
    if not sources:
        raise InputError("no source given: name files, directories, or - for standard input")
    plan = _plan(sources, options)
    _check_input_size(plan, sources, options)
    dest = Path(dest)
    writer = ContextWriter(dest)
    try:
        for path, reason, size in plan.skipped:
            writer.skip(path, reason, size)
        for item in plan.items:
            if not item.stream:
                load_file(writer, item.path, item.fs_path, item.size)
                continue
            if item.fs_path is None:
                stream, name = (stdin if stdin is not None else sys.stdin.buffer), "standard input"
                tmp, size = spool(stream, str(dest.parent), name)
            else:
                with open(item.fs_path, "rb") as fh:
                    tmp, size = spool(fh, str(dest.parent), item.fs_path)
            try:
                load_file(writer, item.path, tmp, size)
            finally:
                os.unlink(tmp)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise
