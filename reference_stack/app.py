"""The stack's HTTP face: signed webhooks in, and the ``/_stack/`` probes the harness reads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from reference_stack import retention
from reference_stack.config import SYSTEMS
from reference_stack.defects import DEAD_LETTER_NO_REPLAY, SKIP_SIGNATURE
from reference_stack.stack import Stack
from reference_stack.store import DEAD, Event
from reference_stack.subscriptions import SubscriptionError
from simulators.common.signing import (
    FUTURE_SKEW_S,
    SIGNATURE_HEADER,
    SIGNATURE_HEADERS,
    STANDARD_WEBHOOKS,
    SW_ID_HEADER,
    SW_SIGNATURE_HEADER,
    SW_TIMESTAMP_HEADER,
    TIMESTAMP_HEADER,
    TWINYARD,
    verify,
    verify_standard,
)

log = logging.getLogger("reference_stack")

REPLAY_WINDOW_S = 300  # how old a signed timestamp may be
MAX_SKEW_S = FUTURE_SKEW_S  # how far ahead of our clock (30 s): the sender's clock may run fast


def respond(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def error(http_status: int, code: str, message: str, **details: Any) -> Response:
    return respond({"error": {"code": code, "message": message, "details": details}}, http_status)


# No vendor event comes near this; a bigger body is refused unread (and never parsed).
MAX_EVENT_BYTES = 1024 * 1024
MAX_IDLE_WAIT_MS = 1000  # the longest an idle probe may be held (``?wait_ms=``)


def _wait_s(raw: str | None) -> float:
    """The idle probe's long-poll wait, in seconds: ``wait_ms`` clamped to 0..1000; a value
    that is not a number means no wait (the probe's answer never depends on it)."""
    try:
        wait_ms = float(raw) if raw is not None else 0.0
    except ValueError:
        return 0.0
    if wait_ms != wait_ms:  # NaN
        return 0.0
    return min(max(wait_ms, 0.0), MAX_IDLE_WAIT_MS) / 1000


def too_large() -> Response:
    """413, and the connection closed after it: the server would otherwise read (and throw
    away) the rest of the body to keep the connection for a next request."""
    response = error(413, "payload_too_large", f"an event is at most {MAX_EVENT_BYTES} bytes")
    response.headers["connection"] = "close"
    return response


async def read_body(request: Request) -> bytes | None:
    """The body, or None as soon as it passes the cap. Read as it arrives: a chunked body
    says no length up front, so only counting what came stops one at the cap."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_EVENT_BYTES:
            return None
    return bytes(body)


def check_signature(
    secret: str,
    body: bytes,
    request: Request,
    defects: frozenset[str] = frozenset(),
    scheme: str = TWINYARD,
) -> str | None:
    """None when the webhook is signed with our secret, in the scheme we subscribed with,
    with a timestamp in canonical form no older than the replay window and no further ahead
    than the skew; else why not. A signature or timestamp header sent twice is refused: which
    one a server hands over (the first, the last, both joined by a comma) differs between
    servers and proxies, and a check may then read another than the one verified."""
    if SKIP_SIGNATURE in defects:
        return None
    headers = request.headers
    for name in SIGNATURE_HEADERS[scheme]:
        if len(headers.getlist(name)) > 1:
            return f"{name} sent more than once"
    if scheme == STANDARD_WEBHOOKS:
        return verify_standard(
            secret,
            body,
            headers.get(SW_ID_HEADER),
            headers.get(SW_TIMESTAMP_HEADER),
            headers.get(SW_SIGNATURE_HEADER),
            tolerance_s=REPLAY_WINDOW_S,
            future_skew_s=MAX_SKEW_S,
        )
    return verify(
        secret,
        body,
        headers.get(TIMESTAMP_HEADER),
        headers.get(SIGNATURE_HEADER),
        tolerance_s=REPLAY_WINDOW_S,
        future_skew_s=MAX_SKEW_S,
    )


def load_envelope(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object; None when it is not one."""
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return envelope if isinstance(envelope, dict) else None


def parse_event(system: str, body: bytes, correlation_id: str | None = None) -> Event | None:
    """The envelope ``{"id", "type", "data", ...}`` as an Event; None when it is not one."""
    envelope = load_envelope(body)
    return None if envelope is None else event_of(system, envelope, correlation_id)


def event_of(
    system: str, envelope: dict[str, Any], correlation_id: str | None = None
) -> Event | None:
    event_id, event_type, data = envelope.get("id"), envelope.get("type"), envelope.get("data")
    if not (isinstance(event_id, str) and event_id and isinstance(event_type, str)):
        return None
    if not isinstance(data, dict):
        return None
    return Event(event_id, system, event_type, data, correlation_id)


Endpoint = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]
WEBHOOKS = "/webhooks/"
IDLE = "/_stack/idle"


