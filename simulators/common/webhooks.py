"""Webhook subscriptions and signed, at-least-once delivery on the virtual clock."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from simulators.common.clock import Clock
from simulators.common.compact import compact
from simulators.common.context import CORRELATION_ID
from simulators.common.errors import conflict, not_found, unprocessable
from simulators.common.fault_injection import drift
from simulators.common.faults import (
    DEFAULT_COPIES,
    DEFAULT_DELAY_S,
    DEFAULT_GARBLE,
    DEFAULT_HOLD_S,
    Fault,
)
from simulators.common.feed import EventFeed
from simulators.common.garbled import garble
from simulators.common.guard import OPEN, Guard
from simulators.common.journal import Journal, body_digest
from simulators.common.model import Ids
from simulators.common.sender import IDLE_REUSE_S, Sender, SendFailed
from simulators.common.signing import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SCHEMES,
    TWINYARD,
    check_secret,
    other_secret,
    sign,
)

if TYPE_CHECKING:
    from simulators.common.fault_injection import FaultPlan

# Virtual seconds between attempts: the first retry after 30 s, the last after an hour.
BACKOFF_S = (30.0, 120.0, 600.0, 1800.0, 3600.0)
DELIVERY_TIMEOUT_S = 10.0
# Finished deliveries listed (GET /_sim/deliveries): for this long after they ended, and at
# most this many, newest first, as GitHub lists a hook's recent deliveries (docs/limits.md).
DELIVERY_TTL_S = 3 * 86_400.0
DELIVERIES_KEPT = 10_000


def serialise(envelope: dict[str, Any], wire_format: str | None) -> bytes:
    """The event's bytes as the vendor's serialiser writes them (``None``: compact JSON)."""
    if wire_format == "pretty":
        return orjson.dumps(envelope, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    return orjson.dumps(envelope)


# Where a forged parcel goes: an address that is deliverable, and not the customer's.
ATTACKER_ADDRESS = {
    "name": "M. Allory",
    "street": "Hafenstrasse 1",
    "city": "Hamburg",
    "postal_code": "20459",
    "country": "DE",
}


def tamper(data: dict[str, Any]) -> dict[str, Any]:
    """What an attacker changes in a copied event: where the parcel goes, how much stock
    moved (under a new adjustment id, so a stack's dedup by business key cannot absorb it)."""
    forged = {**data, "tampered": True}
    if "ship_to" in forged:
        forged["ship_to"] = dict(ATTACKER_ADDRESS)
    if "delta" in forged and "adjustment_id" in forged:
        forged["adjustment_id"] = f"{forged['adjustment_id']}-X"
        forged["delta"] = -abs(int(forged["delta"])) * 10 or -10
    return forged


def _nothing() -> None:
    return None


@dataclass(slots=True)
class Subscription:
    id: str
    url: str
    events: frozenset[str]
    secret: str
    created_at: str
    signing: str = TWINYARD  # the signature scheme (simulators.common.signing.SCHEMES)

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events

    def sign(
        self, body: bytes, event_id: str, timestamp: int | None = None, secret: str | None = None
    ) -> dict[str, str]:
        """The signature headers of one attempt (``secret``: a forger's instead of ours)."""
        return sign(self.signing, secret or self.secret, body, event_id, timestamp)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": sorted(self.events),
            "signing": self.signing,
            "created_at": self.created_at,
        }


@dataclass(slots=True)
class Delivery:
    id: str
    subscription: Subscription
    event_id: str
    event_type: str
    body: bytes
    correlation_id: str | None
    ref: str | None
    attempts: int = 0
    status: str = "pending"  # pending -> delivered | failed
    last_status: int | None = None
    last_error: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    fault: str | None = None  # the event fault applied, journalled on every attempt
    probe: bool = False  # a forged, garbled or replayed copy: sent once, never retried or listed
    signing_secret: str | None = None  # forged: signed with this (wrong) secret
    replay_of: Delivery | None = None  # replayed: resend this delivery's first headers
    signed_age_s: float | None = None  # replayed: re-signed as a capture this old (wall s)
    signed_twice: bool = False  # garbled headers_twice: a wrong signature header after the good
    first_headers: dict[str, str] | None = None  # the signed headers of attempt 1
    finished_at: float | None = None  # virtual seconds it was delivered or failed for good

    def finish(self, status: str, at: float) -> None:
        self.status = status
        self.finished_at = at

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subscription_id": self.subscription.id,
            "url": self.subscription.url,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "ref": self.ref,
            "attempts": self.attempts,
            "status": self.status,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "history": self.history,
            "fault": self.fault,
        }


