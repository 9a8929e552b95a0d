"""Git remotes for the loader: a shallow clone in the user cache, reused while the ref is unchanged.

Layout: ``<cache>/git/<key>/`` per remote and ref, ``key`` a hash of the normalised URL and the ref;
inside it one checkout per commit (``<commit>/``), made in a temporary directory beside it and
renamed into place (a rename is atomic, so concurrent runs cloning the same remote never see half a
checkout: the loser of the race uses the winner's), and ``state.json`` (written atomically) naming
the current commit and what ``git ls-remote`` said when it was made. A later run asks
``git ls-remote`` again: the same answer reuses the checkout without cloning; a different one clones
the new commit; no answer (offline) falls back to the cached checkout with a notice on stderr. A
commit id as the ref is never asked for again (it cannot change). Checkouts of other commits are
removed once they are an hour old.

Git runs as the user's own ``git`` (credentials are git's: helpers, ssh keys), never through a shell:
argument lists with ``--`` before the URL, ``GIT_TERMINAL_PROMPT=0``, in a new session without a
terminal and with stdin closed (no password or host-key prompt can block), under a time limit
(``RLM_GIT_TIMEOUT``, default 300 s per git command). Only the source's own transport is allowed
(``protocol.allow=never`` and ``protocol.<scheme>.allow=always``: ``file`` only for ``file://``
sources, never ``ext``), symlinks are checked out as plain files holding the link's target
(``core.symlinks=false``: a hostile repository cannot make the loader read outside the checkout, even
with ``--follow-symlinks``), and Git LFS smudging is skipped.

Size bounds, checked on the fetched commit's tree (``git ls-tree -r -l``) before anything is
checked out, since a repository of a few kB can re-use one large blob in tree after tree: the files
together may not pass what is left of ``--max-input-size`` nor ``RLM_GIT_MAX_BYTES`` (default
2 GB), and there may be no more than ``RLM_GIT_MAX_FILES`` of them (default 200,000). A refused
or failed clone leaves nothing in the cache, and a checkout cloned for a load that then failed is
removed (:meth:`Checkout.discard`): the cache keeps only checkouts that were loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rlm_cli.errors import InputError
from rlm_cli.loader.lazy_progress import LazyProgress
from rlm_cli.loader.remote import RemoteSpec, env_number

DEFAULT_TIMEOUT = 300.0  # seconds per git command
DEFAULT_MAX_BYTES = 2_000_000_000  # bytes of files in one checkout (RLM_GIT_MAX_BYTES)
DEFAULT_MAX_FILES = 200_000  # files in one checkout (RLM_GIT_MAX_FILES)
STALE_SECONDS = 3600.0  # a checkout of another commit is removed once this old
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@']*@")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def cache_root() -> Path:
    """``<user cache dir>/git`` (``$RLM_HOME/cache/git`` when ``RLM_HOME`` is set)."""
    from rlm_cli.settings.paths import cache_dir

    return cache_dir() / "git"


def normalize(url: str) -> str:
    """The URL a cache entry is keyed by: scheme and host lower-cased, no trailing ``/`` or ``.git``."""
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/]*)(.*)$", url)
    if m:
        url = f"{m.group(1).lower()}://{m.group(2).lower()}{m.group(3)}"
    return url.rstrip("/").removesuffix(".git")


def cache_key(spec: RemoteSpec) -> str:
    """The directory name of ``spec``'s cache entry: 24 hex digits of SHA-256 of URL and ref."""
    return hashlib.sha256(f"{normalize(spec.url)}\0{spec.ref or ''}".encode()).hexdigest()[:24]


