"""The file set of a directory: git's, exactly.

Inside a git work tree it is what ``git ls-files -z -co --exclude-standard`` prints (tracked plus
untracked-but-not-ignored files) in milliseconds. Elsewhere (no repository, git missing, or git
refusing the repository) :func:`walk_rules` reproduces it: ``.gitignore`` in every directory (deeper
ones win), ``.git/info/exclude`` and ``core.excludesFile`` (default ``$XDG_CONFIG_HOME/git/ignore``,
else ``~/.config/git/ignore``), never descending into an excluded directory or a nested repository.
A directory the user names is never itself ignored: if git reports nothing for a non-empty
directory (e.g. ``rlm ls build/`` on an ignored ``build/``), its contents are walked with the rules
found inside it.

Symlinks are reported, not followed, unless ``follow_symlinks``: then a link to a file yields the
file and a link to a directory is walked, each real directory at most once (loops end there).
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from typing import NamedTuple

from rlm_cli.loader.ignore import RuleSet, fs_bytes, read_ignore_file

MAX_LINK_DEPTH = 40  # nested directory symlinks followed, at most
S_ISREG = stat.S_ISREG
_REL = attrgetter("rel")


class Found(NamedTuple):
    """One entry under a directory source (a named tuple: one is made per file, so it is cheap).

    ``rel`` is the POSIX path relative to the directory given. ``kind``: ``"file"`` (a regular
    file, or a followed link to one: ``size`` is its size in bytes and ``key`` its (device, inode)),
    ``"symlink"`` (not followed), ``"excluded"`` (a file under a directory pruned by ``prune``, or with
    ``size`` -1 the unwalked directory itself; ``rel`` is the directory, ending with ``/``, and
    ``detail`` the reason), or a skip: ``"repo"`` (nested repository or submodule),
    ``"missing"``, ``"special"``, ``"broken"``, ``"loop"``, ``"unreadable"`` (``detail`` says why).
    """

    fs_path: str
    rel: str
    kind: str
    size: int = 0
    key: tuple[int, int] | None = None
    detail: str = ""
    linked: bool = False  # reached through a followed symlink


@dataclass
class WalkState:
    """Shared by one load: ``follow_symlinks``, real directories already walked, and an optional
    ``prune(rel_dir) -> reason | None`` that stops the walk at excluded directories (``rel_dir`` ends
    with ``/``)."""

    follow_symlinks: bool = False
    prune: Callable[[str], str | None] | None = None
    visited: set[tuple[int, int]] = field(default_factory=set)
    methods: list[str] = field(default_factory=list)


def list_directory(path: str, state: WalkState, rel_prefix: str = "", depth: int = 0) -> Iterator[Found]:
    """Every entry git would list under ``path`` (a directory), sorted by path."""
    try:
        st = os.stat(path)
        state.visited.add((st.st_dev, st.st_ino))
    except OSError:
        pass
    names = git_ls_files(path)
    if names is None:
        state.methods.append("gitignore rules")
        entries = walk_rules(path, state.prune, rel_prefix)
    elif not names and _has_entries(path):
        state.methods.append("gitignore rules (directory ignored by git)")
        entries = walk_rules(path, state.prune, rel_prefix, as_root=True)
    else:
        state.methods.append("git ls-files")
        entries = _from_git(path, names, rel_prefix, state.prune)
    for found in entries:
        if found.kind == "symlink" and state.follow_symlinks:
            yield from _follow(found, state, depth)
        else:
            yield found


def git_ls_files(path: str) -> list[str] | None:
    """``git ls-files -co --exclude-standard`` under ``path``; ``None`` when git cannot answer."""
    try:
        proc = subprocess.run(
            ["git", "-C", path, "ls-files", "-z", "-co", "--exclude-standard"],
            capture_output=True, stdin=subprocess.DEVNULL, check=False,
        )
    except OSError:  # git not installed
        return None
    if proc.returncode != 0:
        return None
    names = set(os.fsdecode(proc.stdout).split("\0"))  # one decode: NUL never occurs inside a character
    names.discard("")
    return sorted(names)


def _has_entries(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            return any(e.name != ".git" for e in it)
    except OSError:
        return False


def _classify(fs_path: str, rel: str, st: os.stat_result | None, err: OSError | None) -> Found:
    if st is None:
        why = err.strerror if err is not None and err.strerror else "missing"
        return Found(fs_path, rel, "missing", detail=f"tracked by git but not readable from disk: {why}")
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return Found(fs_path, rel, "file", st.st_size, (st.st_dev, st.st_ino))
    if stat.S_ISLNK(mode):
        return Found(fs_path, rel, "symlink")
    if stat.S_ISDIR(mode):
        return Found(fs_path, rel.rstrip("/") + "/", "repo", detail="nested git repository or submodule")
    return Found(fs_path, rel, "special", detail="not a regular file")


def _from_git(path: str, names: list[str], rel_prefix: str, prune) -> Iterator[Found]:
    base = os.path.join(path, "")  # joined by concatenation: one call per file saved
    reasons: dict[str, str | None] = {}  # directory -> prune's answer
    hits: dict[str, str | None] = {}  # a name's parent directory -> its shallowest pruned ancestor
    for name in names:
        rel = rel_prefix + name
        if prune is not None:
            parent = name.rstrip("/").rpartition("/")[0]
            hit = hits.get(parent, "")
            if hit == "":
                hit = hits[parent] = _pruned_ancestor(rel, rel_prefix, prune, reasons)
            if hit is not None:
                yield Found(base + name, hit, "excluded", detail=reasons[hit] or "")
                continue
        if name.endswith("/"):  # an untracked nested repository, which git does not enter
            yield Found(base + name.rstrip("/"), rel, "repo", detail="nested git repository")
            continue
        fs_path = base + name
        try:
            st = os.lstat(fs_path)
        except OSError as exc:
            yield _classify(fs_path, rel, None, exc)
            continue
        if S_ISREG(st.st_mode):
            yield Found(fs_path, rel, "file", st.st_size, (st.st_dev, st.st_ino))
        else:
            yield _classify(fs_path, rel, st, None)


def _pruned_ancestor(rel: str, rel_prefix: str, prune, cache: dict[str, str | None]) -> str | None:
    """The shallowest excluded directory above ``rel`` (below ``rel_prefix``), if any."""
    parts = rel[len(rel_prefix):].rstrip("/").split("/")[:-1]
    d = rel_prefix
    for part in parts:
        d += part + "/"
        if d not in cache:
            cache[d] = prune(d)
        if cache[d] is not None:
            return d
    return None


def find_top(path: str) -> str | None:
    """The nearest directory at or above ``path`` holding a ``.git`` entry, or ``None``."""
    cur = os.path.abspath(path)
    while True:
        if os.path.lexists(os.path.join(cur, ".git")):
            return cur
        parent = os.path.dirname(cur)
        if parent == cur:
            return None
        cur = parent


def global_excludes_file() -> str | None:
    """``core.excludesFile``, else git's default ``$XDG_CONFIG_HOME/git/ignore`` / ``~/.config/git/ignore``."""
    try:
        proc = subprocess.run(["git", "config", "--path", "--get", "core.excludesFile"],
                              capture_output=True, stdin=subprocess.DEVNULL, check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            return os.fsdecode(proc.stdout.strip())
    except OSError:
        pass
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg:
        return os.path.join(xdg, "git", "ignore")
    home = os.path.expanduser("~")
    return os.path.join(home, ".config", "git", "ignore") if home != "~" else None


def _base_rules(path: str, as_root: bool) -> tuple[list[RuleSet], str]:
    """Rulesets that apply above ``path`` and ``path``'s prefix relative to the top of the tree."""
    rules: list[RuleSet] = []
    excludes_file = global_excludes_file()
    if excludes_file:
        rules.append(RuleSet(read_ignore_file(excludes_file)))
    top = None if as_root else find_top(path)
    if top is None:
        return rules, ""
    info = os.path.join(top, ".git", "info", "exclude")
    rules.append(RuleSet(read_ignore_file(info)))
    rel = os.path.relpath(os.path.abspath(path), top).replace(os.sep, "/")
    prefix = "" if rel == "." else rel + "/"
    # .gitignore files of the directories above `path`, from the top down (path's own is read by the walk)
    d = ""
    for part in prefix.split("/")[:-1]:
        rules.append(RuleSet(read_ignore_file(os.path.join(top, d, ".gitignore"), nofollow=True), d))
        d += part + "/"
    return [r for r in rules if r], prefix


def _is_repo(dir_path: str) -> bool:
    dot_git = os.path.join(dir_path, ".git")
    if os.path.isdir(dot_git):
        return os.path.exists(os.path.join(dot_git, "HEAD"))
    return os.path.isfile(dot_git)


def walk_rules(path: str, prune=None, rel_prefix: str = "", as_root: bool = False) -> Iterator[Found]:
    """Git's file set under ``path`` computed from the ignore files, without git. Sorted by path."""
    base, top_prefix = _base_rules(path, as_root)
    out: list[Found] = []
    stack = [(path, top_prefix, rel_prefix, base)]
    while stack:
        dir_fs, trel, drel, rules = stack.pop()
        try:
            with os.scandir(dir_fs) as it:
                entries = list(it)
        except OSError as exc:
            out.append(Found(dir_fs, drel, "unreadable", detail=f"unreadable directory: {exc.strerror}"))
            continue
        names = {e.name for e in entries}
        if drel != rel_prefix and ".git" in names and _is_repo(dir_fs):
            out.append(Found(dir_fs, drel, "repo", detail="nested git repository"))
            continue
        if ".gitignore" in names:
            own = read_ignore_file(os.path.join(dir_fs, ".gitignore"), nofollow=True)
            if own:
                rules = [*rules, RuleSet(own, trel)]
        # innermost ruleset first: the deepest .gitignore with a match decides (ignore.decide)
        matchers = [rs.match for rs in reversed(rules)]
        for e in entries:
            name = e.name
            if name == ".git":
                continue
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            tpath, rel = trel + name, drel + name
            raw = fs_bytes(tpath)  # git compares bytes; encoded once for every ruleset
            for match in matchers:
                pat = match(raw, is_dir)
                if pat is not None:
                    break
            else:
                pat = None
            if pat is not None and not pat.negated:
                continue
            if is_dir:
                reason = prune(rel + "/") if prune is not None else None
                if reason is not None:  # size -1: a directory left unwalked, its files uncounted
                    out.append(Found(e.path, rel + "/", "excluded", size=-1, detail=reason))
                else:  # a nested repository is recognised when it is scanned
                    stack.append((e.path, tpath + "/", rel + "/", rules))
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except OSError as exc:
                out.append(_classify(e.path, rel, None, exc))
                continue
            if S_ISREG(st.st_mode):
                out.append(Found(e.path, rel, "file", st.st_size, (st.st_dev, st.st_ino)))
            else:
                out.append(_classify(e.path, rel, st, None))
    out.sort(key=_REL)
    yield from out


def _follow(link: Found, state: WalkState, depth: int) -> Iterator[Found]:
    """Resolve a symlink found while walking (``--follow-symlinks``)."""
    try:
        st = os.stat(link.fs_path)
    except OSError as exc:
        loop = exc.errno == errno.ELOOP
        yield Found(link.fs_path, link.rel, "loop" if loop else "broken",
                    detail="symlink loop" if loop else f"broken symlink ({exc.strerror})")
        return
    if stat.S_ISREG(st.st_mode):
        yield Found(link.fs_path, link.rel, "file", st.st_size, (st.st_dev, st.st_ino), linked=True)
    elif stat.S_ISDIR(st.st_mode):
        if (st.st_dev, st.st_ino) in state.visited or depth >= MAX_LINK_DEPTH:
            yield Found(link.fs_path, link.rel + "/", "loop",
                        detail="symlink to a directory already walked (loop or duplicate)")
            return
        for found in list_directory(link.fs_path, state, link.rel + "/", depth + 1):
            yield found._replace(linked=True)
    else:
        yield Found(link.fs_path, link.rel, "special", detail="symlink to something not a regular file")
