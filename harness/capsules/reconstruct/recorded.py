"""Facts from what crossed the wire: webhook events (HAR deliveries, dead letters) and HAR
exchanges with their bodies. Picks and scans can come before the order or parcel they are
about is known; they wait in the builder until every source is read (``settle_pending``).

The stack's own postings to the ERP are fallbacks for the events a HAR of stack -> vendor
calls does not hold: ``POST /orders/{id}/tracking`` for carrier scans, ``POST
/inventory/adjustments`` and ``POST /goods-receipts`` for the WMS's adjustments and receipts
(each kept only where no event or state gave the same already). Every exchange that gives
nothing is listed, grouped per route template, with why."""

from __future__ import annotations

from collections import Counter, defaultdict

from harness.capsules.evidence import Event, Exchange
from harness.capsules.reconstruct.builder import FAR, Builder, event_ref
from harness.capsules.reconstruct.faults import har_spec, template
from harness.capsules.reconstruct.orders import map_lines, order_fact
from harness.scripted import moment_text

SCAN_STATUSES = ("picked_up", "in_transit", "exception", "out_for_delivery", "delivered")
ADJUST_REASONS = ("cycle_count", "damage", "shrinkage", "found")
REASON_NAMES = {"shrink": "shrinkage"}  # the ERP's word -> the timeline's
SCAN_SKEW_S = 300.0  # a posted scan's occurred_at this much after the post still counts
# Writes the import reads nothing from, and why that loses nothing (default: ``_UNUSED``).
UNUSED_WRITES = {
    "/freight-accruals": "the stack's posting of a settlement; the world settles freight itself",
    "/fulfilment-orders/{id}": "the stack passing a change on; the change itself is replayed "
    "from order.updated when the evidence holds it",
    "/webhooks": "a subscription; the replayed stack subscribes itself",
    "/orders/{id}/release": "a release; the orders are placed from what the ERP answered",
}
_UNUSED = "a write this import reads nothing from; the replayed stack makes its own"
# What the world produces by itself from the rest: nothing to script, nothing lost.
DERIVED_EVENTS = frozenset({"order.packed", "order.shipped", "freight.settled"})


def from_events(b: Builder, events: list[Event]) -> None:
    """Each event once (a duplicate is a fault, read elsewhere), in the order it happened."""
    seen: set[str] = set()
    ordered = sorted(events, key=lambda e: (e.occurred_at or e.delivered_at or FAR, e.id))
    for e in ordered:
        if e.id in seen:
            continue
        seen.add(e.id)
        when = b.vt(e.occurred_at) if e.occurred_at else b.vt(e.delivered_at)
        if e.error:
            b.note(
                f"{e.id} ({e.type} {event_ref(e) or ''}) was dead-lettered: "
                f"{e.error[:200]}; the capsule replays the event, not the failure"
            )
        _event(b, e, when)


