"""Remote sources: URLs fetched and git remotes cloned before a load, resolved to local paths.

Which sources are remote (checked in this order; anything else is a local path, and a local path
that looks remote can be named ``./gh:x``):

* ``git+https://``, ``git+http://``, ``git+ssh://``, ``git+file://`` force a git remote;
* ``gh:ORG/REPO`` is ``https://github.com/ORG/REPO.git``;
* ``git@HOST:PATH``, ``ssh://...``, ``git://...`` and ``file://...`` are git remotes;
* ``http(s)://`` URLs are git remotes when the path ends with ``.git``, or when the host is a known
  forge (github.com, gitlab.com, codeberg.org) and the path has exactly two parts
  (``https://github.com/org/repo``); every other ``http(s)://`` URL is a web page or file, fetched.

A git remote takes an optional ``#REF`` (branch, tag or commit); a fetched URL's ``#fragment`` is
dropped (it is never sent). URLs and refs beginning with ``-`` are refused, so none can be read by
git as an option. Credentials (``user:password@``, secret-looking query parameters) are never shown:
:func:`redact` gives the form rlm prints, logs and uses as the displayed path.

Displayed paths: a fetched URL is one file named by its redacted URL; the files of a clone are named
``ROOT/path/in/repo``, where ``ROOT`` is the source as typed without ``git+``, credentials, ``#REF``,
a trailing ``/`` or ``.git``, followed by ``@REF`` when a ref was given (``gh:org/repo/src/x.py``,
``gh:org/repo@v1.2/src/x.py``): stable across commits; ``rlm ls`` names the commit.
"""

from __future__ import annotations

import contextlib
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import NamedTuple

from rlm_cli.errors import InputError, UsageError

FORGE_HOSTS = ("github.com", "gitlab.com", "codeberg.org")
GIT_PREFIXES = ("git+https://", "git+http://", "git+ssh://", "git+file://")
_GH = re.compile(r"^gh:([A-Za-z0-9][A-Za-z0-9._-]*)/([A-Za-z0-9._-]+?)(?:\.git)?/?$")
_SCP = re.compile(r"^git@([A-Za-z0-9][A-Za-z0-9.-]*):(.+)$")
_SECRET_PARAM = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|SESSION|SIG|CODE", re.IGNORECASE)
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f]")
_REF_BAD = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^/|/$|\.lock$|\.$")


class RemoteSpec(NamedTuple):
    """A classified remote source: ``kind`` ``"url"`` or ``"git"``; ``url``: what is fetched or given
    to git (credentials kept); ``ref``: the git ref or None; ``scheme``: ``https``, ``http``, ``ssh``,
    ``git`` or ``file``; ``display``: the redacted root of its displayed paths; ``typed``: the
    source as given."""

    kind: str
    url: str
    ref: str | None
    scheme: str
    display: str
    typed: str


class SourceOrigin(NamedTuple):
    """What a remote source became, for ``rlm ls`` and the trajectory: ``source`` (redacted),
    ``kind`` (``"url"``/``"git"``) and a one-line ``detail``."""

    source: str
    kind: str
    detail: str


def _strip_userinfo(netloc: str) -> str:
    return netloc.rpartition("@")[2]


def _redact_query(query: str) -> str:
    if not query:
        return query
    parts = []
    for item in query.split("&"):
        name, eq, _value = item.partition("=")
        parts.append(f"{name}=REDACTED" if eq and _SECRET_PARAM.search(urllib.parse.unquote(name)) else item)
    return "&".join(parts)


