"""A lean HTTP/1.1 client for the most frequent requests of a played day: the simulators'
webhook deliveries, the harness's idle probe and the reference stack's vendor calls. One
request, its status, its body and (when asked) its headers.

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
short JSON answer; the reference stack keeps answers whole (``body_kept=None``) and their
headers (``keep_headers``: Retry-After, Content-Type).

The reference stack's vendor client moved here from aiohttp for the same reason: on the
10,000-order day its calls cost the stack 38.4 s of CPU against 28.6 s on this sender
(``benchmarks/peak_day.py --runs 2``, side by side).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import re
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


class ConnectTimeout(TimeoutError):
    """The timeout ran out before a connection was made: nothing of the request was sent."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer as ``Sender.request`` gives it: headers by lower-case name (the first of a
    repeated one; empty unless the sender keeps headers) and the body as kept."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Target:
    """Where an origin's requests go, parsed once per origin (``scheme://[user@]host:port``):
    a stack's calls name a new path each time (``/orders/SO-000042/goods-issue``), but few
    origins."""

    origin: tuple[str, str, int]  # scheme, host, port: what a kept-alive connection serves
    head: bytes  # the headers every request to this origin carries, after the request line


# scheme://authority, then the path and query (the fragment is never sent)
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/?#]*)([^#]*)")


def target(url: str, method: str, user_agent: str, accept: str) -> tuple[Target, bytes]:
    """Where ``url`` (http or https) goes, and the request line of ``method`` to it;
    ValueError names what is wrong with it."""
    split = _URL.match(url)
    if split is None:
        raise ValueError(f"not an http(s) URL: {url!r}")
    base, path = split.groups()
    if not path.startswith("/"):
        path = "/" + path  # http://host or http://host?x=1
    _check("URL", path)
    return _origin(base, user_agent, accept), f"{method} {path} HTTP/1.1\r\n".encode()


@functools.lru_cache(maxsize=256)
def _origin(base: str, user_agent: str, accept: str) -> Target:
    parts = urlsplit(base)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {base!r}")
    default = 443 if scheme == "https" else 80
    port = parts.port or default  # ValueError for a port out of range
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    lines = [f"Host: {host_header}", f"User-Agent: {user_agent}", f"Accept: {accept}"]
    if parts.username is not None:
        secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        lines.append(f"Authorization: Basic {base64.b64encode(secret.encode()).decode()}")
    _check("URL", host_header)
    return Target((scheme, host, port), ("\r\n".join(lines) + "\r\n").encode())


def _check(what: str, text: str) -> None:
    if "\r" in text or "\n" in text:
        raise ValueError(f"a line break in the request's {what}: {text[:80]!r}")


class _Connection(asyncio.Protocol):
    """One kept-alive connection: at most one request on it at a time."""

    def __init__(self, peer: str) -> None:
        self.peer = peer  # who answers, as failures name it
        self.body_kept: int | None = BODY_KEPT  # of the answer being read; None: all of it
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
            self._fail(SendFailed(f"{self.peer} switched protocols instead of answering"))
        except httptools.HttpParserError as exc:
            self._fail(SendFailed(f"{self.peer}'s answer is not HTTP/1.1: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        answer = self._answer
        if answer is None or answer.done():
            return
        if self._status >= 200:  # an answer framed by the connection's end: now it is whole
            answer.set_result((self._status, b"".join(self._body), False))
        else:
            why = f": {exc}" if exc else ""
            answer.set_exception(SendFailed(f"{self.peer} closed the connection unanswered{why}"))

    # -- httptools callbacks -----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._status, self._body, self._kept = 0, [], 0

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if self.body_kept is None:
            self._body.append(body)
            return
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
    async def exchange(
        self, request: bytes, body_kept: int | None, deadline: float
    ) -> tuple[int, bytes, bool]:
        """Send ``request``; its status, the first ``body_kept`` bytes of its body, and
        whether the connection may be kept. TimeoutError when no whole answer came by
        ``deadline`` (the loop's clock). A timer on the answer's future, not
        ``asyncio.timeout``: that costs a task cancellation's machinery per request, 3.5% of
        the harness's CPU and 2.6% of the stack's on a peak day."""
        assert self.transport is not None
        self.body_kept = body_kept
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        self._status = 0
        timer = loop.call_at(deadline, self._time_out)
        try:
            self.transport.write(request)
            return await self._answer
        finally:
            timer.cancel()

    def _time_out(self) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(TimeoutError())

    def _fail(self, exc: SendFailed) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _HeadedConnection(_Connection):
    """A connection that also keeps the answer's headers (httptools calls ``on_header`` only
    on a protocol that has it, so deliveries and probes do not pay for it). Knowing them, it
    tells an answer cut off (the connection closed short of its Content-Length or last
    chunk) from one framed by the connection's end: the first is a failure."""

    def __init__(self, peer: str) -> None:
        super().__init__(peer)
        self.headers: dict[str, str] = {}

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.headers = {}

    def connection_lost(self, exc: Exception | None) -> None:
        answer = self._answer
        framed = "content-length" in self.headers or "transfer-encoding" in self.headers
        if self._status >= 200 and framed and answer is not None and not answer.done():
            self.closed = True
            answer.set_exception(
                SendFailed(f"{self.peer} closed the connection before the answer was whole")
            )
            return
        super().connection_lost(exc)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))


