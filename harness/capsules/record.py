"""``twinyard record``: a recording reverse proxy between a stack and its vendors.

A capsule (a scenario that replays an incident) can come from a real session: the stack's base
URL for each vendor points at a listener of this proxy, which passes every request on to the
real vendor (or a sandbox, or twinyard's own simulators) and writes what crossed, in both
formats the rest of the project reads:

- a HAR 1.2 file (``--har``): requests and answers with their bodies; each entry carries
  ``"_twinyard": {"system": NAME, "seq": N}`` so ``twinyard import`` knows which vendor it was.
  It is rewritten atomically (a temporary file, then a rename) at most a second after an
  exchange ends and at shutdown, so a recording killed hard loses at most a second;
- the journal (``--journal``): one ``JournalEntry.to_dict`` line per exchange, written and
  flushed as each one ends. ``virtual_time`` is wall seconds since the recording started (a
  real vendor has no virtual clock), ``direction`` is ``in`` (a request to the vendor).

Why a small ASGI app on uvicorn and httpx rather than mitmproxy: mitmproxy is a big dependency
with a CA and TLS interception story of its own (a certificate the stack must trust), and is
made to sit in front of a client as a forward proxy. A stack under test already takes one base
URL per vendor, so a plain reverse proxy on loopback is what it can simply point at: nothing to
trust, nothing to install, and the pieces (uvicorn with ``harness.hosting``'s slow-connection
limits, httpx) are the project's own. The proxy speaks plain HTTP to the stack; it may speak
HTTPS to the vendor (httpx), but it never intercepts TLS.

What is written is redacted unless ``--keep-secrets``: the headers in ``SECRET_HEADERS``
(credentials and webhook signatures), cookie values, and JSON fields and query parameters named
in ``SECRET_FIELDS`` (a webhook subscription's ``secret``, for one). The journal holds no
headers or bodies, only a digest of the request body (of the bytes as sent).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import gzip
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import httpx
import orjson
import uvicorn
import uvloop
from starlette.types import Receive, Scope, Send

from harness import hosting
from simulators.common.http import retry_after_seconds
from simulators.common.journal import JournalEntry, body_digest
from simulators.common.signing import SIGNATURE_HEADER, SW_SIGNATURE_HEADER

MAX_BODY_BYTES = 10 * 1024 * 1024  # a request or an answer larger than this is refused
FLUSH_S = 1.0  # the HAR on disk is at most this far behind while exchanges arrive
CONNECT_TIMEOUT_S = 10.0
UPSTREAM_TIMEOUT_S = 60.0  # a vendor slower than this is a transport failure (502, status 0)
REDACTED = "[redacted]"
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        SIGNATURE_HEADER,  # x-twinyard-signature
        SW_SIGNATURE_HEADER,  # webhook-signature (Standard Webhooks)
        "x-hmac-signature",  # EasyPost's
    }
)
SECRET_FIELDS = frozenset(
    {
        "secret",
        "password",
        "client_secret",
        "api_key",
        "apikey",
        "access_token",
        "refresh_token",
    }
)
# Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection and are not passed on; nor are
# host (rewritten to the upstream's), content-length (recomputed) and expect (the body is
# already read in full when the request is passed on).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "expect"}
# The headers httpx adds by itself: dropped again when the client did not send them, so the
# vendor sees the stack's request, not httpx's.
HTTPX_DEFAULTS = ("accept", "accept-encoding", "user-agent", "connection")
# Where the business entity a request touched is named (the simulators' ``set_ref``).
REF_KEYS = ("order_ref", "order_id", "shipment_ref", "reference", "receipt_id")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


class RecordError(Exception):
    """A usage or configuration error (bad ``--upstream``, a port in use, a file that cannot
    be written): one line, exit code 2."""


# -- upstreams ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    name: str  # the system's name, as ``_twinyard.system`` and the journal's ``system``
    url: str  # its base URL, no trailing slash

    @classmethod
    def parse(cls, spec: str) -> Upstream:
        """``NAME=URL``, checked: a name the importer can use, an http(s) URL with a host."""
        name, sep, url = spec.partition("=")
        name, url = name.strip(), url.strip()
        if not sep or not name or not url:
            raise RecordError(f"--upstream {spec!r}: give NAME=URL, e.g. erp=http://erp:8080")
        if not NAME.match(name):
            raise RecordError(
                f"--upstream {spec!r}: the name must be letters, digits, '_', '.' or '-'"
            )
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 -- raises on a port that is not a number in range
        except ValueError as exc:
            raise RecordError(f"--upstream {spec!r}: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RecordError(f"--upstream {spec!r}: {url} is not an http(s) URL")
        if parts.query or parts.fragment:
            raise RecordError(f"--upstream {spec!r}: a base URL takes no query or fragment")
        return cls(name, url.rstrip("/"))


def parse_upstreams(specs: Iterable[str]) -> list[Upstream]:
    upstreams = [Upstream.parse(spec) for spec in specs]
    if not upstreams:
        raise RecordError("give at least one --upstream NAME=URL, e.g. --upstream erp=http://...")
    seen: set[str] = set()
    for upstream in upstreams:
        if upstream.name in seen:
            raise RecordError(f"--upstream {upstream.name}: named twice")
        seen.add(upstream.name)
    return upstreams


# -- one exchange and how it is written --------------------------------------------------


@dataclass
class Exchange:
    """What crossed in one request and its answer, as the vendor saw it."""

    system: str
    method: str
    url: str  # the upstream URL called
    path: str  # the path as the stack called it (relative to the proxy's base)
    query: str
    http_version: str
    request_headers: list[tuple[str, str]]
    request_body: bytes
    started_wall: float  # Unix seconds
    offset: float  # seconds since the recording started
    status: int = 0  # 0: no answer came back
    reason: str = ""
    response_version: str = "HTTP/1.1"
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes = b""  # decoded (content-encoding undone)
    response_size: int = -1  # bytes on the wire
    wait_ms: float = 0.0
    receive_ms: float = 0.0
    error: str | None = None  # why no answer came back
    proxy_answer: int | None = None  # the status the proxy answered itself (413, 502)


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _json(body: bytes) -> Any:
    if not body or body[:1] not in (b"{", b"["):
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _redact_json(data: Any) -> Any:
    if isinstance(data, dict):
        return {
            k: REDACTED if k.lower() in SECRET_FIELDS else _redact_json(v) for k, v in data.items()
        }
    if isinstance(data, list):
        return [_redact_json(v) for v in data]
    return data


def _redacted_body(body: bytes, keep: bool) -> bytes:
    if keep:
        return body
    data = _json(body)
    if data is None:
        return body
    redacted = _redact_json(data)
    return body if redacted == data else orjson.dumps(redacted)


def _har_headers(headers: list[tuple[str, str]], keep: bool) -> list[dict[str, str]]:
    return [
        {"name": k, "value": v if keep or k.lower() not in SECRET_HEADERS else REDACTED}
        for k, v in headers
    ]


def _cookies(headers: list[tuple[str, str]], name: str, keep: bool) -> list[dict[str, str]]:
    found = []
    for key, value in headers:
        if key.lower() != name:
            continue
        pairs = [value.split(";", 1)[0]] if name == "set-cookie" else value.split(";")
        for pair in pairs:
            cookie, _, text = pair.strip().partition("=")
            if cookie:
                found.append({"name": cookie, "value": text if keep else REDACTED})
    return found


def _query(query: str, keep: bool) -> tuple[list[dict[str, str]], str]:
    """HAR's queryString, and the query to show in the URL (redacted when a value was)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    if not keep and any(k.lower() in SECRET_FIELDS for k, _ in pairs):
        pairs = [(k, REDACTED if k.lower() in SECRET_FIELDS else v) for k, v in pairs]
        query = urlencode(pairs)
    return [{"name": k, "value": v} for k, v in pairs], query


