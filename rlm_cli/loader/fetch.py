"""Downloading one ``http(s)://`` URL for the loader (the parent fetches; the REPL stays offline).

Bounds, all hard: at most :data:`MAX_REDIRECTS` redirects, each to ``http``/``https`` only (a
``file:`` or any other scheme is refused) and none back to a URL already visited (a loop); the body
is read no further than the per-download cap (``RLM_FETCH_MAX_BYTES``, default 100 MB) or what is
left of ``--max-input-size``, whichever is smaller, and decompressed no further either; a connect
timeout (``RLM_FETCH_CONNECT_TIMEOUT``, default 10 s) and a hard wall-clock limit over the whole
download (``RLM_FETCH_TIMEOUT``, default 120 s): connecting, every redirect, the headers and the body.
The request runs on an async client under one :func:`asyncio.timeout` that cancels it wherever it is,
so a server that drips its headers or body a byte at a time is cut off at the limit like one that
stalls. A ``gzip`` body of several members (RFC 1952) is read member by member; a truncated one is
refused. Redirects to private or loopback addresses are followed: the user chose the URL, as
they could have chosen the address (``rlm serve`` takes no remote sources at all).

The body goes to a file in the run directory whose extension comes from the Content-Type (the
loader's converters pick by magic bytes and extension), else from the URL's path. Errors are one
line (:class:`~rlm_cli.errors.InputError`, exit 2) and never carry the URL's credentials.
"""

from __future__ import annotations

import mimetypes
import os
import posixpath
import tempfile
import urllib.parse
import zlib
from dataclasses import dataclass

from rlm_cli.errors import InputError
from rlm_cli.loader.lazy_progress import LazyProgress
from rlm_cli.loader.options import format_size
from rlm_cli.loader.remote import env_number, redact

MAX_REDIRECTS = 5
DEFAULT_MAX_BYTES = 100_000_000  # bytes per download
DEFAULT_TIMEOUT = 120.0  # seconds, the whole download with its redirects
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds
CHUNK = 1 << 16  # bytes read at a time
USER_AGENT = "rlm-cli (+https://github.com/rlm-cli)"

_EXTENSIONS = {
    "text/html": ".html", "application/xhtml+xml": ".html", "application/pdf": ".pdf",
    "text/plain": ".txt", "text/markdown": ".md", "text/x-markdown": ".md", "application/json": ".json",
    "text/csv": ".csv", "text/xml": ".xml", "application/xml": ".xml", "application/rss+xml": ".xml",
    "application/atom+xml": ".xml", "text/x-python": ".py", "application/x-ipynb+json": ".ipynb",
    "application/epub+zip": ".epub",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
}


@dataclass
class Download:
    """A finished download: ``path`` (the temporary file, the caller deletes it), ``url`` (the last
    URL, redacted), ``content_type`` (the media type without parameters, "" when none), ``size``
    (bytes written, after decompression) and ``redirects`` (how many were followed)."""

    path: str
    url: str
    content_type: str
    size: int
    redirects: int

    def describe(self) -> str:
        """One line for ``rlm ls``: ``fetched 12.3 kB as text/html (1 redirect, to URL)``."""
        what = f"fetched {format_size(self.size)}" + (f" as {self.content_type}" if self.content_type else "")
        if self.redirects:
            what += f" ({self.redirects} redirect{'s' if self.redirects != 1 else ''}, to {self.url})"
        return what


def extension_for(content_type: str, url: str) -> str:
    """The file extension (``".html"``) for a media type, else the URL path's own, else ``""``."""
    ext = _EXTENSIONS.get(content_type)
    if ext:
        return ext
    if content_type.startswith("text/") and content_type not in ("text/plain",):
        guessed = mimetypes.guess_extension(content_type)
        if guessed:
            return guessed
    tail = posixpath.splitext(urllib.parse.urlsplit(url).path)[1].lower()
    if tail and len(tail) <= 8 and tail[1:].isalnum():
        return tail
    return ".txt" if content_type.startswith("text/") else ""


