"""Event faults: webhook deliveries duplicated, held, late, dropped, forged, replayed, bursty."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

import simulators
from harness.clock import LockstepClock
from simulators.common.clock import DEFAULT_EPOCH, ManualClock
from simulators.common.fault_injection import FaultPlan
from simulators.common.faults import Fault
from simulators.common.journal import Journal
from simulators.common.signing import verify
from simulators.common.webhooks import WebhookDispatcher
from tests.support import Receiver, serving

SECRET = "s3cr3t"
EVENTS = ["tracking.updated", "label.created"]


class Rig:
    def __init__(self, clock: LockstepClock, dispatcher: WebhookDispatcher, receiver: Receiver):
        self.clock, self.dispatcher, self.receiver = clock, dispatcher, receiver

    def publish(self, ref: str, event_type: str = "tracking.updated") -> str:
        return self.dispatcher.publish(event_type, {"tracking_number": ref}, ref=ref)

    async def settle(self) -> None:
        """Until nothing is queued or on the wire (timers may still wait on the clock)."""
        await _until(self.dispatcher.quiet)

    async def advance(self, t: float) -> None:
        self.clock.advance_to(t)
        await self.settle()

    def refs(self) -> list[str]:
        return [orjson.loads(body)["data"]["tracking_number"] for _, body in self.receiver.requests]

    def journal_faults(self) -> list[str | None]:
        return [e.fault for e in self.dispatcher.journal.entries]


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def rig(*faults: dict[str, Any], seed: int = 7) -> AsyncIterator[Rig]:
    clock = LockstepClock(DEFAULT_EPOCH)
    receiver = Receiver()
    plan = FaultPlan(seed=seed)
    for f in faults:
        plan.add(Fault.model_validate({"system": "carrier", **f}))
    async with serving(receiver.app) as url:
        dispatcher = WebhookDispatcher("carrier", clock, Journal("carrier"), EVENTS)
        dispatcher.faults = plan
        dispatcher.subscribe(f"{url}/hook", ["*"], SECRET)
        await dispatcher.start()
        try:
            yield Rig(clock, dispatcher, receiver)
        finally:
            await dispatcher.stop()


def _verifies(headers: dict[str, str], body: bytes, secret: str = SECRET) -> bool:
    return (
        verify(secret, body, headers["x-twinyard-timestamp"], headers["x-twinyard-signature"])
        is None
    )


# -- the model ---------------------------------------------------------------------------


def test_event_fault_fields_are_validated():
    f = Fault.model_validate({"system": "carrier", "kind": "reorder", "event": "tracking.updated"})
    assert f.is_event and f.event_label() == "reorder:600s"
    assert f.applies_to_event("tracking.updated") and not f.applies_to_event("label.created")
    assert not f.applies_to("POST", "/labels")  # never touches answers
    assert Fault.model_validate(
        {"system": "erp", "kind": "duplicate", "copies": 3}
    ).event_label() == ("duplicate:3")
    bad = [
        {"system": "erp", "kind": "duplicate", "route": "/orders"},  # event kinds take event
        {"system": "erp", "kind": "error", "event": "order.released"},  # answer kinds take route
        {"system": "erp", "kind": "burst"},  # no window end
        {"system": "erp", "kind": "late", "hold_s": 5},  # hold_s is reorder's
        {"system": "erp", "kind": "duplicate", "copies": 1},
        {"system": "erp", "kind": "reorder", "hold_s": 0},
        {"system": "erp", "kind": "forged", "delay_s": 10},
    ]
    for data in bad:
        with pytest.raises(ValidationError):
            Fault.model_validate(data)


# -- each kind ---------------------------------------------------------------------------


async def test_duplicate_sends_copies_with_one_event_id_spaced_on_the_clock():
    async with rig({"kind": "duplicate", "copies": 3, "spacing_s": 10}) as r:
        event_id = r.publish("PC1")
        await r.settle()
        assert len(r.receiver.requests) == 1
        assert r.clock.next_timer() == 10.0  # the copies are timers lockstep can see
        await r.advance(10.0)
        assert len(r.receiver.requests) == 2
        await r.advance(20.0)
        assert len(r.receiver.requests) == 3
        assert r.clock.next_timer() is None
    ids = {h["x-twinyard-event-id"] for h, _ in r.receiver.requests}
    assert ids == {event_id}
    assert all(_verifies(h, b) for h, b in r.receiver.requests)  # each freshly signed
    assert r.journal_faults() == ["duplicate:3"] * 3
    assert r.dispatcher.faults is not None
    assert r.dispatcher.faults.applied == [1]
    assert r.dispatcher.faults.public()["applied"] == {"duplicate:3": 1}


async def test_duplicate_with_new_ids_resends_the_same_business_event_under_new_ids():
    async with rig({"kind": "duplicate", "copies": 3, "new_ids": True}) as r:
        event_id = r.publish("PC1")
        await r.settle()
    assert len(r.receiver.requests) == 3
    envelopes = [orjson.loads(body) for _, body in r.receiver.requests]
    ids = [h["x-twinyard-event-id"] for h, _ in r.receiver.requests]
    assert ids[0] == event_id
    assert len(set(ids)) == 3  # each copy is a new event to an event-id dedup
    assert [e["id"] for e in envelopes] == ids  # header and envelope agree
    assert {orjson.dumps(e["data"]) for e in envelopes} == {b'{"tracking_number":"PC1"}'}
    assert all(_verifies(h, b) for h, b in r.receiver.requests)
    assert r.journal_faults() == ["duplicate:3+new-ids"] * 3


async def test_reorder_holds_an_event_so_a_later_one_overtakes_it():
    async with rig({"kind": "reorder", "hold_s": 600, "match": "PC1"}) as r:
        r.publish("PC1")
        r.publish("PC2")
        await r.settle()
        assert r.refs() == ["PC2"]
        await r.advance(599.0)
        assert r.refs() == ["PC2"]
        await r.advance(600.0)
        assert r.refs() == ["PC2", "PC1"]
    assert sorted(r.journal_faults(), key=lambda f: f or "") == [None, "reorder:600s"]


async def test_late_arrives_only_after_virtual_time_passes():
    async with rig({"kind": "late", "delay_s": 120, "event": "tracking.updated"}) as r:
        r.publish("PC1")
        r.publish("LB1", "label.created")  # another event type: untouched
        await r.settle()
        assert r.refs() == ["LB1"]
        assert not r.dispatcher.quiet() or r.clock.next_timer() == 120.0
        await asyncio.sleep(0.05)  # wall time passing changes nothing
        assert r.refs() == ["LB1"]
        await r.advance(120.0)
        assert r.refs() == ["LB1", "PC1"]
    [late] = [e for e in r.dispatcher.journal.entries if e.fault]
    assert (late.fault, late.virtual_time) == ("late:120s", 120.0)


async def test_give_up_never_sends_and_lists_the_delivery_as_failed():
    async with rig({"kind": "give_up", "match": "PC1"}) as r:
        r.publish("PC1")
        r.publish("PC2")
        await r.settle()
        assert r.clock.next_timer() is None  # nothing will ever come
    assert r.refs() == ["PC2"]
    failed = [d.public() for d in r.dispatcher.deliveries if d.status == "failed"]
    assert len(failed) == 1
    assert (failed[0]["ref"], failed[0]["attempts"], failed[0]["fault"]) == ("PC1", 0, "give_up")
    assert r.dispatcher.faults is not None and r.dispatcher.faults.by_label == {"give_up": 1}


async def test_forged_copy_does_not_verify_while_the_genuine_one_does():
    async with rig({"kind": "forged"}) as r:
        event_id = r.publish("PC1")
        await _until(lambda: len(r.receiver.requests) == 2 and r.dispatcher.quiet())
    genuine = [(h, b) for h, b in r.receiver.requests if _verifies(h, b)]
    forged = [(h, b) for h, b in r.receiver.requests if not _verifies(h, b)]
    assert len(genuine) == 1 and len(forged) == 1
    (gh, gb), (fh, fb) = genuine[0], forged[0]
    assert (
        orjson.loads(fb)["data"]["tampered"] is True and "tampered" not in orjson.loads(gb)["data"]
    )
    assert gh["x-twinyard-event-id"] == event_id
    assert fh["x-twinyard-event-id"] == orjson.loads(fb)["id"] != event_id  # the attacker's own
    assert sorted(r.journal_faults(), key=lambda f: f or "") == [None, "forged"]
    assert len(r.dispatcher.deliveries) == 1  # the probe is journalled, not a delivery


@pytest.mark.parametrize("form", ["truncated", "not_object", "no_id", "double_encoded"])
async def test_garbled_copy_is_signed_and_goes_first_under_the_genuine_event_id(form: str):
    async with rig({"kind": "garbled", "form": form}) as r:
        event_id = r.publish("PC1")
        await _until(lambda: len(r.receiver.requests) == 2 and r.dispatcher.quiet())
    (gh, gb), (h, b) = r.receiver.requests[1], r.receiver.requests[0]
    assert _verifies(gh, gb) and _verifies(h, b)  # signed correctly over what it carries
    assert h["x-twinyard-event-id"] == gh["x-twinyard-event-id"] == event_id
    genuine = orjson.loads(gb)
    if form == "truncated":
        assert gb.startswith(b) and len(b) == len(gb) // 2
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(b)
    elif form == "not_object":
        assert orjson.loads(b) == [genuine]
    elif form == "no_id":
        assert orjson.loads(b) == {k: v for k, v in genuine.items() if k != "id"}
    else:
        envelope = orjson.loads(b)
        assert orjson.loads(envelope["data"]) == genuine["data"]
        assert {**envelope, "data": genuine["data"]} == genuine
    assert r.journal_faults() == [f"garbled:{form}", None]
    assert len(r.dispatcher.deliveries) == 1  # the copy is journalled, not a delivery


async def test_garbled_headers_twice_sends_the_good_signature_then_a_wrong_one():
    async with rig({"kind": "garbled", "form": "headers_twice"}, {"kind": "duplicate"}) as r:
        r.publish("PC1")
        await _until(lambda: len(r.receiver.requests) == 2 and r.dispatcher.quiet())
    (_, copy_body), (gh, gb) = r.receiver.requests
    assert copy_body == gb and _verifies(gh, gb)
    signatures = [v.decode() for k, v in r.receiver.raw_headers[0] if k == b"x-twinyard-signature"]
    timestamps = [v for k, v in r.receiver.raw_headers[0] if k == b"x-twinyard-timestamp"]
    assert len(signatures) == 2 and len(timestamps) == 1  # the same timestamp: not sent again
    stamp = timestamps[0].decode()
    assert [verify(SECRET, gb, stamp, s) is None for s in signatures] == [True, False]
    assert len([k for k, _ in r.receiver.raw_headers[1] if k == b"x-twinyard-signature"]) == 1
    assert r.journal_faults() == ["garbled:headers_twice", None]  # first fault wins: no duplicate


async def test_a_refused_garbled_copy_is_never_retried():
    async with rig({"kind": "garbled"}) as r:
        r.receiver.statuses = [400]
        r.publish("PC1")
        await _until(lambda: len(r.receiver.requests) == 2 and r.dispatcher.quiet())
        assert r.clock.next_timer() is None
    assert [d.status for d in r.dispatcher.deliveries] == ["delivered"]


async def test_a_schema_drift_naming_an_event_reshapes_that_events_data_in_every_copy():
    """A vendor's minor release adds fields to one event type: the event itself changes (its
    webhook, and so its feed too), and a duplicate fault still applies to the drifted event."""
    drift = {"kind": "schema_drift", "event": "tracking.updated", "add_fields": {"hub": "H7"}}
    async with rig(drift, {"kind": "duplicate", "event": "tracking.updated"}) as r:
        r.publish("PC1")
        r.publish("LB1", "label.created")
        await _until(lambda: len(r.receiver.requests) == 3 and r.dispatcher.quiet())
    bodies = [orjson.loads(b) for _, b in r.receiver.requests]
    tracking = [b for b in bodies if b["type"] == "tracking.updated"]
    assert [b["data"] for b in tracking] == [{"tracking_number": "PC1", "hub": "H7"}] * 2
    (label,) = [b for b in bodies if b["type"] == "label.created"]
    assert label["data"] == {"tracking_number": "LB1"}  # another event type: as it was
    assert all(_verifies(h, b) for h, b in r.receiver.requests)
    assert r.dispatcher.faults is not None
    assert r.dispatcher.faults.by_label == {"schema_drift": 1, "duplicate:2": 1}


async def test_a_pretty_wire_format_sends_the_same_event_in_other_bytes_signed_as_sent():
    """A vendor's new serialiser: indented, keys sorted. A receiver that checks the signature
    over the event serialised again (compact) gets other bytes than were signed."""
    pretty = {"kind": "schema_drift", "event": "tracking.updated", "wire_format": "pretty"}
    async with rig(pretty) as r:
        r.publish("PC1")
        r.publish("LB1", "label.created")
        await _until(lambda: len(r.receiver.requests) == 2 and r.dispatcher.quiet())
    (tracking, tracking_body), (_, label_body) = sorted(
        r.receiver.requests, key=lambda x: x[0]["x-twinyard-event-type"], reverse=True
    )
    event = orjson.loads(tracking_body)
    assert event["data"] == {"tracking_number": "PC1"}
    assert (
        tracking_body
        == orjson.dumps(event, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    assert _verifies(tracking, tracking_body)
    assert not _verifies(tracking, orjson.dumps(event))  # the compact bytes were not signed
    assert label_body == orjson.dumps(orjson.loads(label_body))  # another event type: compact
    assert (
        r.dispatcher.feed.page(0, limit=10).entries[0].body == tracking_body
    )  # the feed: the same


def test_wire_format_rewrites_events_not_answers():
    with pytest.raises(ValidationError, match="wire_format rewrites an event"):
        Fault.model_validate(
            {
                "system": "carrier",
                "kind": "schema_drift",
                "route": "/labels",
                "wire_format": "pretty",
            }
        )
    with pytest.raises(ValidationError, match="wire_format applies to kind schema_drift"):
        Fault.model_validate({"system": "carrier", "kind": "late", "wire_format": "pretty"})


def test_a_schema_drift_takes_a_route_or_an_event_not_both():
    answers = Fault.model_validate(
        {"system": "wms", "kind": "schema_drift", "route": "/orders", "add_fields": {"a": 1}}
    )
    event = Fault.model_validate(
        {"system": "wms", "kind": "schema_drift", "event": "order.shipped", "add_fields": {"a": 1}}
    )
    assert (answers.is_event, event.is_event) == (False, True)
    with pytest.raises(ValidationError, match="give one of them"):
        Fault.model_validate(
            {"system": "wms", "kind": "schema_drift", "event": "x", "route": "/o", "add_fields": {}}
            | {"add_fields": {"a": 1}}
        )


async def test_replayed_copy_carries_the_original_timestamp_and_signature():
    async with rig({"kind": "replayed", "delay_s": 900}) as r:
        r.publish("PC1")
        await r.settle()
        assert len(r.receiver.requests) == 1
        assert r.clock.next_timer() == 900.0
        await asyncio.sleep(1.1)  # a fresh signature now would carry a later timestamp
        await r.advance(900.0)
        assert len(r.receiver.requests) == 2
    (first, body1), (again, body2) = r.receiver.requests
    assert body1 == body2
    assert again["x-twinyard-timestamp"] == first["x-twinyard-timestamp"]
    assert again["x-twinyard-signature"] == first["x-twinyard-signature"]
    ts = int(first["x-twinyard-timestamp"])  # a 300 s replay window refuses it once it is old
    assert "replay window" in verify(
        SECRET, body2, again["x-twinyard-timestamp"], again["x-twinyard-signature"], now=ts + 900
    )
    assert r.journal_faults() == [None, "replayed:900s"]


async def test_replayed_with_signed_age_is_a_genuine_signature_over_an_old_timestamp():
    # In lockstep an hour of virtual time passes in a wall second, so the original headers are
    # still fresh: only a copy signed as an old capture tests a stack's replay window.
    async with rig({"kind": "replayed", "delay_s": 60, "signed_age_s": 86_400}) as r:
        r.publish("PC1")
        await r.settle()
        await r.advance(60.0)
        assert len(r.receiver.requests) == 2
    (first, body1), (again, body2) = r.receiver.requests
    assert body1 == body2
    age = int(first["x-twinyard-timestamp"]) - int(again["x-twinyard-timestamp"])
    assert 86_390 <= age <= 86_410
    ts = again["x-twinyard-timestamp"]
    now = int(first["x-twinyard-timestamp"])
    assert verify(SECRET, body2, ts, again["x-twinyard-signature"], tolerance_s=10**9) is None
    assert "replay window" in verify(SECRET, body2, ts, again["x-twinyard-signature"], now=now)
    assert r.journal_faults() == [None, "replayed:60s+signed-86400s-ago"]


async def test_burst_releases_held_events_together_at_the_window_end():
    async with rig({"kind": "burst", "at": 100, "for": 200}) as r:
        r.publish("PC0")  # before the window
        await r.settle()
        r.clock.advance_to(100.0)
        for i in range(1, 4):
            await r.advance(100.0 + 50 * i)
            r.publish(f"PC{i}")
            await r.settle()
        assert r.refs() == ["PC0"]
        assert r.clock.next_timer() == 300.0
        await r.advance(300.0)
        assert sorted(r.refs()) == ["PC0", "PC1", "PC2", "PC3"]
        r.publish("PC4")  # after the window
        await r.settle()
    assert r.refs()[-1] == "PC4"
    burst = [e for e in r.dispatcher.journal.entries if e.fault == "burst"]
    assert len(burst) == 3 and {e.virtual_time for e in burst} == {300.0}


async def test_quiet_is_false_while_a_held_delivery_is_due():
    async with rig({"kind": "late", "delay_s": 60}) as r:
        r.publish("PC1")
        await r.settle()
        assert r.dispatcher.quiet() and r.dispatcher.scheduled == 1
        r.clock._now = 60.0  # time has reached the timer, but it has not fired yet
        assert not r.dispatcher.quiet()
        r.clock.advance_to(60.0)
        await r.settle()
        assert r.refs() == ["PC1"] and r.dispatcher.scheduled == 0


# -- rate and determinism ----------------------------------------------------------------


async def test_rate_half_hits_about_half_deterministically():
    async def run() -> list[str | None]:
        async with rig({"kind": "give_up", "rate": 0.5}) as r:
            for i in range(100):
                r.publish(f"PC{i}")
            await r.settle()
        return [d.fault for d in r.dispatcher.deliveries]

    first, second = await run(), await run()
    assert first == second
    assert 35 <= first.count("give_up") <= 65


# -- through a simulator: control plane, journal -----------------------------------------


def test_control_plane_takes_event_faults_and_checks_the_event_type():
    sim = simulators.build("carrier", ManualClock())
    http = TestClient(sim.app)
    r = http.post("/_sim/faults", json={"kind": "late", "event": "tracking.updated", "delay_s": 30})
    assert r.status_code == 201
    assert r.json()["kind"] == "late" and r.json()["event"] == "tracking.updated"
    r = http.post("/_sim/faults", json={"kind": "late", "event": "order.teleported"})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["errors"][0]["field"] == "event"
    assert http.get("/tracking/X").status_code == 404  # answers untouched by event faults
    assert [e.fault for e in sim.journal.entries] == [None]