def _content(body: bytes, mime: str) -> dict[str, Any]:
    """HAR text: UTF-8 as is, anything else in base64 (HAR 1.2's ``encoding``)."""
    try:
        return {"mimeType": mime, "text": body.decode()}
    except UnicodeDecodeError:
        return {"mimeType": mime, "text": base64.b64encode(body).decode(), "encoding": "base64"}


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")


def har_entry(x: Exchange, seq: int, keep: bool) -> dict[str, Any]:
    """One HAR 1.2 entry, with ``_twinyard.system`` for the importer."""
    query, shown = _query(x.query, keep)
    url = x.url if shown == x.query else x.url.split("?", 1)[0] + "?" + shown
    request: dict[str, Any] = {
        "method": x.method,
        "url": url,
        "httpVersion": x.http_version,
        "cookies": _cookies(x.request_headers, "cookie", keep),
        "headers": _har_headers(x.request_headers, keep),
        "queryString": query,
        "headersSize": -1,
        "bodySize": len(x.request_body),
    }
    if x.request_body:
        mime = _header(x.request_headers, "content-type") or ""
        text = _content(_redacted_body(x.request_body, keep), mime)
        request["postData"] = {**text, "params": []}
    mime = _header(x.response_headers, "content-type") or ""
    content = {
        "size": len(x.response_body),
        **_content(_redacted_body(x.response_body, keep), mime),
    }
    if x.response_size >= 0 and x.response_size != len(x.response_body):
        content["compression"] = len(x.response_body) - x.response_size
    response: dict[str, Any] = {
        "status": x.status,
        "statusText": x.reason,
        "httpVersion": x.response_version if x.status else "",
        "cookies": _cookies(x.response_headers, "set-cookie", keep),
        "headers": _har_headers(x.response_headers, keep),
        "content": content,
        "redirectURL": _header(x.response_headers, "location") or "",
        "headersSize": -1,
        "bodySize": x.response_size,
    }
    if x.error is not None:
        response["_error"] = x.error
    twinyard: dict[str, Any] = {"system": x.system, "seq": seq}
    if x.proxy_answer is not None:
        twinyard["proxy_answer"] = x.proxy_answer  # what the stack got; the vendor said nothing
    timings = {
        "blocked": -1,
        "dns": -1,
        "connect": -1,
        "ssl": -1,
        "send": 0,
        "wait": round(x.wait_ms, 3),
        "receive": round(x.receive_ms, 3),
    }
    return {
        "startedDateTime": _iso(x.started_wall),
        "time": round(x.wait_ms + x.receive_ms, 3),
        "request": request,
        "response": response,
        "cache": {},
        "timings": timings,
        "_twinyard": twinyard,
    }


