"""A simulator: a model, its HTTP face, journal, webhooks, idempotency and control plane.

Each system's ``api.py`` supplies the model and its business routes; this module adds what
every vendor system in twinyard shares (``/webhooks``, ``/_sim/``) and the journalling.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulators import provider_states
from simulators.common.clock import Clock
from simulators.common.context import CORRELATION_ID, IN_FLIGHT
from simulators.common.errors import SimError
from simulators.common.events_api import events_route
from simulators.common.fault_injection import FaultInjection, FaultPlan, replaying
from simulators.common.faults import Fault
from simulators.common.guard import OPEN, Guard
from simulators.common.http import (
    SLASH_IN_SEGMENT,
    Endpoint,
    error_response,
    keep_encoded_slashes,
    parse_body,
    read_json,
    resource,
    respond,
    retry_after_seconds,
    validate,
)
from simulators.common.idempotency import IdempotencyStore, scoped_key
from simulators.common.journal import Journal, JournalEntry, body_digest
from simulators.common.limits import Limits, clip, header_refusal, too_large
from simulators.common.model import SimModel
from simulators.common.routing import FastRoutes
from simulators.common.schemas import Body, NonEmpty
from simulators.common.webhooks import WebhookDispatcher

RoutesFactory = Callable[["Simulator"], list[Route]]

CONTROL_PREFIX = "/_sim/"
# Wall seconds a request's body has to arrive in full once its headers have (h11 and httptools
# have no such limit): later, the simulator answers 408 request_timeout and closes the
# connection. Read at each request, so tests may lower it.
BODY_TIMEOUT_S = 30.0
JOURNAL_PAGE = 256  # entries serialised per chunk of a streamed GET /_sim/journal
CORRELATION_HEADER = "X-Correlation-Id"


@dataclass(slots=True, eq=False)
class InFlight:
    """A business request being handled now: what the watchdogs name when one is stuck."""

    method: str
    path: str
    client: tuple[str, int] | None  # the peer's address, as the server saw it
    correlation_id: str | None
    since: float  # time.monotonic() when its headers had arrived and the app took it
    expected: int | None  # body bytes announced (Content-Length); None: chunked or none
    received: int = 0  # body bytes read so far
    reading: bool = False  # still waiting for the rest of its body
    excused: bool = False  # named by a watchdog: lockstep no longer waits for it
    held_s: float = 0.0  # wall seconds the simulator delays it on purpose (latency faults)
    correlation_cut: int = 0  # characters cut from an over-long correlation id (refused)

    def call(self) -> str:
        """``POST /fulfilment-orders from 127.0.0.1:53122 (correlation SO-000042)``."""
        text = f"{self.method} {self.path}"
        if self.client is not None:
            text += f" from {self.client[0]}:{self.client[1]}"
        if self.correlation_id is not None:
            text += f" (correlation {self.correlation_id})"
        return text

    def body_state(self) -> str:
        """How far its body came while it is still being read (else empty)."""
        if not self.reading:
            return ""
        of = f" of {self.expected}" if self.expected is not None else ""
        return f", waiting for its body ({self.received}{of} bytes received)"


class ProviderStateChange(Body):
    """The body Pact verifiers send to a provider-state URL."""

    state: str
    params: dict[str, Any] | None = None
    action: Literal["setup", "teardown"] = "setup"


class SubscriptionRequest(Body):
    url: NonEmpty
    events: list[NonEmpty]
    secret: NonEmpty
    signing: Literal["twinyard", "standard-webhooks"] = "twinyard"  # simulators.common.signing


Release = Callable[[], Awaitable[None]]


class AnswerGate(Protocol):
    """Decides, per business request, whether its answer is held: if so, what to await once
    the vendor has done the work, before the answer goes out (the harness kills the client
    meanwhile). The answer is then sent on, to whoever is still listening."""

    def hold(self, method: str, path: str, body: bytes, now: float) -> Release | None: ...


class Simulator:
    def __init__(
        self,
        model: SimModel,
        routes: RoutesFactory,
        *,
        honour_idempotency: bool = True,
        delivery_workers: int = 8,
        api_version: str = "v1",
        limits: Limits | None = None,
    ) -> None:
        self.model = model
        self.api_version = api_version  # which version of the vendor's API it speaks
        self.system = model.system
        self.clock: Clock = model.clock
        self.journal = Journal(self.system)
        self.webhooks = WebhookDispatcher(
            self.system, self.clock, self.journal, model.event_types, workers=delivery_workers
        )
        self.idempotency = IdempotencyStore(self.clock)
        self.limits = limits or Limits.from_env()  # also sets the journal's and the stores'
        self.faults = FaultPlan()  # empty: business requests go straight to the app
        # On the wall clock, the ``at`` each live fault was sent with (seconds from then), by
        # the id of the fault stored with its window on the clock: what the listing shows.
        self._asked_at: dict[int, tuple[Fault, float]] = {}
        self.webhooks.faults = self.faults  # event faults apply to deliveries
        self.honour_idempotency = honour_idempotency
        self.inflight = 0  # requests being handled now that lockstep waits for
        self.activity = 0  # requests ever started: lets the clock see that something happened
        # Every business request being handled now, oldest first, excused ones included (a
        # watchdog named them and lockstep no longer waits for them; they are journalled when
        # they end, if they ever do).
        self.requests: dict[int, InFlight] = {}
        # Connections the listener gave up on (a body or headers that never came in time):
        # one line each, for the run's notes.
        self.slow_clients: list[str] = []
        model.bind(self.webhooks.publish)
        self.on_settle: Callable[[], None] = lambda: None  # a request or delivery just ended
        # Told of each fault added live (POST /_sim/faults), after its 201 has been sent:
        # hosting arms down outages here. None: not served by hosting, a down outage is refused.
        self.on_fault_added: Callable[[int, Fault], None] | None = None
        self.webhooks.on_settle = lambda: self.on_settle()
        self.guard = OPEN  # no token: see simulators.common.guard, and ``simulators.build``
        # Set by the harness to cut a client off mid-call (a stack killed while it waits for
        # an answer): see ``AnswerGate``. None: every answer goes out as it is made.
        self.answer_gate: AnswerGate | None = None
        self.app: ASGIApp = JournalMiddleware(self._starlette(routes(self)), self)

    @property
    def limits(self) -> Limits:
        """What this simulator takes in and how long it keeps things (docs/limits.md)."""
        return self._limits

    @limits.setter
    def limits(self, limits: Limits) -> None:
        self._limits = limits
        self.journal.memory_entries = limits.journal_memory_entries
        self.idempotency.ttl_s = limits.idempotency_ttl_s
        self.idempotency.max_keys = limits.idempotency_max_keys
        self.webhooks.delivery_ttl_s = limits.delivery_ttl_s
        self.webhooks.deliveries_kept = limits.deliveries_kept

    @property
    def guard(self) -> Guard:
        """Who may drive this simulator and where it may call back (one per run)."""
        return self._guard

    @guard.setter
    def guard(self, guard: Guard) -> None:
        self._guard = guard
        self.webhooks.guard = guard  # subscriptions are checked against its allow-list

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        await self.webhooks.start()

    async def stop(self) -> None:
        await self.webhooks.stop()

    def quiet(self) -> bool:
        return self.inflight == 0 and self.webhooks.quiet()

    def stuck(self, started_before: float) -> list[InFlight]:
        """Requests lockstep still waits for that started before ``started_before``
        (``time.monotonic()``), not counting the delays the simulator makes on purpose."""
        found = []
        for request in self.requests.values():  # oldest first
            if request.since >= started_before:
                break
            if not request.excused and request.since + request.held_s < started_before:
                found.append(request)
        return found

    def excuse(self, request: InFlight) -> None:
        """Stop counting ``request`` as in flight (a watchdog named it); it is still
        journalled when it ends."""
        if not request.excused:
            request.excused = True
            self.inflight -= 1
            self.on_settle()

    def release(self) -> None:
        """Let go of what only served the stack's requests (the events feed with every event's
        body, the stored idempotent answers) once the simulator no longer serves: a finished
        day is judged from the model's state and the journal, which stay, as do the webhook
        deliveries (bounded, and what a soak accounts its events by). On a 10,000-order day
        the feed holds 95,000 event bodies."""
        self.webhooks.feed.clear()
        self.idempotency.clear()

    def reset(self) -> None:
        self.model.reset()
        self.journal.clear()
        self.webhooks.clear()
        self.idempotency.clear()

    # -- idempotency ---------------------------------------------------------------------
    def idempotent(self, endpoint: Endpoint) -> Endpoint:
        """Replay the first response for a repeated ``Idempotency-Key`` (when honoured)."""

        async def wrapper(request: Request) -> Response:
            key = request.headers.get("idempotency-key")
            if not key or not self.honour_idempotency:
                return await endpoint(request)
            longest = self.limits.idempotency_key_chars
            if len(key) > longest:  # as Stripe: a key is at most 255 characters
                raise SimError(
                    400,
                    "invalid_idempotency_key",
                    f"Idempotency-Key must be at most {longest} characters",
                    limit=longest,
                    size=len(key),
                )
            scoped = scoped_key(request.scope, key)
            digest = body_digest(await request.body())
            stored = self.idempotency.lookup(scoped, digest)
            if stored is not None:
                return Response(
                    stored.body,
                    stored.status,
                    media_type="application/json",
                    headers={"idempotent-replayed": "true"},
                )
            try:
                response = await endpoint(request)
            except SimError as refusal:  # a refusal replays too: the request is not re-run
                response = error_response(refusal)
            if response.status_code < 500:
                self.idempotency.remember(scoped, digest, response.status_code, response.body)
            return response

        return wrapper

    # -- the HTTP face -------------------------------------------------------------------
    def _starlette(self, business_routes: list[Route]) -> ASGIApp:
        routes = [
            *business_routes,
            resource("/webhooks", {"GET": self._list_subscriptions, "POST": self._subscribe}),
            Route("/webhooks/{sub_id}", self._unsubscribe, methods=["DELETE"]),
            events_route(self),  # the polling twin of the webhooks (docs/feeds.md)
            Route("/_sim/health", self._health, methods=["GET"]),
            Route("/_sim/clock", self._clock, methods=["GET"]),
            Route("/_sim/state", self._state, methods=["GET"]),
            Route("/_sim/journal", self._journal, methods=["GET"]),
            Route("/_sim/deliveries", self._deliveries, methods=["GET"]),
            Route("/_sim/reset", self._reset, methods=["POST"]),
            resource(
                "/_sim/provider-states",
                {"GET": self._list_provider_states, "POST": self._provider_state},
            ),
            resource(
                "/_sim/faults",
                {"GET": self._list_faults, "POST": self._add_fault, "DELETE": self._clear_faults},
            ),
        ]
        errors: dict[Any, Any] = {
            SimError: _sim_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        }
        return FastRoutes(routes, Starlette(routes=routes, exception_handlers=errors), errors)

    async def _subscribe(self, request: Request) -> Response:
        body = await parse_body(request, SubscriptionRequest)
        sub = self.webhooks.subscribe(body.url, body.events, body.secret, signing=body.signing)
        return respond(sub.public(), 201)

    async def _list_subscriptions(self, request: Request) -> Response:
        return respond({"items": [s.public() for s in self.webhooks.subscriptions.values()]})

    async def _unsubscribe(self, request: Request) -> Response:
        self.webhooks.unsubscribe(request.path_params["sub_id"])
        return Response(status_code=204)

    async def _health(self, request: Request) -> Response:
        return respond(
            {
                "system": self.system,
                "status": "ok",
                "clock": self.clock.iso(),
                "api_version": self.api_version,
            }
        )

    async def _clock(self, request: Request) -> Response:
        return respond(
            {"now": self.clock.iso(), "virtual_seconds": self.clock.now(), "mode": self.clock.mode}
        )

    async def _state(self, request: Request) -> Response:
        return respond(self.model.snapshot())

    async def _journal(self, request: Request) -> Response:
        q = request.query_params
        try:
            since = int(q.get("since", "0"))
            limit = int(q["limit"]) if "limit" in q else None
        except ValueError:
            raise SimError(400, "bad_query", "since and limit must be integers") from None
        entries = self.journal.query(
            direction=q.get("direction"),
            path=q.get("path"),
            correlation_id=q.get("correlation_id"),
            ref=q.get("ref"),
            since=since,
            limit=limit,
        )
        # Streamed: a long run's journal is never built as one answer in memory.
        return StreamingResponse(_items_json(entries), media_type="application/json")

    async def _deliveries(self, request: Request) -> Response:
        self.webhooks.trim()  # expired ones are not listed, even with no event since
        status = request.query_params.get("status")
        items = [d.public() for d in self.webhooks.deliveries if not status or d.status == status]
        return respond({"items": items})

    async def _list_faults(self, request: Request) -> Response:
        listing = self.faults.public()
        for item, fault in zip(listing["items"], self.faults.faults, strict=True):
            applied = item.pop("applied")  # last, as in the answer to the POST
            item.update(self._window(fault), applied=applied)
        return respond(listing)

    def _window(self, fault: Fault) -> dict[str, Any]:
        """On the wall clock, what a listed fault adds: ``at`` as it was sent, and the wall
        time its window opens and closes (``closes_at`` null: open until cleared). Nothing on
        a virtual clock, where ``at`` is itself the time on the run's clock."""
        if self.clock.mode != "wall":
            return {}
        asked = self._asked_at.get(id(fault))
        until = fault.until
        return {
            "at": asked[1] if asked is not None and asked[0] is fault else fault.at,
            "opens_at": self.clock.iso(fault.at),
            "closes_at": None if until is None else self.clock.iso(until),
        }

    def _live(self, fault: Fault, data: dict[str, Any]) -> Fault:
        """A fault sent live, with its window on the simulator's clock. On the wall clock
        (``twinyard sims``) ``at`` is seconds from now, whenever it is sent; on a virtual
        clock it is the time on that clock, which the harness controls."""
        if self.clock.mode != "wall":
            return fault
        if isinstance(data.get("at"), str):
            raise SimError(
                422,
                "validation_failed",
                "the request body is invalid",
                errors=[
                    {
                        "field": "at",
                        "message": "this simulator runs on the wall clock: at is seconds "
                        "from now (a number), not a time of day",
                    }
                ],
            )
        stored = fault.model_copy(update={"at": self.clock.now() + fault.at})
        self._asked_at[id(stored)] = (stored, fault.at)
        return stored

    async def _add_fault(self, request: Request) -> Response:
        data = await read_json(request)
        data.setdefault("system", self.system)
        fault = validate(Fault, data)
        if fault.system != self.system:
            raise SimError(
                422,
                "validation_failed",
                "the request body is invalid",
                errors=[{"field": "system", "message": f"this simulator is {self.system}"}],
            )
        if fault.event and fault.event not in self.webhooks.event_types:
            known = ", ".join(sorted(self.webhooks.event_types))
            raise SimError(
                422,
                "validation_failed",
                "the request body is invalid",
                errors=[{"field": "event", "message": f"{self.system} sends only: {known}"}],
            )
        if fault.is_down and self.on_fault_added is None:
            raise SimError(
                422,
                "validation_failed",
                "the request body is invalid",
                errors=[
                    {
                        "field": "mode",
                        "message": "this simulator is not served over its own sockets, "
                        "so it cannot go down; use mode unavailable",
                    }
                ],
            )
        fault = self._live(fault, data)
        index = self.faults.add(fault)
        response = respond(
            {"id": index, **fault.public(), **self._window(fault), "applied": 0}, 201
        )
        hook = self.on_fault_added
        if hook is not None:
            # Once the answer is sent (a window already open resets this very connection);
            # async, so that it runs on the loop and not in Starlette's thread pool.
            async def added() -> None:
                hook(index, fault)

            response.background = BackgroundTask(added)
        return response

    async def _clear_faults(self, request: Request) -> Response:
        self.faults.clear()
        self._asked_at.clear()
        return Response(status_code=204)

    async def _reset(self, request: Request) -> Response:
        self.reset()
        return Response(status_code=204)

    async def _list_provider_states(self, request: Request) -> Response:
        vocabulary = provider_states.VOCABULARY[self.system]
        return respond({"items": [{"state": s.template, "doc": s.doc} for s in vocabulary]})

    async def _provider_state(self, request: Request) -> Response:
        """Pact's state-change request ``{"state", "params", "action"}``: a set-up makes the
        state true; a teardown resets the simulator, so each interaction starts empty."""
        change = await parse_body(request, ProviderStateChange)
        if change.action == "teardown":
            self.reset()
            return respond({"state": change.state, "action": "teardown"})
        try:
            provider_states.apply(self, change.state, change.params)
        except provider_states.UnknownState:
            raise
        except SimError as refused:  # the state's own steps were refused by the model
            raise SimError(
                422,
                "provider_state_failed",
                f"cannot set up {change.state!r}: {refused.message}",
                state=change.state,
                cause=refused.code,
            ) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise SimError(
                422,
                "provider_state_failed",
                f"cannot set up {change.state!r}: bad params ({exc})",
                state=change.state,
            ) from None
        return respond({"state": change.state, "action": "setup"})


async def _items_json(entries: Iterator[JournalEntry]) -> AsyncIterator[bytes]:
    """``{"items": [...]}`` in chunks of ``JOURNAL_PAGE`` entries, read as they are sent."""
    yield b'{"items":['
    page: list[bytes] = []
    first = True
    for entry in entries:
        page.append(orjson.dumps(entry))  # a dataclass: the keys and values of to_dict()
        if len(page) >= JOURNAL_PAGE:
            yield (b"" if first else b",") + b",".join(page)
            first, page = False, []
    if page:
        yield (b"" if first else b",") + b",".join(page)
    yield b"]}"


async def _sim_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SimError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    message = "no such route" if exc.status_code == 404 else str(exc.detail)
    response = error_response(SimError(exc.status_code, code, message, path=request.url.path))
    if exc.headers:  # a 405 names the methods the route allows, as HTTP requires
        response.headers.update(exc.headers)
    return response


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    return error_response(SimError(500, "internal_error", f"{type(exc).__name__}: {exc}"))


class JournalMiddleware:
    """Journals every business exchange and tracks requests in flight (for lockstep)."""

    def __init__(self, app: ASGIApp, sim: Simulator) -> None:
        self.app = app
        self.faulty = FaultInjection(app, sim)  # used only while the fault plan has faults
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sim = self.sim
        limits = sim.limits
        keep_encoded_slashes(scope)
        path: str = scope["path"]
        # Sizes, then Host, Origin, token, JSON: before anything else
        refusal = _oversized(scope, limits) or sim.guard.refusal(scope)
        if path.startswith(CONTROL_PREFIX):
            if refusal is not None:
                await _refuse(refusal, scope, receive, send)
            else:
                await self._control(scope, receive, send)
            return
        sim.inflight += 1
        sim.activity += 1
        key = sim.activity
        started = time.perf_counter()
        virtual_time = sim.clock.now()
        request = _announced(scope, limits)
        sim.requests[key] = request
        correlation_id = request.correlation_id
        if refusal is None and request.correlation_cut:
            refusal = _long_correlation_id(request, limits)
        token = CORRELATION_ID.set(correlation_id)
        held = IN_FLIGHT.set(request)
        body = b""
        status = 0
        error_body: list[bytes] = []  # an error answer's body, for its vendor error code
        retry_after: float | None = None

        async def send_status(message: Message) -> None:
            nonlocal status, retry_after
            if message["type"] == "http.response.start":
                status = message["status"]
                if status >= 400:
                    retry_after = _retry_after(message.get("headers", []))
                if correlation_id is not None:
                    headers = list(message.get("headers", []))
                    headers.append((b"x-correlation-id", correlation_id.encode("latin-1")))
                    message = {**message, "headers": headers}
            elif status >= 400 and sum(map(len, error_body)) < ERROR_BODY_LIMIT:
                error_body.append(message.get("body", b""))
            await send(message)

        try:
            if refusal is not None:  # journalled: a stack refused for its Host shows why
                await _refuse(refusal, scope, receive, send_status)
                return
            if request.reading:
                # Read in full before the app runs, within BODY_TIMEOUT_S and up to the
                # body cap: a client that stalls mid-body is answered 408 and let go, not
                # waited for forever; one that sends too much is answered 413.
                read = await _read_body(
                    sim, request, limits.body_bytes, scope, receive, send_status
                )
                if read is None:
                    return  # answered (408, 413), or the client went away (status 0)
                body = read
                receive = replaying(body, receive)
            app = self.faulty if sim.faults.faults else self.app
            gate = sim.answer_gate
            release = gate and gate.hold(scope["method"], path, body, virtual_time)
            if release:
                await _held(release, app, scope, receive, send_status)
            else:
                await app(scope, receive, send_status)
        finally:
            CORRELATION_ID.reset(token)
            IN_FLIGHT.reset(held)
            del sim.requests[key]
            if not request.excused:
                sim.inflight -= 1
            sim.on_settle()
            state: dict[str, Any] = scope.get("state") or {}
            sim.journal.record(
                "in",
                scope["method"],
                request.path,  # as announced: journal_path(scope)
                status,
                virtual_time=virtual_time,
                correlation_id=correlation_id,
                digest=body_digest(body),
                duration_ms=(time.perf_counter() - started) * 1000,
                ref=state.get("ref"),
                fault=state.get("fault"),
                error=_error_code(b"".join(error_body)) if error_body else None,
                retry_after=retry_after,
                query=scope.get("query_string", b"").decode("latin-1"),
            )

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A control-plane request: neither counted in flight nor journalled; its body has
        the same time limit, and a size limit of its own (``control_body_bytes``)."""
        limits = self.sim.limits
        request = _announced(scope, limits)
        if request.reading:
            body = await _read_body(
                self.sim, request, limits.control_body_bytes, scope, receive, send
            )
            if body is None:
                return
            receive = replaying(body, receive)
        await self.app(scope, receive, send)


async def _held(release: Release, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run the request, hold its answer (journalled as made) until ``release`` returns, then
    send it on: to a client that has gone, writing it fails, and that is the point."""
    held: list[Message] = []

    async def hold(message: Message) -> None:
        held.append(message)

    await app(scope, receive, hold)
    await release()
    try:
        for message in held:
            await send(message)
    except (OSError, RuntimeError):  # the client is gone
        return


def _oversized(scope: Scope, limits: Limits) -> SimError | None:
    """414 or 431 for a request target or headers larger than ``limits`` allow."""
    target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
    return header_refusal(scope["headers"], target, limits)


def journal_path(scope: Scope) -> str:
    """The path as the journal keeps it: decoded, except that an encoded ``/`` inside a
    segment stays ``%2F`` (``/items/SKU-00001%2FXL`` is one item, not a route one level
    deeper; ``simulators.common.http.keep_encoded_slashes``)."""
    path: str = scope["path"]
    return path.replace(SLASH_IN_SEGMENT, "%2F") if SLASH_IN_SEGMENT in path else path


def _long_correlation_id(request: InFlight, limits: Limits) -> SimError:
    """400 for a correlation id longer than a vendor keeps (it is journalled cut short)."""
    size = limits.correlation_id_chars + request.correlation_cut
    return SimError(
        400,
        "invalid_header_value",
        f"{CORRELATION_HEADER} must be at most {limits.correlation_id_chars} characters",
        header=CORRELATION_HEADER,
        limit=limits.correlation_id_chars,
        size=size,
    )


def _announced(scope: Scope, limits: Limits) -> InFlight:
    """The request as its headers announce it; ``reading`` when a body is to come. A
    correlation id longer than ``limits`` allow is kept cut short (and the request refused)."""
    correlation_id = None
    cut = 0
    expected: int | None = None
    has_body = False
    for name, value in scope["headers"]:
        if name == b"x-correlation-id":
            correlation_id = value.decode("latin-1")
            if len(correlation_id) > limits.correlation_id_chars:
                cut = len(correlation_id) - limits.correlation_id_chars
                correlation_id = clip(correlation_id, limits.correlation_id_chars)
        elif name == b"content-length":
            with contextlib.suppress(ValueError):
                expected = int(value)
            has_body = expected != 0
        elif name == b"transfer-encoding":
            has_body = True
    return InFlight(
        scope["method"],
        journal_path(scope),
        scope.get("client"),
        correlation_id,
        time.monotonic(),
        expected,
        reading=has_body,
        correlation_cut=cut,
    )


async def _read_body(
    sim: Simulator, request: InFlight, cap: int, scope: Scope, receive: Receive, send: Send
) -> bytes | None:
    """The whole body, or None when it was answered or the client went away mid-body.

    A body announced (Content-Length) or found (chunked, or longer than announced) to be over
    ``cap`` bytes is answered 413 without reading more than ``cap`` of it: the connection
    stays open and the server discards the rest as it comes, so the client reads the answer
    once it has sent its body. One that does not come within ``BODY_TIMEOUT_S`` is answered
    408 (and the connection closed)."""
    if request.expected is not None and request.expected > cap:
        await _refuse(too_large(cap, expected=request.expected), scope, receive, send)
        return None
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return None  # the client went away: nothing to answer (status 0)
                chunk = message.get("body", b"")
                request.received += len(chunk)
                if request.received > cap:
                    chunks.clear()
                    request.reading = False
                    refusal = too_large(cap, expected=request.expected, received=request.received)
                    await _refuse(refusal, scope, receive, send)
                    return None
                chunks.append(chunk)
                if not message.get("more_body", False):
                    request.reading = False
                    return b"".join(chunks)
    except TimeoutError:
        await _too_slow(sim, request, scope, receive, send)
        return None


async def _too_slow(
    sim: Simulator, request: InFlight, scope: Scope, receive: Receive, send: Send
) -> None:
    """408 with a vendor error body, and the connection closed after it (what is left of the
    body would be read as the next request); noted for the run."""
    sim.slow_clients.append(
        f"{sim.system} answered 408 request_timeout to {request.call()}: {request.received} "
        f"of {request.expected or '?'} body bytes in {BODY_TIMEOUT_S:g} s"
    )
    late = SimError(
        408,
        "request_timeout",
        f"the request body did not arrive within {BODY_TIMEOUT_S:g} s",
        received=request.received,
        expected=request.expected,
    )
    response = error_response(late)
    response.headers["connection"] = "close"
    await response(scope, receive, send)


async def _refuse(refusal: SimError, scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(refusal)
    if refusal.status == 401:
        response.headers["www-authenticate"] = 'Bearer realm="twinyard"'
    await response(scope, receive, send)


ERROR_BODY_LIMIT = 4096  # vendor error bodies are small; a huge one is not parsed


def _retry_after(headers: list[tuple[bytes, bytes]]) -> float | None:
    """The wait an answer's Retry-After asks for, in seconds (None: none, or unreadable)."""
    for name, value in headers:
        if name.lower() == b"retry-after":
            return retry_after_seconds(value.decode("latin-1"))
    return None


def _error_code(body: bytes) -> str | None:
    """``error.code`` of a vendor error body, or None for anything else."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None