@dataclass
class Checkout:
    """A checkout ready to load: ``path`` (its directory), ``commit`` (full id), ``how``
    (``"cloned"``, ``"cached"`` or ``"cached (offline)"``), ``ref`` and ``display`` of the source;
    ``fresh``: this call made the checkout (so :meth:`discard` may remove it)."""

    path: str
    commit: str
    how: str
    ref: str | None
    display: str
    fresh: bool = False

    def discard(self) -> None:
        """Remove the checkout when this call made it (its load failed: never keep what was not
        loaded), and the cache entry's state when it names it. Idempotent; a reused checkout stays."""
        if not self.fresh:
            return
        self.fresh = False
        entry = Path(self.path).parent
        state = _read_state(entry)
        if state is not None and state.get("commit") == self.commit:
            with contextlib.suppress(OSError):
                (entry / "state.json").unlink()
        from rlm_cli.repl.sandbox import remove_tree

        remove_tree(self.path)

    def describe(self) -> str:
        """One line for ``rlm ls``: ``cloned commit abc1234 at ref main``."""
        at = f" at {self.ref}" if self.ref else " (default branch)"
        return f"{self.how} commit {self.commit[:12]}{at}"


def _git_args(spec: RemoteSpec) -> list[str]:
    scheme = "ssh" if spec.scheme == "ssh" else spec.scheme
    return ["git", "-c", "protocol.allow=never", "-c", f"protocol.{scheme}.allow=always",
            "-c", "core.symlinks=false", "-c", "core.hooksPath=/dev/null", "-c", "advice.detachedHead=false",
            "-c", "filter.lfs.smudge=", "-c", "filter.lfs.process=", "-c", "filter.lfs.required=false"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never", "GIT_LFS_SKIP_SMUDGE": "1",
                "GIT_PROTOCOL_FROM_USER": "0", "LC_ALL": "C"})
    return env


def _run(args: list[str], spec: RemoteSpec, timeout: float, what: str, cwd: str | None = None,
         label: str | None = None, progress: bool = False) -> subprocess.CompletedProcess:
    """Run git; raises :class:`InputError` on a time-out or a missing git (not on a non-zero exit)."""
    try:
        proc = subprocess.Popen(args, cwd=cwd, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        raise InputError(f"cannot {what} {spec.display}: git is not available ({exc.strerror})") from None
    deadline = time.monotonic() + timeout
    try:
        with LazyProgress(label or f"{what} {spec.display}", enabled=progress) as bar:
            while True:
                try:
                    out, err = proc.communicate(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    bar.update()
                    if time.monotonic() > deadline:
                        raise InputError(f"cannot {what} {spec.display}: git took longer than {timeout:g} s "
                                         "(RLM_GIT_TIMEOUT)") from None
    except BaseException:  # the time limit, or Ctrl-C: git has its own session, so end its group here
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def _reason(proc: subprocess.CompletedProcess, spec: RemoteSpec) -> str:
    """git's first error line (else its last line), without credentials or control characters."""
    from rlm_cli.view.safe import inline

    lines = [ln.strip() for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.lower().startswith(("fatal:", "error:"))]
    line = fatal[0] if fatal else (lines or [f"git exited with status {proc.returncode}"])[-1]
    line = line.replace(spec.url, spec.display)
    userinfo = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/]*)@", spec.url)
    if userinfo:
        line = line.replace(userinfo.group(1), "***")
    line = _USERINFO.sub(r"\1", line)  # any other scheme://user:pass@ git quoted
    return inline(line)[:300]


def _ls_remote(spec: RemoteSpec, timeout: float, progress: bool) -> tuple[str | None, str]:
    """``(fingerprint, error)``: git ls-remote's lines for the ref (None when it could not answer)."""
    pattern = spec.ref or "HEAD"
    proc = _run([*_git_args(spec), "ls-remote", "--", spec.url, pattern], spec, timeout, "check",
                label=f"checking {spec.display}", progress=progress)
    if proc.returncode != 0:
        return None, _reason(proc, spec)
    lines = sorted(ln for ln in proc.stdout.decode("utf-8", "replace").splitlines() if ln.strip())
    if spec.ref and not spec.ref.startswith("refs/"):
        # git ls-remote matches the pattern as a tail: keep refs/heads/REF, refs/tags/REF (and ^{})
        wanted = {f"refs/heads/{spec.ref}", f"refs/tags/{spec.ref}", f"refs/tags/{spec.ref}^{{}}"}
        lines = [ln for ln in lines if ln.partition("\t")[2] in wanted] or lines
    return "\n".join(lines), ""