def redact(url: str) -> str:
    """``url`` as rlm shows it: userinfo removed, secret-looking query values replaced by ``REDACTED``
    (``https://u:p@h/x?token=1&a=2`` -> ``https://h/x?token=REDACTED&a=2``). Non-URLs unchanged."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    return urllib.parse.urlunsplit((parts.scheme, _strip_userinfo(parts.netloc), parts.path,
                                    _redact_query(parts.query), parts.fragment))


def looks_remote(source: str) -> bool:
    """Whether ``source`` is a URL or a git remote by the rules of the module doc (no I/O)."""
    s = source.lower()
    return (s.startswith(("http://", "https://", "ssh://", "git://", "file://", "gh:", "git@"))
            or s.startswith(GIT_PREFIXES))


def _check_text(what: str, value: str, typed: str) -> None:
    if value.startswith("-"):
        raise InputError(f"refused {what} beginning with '-' (it could be read as a git option): {redact(typed)}")
    if _BAD_CHARS.search(value):
        raise InputError(f"refused {what} with spaces or control characters: {redact(typed)!r}")


def _split_ref(typed: str, body: str) -> tuple[str, str | None]:
    url, hash_, ref = body.partition("#")
    if not hash_:
        return url, None
    if not ref:
        raise InputError(f"empty #REF in {redact(typed)}: name a branch, tag or commit after '#'")
    _check_text("a ref", ref, typed)
    if _REF_BAD.search(ref):
        raise InputError(f"not a valid git ref: {ref!r} (in {redact(typed)})")
    return url, ref


def _display_root(text: str, ref: str | None) -> str:
    shown = redact(text).rstrip("/")
    shown = shown.removesuffix(".git").rstrip("/") or shown
    if ref and re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", ref):
        ref = ref[:12]  # a commit id: shown as git shows it abbreviated
    return f"{shown}@{ref}" if ref else shown


def classify(source: str) -> RemoteSpec | None:
    """The :class:`RemoteSpec` of ``source``, or None for a local path.

    Raises :class:`InputError` (exit 2) for a remote that cannot be used safely: a URL, host or ref
    beginning with ``-``, spaces or control characters, an empty or malformed ``#REF``.
    """
    if not looks_remote(source):
        return None
    typed = source
    low = source.lower()
    forced = low.startswith(GIT_PREFIXES)
    body = source[4:] if forced else source
    m = _GH.match(body.partition("#")[0])
    if m is not None:
        _url, ref = _split_ref(typed, body)
        url = f"https://github.com/{m.group(1)}/{m.group(2)}.git"
        return RemoteSpec("git", url, ref, "https", _display_root(_url, ref), typed)
    if body.lower().startswith("gh:"):
        raise InputError(f"not a GitHub shorthand: {source!r} (expected gh:ORG/REPO, optionally #REF)")
    m = _SCP.match(body)
    if m is not None:
        url, ref = _split_ref(typed, body)
        _check_text("a remote", url, typed)
        if m.group(2).startswith("-"):
            raise InputError(f"refused a remote path beginning with '-': {typed}")
        return RemoteSpec("git", url, ref, "ssh", _display_root(url, ref), typed)
    if low.startswith("git@"):
        raise InputError(f"not a git remote: {source!r} (expected git@HOST:PATH)")
    scheme = body.partition("://")[0].lower()
    try:
        parts = urllib.parse.urlsplit(body)
    except ValueError as exc:
        raise InputError(f"not a valid URL: {redact(typed)} ({exc})") from None
    host = parts.hostname or ""
    if scheme != "file" and not host:
        raise InputError(f"no host in URL: {redact(typed)}")
    if host.startswith("-") or parts.netloc.startswith("-") or parts.path.startswith("-"):
        raise InputError(f"refused a URL with a host or path beginning with '-': {redact(typed)}")
    path = parts.path.rstrip("/")
    is_git = forced or scheme in ("ssh", "git", "file") or path.endswith(".git") or (
        host.lower() in FORGE_HOSTS and len([p for p in path.split("/") if p]) == 2)
    if not is_git:
        url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
        _check_text("a URL", url, typed)
        return RemoteSpec("url", url, None, scheme, redact(url), typed)
    url, ref = _split_ref(typed, body)
    _check_text("a remote", url, typed)
    return RemoteSpec("git", url, ref, scheme, _display_root(url, ref), typed)


def env_number(name: str, default: float, *, integer: bool = False) -> float:
    """A positive number from the environment variable ``name``, else ``default``.

    Raises :class:`UsageError` (exit 2) when it is set to something else."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        if integer:
            from rlm_cli.loader.options import parse_size

            value: float = parse_size(raw)
        else:
            value = float(raw)
    except ValueError:
        raise UsageError(f"{name}: not a positive {'size' if integer else 'number'}: {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise UsageError(f"{name}: must be positive and finite, got {raw!r}")
    return value


@dataclass
class Resolved:
    """Sources with every remote replaced by a local path: ``sources`` (in order), ``names``
    (local path -> displayed path or directory prefix), ``origins`` (what each remote became),
    ``temp_files`` (downloads to delete after the load: :meth:`cleanup`), ``checkouts`` (the git
    checkouts, :class:`~rlm_cli.loader.git_remote.Checkout`: :meth:`discard_checkouts` when the load
    fails)."""

    sources: list[str]
    names: dict[str, str] = field(default_factory=dict)
    origins: list[SourceOrigin] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    checkouts: list = field(default_factory=list)

    def discard_checkouts(self) -> None:
        """Remove the checkouts this resolution cloned (the load that needed them failed: the cache
        keeps only what was loaded); reused ones stay. Idempotent."""
        for got in self.checkouts:
            got.discard()

    def cleanup(self) -> None:
        """Delete the downloaded files (idempotent)."""
        for path in self.temp_files:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self.temp_files.clear()


def resolve_remote(sources: list[str], max_input_size: int, workdir: str, *,
                   allow_remote: bool = True, progress: bool = True) -> Resolved:
    """Fetch every URL of ``sources`` into ``workdir`` and clone every git remote into the cache.

    ``max_input_size`` (bytes) bounds the downloads together; ``progress`` allows a progress bar on
    a terminal. Returns a :class:`Resolved` (the
    caller must ``cleanup()`` it). Raises :class:`InputError` (exit 2) for a remote that cannot be
    fetched or cloned (HTTP error, DNS failure, refused connection, redirect loop, oversized
    download, time limit, unknown remote or ref), and for any remote when ``allow_remote`` is False.
    """
    specs = [classify(s) for s in sources]
    out = Resolved(list(sources))
    if not any(specs):
        return out
    budget = max_input_size
    try:
        for i, spec in enumerate(specs):
            if spec is None:
                continue
            if not allow_remote:
                raise InputError(f"remote sources are not allowed here: {spec.display} (download or clone "
                                 "it first and name the local copy)")
            if spec.kind == "url":
                from rlm_cli.loader.fetch import download

                got = download(spec.url, workdir, budget, progress=progress)
                budget -= got.size
                out.temp_files.append(got.path)
                out.sources[i] = got.path
                out.names[got.path] = spec.display
                out.origins.append(SourceOrigin(spec.display, "url", got.describe()))
            else:
                from rlm_cli.loader.git_remote import checkout

                got = checkout(spec, budget=budget, progress=progress)
                out.checkouts.append(got)
                out.sources[i] = got.path
                out.names[got.path] = spec.display + "/"
                out.origins.append(SourceOrigin(spec.display, "git", got.describe()))
    except BaseException:
        out.cleanup()
        out.discard_checkouts()
        raise
    return out