def _event(b: Builder, e: Event, when: float | None) -> None:
    d = e.data
    if e.type == "order.released":
        oid = str(d.get("id") or d.get("order_id") or "")
        order_fact(b, oid, d, b.vt(d.get("released_at")) or when, f"{e.type} {e.id}")
    elif e.type == "order.cancelled":
        oid = str(d.get("order_id") or d.get("id") or "")
        at = b.vt(d.get("cancelled_at")) or when
        if oid and at is not None:
            b.cancels.setdefault(oid, at)
    elif e.type == "order.updated":
        oid = str(d.get("order_id") or d.get("id") or "")
        at = b.vt(d.get("updated_at")) or when
        if not (isinstance(d.get("ship_to"), dict) and oid and at is not None):
            b.note(f"{e.id}: {e.type} for {oid or '?'} changes no ship-to; not replayed")
        elif oid in b.addresses:
            b.note(
                f"{oid}: another address change at {moment_text(at)}; only the first is replayed"
            )
        else:
            b.addresses[oid] = (at, dict(d["ship_to"]))
    elif e.type == "order.picked":
        ref, fo = str(d.get("order_ref") or ""), d.get("fulfilment_order_id")
        if fo and ref:
            b.fulfilment[str(fo)] = ref
        b.pending_picks.append((ref, when, d.get("lines") or [], e.id))
    elif e.type == "tracking.updated":
        tn = str(d.get("tracking_number") or "")
        at = b.vt(d.get("occurred_at")) or when
        b.pending_scans.append((tn, str(d.get("status") or ""), at, e.id))
    elif e.type == "order.shipped":
        if d.get("tracking_number") and d.get("order_ref"):
            b.tracking[str(d["tracking_number"])] = str(d["order_ref"])
    elif e.type == "inventory.adjusted":
        if when is not None and d.get("sku") and isinstance(d.get("delta"), int):
            reason = _reason(d.get("reason"))
            b.adjustments.append((when, str(d["sku"]), int(d["delta"]), reason))
        else:
            b.note(f"{e.id}: inventory.adjusted without sku, delta or time; not replayed")
    elif e.type == "receipt.confirmed":
        for line in d.get("lines") or []:
            if when is not None and line.get("sku") and int(line.get("qty") or 0) > 0:
                b.receipts.append((when, str(line["sku"]), int(line["qty"])))
    elif e.type not in DERIVED_EVENTS:
        b.note(f"{e.id}: event type {e.type} means nothing to the world; not replayed")


def from_exchanges(b: Builder, exchanges: list[Exchange]) -> None:
    """What the vendors' answers and the stack's requests say, read from successful calls in
    the order they began; the ERP postings that stand in for missing events, where none gave
    the same; and every exchange that gave nothing, listed per route template."""
    ordered = sorted((x for x in exchanges if x.direction == "in"), key=lambda x: x.at or FAR)
    unused: Counter[tuple[str, str, str, str]] = Counter()
    scans: list[tuple[str, str, float | None, float | None, str]] = []
    adjustments: list[tuple[float, str, int, str]] = []
    receipts: list[tuple[float, str, int]] = []
    for x in ordered:
        if 200 <= x.status < 300:
            if not _exchange(b, x) and not _posting(b, x, scans, adjustments, receipts):
                unused[_why_unused(x)] += 1
        elif har_spec(x) is None:  # a 4xx (or a redirect): the vendor's own business answer
            key = (str(x.system), x.method, template(x.path), f"answered {x.status}")
            unused[key] += 1
    _fallback(b, scans, adjustments, receipts)
    _note_unused(b, unused)


def _reason(reason: object) -> str:
    reason = REASON_NAMES.get(str(reason), reason)
    return str(reason) if reason in ADJUST_REASONS else "cycle_count"


def _posting(
    b: Builder,
    x: Exchange,
    scans: list[tuple[str, str, float | None, float | None, str]],
    adjustments: list[tuple[float, str, int, str]],
    receipts: list[tuple[float, str, int]],
) -> bool:
    """The stack's ERP postings of what the vendors told it: a scan, an adjustment, a
    receipt (the request time when the body gives none). Whether it was one."""
    req = x.request if isinstance(x.request, dict) else {}
    parts = x.path.strip("/").split("/")
    when = b.when(x)
    if x.system != "erp" or x.method != "POST":
        return False
    if len(parts) == 3 and parts[0] == "orders" and parts[2] == "tracking":
        tn = str(req.get("tracking_number") or "")
        if tn:
            b.tracking.setdefault(tn, parts[1])
        said = b.vt(req.get("occurred_at")) if req.get("occurred_at") else None
        scans.append((tn, str(req.get("status") or ""), said, when, x.where))
        return True
    if parts == ["inventory", "adjustments"]:
        delta = req.get("delta")
        if when is not None and req.get("sku") and isinstance(delta, int):
            adjustments.append((when, str(req["sku"]), delta, _reason(req.get("reason"))))
        else:
            b.note(f"{x.where}: POST {x.path} without sku or delta; not replayed")
        return True
    if parts == ["goods-receipts"]:
        for line in req.get("lines") or []:
            qty = line.get("qty") if isinstance(line, dict) else None
            if when is not None and line.get("sku") and isinstance(qty, int) and qty > 0:
                receipts.append((when, str(line["sku"]), qty))
        return True
    return False