class _Decoder:
    """Content-Encoding ``gzip``/``deflate`` decoded with a bound on the output per call (no bomb
    expands past the cap in memory); identity passes through."""

    def __init__(self, encoding: str, shown: str) -> None:
        encoding = encoding.strip().lower()
        self._gzip = encoding in ("gzip", "x-gzip")
        if encoding in ("", "identity"):
            self._z = None
        elif self._gzip:
            self._z = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise InputError(f"{shown}: unsupported Content-Encoding {encoding!r}")
        self._shown = shown
        self._fed = False

    def feed(self, data: bytes, limit: int) -> bytes:
        """Decoded bytes of ``data``: at most ``limit + 1`` (one more than the cap tells that it is
        passed). A gzip member that ends starts the next one (RFC 1952: a body may hold several)."""
        if self._z is None:
            return data
        self._fed = self._fed or bool(data)
        out = b""
        try:
            while True:
                out += self._z.decompress(data, max(1, limit + 1 - len(out)))
                # what did not fit stays in unconsumed_tail; one more byte than the cap is enough to tell
                if len(out) > limit or not self._z.eof or not self._z.unused_data:
                    return out
                data = self._z.unused_data
                if not self._gzip:
                    raise InputError(f"{self._shown}: data after the end of the compressed body")
                self._z = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # the next member
        except zlib.error as exc:
            raise InputError(f"{self._shown}: corrupt compressed body ({exc})") from None

    def finish(self) -> None:
        """Raise :class:`InputError` when the body ended inside a compressed member (truncated)."""
        if self._z is not None and self._fed and not self._z.eof:
            raise InputError(f"{self._shown}: truncated compressed body")


