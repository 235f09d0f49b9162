"""Faults of the webhook deliveries a stack gets: from a journal's labels (``duplicate:2``,
``reorder:600s`` ...) or read from the deliveries themselves (a HAR, a dead-letter export):
the same event twice, events overtaken, or delivered long after they happened.

Each becomes one fault per event it hit, in a window around when that event happened,
matched by the business id its body carries (the replay's events get new event ids).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from harness.capsules.evidence import Event
from harness.capsules.reconstruct.builder import CLUSTER_GAP_S, FAR, Builder, Hit, event_ref
from harness.capsules.reconstruct.times import ceil3, floor3

EVENT_SLACK_S = 30.0  # an event fault's window around when its event happened
LATE_S = 300.0  # a webhook delivered this long after it happened counts as late


def event_spec(label: str) -> tuple[dict[str, Any], float] | None:
    """An event fault's kind and parameters from its journal label, and how long after the
    event happened its labelled delivery went out."""
    head, *extras = label.split("+")
    kind, _, rest = head.partition(":")
    aged = next((x for x in extras if x.startswith("signed-")), None)
    if kind == "duplicate":
        spec: dict[str, Any] = {"kind": "duplicate", "copies": int(rest or 2)}
        if "new-ids" in extras:
            spec["new_ids"] = True
        return spec, 0.0
    if kind in ("reorder", "late", "replayed"):
        seconds = float(rest.removesuffix("s") or 600)
        key = "hold_s" if kind == "reorder" else "delay_s"
        spec = {"kind": kind, key: seconds}
        if aged is not None:
            spec["signed_age_s"] = float(aged.removeprefix("signed-").removesuffix("s-ago"))
        return spec, seconds
    if kind in ("forged", "give_up", "burst"):
        return {"kind": kind}, 0.0
    if kind == "garbled":
        return {"kind": kind, "form": rest or "truncated"}, 0.0
    return None


def event_windows(b: Builder, hits: list[Hit]) -> None:
    """One event fault per event it hit (its deliveries and copies folded into one), in a
    window around when the event happened, matched by the ref its body carries."""
    _burst_windows(b, [h for h in hits if dict(h.spec)["kind"] == "burst"])
    groups: dict[tuple[Any, ...], list[Hit]] = defaultdict(list)
    for hit in hits:
        if dict(hit.spec)["kind"] != "burst":
            groups[(hit.system, hit.spec, hit.event, hit.ref)].append(hit)
    for (system, spec, event, ref), group in groups.items():
        group.sort(key=lambda h: h.vt)
        incidents: list[list[Hit]] = [[group[0]]]
        for hit in group[1:]:
            if hit.vt - incidents[-1][0].vt > CLUSTER_GAP_S:
                incidents.append([hit])
            else:
                incidents[-1].append(hit)
        for incident in incidents:
            spec_d = dict(spec)
            published = incident[0].vt
            fault: dict[str, Any] = {"system": system, "event": event, **spec_d}
            if spec_d["kind"] == "duplicate" and len(incident) >= 2:
                spacing = incident[1].vt - published
                if spacing >= 1:
                    fault["spacing_s"] = round(spacing, 3)
            match = _event_match(b, system, event, ref)
            _around(fault, match, published, EVENT_SLACK_S if match else 1.0)
            b.faults.append(fault)


def _burst_windows(b: Builder, hits: list[Hit]) -> None:
    """A burst holds every event of its type from the window's start and delivers them all
    at its end: one fault per system, event type and release (not per event), closing when
    the held events were delivered. It opens as the run's scenario declares it when that
    burst is there; else when the earliest held order was released (``order.released``);
    else ``EVENT_SLACK_S`` before the delivery, and that is noted."""
    groups: dict[tuple[str, str | None], list[Hit]] = defaultdict(list)
    for hit in hits:
        groups[(hit.system, hit.event)].append(hit)
    declared = [
        f for f in (b.original.faults if b.original is not None else []) if f.kind == "burst"
    ]
    for (system, event), group in groups.items():
        group.sort(key=lambda h: h.vt)
        releases: list[list[Hit]] = [[group[0]]]
        for hit in group[1:]:
            if hit.vt - releases[-1][-1].vt > CLUSTER_GAP_S:
                releases.append([hit])
            else:
                releases[-1].append(hit)
        for release in releases:
            end = release[-1].vt
            told = next(
                (
                    f
                    for f in declared
                    if f.system == system
                    and f.applies_to_event(event or "")
                    and f.until is not None
                    and abs(f.until - release[0].vt) <= EVENT_SLACK_S
                ),
                None,
            )
            if told is not None and told.until is not None:
                at, end = told.at, told.until
            else:
                released = [
                    o.at
                    for h in release
                    if event == "order.released"
                    and (o := b.orders.get(h.ref or "")) is not None
                    and o.at is not None
                ]
                at = min(released) if released else release[0].vt - EVENT_SLACK_S
                if not released:
                    b.note(
                        f"burst of {system} {event} events delivered at {end:g} s: when "
                        f"holding began is not in the journal; the window opens "
                        f"{EVENT_SLACK_S:g} s before"
                    )
            at = floor3(max(0.0, at))
            fault = {"system": system, "event": event, "kind": "burst", "at": at}
            fault["for"] = max(1.0, ceil3(end - at))
            b.faults.append(fault)


def _event_match(b: Builder, system: str, event: str | None, ref: str | None) -> str | None:
    """What an event's body says that names it: the ref, or for a carrier scan (whose
    body names only the parcel) the tracking number of the ref's label."""
    if not ref:
        return None
    if system == "carrier":
        order = b.shipments.get(ref, ref)
        found = [tn for tn, o in b.tracking.items() if o == order]
        return found[0] if len(found) == 1 else None
    return ref