def _on_our_clock(
    scans: list[tuple[str, str, float | None, float | None, str]],
) -> list[tuple[str, str, float | None, str]]:
    """When each posted scan happened. Its ``occurred_at`` when the bodies are on the
    recording's clock (each after the epoch and no later than its post). Otherwise (a HAR
    recorded in front of twinyard's simulators has wall times, its bodies virtual ones) every
    ``occurred_at`` is moved by one offset that puts the earliest at its post's time: their
    order and spacing are kept. A post without ``occurred_at`` is when it was posted."""
    told = [(said, posted) for _, _, said, posted, _ in scans]
    agree = all(
        said is None or posted is None or 0 <= said <= posted + SCAN_SKEW_S for said, posted in told
    )
    offset = 0.0
    if not agree:
        said, posted = min(((s, p) for s, p in told if s is not None and p is not None))
        offset = posted - said
    return [
        (tn, status, said + offset if said is not None else posted, where)
        for tn, status, said, posted, where in scans
    ]


def _fallback(
    b: Builder,
    scans: list[tuple[str, str, float | None, float | None, str]],
    adjustments: list[tuple[float, str, int, str]],
    receipts: list[tuple[float, str, int]],
) -> None:
    """The postings' scans, adjustments and receipts, but none an event, an answer or the
    state gave already (the same parcel and status; the same SKU and quantity)."""
    told = {(tn, status) for tn, status, _, _ in b.pending_scans}
    for tn, status, when, where in _on_our_clock(scans):
        if (tn, status) not in told:
            told.add((tn, status))
            b.pending_scans.append((tn, status, when, f"POST /orders/.../tracking ({where})"))
    known = Counter((sku, delta) for _, sku, delta, _ in b.adjustments)
    for adjustment in adjustments:
        key = (adjustment[1], adjustment[2])
        if known[key]:
            known[key] -= 1
        else:
            b.adjustments.append(adjustment)
    received = Counter((sku, qty) for _, sku, qty in b.receipts)
    for receipt in receipts:
        key = (receipt[1], receipt[2])
        if received[key]:
            received[key] -= 1
        else:
            b.receipts.append(receipt)


def _why_unused(x: Exchange) -> tuple[str, str, str, str]:
    route = template(x.path)
    if x.method in ("GET", "HEAD", "OPTIONS"):
        return (str(x.system), x.method, route, "read")
    why = next((w for r, w in UNUSED_WRITES.items() if route == r), _UNUSED)
    return (str(x.system), x.method, route, why)


def _note_unused(b: Builder, unused: Counter[tuple[str, str, str, str]]) -> None:
    """Writes (and answers the import cannot use) one line per route template; reads, which
    replay nothing, in one line."""
    reads = {k: n for k, n in unused.items() if k[3] == "read"}
    for (system, method, route, why), count in sorted(unused.items()):
        if why != "read":
            b.note(f"{system} {method} {route} x {count}: {why}; not replayed")
    if reads:
        listed = ", ".join(
            f"{system} {method} {route} x {count}"
            for (system, method, route, _), count in sorted(reads.items(), key=lambda r: -r[1])
        )
        total = sum(reads.values())
        b.note(f"reads: {total} exchange(s) ({listed}) replay nothing")