def _find_ref(data: Any) -> str | None:
    if isinstance(data, dict):
        for key in REF_KEYS:
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def _event(body: Any) -> tuple[str | None, str | None]:
    """(event type, ref) of a webhook event envelope (``id``, ``type``, ``data``), else Nones."""
    if not (isinstance(body, dict) and isinstance(body.get("type"), str) and "data" in body):
        return None, None
    data = body["data"]
    ref = _find_ref(data)
    if ref is None and isinstance(data, dict) and body["type"].startswith("order."):
        ref = data.get("id") if isinstance(data.get("id"), str) else None
    return body["type"], ref


def journal_fields(x: Exchange) -> tuple[str | None, str | None]:
    """(event_type, ref) as the simulators fill them: the event of an envelope; else the order
    (or shipment) the request names in its body, its path (``/orders/SO-1/release``) or the
    answer (the id of an order just created)."""
    request = _json(x.request_body)
    event_type, ref = _event(request)
    if event_type is not None:
        return event_type, ref
    ref = _find_ref(request)
    segments = [s for s in x.path.split("/") if s]
    if ref is None and len(segments) >= 2 and segments[0] == "orders":
        ref = unquote(segments[1])  # an ERP document number may hold "/" (sent as %2F)
    answer = _json(x.response_body) if ref is None else None
    if ref is None:
        ref = _find_ref(answer)
    if ref is None and segments == ["orders"] and isinstance(answer, dict):
        ref = answer.get("id") if isinstance(answer.get("id"), str) else None
    return None, ref


def _error_code(body: bytes) -> str | None:
    """``error.code`` of a vendor error body (the simulators' shape), else None."""
    data = _json(body)
    error = data.get("error") if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def _retry_after(headers: list[tuple[str, str]]) -> float | None:
    text = _header(headers, "retry-after")
    return None if text is None else retry_after_seconds(text)