def _limits() -> tuple[int, float, float]:
    return (int(env_number("RLM_FETCH_MAX_BYTES", DEFAULT_MAX_BYTES, integer=True)),
            env_number("RLM_FETCH_TIMEOUT", DEFAULT_TIMEOUT),
            env_number("RLM_FETCH_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT))


def _next_url(current: str, location: str | None, shown: str) -> str:
    if not location:
        raise InputError(f"{shown}: redirect without a Location header")
    target = urllib.parse.urljoin(current, location.strip())
    scheme = urllib.parse.urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        raise InputError(f"{shown}: refused a redirect to a {scheme or 'schemeless'}: URL "
                         "(only http and https are followed)")
    return target.partition("#")[0]


def _connect_error(exc: Exception, shown: str, timeout: float) -> InputError:
    from rlm_cli.lm.imports import load

    httpx = load("httpx")  # not beside the prewarm thread's import of litellm (and httpx)

    if isinstance(exc, httpx.ConnectTimeout):
        return InputError(f"{shown}: could not connect (timed out)")
    if isinstance(exc, httpx.TimeoutException):
        return InputError(f"{shown}: timed out (time limit {timeout:g} s, RLM_FETCH_TIMEOUT)")
    reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    causes, seen = [], set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen and len(causes) < 8:  # the async stack wraps errors
        seen.add(id(cause))
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        reason = "connection refused"
    low = " ".join(str(c) for c in causes).lower()
    if "name or service not known" in low or "nodename nor servname" in low or "getaddrinfo" in low \
            or "name resolution" in low or "no address associated" in low:
        reason = "DNS lookup failed"
    elif "connection refused" in low or "connect call failed" in low:
        reason = "connection refused"
    return InputError(f"{shown}: could not fetch ({redact(reason)})")


def _timed_out(shown: str, timeout: float) -> InputError:
    return InputError(f"{shown}: timed out (time limit {timeout:g} s, RLM_FETCH_TIMEOUT)")


def download(url: str, workdir: str, budget: int, *, progress: bool = True) -> Download:
    """Fetch ``url`` (``http``/``https``) into a new file in ``workdir``; see the module doc.

    ``budget``: bytes left of ``--max-input-size``; ``progress``: a bar on a terminal after half a
    second. Blocks (an event loop of its own, in a helper thread when this thread already runs one).
    Raises :class:`InputError` (exit 2) on an HTTP error status, a DNS or connection failure, a
    refused or looping redirect, a body over the cap, the time limit (``RLM_FETCH_TIMEOUT`` seconds,
    wall clock, headers and body included), a corrupt or truncated compressed body, or an
    unsupported encoding. ``OSError`` from writing ``workdir`` propagates.
    """
    import asyncio

    max_bytes, timeout, connect_timeout = _limits()
    args = (url, workdir, budget, progress, max_bytes, timeout, connect_timeout)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_download_within(*args))
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # never nest event loops
        return pool.submit(asyncio.run, _download_within(*args)).result()


async def _download_within(url: str, workdir: str, budget: int, progress: bool, max_bytes: int,
                           timeout: float, connect_timeout: float) -> Download:
    """:func:`_download` under one hard deadline of ``timeout`` seconds (cancelled when it passes)."""
    import asyncio

    shown = redact(url)
    try:
        async with asyncio.timeout(timeout):
            return await _download(url, workdir, budget, progress, max_bytes, timeout, connect_timeout)
    except TimeoutError:
        raise _timed_out(shown, timeout) from None


async def _download(url: str, workdir: str, budget: int, progress: bool, max_bytes: int, timeout: float,
                    connect_timeout: float) -> Download:
    from rlm_cli.lm.imports import load

    httpx = load("httpx")  # not beside the prewarm thread's import of litellm (and httpx)

    cap = min(max_bytes, max(budget, 0))
    shown = redact(url)
    visited = {url}
    current = url
    per = httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
    async with httpx.AsyncClient(follow_redirects=False, trust_env=True, timeout=per,
                                 headers={"User-Agent": USER_AGENT,
                                          "Accept-Encoding": "gzip, deflate, identity"}) as client:
        for redirects in range(MAX_REDIRECTS + 1):
            try:
                async with client.stream("GET", current) as resp:
                    if resp.status_code in (301, 302, 303, 307, 308):
                        target = _next_url(current, resp.headers.get("location"), shown)
                        if target in visited:
                            raise InputError(f"{shown}: redirect loop (back to {redact(target)})")
                        visited.add(target)
                        current = target
                        continue
                    if resp.status_code >= 400:
                        phrase = resp.reason_phrase or ""
                        raise InputError(f"{shown}: HTTP {resp.status_code} {phrase}".rstrip())
                    if not 200 <= resp.status_code < 300:
                        raise InputError(f"{shown}: unexpected HTTP status {resp.status_code}")
                    return await _save(resp, current, shown, workdir, cap, max_bytes, budget, redirects,
                                       progress)
            except httpx.TransportError as exc:
                raise _connect_error(exc, shown, timeout) from None
            except httpx.InvalidURL as exc:
                raise InputError(f"{shown}: not a valid URL ({redact(str(exc))})") from None
    raise InputError(f"{shown}: too many redirects (more than {MAX_REDIRECTS})")


def _too_big(shown: str, size_text: str, cap: int, max_bytes: int, budget: int) -> InputError:
    if cap >= max_bytes:
        why = f"the per-download limit ({format_size(max_bytes)}, RLM_FETCH_MAX_BYTES)"
    else:
        why = f"what is left of --max-input-size ({format_size(max(budget, 0))})"
    return InputError(f"{shown}: download {size_text} is over {why}")


async def _save(resp, current: str, shown: str, workdir: str, cap: int, max_bytes: int, budget: int,
                redirects: int, progress: bool) -> Download:
    ctype = resp.headers.get("content-type", "").partition(";")[0].strip().lower()
    length = resp.headers.get("content-length", "")
    total = int(length) if length.isdigit() else None
    encoding = resp.headers.get("content-encoding", "")
    if total is not None and total > cap and encoding.strip().lower() in ("", "identity"):
        raise _too_big(shown, f"of {format_size(total)}", cap, max_bytes, budget)
    decoder = _Decoder(encoding, shown)
    fd, path = tempfile.mkstemp(prefix="rlm-url-", suffix=extension_for(ctype, current), dir=workdir)
    size = 0
    try:
        with os.fdopen(fd, "wb") as fh, LazyProgress(f"fetching {shown}", enabled=progress) as bar:
            async for raw in resp.aiter_raw():  # each piece as it arrives (at most one read's worth)
                data = decoder.feed(raw, cap - size)
                size += len(data)
                if size > cap:
                    raise _too_big(shown, f"passed {format_size(cap)}", cap, max_bytes, budget)
                fh.write(data)
                bar.update(size, total)
            decoder.finish()
    except BaseException:
        os.unlink(path)
        raise
    return Download(path, redact(current), ctype, size, redirects)