def _read_state(entry: Path) -> dict | None:
    try:
        state = json.loads((entry / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    commit = state.get("commit") if isinstance(state, dict) else None
    if not isinstance(commit, str) or not _SHA.match(commit) or not (entry / commit / ".git").is_dir():
        return None
    return state


def _write_state(entry: Path, commit: str, fingerprint: str | None) -> None:
    from rlm_cli.atomic import atomic_write_text

    atomic_write_text(entry / "state.json", json.dumps({"commit": commit, "fingerprint": fingerprint,
                                                   "checked_at": time.time()}))


def _clone(spec: RemoteSpec, entry: Path, timeout: float, progress: bool, budget: int | None) -> tuple[str, bool]:
    """Shallow-fetch ``spec`` into a temporary directory, check its tree (:func:`_check_tree`), check
    it out and rename it to ``entry/<commit>``. Returns ``(commit, fresh)``: ``fresh`` False when a
    concurrent run's identical checkout won the rename (and is used)."""
    tmp = tempfile.mkdtemp(prefix="tmp-", dir=entry)
    try:
        git = _git_args(spec)
        proc = _run([*git, "init", "-q", tmp], spec, timeout, "clone")
        if proc.returncode != 0:
            raise InputError(f"cannot clone {spec.display}: {_reason(proc, spec)}")
        proc = _run([*git, "-C", tmp, "fetch", "-q", "--depth", "1", "--no-tags", "--", spec.url,
                     spec.ref or "HEAD"], spec, timeout, "clone", label=f"cloning {spec.display}",
                    progress=progress)
        if proc.returncode != 0:
            raise InputError(f"cannot clone {spec.display}"
                             + (f" at {spec.ref}" if spec.ref else "") + f": {_reason(proc, spec)}")
        _check_tree(spec, tmp, budget, timeout)
        proc = _run([*git, "-C", tmp, "checkout", "-q", "--detach", "FETCH_HEAD"], spec, timeout, "check out")
        if proc.returncode != 0:
            raise InputError(f"cannot check out {spec.display}: {_reason(proc, spec)}")
        proc = _run([*git, "-C", tmp, "rev-parse", "HEAD"], spec, timeout, "check out")
        commit = proc.stdout.decode("ascii", "replace").strip()
        if proc.returncode != 0 or not _SHA.match(commit):
            raise InputError(f"cannot check out {spec.display}: no commit")
        final = entry / commit
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / ".git").is_dir():  # not a concurrent run's finished checkout: a real error
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another run got there first: use theirs
            return commit, False
        return commit, True
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _tree_limits(budget: int | None) -> tuple[int, str, int]:
    """``(max bytes, why, max files)`` for one checkout."""
    from rlm_cli.loader.options import format_size

    max_bytes = int(env_number("RLM_GIT_MAX_BYTES", DEFAULT_MAX_BYTES, integer=True))
    max_files = int(env_number("RLM_GIT_MAX_FILES", DEFAULT_MAX_FILES, integer=True))
    if budget is not None and budget < max_bytes:
        return max(budget, 0), f"what is left of --max-input-size ({format_size(max(budget, 0))})", max_files
    return max_bytes, f"the checkout limit ({format_size(max_bytes)}, RLM_GIT_MAX_BYTES)", max_files


def _check_tree(spec: RemoteSpec, repo: str, budget: int | None, timeout: float) -> None:
    """Refuse the fetched commit (``FETCH_HEAD`` in ``repo``) before its checkout when its files
    pass the byte or file-count limit (:func:`_tree_limits`). ``git ls-tree -r -l -z`` is read as it
    streams and stopped at the first excess, so a tree of millions of entries costs no memory.
    Raises :class:`InputError`."""
    import threading

    from rlm_cli.loader.options import format_size

    max_bytes, why, max_files = _tree_limits(budget)
    try:
        proc = subprocess.Popen([*_git_args(spec), "-C", repo, "ls-tree", "-r", "-l", "-z", "FETCH_HEAD"],
                                env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        raise InputError(f"cannot check out {spec.display}: git is not available ({exc.strerror})") from None

    def kill() -> None:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    files = size = 0
    refusal = None
    try:
        rest = b""
        assert proc.stdout is not None
        while refusal is None and (chunk := proc.stdout.read1(1 << 16)):
            *records, rest = (rest + chunk).split(b"\0")
            for record in records:  # "<mode> <type> <object> <size>\t<path>"
                meta = record.partition(b"\t")[0].split()
                if len(meta) != 4 or meta[1] != b"blob":
                    continue  # a submodule's commit: nothing checked out
                files += 1
                size += int(meta[3]) if meta[3].isdigit() else 0
                if files > max_files:
                    refusal = f"it holds more than {max_files:,} files (RLM_GIT_MAX_FILES)"
                elif size > max_bytes:
                    refusal = f"its files pass {why} ({format_size(size)} in the first {files:,} files)"
                if refusal:
                    break
        if refusal is None:
            proc.wait()
    finally:
        timed_out = not timer.is_alive() and refusal is None and proc.returncode != 0
        timer.cancel()
        if proc.returncode is None:
            kill()
        proc.stdout.close()
        proc.wait()
    if refusal:
        raise InputError(f"refused {spec.display} before checkout: {refusal}")
    if timed_out:
        raise InputError(f"cannot check out {spec.display}: git took longer than {timeout:g} s (RLM_GIT_TIMEOUT)")
    if proc.returncode != 0:
        raise InputError(f"cannot check out {spec.display}: git ls-tree failed (status {proc.returncode})")


def _prune(entry: Path, keep: str) -> None:
    now = time.time()
    for child in entry.iterdir():
        if child.name in (keep, "state.json") or not child.is_dir():
            continue
        with contextlib.suppress(OSError):
            if now - child.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(child, ignore_errors=True)


def checkout(spec: RemoteSpec, *, budget: int | None = None, progress: bool = True) -> Checkout:
    """A checkout of ``spec`` (a git :class:`RemoteSpec`) in the cache; see the module doc. ``budget``:
    bytes left of ``--max-input-size`` (None: only the cache's caps); ``progress``: a spinner on a
    terminal while git runs longer than half a second.

    Raises :class:`InputError` (exit 2) when the remote or the ref does not exist or cannot be
    reached and nothing is cached, when git is missing, when git outlives ``RLM_GIT_TIMEOUT``, and
    when the commit's files pass ``budget``, ``RLM_GIT_MAX_BYTES`` or ``RLM_GIT_MAX_FILES``.
    """
    timeout = env_number("RLM_GIT_TIMEOUT", DEFAULT_TIMEOUT)
    entry = cache_root() / cache_key(spec)
    entry.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = _read_state(entry)
    pinned = spec.ref is not None and _SHA.match(spec.ref) is not None
    if pinned and state is not None and state["commit"] == spec.ref:
        return Checkout(str(entry / spec.ref), spec.ref, "cached", spec.ref, spec.display)
    fingerprint: str | None = None
    if not pinned:
        fingerprint, error = _ls_remote(spec, timeout, progress)
        if fingerprint is None:
            if state is not None:
                print(f"rlm: cannot reach {spec.display} ({error}); using the cached commit "
                      f"{state['commit'][:12]}", file=sys.stderr)
                return Checkout(str(entry / state["commit"]), state["commit"], "cached (offline)", spec.ref,
                                spec.display)
            raise InputError(f"cannot clone {spec.display}: {error}")
        if not fingerprint:
            raise InputError(f"no ref {spec.ref or 'HEAD'!r} in {spec.display}")
        if state is not None and state.get("fingerprint") == fingerprint:
            return Checkout(str(entry / state["commit"]), state["commit"], "cached", spec.ref, spec.display)
    commit, fresh = _clone(spec, entry, timeout, progress, budget)
    _write_state(entry, commit, fingerprint)
    _prune(entry, commit)
    return Checkout(str(entry / commit), commit, "cloned", spec.ref, spec.display, fresh)