def journal_entry(x: Exchange, seq: int, duration_ms: float) -> JournalEntry:
    event_type, ref = journal_fields(x)
    correlation = _header(x.request_headers, "x-correlation-id") or _header(
        x.response_headers, "x-correlation-id"
    )
    if x.error is not None:
        error = x.error
    elif x.status >= 400:
        error = _error_code(x.response_body)
    else:
        error = None
    return JournalEntry(
        seq=seq,
        system=x.system,
        direction="in",
        method=x.method,
        path=x.path,
        status=x.status,
        correlation_id=correlation,
        body_digest=body_digest(x.request_body),
        virtual_time=round(x.offset, 6),
        wall_time=time.time(),
        duration_ms=round(duration_ms, 3),
        event_type=event_type,
        ref=ref,
        error=error,
        retry_after=_retry_after(x.response_headers) if x.status >= 400 else None,
        query=x.query,
    )


# -- the recorder: both files ------------------------------------------------------------


class Recorder:
    """The HAR and the journal of one recording. ``record`` may be called from any thread or
    task: one lock orders the entries, another the HAR writes (each a rename of a full file)."""

    def __init__(
        self,
        har: Path,
        journal: Path,
        upstreams: list[Upstream],
        *,
        keep_secrets: bool = False,
    ) -> None:
        self.har = har
        self.journal = journal
        self.upstreams = upstreams
        self.keep_secrets = keep_secrets
        self.started_at = time.time()
        self._started = time.perf_counter()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._entries: list[bytes] = []  # each entry serialised once, when it is recorded
        self._dirty = False
        self._journal_file: IO[bytes] | None = None
        self.on_record: Callable[[], None] | None = None  # told after each entry (any thread)
        self._mode = 0o644  # the HAR's, once ``open`` made it (mkstemp's would be 0600)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def dirty(self) -> bool:
        return self._dirty

    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def open(self) -> None:
        """Create both files now, so one that cannot be written is said before any traffic."""
        try:
            self.har.touch()  # with the user's umask, or as it was: the mode renames keep
            self._mode = self.har.stat().st_mode & 0o777
            self.write_har()
        except OSError as exc:
            raise RecordError(f"--har {self.har}: cannot write: {exc.strerror or exc}") from None
        try:
            self._journal_file = self.journal.open("wb")
        except OSError as exc:
            raise RecordError(
                f"--journal {self.journal}: cannot write: {exc.strerror or exc}"
            ) from None

    def record(self, x: Exchange, duration_ms: float) -> int:
        """Add one exchange: its journal line is on disk when this returns, the HAR within
        ``FLUSH_S`` (``Recording``'s flusher) or at ``close``."""
        with self._lock:
            seq = len(self._entries) + 1
            self._entries.append(orjson.dumps(har_entry(x, seq, self.keep_secrets)))
            line = orjson.dumps(journal_entry(x, seq, duration_ms).to_dict())
            if self._journal_file is not None:
                self._journal_file.write(line + b"\n")
                self._journal_file.flush()
            self._dirty = True
        if self.on_record is not None:
            self.on_record()
        return seq

    def har_bytes(self) -> bytes:
        with self._lock:
            entries = list(self._entries)
            self._dirty = False
        log = {
            "version": "1.2",
            "creator": {"name": "twinyard record", "version": _version()},
            "pages": [],
            "entries": [],
            "_twinyard": {
                "started": _iso(self.started_at),
                "upstreams": {u.name: u.url for u in self.upstreams},
            },
        }
        # One entry a line: the file stays readable, and no entry is serialised twice.
        before, _, after = orjson.dumps({"log": log}).partition(b'"entries":[]')
        listed = b"[\n" + b",\n".join(entries) + b"\n]" if entries else b"[]"
        return before + b'"entries":' + listed + after + b"\n"

    def write_har(self) -> None:
        """Atomically: a reader (or a kill) sees the previous whole file or this one."""
        with self._write_lock:
            data = self.har_bytes()
            try:
                fd, tmp = tempfile.mkstemp(
                    prefix=f".{self.har.name}.", suffix=".tmp", dir=self.har.parent
                )
                try:
                    os.fchmod(fd, self._mode)
                    with os.fdopen(fd, "wb") as file:
                        file.write(data)
                        file.flush()
                        os.fsync(file.fileno())
                    os.replace(tmp, self.har)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
            except BaseException:
                self._dirty = True  # not on disk: the next flush tries again
                raise

    def close(self) -> None:
        self.write_har()
        if self._journal_file is not None:
            self._journal_file.close()
            self._journal_file = None