class WebhookDispatcher:
    """Sends each event to every matching subscription; retries failures with backoff.

    Retries wait on the simulator's clock, so in lockstep a retry due in ten virtual minutes
    costs no wall time. ``quiet()`` is false while a delivery is queued or on the wire.
    """

    def __init__(
        self,
        system: str,
        clock: Clock,
        journal: Journal,
        event_types: Iterable[str],
        *,
        workers: int = 8,
        backoff_s: tuple[float, ...] = BACKOFF_S,
        delivery_ttl_s: float = DELIVERY_TTL_S,
        deliveries_kept: int = DELIVERIES_KEPT,
    ) -> None:
        self.system = system
        self.clock = clock
        self.journal = journal
        self.event_types = frozenset(event_types)
        self.backoff_s = backoff_s
        self.workers = workers
        self.subscriptions: dict[str, Subscription] = {}
        # Pending deliveries, and the finished ones still listed (see ``trim``), oldest first.
        self.deliveries: list[Delivery] = []
        self.delivery_ttl_s = delivery_ttl_s
        self.deliveries_kept = deliveries_kept
        self._trim_at = 0  # trim when the list is this long ...
        self._sweep_at = 0.0  # ... or the clock has reached this (virtual s)
        self._sub_ids = Ids("WH", 4)
        self._event_ids = Ids(f"EV-{system.upper()}")
        self._delivery_ids = Ids("DL")
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._sending = 0
        # Attempts on the wire now, by delivery id: (the delivery, time.monotonic() and
        # virtual time it was sent at), for a watchdog that has to say what it waits for.
        self.on_wire: dict[str, tuple[Delivery, float, float]] = {}
        self._due: list[tuple[float, int]] = []  # (due, token) of held deliveries, a heap
        self._fired: set[int] = set()  # tokens already on the queue (lazily off the heap)
        self._tokens = itertools.count()
        self.faults: FaultPlan | None = None  # the simulator's plan: event faults apply here
        self._generation = 0  # bumped by clear(): retries scheduled before it are dropped
        self._tasks: list[asyncio.Task[None]] = []
        self._sender: Sender | None = None
        self.on_settle: Callable[[], None] = _nothing  # called when a delivery attempt ends
        # The body of the latest event of each type, subscribers or not: what a Pact message
        # verification gets as "the message this provider sends" (see harness.contracts).
        self.latest: dict[str, bytes] = {}
        # Every event published, subscribers or not, for clients that poll (GET /events).
        self.feed = EventFeed()
        self.guard: Guard = OPEN  # where subscriptions may point (the simulator's guard)

    # -- subscriptions -------------------------------------------------------------------
    def subscribe(
        self,
        url: str,
        events: list[str],
        secret: str,
        sub_id: str | None = None,
        *,
        signing: str = TWINYARD,
    ) -> Subscription:
        """A new subscription (under ``sub_id`` when a provider state names it), signed in the
        ``signing`` scheme (``twinyard`` or ``standard-webhooks``, whose secret is whsec_)."""
        if not url.startswith(("http://", "https://")):
            raise unprocessable("validation_failed", "url must be an http(s) URL", field="url")
        unknown = sorted(set(events) - self.event_types - {"*"})
        if unknown or not events:
            raise unprocessable(
                "unknown_event_type",
                f"{self.system} sends no such events: {', '.join(unknown) or '(none given)'}",
                known=sorted(self.event_types),
            )
        if not secret:
            raise unprocessable("validation_failed", "secret must not be empty", field="secret")
        try:
            check_secret(signing, secret)
        except ValueError as exc:
            field = "secret" if signing in SCHEMES else "signing"
            raise unprocessable("validation_failed", str(exc), field=field) from None
        self.guard.check_webhook_url(url)  # this machine or an allowed host, never metadata
        if sub_id in self.subscriptions:
            raise conflict("already_exists", f"webhook subscription {sub_id} already exists")
        sub_id = sub_id or self._sub_ids.next()
        sub = Subscription(sub_id, url, frozenset(events), secret, self.clock.iso(), signing)
        self.subscriptions[sub.id] = sub
        return sub

    def unsubscribe(self, sub_id: str) -> None:
        if self.subscriptions.pop(sub_id, None) is None:
            raise not_found("webhook subscription", sub_id)

    # -- publishing ----------------------------------------------------------------------
    def publish(self, event_type: str, data: dict[str, Any], ref: str | None = None) -> str:
        event_id = self._event_ids.next()
        envelope = {
            "id": event_id,
            "type": event_type,
            "source": self.system,
            "occurred_at": self.clock.iso(),
            "data": data,
        }
        body = compact(orjson.dumps(envelope))  # kept: in deliveries, the feed, ``latest``
        plan = self.faults
        index = None
        if plan:  # one truthiness test when the plan is empty
            drifted = plan.select_event_drift(self.system, event_type, body, self.clock.now())
            if drifted is not None:  # the vendor's new release: this event, reshaped
                release = plan.faults[drifted]
                envelope["data"] = drift(release, data)
                body = compact(serialise(envelope, release.wire_format))
                plan.count(drifted, "schema_drift")
            index = plan.select_event(self.system, event_type, body, self.clock.now())
        self.latest[event_type] = body
        self.feed.append(event_type, body, self.clock.now())
        correlation_id = CORRELATION_ID.get()
        for sub in self.subscriptions.values():
            if sub.wants(event_type):
                delivery = Delivery(
                    self._delivery_ids.next(), sub, event_id, event_type, body, correlation_id, ref
                )
                self.deliveries.append(delivery)
                if index is None:
                    self._queue.put_nowait(delivery)
                else:
                    assert plan is not None
                    label = self._apply_fault(plan.faults[index], delivery)
                    plan.count(index, label)
        if len(self.deliveries) > self._trim_at or self.clock.now() >= self._sweep_at:
            self.trim()
        return event_id

    def trim(self) -> None:
        """Drop finished deliveries that ended ``delivery_ttl_s`` or more ago, and the oldest
        finished ones beyond ``deliveries_kept``; pending ones stay until they finish. Run when
        the list has grown by half the cap since the last trim, or a tenth of the window has
        passed, so it costs little per event."""
        now = self.clock.now()
        horizon = now - self.delivery_ttl_s
        kept: list[Delivery] = []
        finished = 0
        for delivery in reversed(self.deliveries):  # newest first
            at = delivery.finished_at
            if at is not None:
                if at <= horizon or finished >= self.deliveries_kept:
                    continue
                finished += 1
            kept.append(delivery)
        kept.reverse()
        self.deliveries = kept
        self._trim_at = len(kept) + max(self.deliveries_kept // 2, 64)
        self._sweep_at = now + self.delivery_ttl_s / 10

    def _apply_fault(self, fault: Fault, delivery: Delivery) -> str:
        """Send (or hold, or drop) one delivery as the event fault says; return its label."""
        kind, now, label = fault.kind, self.clock.now(), fault.event_label()
        delivery.fault = label
        if kind == "give_up":  # the vendor dropped it: listed as failed, never sent
            delivery.finish("failed", now)
            delivery.last_error = "given up by the vendor (give_up fault)"
            return label
        if kind == "reorder":
            self._schedule(delivery, now + (fault.hold_s or DEFAULT_HOLD_S))
        elif kind == "late":
            self._schedule(delivery, now + (fault.delay_s or DEFAULT_DELAY_S))
        elif kind == "burst":
            assert fault.until is not None  # the model requires for
            self._schedule(delivery, fault.until)
        elif kind not in ("forged", "garbled"):  # these copies go out first, then the genuine
            self._queue.put_nowait(delivery)
        if kind == "duplicate":
            for k in range(1, fault.copies or DEFAULT_COPIES):
                copy = self._copy(delivery, fault=label)
                if fault.new_ids:
                    self._resend_as_new_event(copy)
                self.deliveries.append(copy)
                self._schedule(copy, now + k * (fault.spacing_s or 0.0))
        elif kind == "forged":
            delivery.fault = None  # the genuine delivery is untouched
            # An attacker's event, sent just ahead of the genuine one: the vendor's data with
            # what matters changed (see ``tamper``), under an id of its own, so only the
            # signature check (not dedup by event id or by business key) stands in its way.
            envelope = orjson.loads(delivery.body)
            envelope["data"] = tamper(envelope["data"])
            forged = self._copy(delivery, fault=label, probe=True)
            envelope["id"] = forged.event_id = self._event_ids.next()
            forged.body = compact(orjson.dumps(envelope))
            sub = delivery.subscription
            forged.signing_secret = other_secret(sub.signing, sub.secret)
            self._queue.put_nowait(forged)
            self._queue.put_nowait(delivery)
        elif kind == "garbled":
            delivery.fault = None  # the genuine delivery is untouched
            # A vendor's broken sender: one copy that is not an event, under the genuine
            # event's id, then the genuine event (see ``simulators.common.garbled``).
            form = fault.form or DEFAULT_GARBLE
            garbled = self._copy(delivery, fault=label, probe=True)
            garbled.body = garble(form, delivery.body)
            garbled.signed_twice = form == "headers_twice"
            self._queue.put_nowait(garbled)
            self._queue.put_nowait(delivery)
        elif kind == "replayed":
            delivery.fault = None
            replay = self._copy(delivery, fault=label, probe=True)
            replay.replay_of = delivery
            replay.signed_age_s = fault.signed_age_s
            self._schedule(replay, now + (fault.delay_s or DEFAULT_DELAY_S))
        return label

    def _resend_as_new_event(self, delivery: Delivery) -> None:
        """The same business event under a new event id (and so a new signature)."""
        envelope = orjson.loads(delivery.body)
        envelope["id"] = delivery.event_id = self._event_ids.next()
        delivery.body = compact(orjson.dumps(envelope))

    def _copy(self, delivery: Delivery, *, fault: str, probe: bool = False) -> Delivery:
        return Delivery(
            self._delivery_ids.next(),
            delivery.subscription,
            delivery.event_id,
            delivery.event_type,
            delivery.body,
            delivery.correlation_id,
            delivery.ref,
            fault=fault,
            probe=probe,
        )

    def quiet(self) -> bool:
        """Nothing queued, nothing on the wire, nothing on the clock that is due now."""
        if not self._queue.empty() or self._sending:
            return False
        due = self._due
        while due and due[0][1] in self._fired:
            self._fired.discard(heapq.heappop(due)[1])
        return not due or due[0][0] > self.clock.now()

    @property
    def queued(self) -> int:
        """Deliveries waiting for a free worker."""
        return self._queue.qsize()

    @property
    def scheduled(self) -> int:
        """Retries and held deliveries still waiting for their time on the clock."""
        return len(self._due) - len(self._fired)

    # -- the delivery loop ---------------------------------------------------------------
    async def start(self) -> None:
        # A lean sender, not a general client, on this hot path (simulators.common.sender).
        self._sender = Sender(timeout_s=DELIVERY_TIMEOUT_S, idle_reuse_s=IDLE_REUSE_S)
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.workers)]

    async def stop(self) -> None:
        self._generation += 1
        self._due.clear()
        self._fired.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._sender is not None:
            await self._sender.close()
            self._sender = None

    async def _worker(self) -> None:
        while True:
            delivery = await self._queue.get()
            self._sending += 1
            try:
                await self._attempt(delivery)
            finally:
                self._sending -= 1
                self.on_settle()

    async def _attempt(self, delivery: Delivery) -> None:
        assert self._sender is not None
        sub = delivery.subscription
        original = delivery.replay_of
        if original is not None and delivery.signed_age_s is not None:
            # A capture from that long ago: a genuine signature over an old timestamp.
            captured_at = int(time.time() - delivery.signed_age_s)
            headers = sub.sign(delivery.body, delivery.event_id, timestamp=captured_at)
        elif original is not None and original.first_headers is not None:
            headers = dict(original.first_headers)  # the old timestamp and signature
        else:
            headers = sub.sign(delivery.body, delivery.event_id, secret=delivery.signing_secret)
        if delivery.attempts == 0:
            delivery.first_headers = dict(headers)
        headers["content-type"] = "application/json"
        headers[EVENT_ID_HEADER] = delivery.event_id
        headers[EVENT_TYPE_HEADER] = delivery.event_type
        if delivery.correlation_id:
            headers["x-correlation-id"] = delivery.correlation_id
        sent = self._signed_twice(delivery, headers) if delivery.signed_twice else headers.items()
        delivery.attempts += 1
        virtual_time = self.clock.now()
        started = time.perf_counter()
        status, error = 0, None
        self.on_wire[delivery.id] = (delivery, time.monotonic(), virtual_time)
        try:
            status, answer = await self._sender.post(sub.url, delivery.body, sent)
            if not 200 <= status < 300:  # what the stack said, for the run's diagnosis
                error = answer[:160].decode(errors="replace").strip() or None
        except SendFailed as exc:
            error = str(exc)
        except TimeoutError:
            error = f"TimeoutError: no answer within {DELIVERY_TIMEOUT_S:g} s"
        finally:
            self.on_wire.pop(delivery.id, None)
        duration_ms = (time.perf_counter() - started) * 1000
        self.journal.record(
            "out",
            "POST",
            sub.url,
            status,
            virtual_time=virtual_time,
            correlation_id=delivery.correlation_id,
            digest=body_digest(delivery.body),
            duration_ms=duration_ms,
            event_type=delivery.event_type,
            ref=delivery.ref,
            fault=delivery.fault,
            error=error,
        )
        delivery.last_status = status or None
        if 200 <= status < 300:
            delivery.last_error = None
        elif status:
            delivery.last_error = f"HTTP {status}" + (f": {error}" if error else "")
        else:
            delivery.last_error = error
        delivery.history.append(
            {"attempt": delivery.attempts, "at": self.clock.iso(virtual_time), "status": status}
        )
        if 200 <= status < 300:
            delivery.finish("delivered", self.clock.now())
        elif delivery.probe:
            delivery.finish("failed", self.clock.now())  # sent once: refusing it is the point
        elif delivery.attempts > len(self.backoff_s):
            delivery.finish("failed", self.clock.now())
        else:
            # on the clock before the attempt counts as finished, so a quiet dispatcher
            # never hides a retry from the lockstep clock
            self._schedule(delivery, virtual_time + self.backoff_s[delivery.attempts - 1])

    @staticmethod
    def _signed_twice(delivery: Delivery, headers: dict[str, str]) -> list[tuple[str, str]]:
        """``headers`` with each signature header sent again after the good one, signed with
        another secret: a receiver that reads the first one it finds would verify."""
        sub = delivery.subscription
        timestamp = next((v for k, v in headers.items() if k.endswith("timestamp")), None)
        wrong = sub.sign(
            delivery.body,
            delivery.event_id,
            timestamp=int(timestamp) if timestamp else None,
            secret=other_secret(sub.signing, sub.secret),
        )
        twice = list(headers.items())  # the sender sends a name given twice twice
        twice += [(name, value) for name, value in wrong.items() if headers.get(name) != value]
        return twice

    def _schedule(self, delivery: Delivery, due: float) -> None:
        """Queue ``delivery`` at virtual time ``due``: a timer on the clock until then (seen
        by lockstep's ``next_timer``), and ``quiet()`` is false once it is due."""
        generation = self._generation
        token = next(self._tokens)
        heapq.heappush(self._due, (due, token))

        def release() -> None:
            if generation != self._generation:
                return  # reset or stopped since
            self._fired.add(token)
            self._queue.put_nowait(delivery)

        self.clock.call_at(due, release)

    def clear(self) -> None:
        self._generation += 1
        self._due.clear()
        self._fired.clear()
        self.subscriptions.clear()
        self.deliveries.clear()
        self._trim_at = 0
        self._sweep_at = 0.0
        self.latest.clear()
        self.feed.clear()
        while not self._queue.empty():
            self._queue.get_nowait()
