"""The listening socket and its connections: a cap, a first-request deadline, a calm accept loop.

aiohttp's own listener (``TCPSite``) keeps any number of connections, gives a new connection as long
as its keep-alive timeout to send a request head (one hour by default), and asyncio's accept loop
logs a traceback for every failed ``accept()`` when file descriptors run out. :class:`Listener`
accepts itself (``loop.sock_accept``) and hands each connection to aiohttp's request handler
through :class:`Connection`, so that:

- at most ``max_connections`` are open: one more is answered ``503`` and closed before anything of
  it is read;
- a new connection that has not delivered a complete request head within ``headers_timeout``
  seconds is closed (idle sockets, dripped headers); later requests on a kept-alive connection get
  aiohttp's ``keepalive_timeout``, which also closes an incomplete head; a body has its own
  deadline (``body_timeout``, in :func:`rlm_cli.serve.handlers.read_json`);
- ``EMFILE``/``ENFILE``/``ENOBUFS``/``ENOMEM`` from ``accept()`` pause accepting with a growing
  back-off (50 ms to 2 s), logged once per episode, never one traceback per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import sys
from collections.abc import Callable
from typing import Any

_BUSY_BODY = (b'{"error": {"message": "too many open connections; retry later", "type": "server_error", '
              b'"code": "too_many_connections", "param": null}}')
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)
"""What a connection beyond the cap gets before it is closed (OpenAI's error shape, 503)."""
RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.05, 2.0


def note(message: str) -> None:
    """One line on stderr (``rlm serve: ...``), never raising."""
    with contextlib.suppress(OSError, ValueError):
        print(f"rlm serve: {message}", file=sys.stderr, flush=True)


class Connection(asyncio.Protocol):
    """One client connection: delegates every protocol call to aiohttp's handler ``inner`` and
    closes the transport when no request has started ``headers_timeout`` seconds after it opened."""

    def __init__(self, listener: Listener, inner: asyncio.Protocol) -> None:
        self.listener = listener
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.listener.open[transport] = self
        self._timer = asyncio.get_running_loop().call_later(self.listener.headers_timeout, self._expire)
        self.inner.connection_made(transport)

    def request_started(self) -> None:
        """A complete request head arrived (called by the middleware): the head deadline is met."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        self.listener.expired += 1
        if self.transport is not None:
            self.transport.abort()  # nothing of a request yet: no answer owed

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.request_started()
        if self.transport is not None:
            self.listener.open.pop(self.transport, None)
        self.inner.connection_lost(exc)


class Listener:
    """Accepts on ``host``:``port`` and serves each connection with ``factory()`` (aiohttp's
    ``runner.server``), within ``max_connections`` and ``headers_timeout`` (seconds). ``start()``
    binds (raises OSError when it cannot) and starts the accept loop; ``close()`` stops it.
    ``open`` maps each open transport to its :class:`Connection`; ``refused`` and ``expired`` count
    connections turned away at the cap and closed at the head deadline."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], host: str, port: int, max_connections: int,
                 headers_timeout: float) -> None:
        self.factory = factory
        self.host, self.port = host, port
        self.max_connections = max(1, max_connections)
        self.headers_timeout = headers_timeout
        self.open: dict[Any, Connection] = {}
        self.refused = 0
        self.expired = 0
        self._sock: socket.socket | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Bind and listen (raises OSError), then accept in a task of the running loop."""
        infos = socket.getaddrinfo(self.host.strip("[]"), self.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        family, kind, proto, _, addr = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._task = asyncio.get_running_loop().create_task(self._accept_loop())

    def connection_for(self, transport: Any) -> Connection | None:
        """The :class:`Connection` of an open ``transport`` (None for one this listener did not accept)."""
        return self.open.get(transport)

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        backoff = 0.0
        while True:
            try:
                conn, _ = await loop.sock_accept(self._sock)
            except OSError as exc:
                if exc.errno in RESOURCE_ERRORS:
                    if not backoff:
                        note(f"cannot accept connections: {exc.strerror or exc}; pausing and retrying "
                             "(lower --max-connections or raise the open-files limit)")
                    backoff = min(BACKOFF_MAX_S, max(BACKOFF_MIN_S, backoff * 2))
                    await asyncio.sleep(backoff)
                    continue
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR, errno.EAGAIN):
                    continue
                raise
            if backoff:
                note("accepting connections again")
                backoff = 0.0
            if len(self.open) >= self.max_connections:
                self.refused += 1
                with contextlib.suppress(OSError):
                    conn.setblocking(False)
                    conn.send(BUSY)
                conn.close()
                continue
            try:
                conn.setblocking(False)
                await loop.connect_accepted_socket(lambda: Connection(self, self.factory()), conn)
            except OSError:
                conn.close()

    async def close(self) -> None:
        """Stop accepting and close the listening socket (open connections are the runner's)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self._sock is not None:
            self._sock.close()
            self._sock = None