def _exchange(b: Builder, x: Exchange) -> bool:
    """Read one successful exchange; whether the import uses its route."""
    when = b.when(x)
    parts = x.path.strip("/").split("/")
    req = x.request if isinstance(x.request, dict) else {}
    answer = x.response if isinstance(x.response, dict) else {}
    # a GET of a collection answers {"items": [...]}, of one resource the resource
    items = (answer.get("items") if len(parts) == 1 else [answer]) or []
    if x.system == "erp" and parts[0] == "orders" and x.method == "GET":
        for item in items:
            if isinstance(item, dict) and item.get("id"):
                at = b.vt(item.get("released_at") or item.get("created_at"))
                order_fact(b, str(item["id"]), item, at, f"GET {x.path} ({x.where})")
                for step in item.get("status_history") or []:
                    if step.get("status") == "cancelled" and (t := b.vt(step.get("at"))):
                        b.cancels.setdefault(str(item["id"]), t)
    elif x.system == "erp" and len(parts) == 3 and parts[2] == "cancel" and when is not None:
        b.cancels.setdefault(parts[1], when)
    elif x.system == "wms" and parts == ["fulfilment-orders"] and x.method == "POST":
        ref = str(req.get("order_ref") or "")
        if ref:
            if answer.get("id"):
                b.fulfilment[str(answer["id"])] = ref
            order_fact(b, ref, req, when, f"POST /fulfilment-orders ({x.where})")
    elif x.system == "wms" and parts[0] == "fulfilment-orders" and x.method == "GET":
        for item in items:
            if isinstance(item, dict) and item.get("order_ref") and item.get("id"):
                b.fulfilment[str(item["id"])] = str(item["order_ref"])
                if item.get("status") not in ("accepted", "cancelled", None):
                    picked = (str(item["order_ref"]), None, item.get("lines") or [], x.where)
                    b.pending_picks.append(picked)
    elif x.system == "wms" and len(parts) == 3 and parts[2] == "cancel" and when is not None:
        ref = b.fulfilment.get(parts[1])
        if ref:
            b.cancels.setdefault(ref, when)
        else:
            b.note(f"{x.where}: {parts[1]} cancelled, but no order is known for it")
    elif x.system == "wms" and len(parts) == 3 and parts[2] == "label":
        ref = b.fulfilment.get(parts[1])
        if ref and req.get("tracking_number"):
            b.tracking[str(req["tracking_number"])] = ref
    elif x.system == "erp" and len(parts) == 3 and parts[2] == "goods-issue":
        if req.get("tracking_number"):
            b.tracking[str(req["tracking_number"])] = parts[1]
    elif x.system == "tms" and parts == ["shipments"] and x.method == "POST":
        if answer.get("id") and req.get("order_ref"):
            b.shipments[str(answer["id"])] = str(req["order_ref"])
    elif x.system == "carrier" and parts == ["labels"] and x.method == "POST":
        order = req.get("order_ref") or b.shipments.get(str(req.get("shipment_ref") or ""))
        if answer.get("tracking_number") and order:
            b.tracking[str(answer["tracking_number"])] = str(order)
    elif x.system == "carrier" and parts[0] == "tracking" and len(parts) == 2:
        for e in answer.get("events") or []:
            scan = (parts[1], str(e.get("status") or ""), b.vt(e.get("occurred_at")), x.where)
            b.pending_scans.append(scan)
    else:
        return False
    return True


def settle_pending(b: Builder) -> None:
    """Picks and scans read before the orders they belong to were known."""
    for ref, when, lines, where in b.pending_picks:
        order = b.orders.get(ref)
        if ref in b.picks:
            continue
        if order is None or not order.lines:
            b.note(f"{where}: a pick of {ref or '?'}, an order not in the recording; not replayed")
            continue
        shorts = map_lines(b, order, lines, where)
        if shorts is not None:
            b.picks[ref] = (when, shorts)
    pending: dict[str, list[tuple[str, float]]] = defaultdict(list)
    seen: set[tuple[str, str, float | None]] = set()
    for tn, status, when, where in b.pending_scans:
        order = b.tracking.get(tn)
        if (tn, status, when) in seen:
            continue
        seen.add((tn, status, when))
        if order is None:
            b.note(f"{where}: a scan of {tn or '?'}, a parcel no order is known for; not replayed")
        elif status not in SCAN_STATUSES or when is None:
            b.note(f"{where}: scan {status!r} of {tn} ({order}) not replayable")
        elif order not in b.scans:
            pending[order].append((status, when))
    for order, events in pending.items():
        b.scans[order] = sorted(events, key=lambda e: e[1])
