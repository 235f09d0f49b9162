"""Webhook delivery: signed, at least once, retried on the virtual clock, journalled."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from harness.clock import LockstepClock
from simulators.common.clock import DEFAULT_EPOCH
from simulators.common.errors import SimError
from simulators.common.journal import Journal
from simulators.common.signing import signature, signed_headers, verify
from simulators.common.webhooks import WebhookDispatcher
from tests.support import Receiver, serving

SECRET = "s3cr3t"


def test_signature_round_trip_and_refusals():
    body = b'{"id":"EV-1"}'
    headers = signed_headers(SECRET, body, timestamp=1_000_000)
    ts, sig = headers["x-twinyard-timestamp"], headers["x-twinyard-signature"]
    assert verify(SECRET, body, ts, sig, now=1_000_010) is None
    assert verify("other", body, ts, sig, now=1_000_010) == "signature does not match"
    assert verify(SECRET, body + b" ", ts, sig, now=1_000_010) == "signature does not match"
    assert "replay window" in verify(SECRET, body, ts, sig, now=1_000_000 + 301)
    assert verify(SECRET, body, None, sig) == "missing signature headers"
    assert sig == signature(SECRET, 1_000_000, body)


def _dispatcher(clock) -> WebhookDispatcher:
    return WebhookDispatcher("wms", clock, Journal("wms"), ["order.picked", "order.packed"])


def test_subscription_refuses_unknown_events_and_bad_urls():
    dispatcher = _dispatcher(LockstepClock(DEFAULT_EPOCH))
    with pytest.raises(SimError) as unknown:
        dispatcher.subscribe("http://x/hook", ["order.teleported"], SECRET)
    assert unknown.value.status == 422 and unknown.value.code == "unknown_event_type"
    with pytest.raises(SimError):
        dispatcher.subscribe("ftp://x/hook", ["order.picked"], SECRET)
    with pytest.raises(SimError):
        dispatcher.subscribe("http://x/hook", ["order.picked"], "")


async def _until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.005)


async def test_delivery_is_signed_filtered_and_journalled():
    clock = LockstepClock(DEFAULT_EPOCH)
    receiver = Receiver()
    async with serving(receiver.app) as url:
        dispatcher = _dispatcher(clock)
        dispatcher.subscribe(f"{url}/hook", ["order.picked"], SECRET)
        await dispatcher.start()
        try:
            dispatcher.publish("order.picked", {"order_ref": "SO-1"}, ref="SO-1")
            dispatcher.publish("order.packed", {"order_ref": "SO-1"}, ref="SO-1")  # not wanted
            await _until(lambda: dispatcher.quiet() and receiver.requests)
        finally:
            await dispatcher.stop()
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    envelope = orjson.loads(body)
    assert envelope["type"] == "order.picked" and envelope["data"] == {"order_ref": "SO-1"}
    assert headers["x-twinyard-event-id"] == envelope["id"]
    assert (
        verify(SECRET, body, headers["x-twinyard-timestamp"], headers["x-twinyard-signature"])
        is None
    )
    [entry] = dispatcher.journal.query(direction="out")
    assert (entry.status, entry.event_type, entry.ref) == (200, "order.picked", "SO-1")


async def test_failed_delivery_retries_on_the_virtual_clock_then_gives_up():
    clock = LockstepClock(DEFAULT_EPOCH)
    receiver = Receiver(statuses=[503] * 10)
    async with serving(receiver.app) as url:
        dispatcher = WebhookDispatcher(
            "wms", clock, Journal("wms"), ["order.picked"], backoff_s=(30.0, 120.0)
        )
        dispatcher.subscribe(f"{url}/hook", ["order.picked"], SECRET)
        await dispatcher.start()
        try:
            dispatcher.publish("order.picked", {"n": 1})
            await _until(lambda: len(receiver.requests) == 1 and dispatcher.quiet())
            assert clock.next_timer() == 30.0  # the retry waits for virtual time, not wall time
            clock.advance_to(29.0)
            await asyncio.sleep(0.05)
            assert len(receiver.requests) == 1
            clock.advance_to(30.0)
            await _until(lambda: len(receiver.requests) == 2 and dispatcher.quiet())
            assert clock.next_timer() == 150.0
            clock.advance_to(150.0)
            await _until(lambda: len(receiver.requests) == 3 and dispatcher.quiet())
        finally:
            await dispatcher.stop()
    [delivery] = dispatcher.deliveries
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("failed", 3, 503)
    ids = {headers["x-twinyard-event-id"] for headers, _ in receiver.requests}
    assert len(ids) == 1  # every attempt carries the same event id, so receivers can dedupe


async def test_unreachable_subscriber_is_retried_not_lost():
    clock = LockstepClock(DEFAULT_EPOCH)
    receiver = Receiver()
    dispatcher = _dispatcher(clock)
    async with serving(receiver.app) as url:
        port = url.rsplit(":", 1)[1]
    dispatcher.subscribe(f"http://127.0.0.1:{port}/hook", ["order.picked"], SECRET)  # closed now
    await dispatcher.start()
    try:
        dispatcher.publish("order.picked", {"n": 1})
        await _until(lambda: dispatcher.deliveries[0].attempts == 1 and dispatcher.quiet())
    finally:
        await dispatcher.stop()
    delivery = dispatcher.deliveries[0]
    assert delivery.status == "pending" and delivery.last_error
    [entry] = dispatcher.journal.query(direction="out")
    assert entry.status == 0