@functools.cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("twinyard")
    except PackageNotFoundError:
        return "0"


# -- the proxy ---------------------------------------------------------------------------


class _TooLarge(Exception):
    pass


def _error_body(code: str, message: str, **details: Any) -> bytes:
    """A vendor-style error body, as the simulators answer (``error.code/message/details``)."""
    return orjson.dumps({"error": {"code": code, "message": message, "details": details}})


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Proxy:
    """The ASGI app of one listener: passes each request to ``upstream`` and records it."""

    def __init__(
        self,
        upstream: Upstream,
        recorder: Recorder,
        client: httpx.AsyncClient,
        *,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.upstream = upstream
        self.recorder = recorder
        self.client = client
        self.max_body = max_body
        self.base = ""  # the proxy's own base URL, for Location rewriting (set when served)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        url = self.upstream.url + raw_path + (f"?{query}" if query else "")
        x = Exchange(
            system=self.upstream.name,
            method=scope["method"],
            url=url,
            path=scope["path"],
            query=query,
            http_version=f"HTTP/{scope.get('http_version', '1.1')}",
            request_headers=headers,
            request_body=b"",
            started_wall=time.time(),
            offset=self.recorder.elapsed(),
        )
        try:
            body = await self._read(headers, receive)
        except _TooLarge:
            message = f"the request body is larger than {self.max_body} bytes"
            await self._answer(x, send, 413, _error_body("request_too_large", message), started)
            return
        if body is None:
            return  # the client went away before its body came: nothing was passed on
        x.request_body = body
        await self._forward(x, send, started)

    async def _read(self, headers: list[tuple[str, str]], receive: Receive) -> bytes | None:
        length = _header(headers, "content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _forward(self, x: Exchange, send: Send, started: float) -> None:
        names = _connection_names(x.request_headers)
        forwarded = [(k, v) for k, v in x.request_headers if k.lower() not in names]
        sent_at = time.perf_counter()
        try:
            request = self.client.build_request(
                x.method, x.url, headers=forwarded, content=x.request_body or None
            )
            sent = {k.lower() for k, _ in forwarded}
            for name in HTTPX_DEFAULTS:
                if name not in sent and name in request.headers:
                    del request.headers[name]
            x.request_headers = [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
            ]
            response = await self.client.send(request, stream=True)
            headers_at = time.perf_counter()
            try:
                raw = await self._read_answer(response)
            finally:
                await response.aclose()
        except (httpx.HTTPError, httpx.InvalidURL, _TooLarge) as exc:
            failed_at = time.perf_counter()
            if isinstance(exc, _TooLarge):
                x.error = f"the answer is larger than {self.max_body} bytes: not passed on"
            else:
                x.error = _describe(exc)
            x.wait_ms = (failed_at - sent_at) * 1000
            message = f"{self.upstream.name} at {self.upstream.url}: {x.error}"
            body = _error_body("upstream_unreachable", message, upstream=self.upstream.name)
            await self._answer(x, send, 502, body, started, record_status=0)
            return
        done_at = time.perf_counter()
        x.status = response.status_code
        x.reason = response.reason_phrase
        x.response_version = response.http_version
        x.response_headers = [
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw
        ]
        x.response_size = len(raw)
        x.response_body = _decoded(raw, _header(x.response_headers, "content-encoding"))
        x.wait_ms = (headers_at - sent_at) * 1000
        x.receive_ms = (done_at - headers_at) * 1000
        out = self._answer_headers(x, len(raw))
        try:
            await send({"type": "http.response.start", "status": x.status, "headers": out})
            await send({"type": "http.response.body", "body": raw})
        finally:
            self.recorder.record(x, (time.perf_counter() - started) * 1000)

    async def _read_answer(self, response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def _answer_headers(self, x: Exchange, length: int) -> list[tuple[bytes, bytes]]:
        names = _connection_names(x.response_headers) | {"content-length"}
        out = []
        for k, v in x.response_headers:
            key = k.lower()
            if key in names:
                continue
            if key == "location" and self.base and v.startswith(self.upstream.url):
                v = self.base + v[len(self.upstream.url) :]
            out.append((k.encode("latin-1"), v.encode("latin-1")))
        keep_length = x.method == "HEAD" or x.status == 304
        upstream_length = _header(x.response_headers, "content-length")
        if keep_length and upstream_length is not None:
            out.append((b"content-length", upstream_length.encode("latin-1")))
        elif not keep_length and x.status != 204 and not 100 <= x.status < 200:
            out.append((b"content-length", str(length).encode()))
        return out

    async def _answer(
        self,
        x: Exchange,
        send: Send,
        status: int,
        body: bytes,
        started: float,
        record_status: int | None = None,
    ) -> None:
        """Answer the stack from the proxy itself (413, 502) and record it: ``record_status``
        is what the vendor said (0: nothing), else the answer the proxy gave."""
        x.proxy_answer = status
        if record_status is None:
            x.status = status
            x.reason = HTTPStatus(status).phrase
            x.response_headers = [("content-type", "application/json")]
            x.response_body = body
            x.response_size = len(body)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 413:
            headers.append((b"connection", b"close"))  # the rest of the body is not read
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            self.recorder.record(x, (time.perf_counter() - started) * 1000)


def _connection_names(headers: list[tuple[str, str]]) -> set[str]:
    """The headers not passed on: hop-by-hop, and those the Connection header names."""
    names = set(NOT_FORWARDED)
    for key, value in headers:
        if key.lower() == "connection":
            names |= {token.strip().lower() for token in value.split(",") if token.strip()}
    return names


def _decoded(raw: bytes, encoding: str | None) -> bytes:
    """The body with its content-encoding undone, for the HAR (the stack gets ``raw``); as
    sent when it cannot be (zstd, br without the brotli module, a body that does not decode)."""
    if not encoding or not raw:
        return raw
    body = raw
    try:
        for coding in reversed([c.strip().lower() for c in encoding.split(",")]):
            if coding == "gzip":
                body = gzip.decompress(body)
            elif coding == "deflate":
                try:
                    body = zlib.decompress(body)
                except zlib.error:
                    body = zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some send
            elif coding == "br" and (brotli := _brotli()) is not None:
                body = brotli.decompress(body)
            elif coding not in ("identity", ""):
                return raw
    except Exception:
        return raw
    return body


def _brotli() -> Any:
    """The ``brotli`` module when installed (httpx uses it too); None otherwise."""
    try:
        import brotli  # type: ignore[import-not-found]
    except ImportError:
        return None
    return brotli


# -- a recording: listeners, the client, the flusher ------------------------------------


@dataclass
class Listener:
    upstream: Upstream
    url: str  # where the stack points its base URL
    server: uvicorn.Server
    sock: socket.socket


def default_journal(har: Path) -> Path:
    """``capture.har`` -> ``capture.journal.jsonl``, next to it."""
    return har.with_name(f"{har.stem}.journal.jsonl")


class Recording:
    """Listeners for ``upstreams`` on the running loop, recording into ``har`` and ``journal``.

    ``async with Recording(...) as rec``: ``rec.listeners`` hold the URLs to point a stack at.
    ``port_base`` None: free ports; else ``port_base``, ``port_base + 1``, ... in order."""

    def __init__(
        self,
        upstreams: list[Upstream],
        har: Path,
        journal: Path | None = None,
        *,
        port_base: int | None = None,
        host: str = hosting.LOOPBACK,
        keep_secrets: bool = False,
        max_body: int = MAX_BODY_BYTES,
        timeout_s: float = UPSTREAM_TIMEOUT_S,
    ) -> None:
        self.upstreams = upstreams
        self.host = host
        self.port_base = port_base
        self.max_body = max_body
        self.timeout_s = timeout_s
        self.recorder = Recorder(
            har, journal or default_journal(har), upstreams, keep_secrets=keep_secrets
        )
        self.listeners: list[Listener] = []
        self._client: httpx.AsyncClient | None = None
        self._flusher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Recording:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        count = len(self.upstreams)
        if self.port_base is not None and self.port_base + count - 1 > 65535:
            raise RecordError(f"--port-base {self.port_base}: {count} ports do not fit below 65536")
        ports = (
            [0] * count if self.port_base is None else [self.port_base + i for i in range(count)]
        )
        socks = []
        try:
            for port in ports:  # all bound before anything is written or served
                socks.append(hosting.bind(self.host, port))
        except hosting.PortInUse as exc:
            for sock in socks:
                sock.close()
            raise RecordError(str(exc)) from None
        try:
            self.recorder.open()
        except RecordError:
            for sock in socks:
                sock.close()
            raise
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout_s, connect=CONNECT_TIMEOUT_S),
            follow_redirects=False,
            # A jar that keeps nothing: the vendor's cookies go to the stack, never into the
            # proxy's own jar (which would send one stack's cookies on every later request).
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
        for upstream, sock in zip(self.upstreams, socks, strict=True):
            app = Proxy(upstream, self.recorder, self._client, max_body=self.max_body)
            host, port = sock.getsockname()[:2]
            app.base = f"http://{host}:{port}"
            server = await hosting.start_server(app, sock, own_headers=False)
            self.listeners.append(Listener(upstream, app.base, server, sock))
        self._flusher = asyncio.create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        """Write the HAR as soon as an entry comes after a quiet spell, then at most once a
        ``FLUSH_S`` while they keep coming: rewriting the file per entry would cost O(n^2)."""
        loop = asyncio.get_running_loop()
        recorded = asyncio.Event()
        self.recorder.on_record = lambda: loop.call_soon_threadsafe(recorded.set)
        while True:
            await recorded.wait()
            recorded.clear()
            while self.recorder.dirty:
                # A full disk: the next second tries again, and stop() says it.
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(self.recorder.write_har)
                await asyncio.sleep(FLUSH_S)

    async def stop(self) -> None:
        """Stop listening (requests under way get a grace to finish), then write the HAR."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        self.recorder.on_record = None
        for listener in self.listeners:
            listener.server.should_exit = True
            await listener.server.shutdown(sockets=[listener.sock])
            listener.sock.close()
        self.listeners.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self.recorder.close()

    @property
    def count(self) -> int:
        return len(self.recorder)


# -- the command -------------------------------------------------------------------------


def _say(line: str) -> None:
    print(line, flush=True)  # flushed: a script reading the URLs from a pipe gets them now


def command(
    specs: list[str],
    har: Path,
    journal: Path | None = None,
    *,
    port_base: int | None = None,
    keep_secrets: bool = False,
    say: Callable[[str], None] = _say,
) -> int:
    """``twinyard record``: serve until SIGINT or SIGTERM; how many exchanges were recorded.
    ``RecordError`` for anything the user must fix (before any listener starts), or a HAR
    that could not be written at the end."""
    upstreams = parse_upstreams(specs)
    journal = journal or default_journal(har)
    recording = Recording(upstreams, har, journal, port_base=port_base, keep_secrets=keep_secrets)
    try:
        uvloop.run(_serve(recording, say))
    except OSError as exc:  # the last HAR write (a full disk, a folder gone)
        raise RecordError(f"--har {har}: cannot write: {exc.strerror or exc}") from None
    say(f"recorded {recording.count} exchanges: {har} and {journal}")
    return recording.count


async def _serve(recording: Recording, say: Callable[[str], None]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await recording.start()
    try:
        width = max(len(listener.upstream.name) for listener in recording.listeners)
        for listener in recording.listeners:
            name = listener.upstream.name
            say(f"{name:<{width}}  {listener.url} -> {listener.upstream.url}")
        print("recording; Ctrl-C stops", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await recording.stop()