def delivery_faults(b: Builder, events: list[Event]) -> None:
    """Webhook deliveries a stack received (HAR) or dead-lettered (DLQ): the same event id
    twice is a duplicate; a ref's events delivered in an order unlike when they happened is a
    reorder; one delivered long after it happened is late."""
    by_id: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_id[e.id].append(e)
    for copies in by_id.values():
        if len(copies) < 2 or copies[0].system is None:
            continue
        e = copies[0]
        at = b.vt(e.occurred_at) or b.vt(e.delivered_at)
        if at is None:
            continue
        fault: dict[str, Any] = {
            "system": e.system,
            "event": e.type,
            "kind": "duplicate",
            "copies": min(20, len(copies)),
        }
        b.faults.append(_around(fault, event_ref(e), at))
    delivered = [e for e in events if e.delivered_at and e.occurred_at and e.system]
    first_delivery: dict[str, Event] = {}
    for e in sorted(delivered, key=lambda e: e.delivered_at or FAR):
        first_delivery.setdefault(e.id, e)
    held = _overtaken(list(first_delivery.values()))
    for e in first_delivery.values():
        assert e.occurred_at is not None and e.delivered_at is not None
        lag = (e.delivered_at - e.occurred_at).total_seconds()
        at = b.vt(e.occurred_at)
        if at is None or (e.id not in held and lag < LATE_S):
            continue
        kind, key = ("reorder", "hold_s") if e.id in held else ("late", "delay_s")
        fault = {"system": e.system, "event": e.type, "kind": kind, key: round(max(1.0, lag), 3)}
        b.faults.append(_around(fault, event_ref(e), at))


def _overtaken(first_deliveries: list[Event]) -> set[str]:
    """The events delivered after a later event about the same business id."""
    by_ref: dict[str, list[Event]] = defaultdict(list)
    for e in first_deliveries:
        ref = event_ref(e)
        if ref:
            by_ref[ref].append(e)
    held: set[str] = set()
    for ref_events in by_ref.values():
        ref_events.sort(key=lambda e: e.delivered_at or FAR)
        for i, e in enumerate(ref_events):
            assert e.occurred_at is not None
            overtaken = any(
                later.occurred_at is not None and later.occurred_at > e.occurred_at
                for later in ref_events[:i]
            )
            if overtaken:
                held.add(e.id)
    return held


def _around(
    fault: dict[str, Any], match: str | None, happened: float, slack: float = EVENT_SLACK_S
) -> dict[str, Any]:
    """Matched by ``match`` (a business id), open ``slack`` either side of ``happened``."""
    if match:
        fault["match"] = match
    fault["at"] = floor3(max(0.0, happened - slack))
    fault["for"] = 2 * slack
    return fault