class HotRoutes:
    """The two routes a played day calls most (``POST /webhooks/{system}``: every event;
    ``GET /_stack/idle``: the harness's probe after every lockstep step) served without
    Starlette's middleware stack and route table, which cost about 4% of the stack's CPU on
    a peak day. Same endpoints, same Request and Response objects, the same route match
    (``{system}`` is one non-empty path segment), the same 500 (``Internal Server Error``,
    then raised for the server to log) on an exception and the same error body on an
    HTTPException: the answers are Starlette's, byte for byte. Anything else, including
    another method on these paths, goes to the Starlette app, whose attributes it shows."""

    __slots__ = ("app", "http_error", "idle", "webhook")

    def __init__(
        self, app: ASGIApp, webhook: Endpoint, idle: Endpoint, http_error: ErrorHandler
    ) -> None:
        self.app = app
        self.webhook = webhook
        self.idle = idle
        self.http_error = http_error

    def __getattr__(self, name: str) -> Any:
        """The Starlette app's attributes (``router``, ``state``, ...), as if it were that app."""
        if name in HotRoutes.__slots__:  # not set yet: no recursion through self.app
            raise AttributeError(name)
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):  # else: Starlette's match
            method, path = scope["method"], scope["path"]
            if method == "POST":
                if path.startswith(WEBHOOKS):
                    system = path[len(WEBHOOKS) :]
                    if system and "/" not in system:
                        scope["path_params"] = {"system": system}
                        await self._serve(self.webhook, scope, receive, send)
                        return
            elif method == "GET" and path == IDLE:
                scope["path_params"] = {}
                await self._serve(self.idle, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except HTTPException as exc:
            response = await self.http_error(request, exc)
        except Exception:
            # Nothing was sent yet (an endpoint only returns its Response), as in
            # Starlette's ServerErrorMiddleware.
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        await response(scope, receive, send)


def build_app(stack: Stack, *, on_fatal: Callable[[str], None] | None = None) -> ASGIApp:
    """The ASGI app; its lifespan starts the stack, subscribes it (``on_fatal`` if it can't)
    and prunes its finished work while it runs (reference_stack.retention). The webhook and
    idle routes are served in front of Starlette (HotRoutes)."""

    async def webhook(request: Request) -> Response:
        system = request.path_params["system"]
        if system not in SYSTEMS:
            return error(404, "not_found", f"no webhook endpoint for {system!r}")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_EVENT_BYTES:
            return too_large()  # refused before a byte of it is read
        body = await read_body(request)
        if body is None:
            return too_large()  # chunked (no length said up front): refused at the cap
        config = stack.config
        reason = check_signature(
            config.webhook_secret, body, request, config.defects, config.webhook_signing
        )
        if reason is not None:
            return error(401, "invalid_signature", reason)
        envelope = load_envelope(body)
        event = None
        if envelope is not None:
            event = event_of(system, envelope, request.headers.get("x-correlation-id"))
        if envelope is None or event is None:
            return error(400, "malformed_event", "the body is not an event envelope")
        source = envelope.get("source")
        if source != system:
            # The signature binds the body, and the body names its sender: an event one
            # system sent, replayed to another's endpoint (one secret serves all four), is
            # refused here.
            shown = source[:40] if isinstance(source, str) else None  # never a body echoed
            sender = f"from {shown!r}" if shown is not None else "naming no source system"
            return error(
                400,
                "wrong_system",
                f"an event {sender} sent to the {system} endpoint",
                source=shown,
                endpoint=system,
            )
        kept = stack.receive(event, body)
        await stack.store.flushed()  # acknowledged once committed (a duplicate's first copy too)
        if not kept:
            return respond({"status": "duplicate", "event_id": event.id}, 200)
        return respond({"status": "accepted", "event_id": event.id}, 202)

    async def health(request: Request) -> Response:
        if stack.subscribed:
            return respond({"status": "ok"})
        return respond({"status": "starting"}, 503)

    async def idle(request: Request) -> Response:
        answer = await stack.idle_within(_wait_s(request.query_params.get("wait_ms")))
        await stack.store.flushed()  # idle means the work done is also kept
        return respond(answer)

    async def dead_letters(request: Request) -> Response:
        return respond({"items": [job.public() for job in stack.store.dead_jobs()]})

    async def replay(request: Request) -> Response:
        raw = request.path_params["job_id"]
        job = stack.store.job(int(raw)) if raw.isdigit() else None
        if job is None:
            return error(404, "not_found", f"job {raw} does not exist", id=raw)
        if job.status != DEAD:
            return error(409, "not_dead", f"job {raw} is {job.status}", status=job.status)
        if DEAD_LETTER_NO_REPLAY in stack.config.defects:
            return error(409, "replay_unsupported", f"job {raw} cannot be replayed", id=raw)
        stack.worker.replay(job)
        await stack.store.flushed()
        return respond(job.public())

    async def order(request: Request) -> Response:
        ref = request.path_params["order_ref"]
        known = stack.store.order(ref)
        if known is None:
            return error(404, "not_found", f"order {ref} is unknown to the stack", id=ref)
        jobs = [job.public() for job in stack.store.jobs_for(ref)]
        return respond({"order": known.public(), "jobs": jobs})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error(exc.status_code, code, str(exc.detail))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await stack.start()
        background = [
            asyncio.create_task(subscribe()),
            asyncio.create_task(retention.prune_forever(stack.store, stack.config)),
        ]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await stack.stop()

    async def subscribe() -> None:
        try:
            await stack.subscribe()
        except SubscriptionError as exc:
            log.error("%s", exc)
            if on_fatal is not None:
                on_fatal(str(exc))

    routes = [
        Route("/webhooks/{system}", webhook, methods=["POST"]),
        Route("/_stack/health", health, methods=["GET"]),
        Route("/_stack/idle", idle, methods=["GET"]),
        Route("/_stack/dead-letters", dead_letters, methods=["GET"]),
        Route("/_stack/dead-letters/{job_id}/replay", replay, methods=["POST"]),
        Route("/_stack/orders/{order_ref}", order, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error}
    )
    return HotRoutes(app, webhook, idle, http_error)
