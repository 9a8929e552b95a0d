"""Which paths a client may have read: inside one of its MCP roots, or one of the server's SOURCEs.

A client's roots (``roots/list``) are ``file://`` URIs; they are asked for once and again after each
``notifications/roots/list_changed``. A source is checked on its real path (symlinks resolved), so
a link inside a root that points outside it is refused. Standard input (``-``) and ``file://`` URLs
are always refused; URLs and git remotes only pass with ``--allow-remote``. A refused call reads
nothing: the checks run before any load.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from rlm_cli.errors import UsageError

MAX_CLIENTS = 256
"""Clients (HTTP sessions) whose state is kept; the oldest is forgotten beyond."""


def root_paths(uris: Iterable[str]) -> list[Path]:
    """The local directories (real paths) of ``file://`` root URIs; other schemes and
    non-local hosts are ignored."""
    out = []
    for uri in uris:
        parsed = urlparse(str(uri))
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            continue
        path = unquote(parsed.path)
        if path:
            out.append(Path(os.path.realpath(path)))
    return out


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@dataclass
class Scope:
    """The paths one call may read: ``roots`` (the client's, real paths) and ``sources`` (the
    server's SOURCEs, real paths: a directory admits what is under it, a file only itself);
    ``allow_remote``: URLs and git remotes pass."""

    roots: list[Path]
    sources: list[Path]
    allow_remote: bool = False

    def check(self, source: str, cwd: str | None = None) -> str:
        """The source to load for ``source`` (a local path becomes its real path; a remote stays as
        given). Raises :class:`UsageError` naming the rule when it is out of scope. ``cwd``: where
        a relative path starts (default: the server's working directory)."""
        from rlm_cli.loader.remote import looks_remote, redact

        if not isinstance(source, str) or not source.strip():
            raise UsageError("a source must be a non-empty path")
        if source == "-":
            raise UsageError("standard input ('-') cannot be a source of an MCP call: give a path")
        if source.lower().startswith("file:"):
            raise UsageError(f"file: URLs are not sources here; give the path itself: {redact(source)[:200]}")
        if looks_remote(source):
            if not self.allow_remote:
                raise UsageError(f"{redact(source)[:200]} is a URL or git remote: this server reads local paths "
                                 "only (start it with --allow-remote to let calls fetch them)")
            return source
        if "\x00" in source:
            raise UsageError("a source path may not hold a NUL character")
        real = Path(os.path.realpath(os.path.join(cwd or os.getcwd(), os.path.expanduser(source))))
        if any(_inside(real, r) for r in self.roots):
            return str(real)
        for s in self.sources:
            if real == s or (s.is_dir() and _inside(real, s)):
                return str(real)
        where = (f"the client's roots ({', '.join(str(r) for r in self.roots[:5])})" if self.roots
                 else "the client's roots (it announced none)")
        given = f" or the server's SOURCEs ({', '.join(str(s) for s in self.sources[:5])})" if self.sources else ""
        raise UsageError(f"{source[:300]!r} is outside {where}{given}: an MCP call may only read inside them")


@dataclass
class ClientState:
    """What the server remembers of one client: its ``roots`` (None until asked, and again after
    ``roots/list_changed``) and ``last_run`` (the run id ``continue`` follows up)."""

    roots: list[Path] | None = None
    last_run: str | None = None


def client_key(headers: Any) -> str | None:
    """Which client a message comes from: ``"stdio"`` (one client per process: no headers), the
    ``Mcp-Session-Id`` of an HTTP session, or None (stateless HTTP: no state is kept)."""
    if headers is None:
        return "stdio"
    session_id = headers.get("mcp-session-id")
    return f"http:{session_id}" if session_id else None


class Clients:
    """Per-client state by :func:`client_key`; at most :data:`MAX_CLIENTS`, the least recently used
    forgotten first. A None key gets a fresh state every time."""

    def __init__(self) -> None:
        self._states: dict[str, ClientState] = {}

    def get(self, key: str | None) -> ClientState:
        """The state of the client ``key`` (created empty on first use)."""
        if key is None:
            return ClientState()
        state = self._states.pop(key, None) or ClientState()
        self._states[key] = state
        while len(self._states) > MAX_CLIENTS:
            self._states.pop(next(iter(self._states)))
        return state

    def roots_changed(self, key: str | None) -> None:
        """Forget the client's roots: the next call asks for them again."""
        state = self._states.get(key) if key is not None else None
        if state is not None:
            state.roots = None


async def client_roots(state: ClientState, session: Any) -> list[Path]:
    """The client's roots (real paths), asked with ``roots/list`` when not known; [] when the client
    has no roots capability or the request fails."""
    if state.roots is not None:
        return state.roots
    import warnings

    roots: list[Path] = []
    caps = getattr(session, "client_capabilities", None)
    if caps is not None and getattr(caps, "roots", None) is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the SDK marks roots deprecated for a future protocol
                result = await session.list_roots()
            roots = root_paths(str(r.uri) for r in result.roots)
        except Exception:  # noqa: BLE001 - a client that cannot answer has no roots
            roots = []
    state.roots = roots
    return roots


def server_sources(sources: Iterable[str]) -> list[Path]:
    """The real paths of the server's local SOURCEs."""
    return [Path(os.path.realpath(s)) for s in sources]