class Sender:
    """Requests over kept-alive connections, one origin's idle connections reused newest
    first, as many connections at once as requests in flight. ``user_agent`` names who asks
    (a vendor's webhooks, the harness's idle probe, the reference stack); ``accept`` is its
    Accept header; ``body_kept``: how much of an answer's body is kept (None: all of it);
    ``keep_headers``: whether ``request`` gives the answer's headers; ``peer``: who answers,
    as failures name it ("the stack closed the connection unanswered")."""

    def __init__(
        self,
        *,
        timeout_s: float,
        idle_reuse_s: float,
        user_agent: str = USER_AGENT,
        accept: str = "*/*",
        body_kept: int | None = BODY_KEPT,
        keep_headers: bool = False,
        peer: str = "the stack",
    ) -> None:
        self.timeout_s = timeout_s
        self.idle_reuse_s = idle_reuse_s
        self.user_agent = user_agent
        self.accept = accept
        self.body_kept = body_kept
        self._protocol = functools.partial(_HeadedConnection if keep_headers else _Connection, peer)
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None

    async def post(
        self, url: str, body: bytes, headers: Iterable[tuple[str, str]]
    ) -> tuple[int, bytes]:
        """The answer's status and the start of its body. Raises SendFailed (no answer, or
        a request that cannot be sent: the reason in its text) or TimeoutError."""
        status, _, answer = await self._send(url, "POST", body, headers)
        return status, answer

    async def get(self, url: str, headers: Iterable[tuple[str, str]] = ()) -> tuple[int, bytes]:
        """As ``post``, for a GET without a body."""
        status, _, answer = await self._send(url, "GET", None, headers)
        return status, answer

    async def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Answer:
        """Any method; ``body`` None sends none. Raises as ``post`` does, and ConnectTimeout
        (a TimeoutError) when nothing was sent before the timeout."""
        status, kept, answer = await self._send(url, method, body, headers)
        return Answer(status, kept, answer)

    def _head(
        self, url: str, method: str, headers: Iterable[tuple[str, str]]
    ) -> tuple[Target, bytes]:
        """Where the request goes, and its head up to its own headers (request line, the
        origin's headers, the given ones)."""
        try:
            where, line = target(url, method, self.user_agent, self.accept)
            lines = [f"{name}: {value}\r\n" for name, value in headers]
            for given in lines:
                _check("headers", given[:-2])
        except ValueError as exc:
            raise SendFailed(str(exc)) from None
        return where, b"".join((line, where.head, "".join(lines).encode()))

    async def _send(
        self, url: str, method: str, body: bytes | None, headers: Iterable[tuple[str, str]]
    ) -> tuple[int, dict[str, str], bytes]:
        where, head = self._head(url, method, headers)
        if body is None:
            request = head + b"\r\n"
        else:
            request = b"".join((head, b"Content-Length: %d\r\n\r\n" % len(body), body))
        deadline = asyncio.get_running_loop().time() + self.timeout_s  # one for the attempt
        conn = self._reuse(where.origin)
        if conn is None:
            try:
                async with asyncio.timeout_at(deadline):
                    conn = await self._connect(where.origin)
            except TimeoutError:
                _, host, port = where.origin
                raise ConnectTimeout(f"no connection to {host}:{port} in time") from None
        try:
            status, answer, keep = await conn.exchange(request, self.body_kept, deadline)
        except BaseException:
            conn.close()  # cancelled or timed out mid-answer: its bytes would follow
            raise
        kept = conn.headers if isinstance(conn, _HeadedConnection) else {}
        if keep and not conn.closed:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(where.origin, []).append(conn)
        else:
            conn.close()
        return status, kept, answer

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
                self._protocol,
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
