"""A lean HTTP/1.1 client for the harness's most frequent requests: webhook deliveries and
the idle probe. One request, its status and its body.

Why not aiohttp here: a delivery needs none of a general client's machinery (cookies, redirects,
middlewares, multidicts, URL objects per request), and on a peak day that machinery was the
largest single cost of the harness: 94,000 deliveries of the 10,000-order day spent about
150 us of CPU each inside aiohttp's ``ClientSession._request``. This sender parses answers with
httptools (llhttp, the parser uvicorn serves with), keeps connections alive per origin for
``idle_reuse_s`` and sends each request in one write: ``benchmarks/webhook_sender.py`` measures
both side by side.

What it does as a vendor's webhook sender does: HTTP and HTTPS (certificates verified), user
and password in the URL sent as Basic auth, a header given twice sent twice, one total timeout
per attempt (connect, send, answer), no redirects followed, no compression asked for. An answer
framed by neither Content-Length nor chunked ends when the stack closes the connection. Of the
body only the first ``body_kept`` bytes are kept (the rest is read and dropped, so the
connection stays usable): a delivery only needs the start of an error text, a probe its
short JSON answer.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httptools

BODY_KEPT = 4096  # bytes of an answer's body kept by default; the rest is drained, dropped
USER_AGENT = "twinyard-webhooks/1"
# An idle connection to a stack is reused for at most this long: under the 5 s idle timeout of
# uvicorn, Node and gunicorn, so a delivery never goes out on a connection the stack is closing
# (aiohttp's default, 15 s, met a reset in a 10-minute soak; the event was redelivered).
IDLE_REUSE_S = 4.0


class SendFailed(Exception):
    """No answer: refused, reset, closed before the answer was whole, or not HTTP."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL's requests go, parsed once per distinct URL."""

    origin: tuple[str, str, int]  # scheme, host, port: what a kept-alive connection serves
    head: bytes  # the request line and the headers every request to this URL carries


@functools.lru_cache(maxsize=1024)
def target(url: str, method: str = "POST", user_agent: str = USER_AGENT) -> Target:
    """Parse ``url`` (http or https); ValueError names what is wrong with it."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    default = 443 if scheme == "https" else 80
    port = parts.port or default  # ValueError for a port out of range
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host_header}", f"User-Agent: {user_agent}"]
    lines.append("Accept: */*")
    if parts.username is not None:
        secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        lines.append(f"Authorization: Basic {base64.b64encode(secret.encode()).decode()}")
    _check("URL", path + host_header)
    return Target((scheme, host, port), ("\r\n".join(lines) + "\r\n").encode())


def _check(what: str, text: str) -> None:
    if "\r" in text or "\n" in text:
        raise ValueError(f"a line break in the request's {what}: {text[:80]!r}")


class _Connection(asyncio.Protocol):
    """One kept-alive connection: at most one request on it at a time."""

    def __init__(self) -> None:
        self.body_kept = BODY_KEPT  # of the answer being read
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self._status = 0
        self._keep_alive = True
        self._body: list[bytes] = []
        self._kept = 0

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            self.close()  # bytes nobody asked for: this connection cannot be trusted again
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(SendFailed("the stack switched protocols instead of answering"))
        except httptools.HttpParserError as exc:
            self._fail(SendFailed(f"the stack's answer is not HTTP/1.1: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        answer = self._answer
        if answer is None or answer.done():
            return
        if self._status >= 200:  # an answer framed by the connection's end: now it is whole
            answer.set_result((self._status, b"".join(self._body), False))
        else:
            why = f": {exc}" if exc else ""
            answer.set_exception(SendFailed(f"the stack closed the connection unanswered{why}"))

    # -- httptools callbacks -----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._status, self._body, self._kept = 0, [], 0

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        room = self.body_kept - self._kept
        if room > 0:
            self._body.append(body[:room])
            self._kept += min(room, len(body))

    def on_message_complete(self) -> None:
        if self._status < 200:  # 100 Continue and other interim answers: the real one follows
            return
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_result((self._status, b"".join(self._body), self._keep_alive))

    # -- use -----------------------------------------------------------------------------------
    async def exchange(self, request: bytes, body_kept: int) -> tuple[int, bytes, bool]:
        """Send ``request``; its status, the first ``body_kept`` bytes of its body, and
        whether the connection may be kept."""
        assert self.transport is not None
        self.body_kept = body_kept
        self._answer = asyncio.get_running_loop().create_future()
        self._status = 0
        self.transport.write(request)
        return await self._answer

    def _fail(self, exc: SendFailed) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Sender:
    """Requests over kept-alive connections, one origin's idle connections reused newest
    first. ``user_agent`` names who asks (a vendor's webhooks, the harness's idle probe);
    ``body_kept``: how much of an answer's body is kept."""

    def __init__(
        self,
        *,
        timeout_s: float,
        idle_reuse_s: float,
        user_agent: str = USER_AGENT,
        body_kept: int = BODY_KEPT,
    ) -> None:
        self.timeout_s = timeout_s
        self.idle_reuse_s = idle_reuse_s
        self.user_agent = user_agent
        self.body_kept = body_kept
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None

    async def post(
        self, url: str, body: bytes, headers: Iterable[tuple[str, str]]
    ) -> tuple[int, bytes]:
        """The answer's status and the start of its body. Raises SendFailed (no answer, or
        a request that cannot be sent: the reason in its text) or TimeoutError."""
        where, lines = self._head(url, "POST", headers)
        length = b"Content-Length: %d\r\n\r\n" % len(body)
        return await self._send(where, b"".join((where.head, lines, length, body)))

    async def get(self, url: str, headers: Iterable[tuple[str, str]] = ()) -> tuple[int, bytes]:
        """As ``post``, for a GET without a body."""
        where, lines = self._head(url, "GET", headers)
        return await self._send(where, b"".join((where.head, lines, b"\r\n")))

    def _head(
        self, url: str, method: str, headers: Iterable[tuple[str, str]]
    ) -> tuple[Target, bytes]:
        try:
            where = target(url, method, self.user_agent)
            lines = [f"{name}: {value}\r\n" for name, value in headers]
            for line in lines:
                _check("headers", line[:-2])
        except ValueError as exc:
            raise SendFailed(str(exc)) from None
        return where, "".join(lines).encode()

    async def _send(self, where: Target, request: bytes) -> tuple[int, bytes]:
        async with asyncio.timeout(self.timeout_s):
            conn = self._reuse(where.origin) or await self._connect(where.origin)
            try:
                status, answer, keep = await conn.exchange(request, self.body_kept)
            except BaseException:
                conn.close()  # cancelled or timed out mid-answer: its bytes would follow
                raise
        if keep and not conn.closed:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(where.origin, []).append(conn)
        else:
            conn.close()
        return status, answer

    def _reuse(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        oldest_usable = time.monotonic() - self.idle_reuse_s
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.idle_since >= oldest_usable:
                return conn
            conn.close()
        return None

    async def _connect(self, origin: tuple[str, str, int]) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = None
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        try:
            _, conn = await loop.create_connection(
                _Connection,
                host,
                port,
                ssl=tls,
                server_hostname=host if tls else None,
            )
        except OSError as exc:
            raise SendFailed(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
        return conn

    async def close(self) -> None:
        """Close every kept connection."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing
