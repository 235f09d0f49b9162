"""Applying a simulator's fault plan to its business requests (a pure ASGI middleware).

``Simulator.faults`` is a ``FaultPlan``; while it is empty the journal middleware calls the
business app directly, so an empty plan costs one truthiness test per request. With faults,
``FaultInjection`` sits between the journal and the business app and, per request:

1. keeps the faults whose route matches and whose window is open on the simulator's clock;
2. if any remain, reads the whole body (to match ``match`` and to key the randomness) and
   replays it to the app, so handlers and the journal see the same bytes;
3. keeps those whose ``match`` is in the body and whose keyed draw falls under ``rate``;
4. sleeps for every latency fault kept (on the WALL clock with ``asyncio.sleep``: this is
   latency the client sees; it never blocks other requests and never moves virtual time);
   once 30 s of latency have passed (``GATEWAY_TIMEOUT_MS``) the vendor's gateway abandons
   the request: ``504 gateway_timeout``, and the app never runs it;
5. applies the first of the other kinds kept, in plan order (``rate_limit`` takes a token
   only for the requests it sees, and answers 429 only when its bucket is empty;
   ``schema_drift`` counts only the answers it rewrote); feed kinds (``feed_lag``,
   ``feed_overlap``, ``token_expiry``, the first of each) never answer in the app's place:
   when nothing else does, the app runs with a ``FeedView`` they bend, and each counts only
   when the handler says it changed the answer;
6. names what it did on the journal entry (``scope["state"]["fault"]``), e.g. ``error:503``
   or ``latency:120ms+outage``, and counts it on the plan.

``lost_response``: the business app runs to completion (the write is committed, events are
emitted, an ``Idempotency-Key`` remembers the real answer) and its response is discarded.
ASGI has no way to close an HTTP connection without answering (uvicorn answers 500 to an
app that returns or raises without starting a response), so the client gets
``504 gateway_timeout``, as from a vendor's API gateway that gave up on its backend, or the
fault's ``status``: ``500 internal_error`` (a backend that committed, then crashed writing its
answer) or ``502 bad_gateway`` (a proxy that lost the backend's answer).

``error`` with ``remembered`` (a refusal): the vendor's application refused, so the answer
comes from behind its idempotency layer: a key that already has an answer gets it, and the
refusal is stored under the key like any answer below 500 (on a vendor that honours keys).

``schema_drift``: the business app runs as usual (state is committed, an ``Idempotency-Key``
remembers the answer as the app gave it) and a 2xx JSON object answer is reshaped on its way
out, as by a vendor that shipped a new version of its API: fields renamed, removed, given new
values, added, in that order, on the answer and on each object of its top-level ``items``
list. Any other answer (an error, an empty or non-JSON body) passes through untouched and
the fault is not counted for it, so the journal names only the answers that drifted.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulators.common.context import hold
from simulators.common.errors import SimError
from simulators.common.faults import Fault, keyed_unit
from simulators.common.feed_faults import STATE_KEY, FeedMemory, FeedView
from simulators.common.idempotency import scoped_key
from simulators.common.journal import body_digest

if TYPE_CHECKING:
    from simulators.common.simulator import Simulator

_ERRORS = {
    400: ("invalid_request", "The request was rejected as invalid."),
    409: ("conflict", "The request conflicts with the current state of the resource."),
    422: ("validation_failed", "The request failed validation."),
    500: ("internal_error", "An unexpected error occurred. Please try again later."),
    502: ("bad_gateway", "The upstream service returned an invalid response."),
    503: ("service_unavailable", "The service is temporarily unavailable."),
    504: ("gateway_timeout", "The upstream service did not respond in time."),
}
# A truncated answer: starts like a real one, stops mid-string (never parseable JSON).
MALFORMED_BODY = b'{"id": "'
OUTAGE_RETRY_AFTER_S = 60  # an outage with no end says "try in a (virtual) minute"
MAX_LATENCY_MS = 600_000  # a latency fault's cap, however much load it grew with
# Every vendor's API gateway abandons a request its backend has not answered in 30 s (wall):
# 504, and the request never reaches the backend. So a client whose own timeout cut an attempt
# off knows that, 30 s after it sent it, the attempt either landed or never will.
GATEWAY_TIMEOUT_MS = 30_000


@dataclass
class _Bucket:
    tokens: float
    at: float  # virtual time of the last refill


@dataclass
class FaultPlan:
    """A simulator's faults and what they did: counts, rate-limit buckets, attempts seen."""

    seed: int = 0
    faults: list[Fault] = field(default_factory=list)
    applied: list[int] = field(default_factory=list)  # per fault, in plan order
    by_label: Counter[str] = field(default_factory=Counter)  # "error:503": 3, "latency": 9
    _buckets: dict[int, _Bucket] = field(default_factory=dict)
    _attempts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    feed_memory: FeedMemory = field(default_factory=dict)  # feed_torn_second's torn seconds

    def __bool__(self) -> bool:
        return bool(self.faults)

    def add(self, fault: Fault) -> int:
        self.faults.append(fault)
        self.applied.append(0)
        return len(self.faults) - 1

    def clear(self) -> None:
        self.faults.clear()
        self.applied.clear()
        self.by_label.clear()
        self._buckets.clear()
        self._attempts.clear()
        self.feed_memory.clear()

    def public(self) -> dict[str, Any]:
        return {
            "items": [
                {"id": i, **f.public(), "applied": n}
                for i, (f, n) in enumerate(zip(self.faults, self.applied, strict=True))
            ],
            "applied": dict(self.by_label),
        }

    # -- deciding ------------------------------------------------------------------------
    def candidates(self, method: str, path: str, now: float) -> list[int]:
        """Faults whose route and window fit (cheap: no body needed yet)."""
        return [
            i for i, f in enumerate(self.faults) if f.open_at(now) and f.applies_to(method, path)
        ]

    def select(
        self, system: str, indexes: list[int], method: str, path: str, body: bytes
    ) -> tuple[list[int], str]:
        """Of ``indexes``, those this request's body and keyed draw let through."""
        digest = body_digest(body)
        attempt = self._attempts[(method, path, digest)]
        self._attempts[(method, path, digest)] = attempt + 1
        hit = []
        for i in indexes:
            fault = self.faults[i]
            if fault.match is not None and fault.match.encode() not in body:
                continue
            if fault.rate < 1.0 and (
                keyed_unit(self.seed, system, i, method, path, digest, attempt) >= fault.rate
            ):
                continue
            hit.append(i)
        return hit, f"{digest}|{attempt}"

    def select_event(self, system: str, event_type: str, body: bytes, now: float) -> int | None:
        """The event fault (first in plan order) that hits this event, or None.

        Keyed like requests: (seed, system, fault index, "event", event type, body digest);
        the body carries the event id, so each event gets its own draw."""
        return self._first_event_fault(system, event_type, body, now, drifts=False)

    def select_event_drift(
        self, system: str, event_type: str, body: bytes, now: float
    ) -> int | None:
        """The ``schema_drift`` naming this event type (first in plan order) that hits it: it
        reshapes the event itself, before (and whatever) a delivery fault does."""
        return self._first_event_fault(system, event_type, body, now, drifts=True)

    def _first_event_fault(
        self, system: str, event_type: str, body: bytes, now: float, *, drifts: bool
    ) -> int | None:
        digest = None
        for i, fault in enumerate(self.faults):
            if fault.drifts_events is not drifts:
                continue
            if not (fault.applies_to_event(event_type) and fault.open_at(now)):
                continue
            if fault.match is not None and fault.match.encode() not in body:
                continue
            if fault.rate < 1.0:
                digest = digest or body_digest(body)
                if keyed_unit(self.seed, system, i, "event", event_type, digest) >= fault.rate:
                    continue
            return i
        return None

    def latency_ms(self, system: str, index: int, key: str, others: int = 0) -> int:
        """The delay of fault ``index`` for this request, ``others`` requests in flight beside
        it (``per_inflight_ms`` each), at most ``MAX_LATENCY_MS``."""
        fault = self.faults[index]
        ms = fault.ms
        if isinstance(ms, int):
            base = ms
        else:
            assert ms is not None
            draw = keyed_unit(self.seed, system, index, "latency", key)
            base = ms.min_ms + int(draw * (ms.max_ms - ms.min_ms + 1))
        grown = int((fault.per_inflight_ms or 0.0) * max(0, others))
        return min(MAX_LATENCY_MS, base + grown)

    def take_token(self, index: int, now: float) -> float:
        """Take a token from fault ``index``'s bucket: 0 if taken, else seconds to wait."""
        fault = self.faults[index]
        rate = fault.per_second or 1.0
        size = fault.bucket_size
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = _Bucket(float(size), now)
        bucket.tokens = min(size, bucket.tokens + max(0.0, now - bucket.at) * rate)
        bucket.at = max(bucket.at, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate

    def count(self, index: int, label: str) -> None:
        self.applied[index] += 1
        self.by_label["latency" if label.startswith("latency:") else label] += 1


class FaultInjection:
    """Applies ``sim.faults`` to business requests; see the module docstring."""

    def __init__(self, app: ASGIApp, sim: Simulator) -> None:
        self.app = app
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sim = self.sim
        plan = sim.faults
        method: str = scope["method"]
        path: str = scope["path"]
        now = sim.clock.now()
        indexes = plan.candidates(method, path, now)
        if not indexes:
            await self.app(scope, receive, send)
            return
        body, receive = await _buffer(receive)
        hit, key = plan.select(sim.system, indexes, method, path, body)
        labels: list[str] = []
        feed: dict[str, int] = {}  # feed kind -> the first fault of that kind that hit
        slept_ms = 0  # latency so far: at GATEWAY_TIMEOUT_MS the gateway abandons the request
        try:
            terminal = None
            for i in hit:
                fault = plan.faults[i]
                if fault.is_feed:
                    feed.setdefault(fault.kind, i)
                elif fault.kind == "latency":
                    ms = plan.latency_ms(sim.system, i, key, sim.inflight - 1)
                    label = f"latency:{ms}ms"
                    plan.count(i, label)
                    labels.append(label)
                    wait_ms = min(ms, GATEWAY_TIMEOUT_MS - slept_ms)
                    hold(wait_ms / 1000)  # on purpose: not a stuck request
                    await asyncio.sleep(wait_ms / 1000)
                    slept_ms += wait_ms
                    if slept_ms >= GATEWAY_TIMEOUT_MS:
                        await _send(send, 504, _status_body(504))  # abandoned: nothing ran
                        return
                elif fault.kind == "rate_limit":
                    wait = plan.take_token(i, now)
                    if wait and terminal is None:
                        terminal = (i, _retry_after(sim, wait))
                elif terminal is None:
                    terminal = (i, 0)
            if terminal is None and feed:
                await self._run_bent(plan, feed, labels, scope, receive, send)
                return
            if terminal is None:
                await self.app(scope, receive, send)
                return
            index, wait_s = terminal
            fault = plan.faults[index]
            if fault.remembered:
                label = await self._refuse_as_the_app(fault, body, scope, receive, send)
            else:
                label = await self._apply(fault, wait_s, now, scope, receive, send)
            if label is not None:
                plan.count(index, label)
                labels.append(label)
        finally:
            if labels:
                scope.setdefault("state", {})["fault"] = "+".join(labels)

    async def _refuse_as_the_app(
        self, fault: Fault, body: bytes, scope: Scope, receive: Receive, send: Send
    ) -> str | None:
        """A ``remembered`` refusal: the vendor's application refused, so it answers from behind
        its idempotency layer. A key that has an answer already gets it (the app replays it;
        nothing is refused); otherwise the refusal is sent and stored under the key."""
        sim, status = self.sim, fault.status or 422
        key = Headers(scope=scope).get("idempotency-key")
        scoped = None
        if key and sim.honour_idempotency and len(key) <= sim.limits.idempotency_key_chars:
            scoped, digest = scoped_key(scope, key), body_digest(body)
            try:
                answered = sim.idempotency.lookup(scoped, digest) is not None
            except SimError:  # the key reused for another body: the app says so
                answered = True
            if answered:
                await self.app(scope, receive, send)
                return None
        answer = _status_body(status)
        await _send(send, status, answer)
        if scoped is not None:
            sim.idempotency.remember(scoped, digest, status, answer)
        return f"error:{status}"

    async def _run_bent(
        self,
        plan: FaultPlan,
        feed: dict[str, int],
        labels: list[str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Run the app on a feed view the feed faults bend; count those that changed it."""
        hit = {kind: plan.faults[i] for kind, i in feed.items()}
        view = FeedView(self.sim.clock, hit, plan.feed_memory)
        scope.setdefault("state", {})[STATE_KEY] = view
        try:
            await self.app(scope, receive, send)
        finally:
            for kind in view.applied:
                index = feed[kind]
                label = plan.faults[index].feed_label()
                plan.count(index, label)
                labels.append(label)

    async def _apply(
        self, fault: Fault, wait_s: int, now: float, scope: Scope, receive: Receive, send: Send
    ) -> str | None:
        """Answer as the fault says; the journal label, or None when it changed nothing."""
        kind = fault.kind
        if kind == "error":
            status = fault.status or 503
            await _send(send, status, _status_body(status))
            return f"error:{status}"
        if kind == "rate_limit":
            body = _error(
                "rate_limited",
                "We have received too many requests in a short duration. "
                "Please wait a while to try again.",
                retry_after_s=wait_s,
            )
            await _send(send, 429, body, {"retry-after": _retry_after_header(fault, wait_s)})
            return "rate_limit"
        if kind == "outage":
            until = fault.until
            retry = _retry_after(self.sim, OUTAGE_RETRY_AFTER_S if until is None else until - now)
            body = _error(
                "service_unavailable",
                "The service is down for maintenance.",
                retry_after_s=retry,
            )
            await _send(send, 503, body, {"retry-after": _retry_after_header(fault, retry)})
            return "outage"
        if kind == "malformed":
            status = 201 if scope["method"] == "POST" else 200
            await _send(send, status, MALFORMED_BODY)
            return "malformed"
        if kind == "schema_drift":
            drifted = await _run_drifting(self.app, fault, scope, receive, send)
            return "schema_drift" if drifted else None
        assert kind == "lost_response"

        async def swallow(message: Message) -> None:
            return None

        await self.app(scope, receive, swallow)  # the vendor commits; the answer is lost
        status = fault.status or 504
        await _send(send, status, _status_body(status))
        return "lost_response"


def _status_body(status: int) -> bytes:
    """The vendor's error body for a status a fault answers with."""
    return _error(*_ERRORS[status])


async def _run_drifting(
    app: ASGIApp, fault: Fault, scope: Scope, receive: Receive, send: Send
) -> bool:
    """Run the app; hold a 2xx JSON answer back until it is complete, then send it drifted.
    Anything else streams through as the app sends it. Whether the answer was rewritten."""
    held: Message | None = None  # the response start of an answer that may drift
    chunks: list[bytes] = []

    async def hold(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start" and _may_drift(message):
            held = message
        elif held is not None and message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
        else:
            await send(message)

    await app(scope, receive, hold)
    if held is None:
        return False
    original = b"".join(chunks)
    drifted = drift_body(fault, original) if fault.drifts else None
    body = original if drifted is None else drifted
    status = fault.answer_status or held["status"]
    start = {**held, "status": status, "headers": _with_length(held["headers"], len(body))}
    await send(start)
    await send({"type": "http.response.body", "body": body})
    return drifted is not None or status != held["status"]


def _may_drift(start: Message) -> bool:
    """A 2xx answer that says it is JSON: the only kind a vendor's new version reshapes."""
    if not 200 <= start["status"] < 300:
        return False
    for name, value in start.get("headers", ()):
        if name.lower() == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


def _with_length(headers: Any, length: int) -> list[tuple[bytes, bytes]]:
    """The response headers with content-length fitted to the new body."""
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    return [*kept, (b"content-length", str(length).encode())]


def drift_body(fault: Fault, body: bytes) -> bytes | None:
    """The answer as the drifted vendor sends it, or None when it is not a JSON object or the
    drift changes nothing in it (then the original bytes go out as they were)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    drifted = drift(fault, data)
    return None if drifted == data else orjson.dumps(drifted)


def drift(fault: Fault, data: dict[str, Any]) -> dict[str, Any]:
    """Drift the answer object and each object of its top-level ``items`` list (list answers
    are ``{"items": [...]}``); the items first, so a drift of the key ``items`` comes last."""
    items = data.get("items")
    if isinstance(items, list):
        data = {**data, "items": [_drift(fault, x) if isinstance(x, dict) else x for x in items]}
    return _drift(fault, data)


def _drift(fault: Fault, obj: dict[str, Any]) -> dict[str, Any]:
    """One object: renamed, removed, new values, added, in that order. A rename keeps the
    field's place, and replaces a field already called by the new name."""
    renames = {old: new for old, new in (fault.rename_fields or {}).items() if old in obj}
    replaced = set(renames.values()) - set(renames)
    removed = set(fault.remove_fields or ())
    out = {
        renames.get(name, name): value
        for name, value in obj.items()
        if name not in replaced and renames.get(name, name) not in removed
    }
    out.update({name: v for name, v in (fault.set_values or {}).items() if name in out})
    out.update(fault.add_fields or {})
    return out


def _retry_after(sim: Simulator, virtual_s: float) -> int:
    """Retry-After in whole WALL seconds (at least 1): the client waits on its own timers, so
    the virtual wait is converted by the clock in force (lockstep pace or realtime factor)."""
    return max(1, math.ceil(sim.clock.wall_seconds(virtual_s)))


def _retry_after_header(fault: Fault, wait_s: int) -> str:
    """Retry-After as the fault writes it: seconds, or the HTTP date that many seconds from
    the next whole wall second (a date has whole seconds; rounding up never asks for less)."""
    if fault.retry_after_as == "http-date":
        return email.utils.formatdate(math.ceil(time.time()) + wait_s, usegmt=True)
    return str(wait_s)


async def _buffer(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole request body; return it and a ``receive`` that replays it once."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    return body, replaying(body, receive)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body already read, then the server's own."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _error(code: str, message: str, **details: Any) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "details": details}})


async def _send(
    send: Send, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
