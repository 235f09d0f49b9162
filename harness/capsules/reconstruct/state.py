"""Facts from a twinyard run: its final state (``state.json``) and journal, or a journal
alone, whose orders are the run's generated ones when its scenario is at hand."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any
from urllib.parse import unquote

from harness.capsules.evidence import Exchange
from harness.capsules.reconstruct.builder import Builder, Order, line_no
from harness.capsules.reconstruct.orders import map_lines
from harness.scripted import moment_text

GENERATED_ID = re.compile(r"^SO-(\d{6})$")


def from_state(b: Builder, state: dict[str, Any]) -> None:
    """Every ERP order with its cancel, address change and picks; every label's scans; the
    WMS's receipts and adjustments."""
    erp, wms = state.get("erp") or {}, state.get("wms") or {}
    tms, carrier = state.get("tms") or {}, state.get("carrier") or {}
    for sh, shipment in (tms.get("shipments") or {}).items():
        if shipment.get("order_ref"):
            b.shipments[sh] = shipment["order_ref"]
    fos_by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for fo in (wms.get("orders") or {}).values():
        b.fulfilment[fo["id"]] = fo["order_ref"]
        fos_by_order[fo["order_ref"]].append(fo)
    for label in (carrier.get("labels") or {}).values():
        order = b.shipments.get(label.get("shipment_ref") or "")
        if order and label.get("tracking_number"):
            b.tracking[label["tracking_number"]] = order
    updates = _journal_updates(b)
    patched = {unquote(x.path.split("/")[2]) for x in b.evidence.exchanges if _wms_patched(x)}
    refused = {
        b.shipments.get(x.ref or "")
        for x in b.evidence.exchanges
        if x.system == "carrier" and x.path == "/labels" and x.error == "address_invalid"
    }
    for o in erp.get("orders") or []:
        oid = o["id"]
        at = b.vt(o.get("released_at") or o.get("created_at"))
        if o.get("released_at") is None:
            b.note(
                f"{oid}: never released in the recording (status {o.get('status')}); "
                "the capsule places and releases it"
            )
        order = Order(
            oid,
            at,
            [{"sku": x["sku"], "qty": x["qty"]} for x in sorted(o["lines"], key=line_no)],
            o.get("service_level"),
            dict(o["ship_to"]) if o.get("ship_to") else None,
            dict(o["customer"]) if o.get("customer") else None,
            "ERP state",
        )
        b.orders[oid] = order
        for step in o.get("status_history") or []:
            if step.get("status") == "cancelled" and (when := b.vt(step.get("at"))) is not None:
                b.cancels[oid] = when
        # the first WMS order of each sales order: a duplicate is a defective stack's doing
        fos = sorted(fos_by_order.get(oid, []), key=lambda fo: fo.get("created_at") or "")
        first = fos[0] if fos else None
        if oid in updates:
            _address_from_state(b, order, updates[oid], o, first, patched, oid in refused)
        if first is not None:
            _picks_from_fo(b, order, first)
    _scans_from_labels(b, carrier)
    _stock_from_wms(b, wms)


def _wms_patched(x: Exchange) -> bool:
    """A change the stack made to a WMS order: its ship-to is no longer the one placed."""
    return (
        x.system == "wms"
        and x.method == "PATCH"
        and 200 <= x.status < 300
        and x.path.startswith("/fulfilment-orders/")
    )


def _journal_updates(b: Builder) -> dict[str, list[float]]:
    """When the ERP announced each order's updates (``order.updated`` deliveries)."""
    found: dict[str, list[float]] = defaultdict(list)
    for x in b.evidence.exchanges:
        if (
            x.vt is not None
            and x.event_type == "order.updated"
            and x.ref
            and x.fault is None
            and 200 <= x.status < 300
        ):
            found[x.ref].append(x.vt)
    return found


def _address_from_state(
    b: Builder,
    order: Order,
    times: list[float],
    erp_order: dict[str, Any],
    first_fo: dict[str, Any] | None,
    patched: set[str],
    refused: bool,
) -> None:
    """An order whose address changed: the new ship-to is the ERP's; the one it was placed
    with is the WMS order's, if the stack never patched it, or the ERP's without its postal
    code when the carrier refused the label for that."""
    final = dict(erp_order["ship_to"])
    changed_at = min(times)
    if len(times) > 1:
        b.note(
            f"{order.id}: its ship-to changed more than once; only the last address is "
            "replayed, at the first change's time"
        )
    placed = None
    if refused:
        placed = {**final, "postal_code": ""}
    elif first_fo is not None and first_fo["id"] not in patched and first_fo.get("ship_to"):
        created = b.vt(first_fo.get("created_at"))
        if created is not None and created <= changed_at:
            placed = dict(first_fo["ship_to"])
    if placed is None:
        b.note(
            f"{order.id}: the ship-to it was placed with is not in the recording; the "
            "capsule places it with the new one and changes it to the same"
        )
        placed = final
    order.ship_to = placed
    b.addresses[order.id] = (changed_at, final)


def _picks_from_fo(b: Builder, order: Order, fo: dict[str, Any]) -> None:
    done = [
        b.vt(step.get("at"))
        for step in fo.get("status_history") or []
        if step.get("status") in ("picked", "short_closed")
    ]
    if not done or done[0] is None:
        return
    shorts = map_lines(b, order, fo.get("lines") or [], "WMS state")
    if shorts is not None:
        b.picks[order.id] = (done[0], shorts)


def _scans_from_labels(b: Builder, carrier: dict[str, Any]) -> None:
    """Each order's label's scans, by the shipment the label is for."""
    for label in sorted((carrier.get("labels") or {}).values(), key=lambda x: x.get("id", "")):
        events = label.get("events") or []
        order_id = b.shipments.get(label.get("shipment_ref") or "")
        if not events:
            continue
        if order_id is None:
            b.note(f"label {label.get('id')}: its scans name no order the TMS knows; not replayed")
            continue
        if order_id in b.scans:
            b.note(
                f"{order_id}: a second label with scans ({label.get('id')}); its scans are "
                "not replayed"
            )
            continue
        b.scans[order_id] = [
            (e["status"], when) for e in events if (when := b.vt(e.get("occurred_at"))) is not None
        ]


def _stock_from_wms(b: Builder, wms: dict[str, Any]) -> None:
    for r in wms.get("receipts") or []:
        when = b.vt(r.get("at"))
        for line in r.get("lines") or []:
            if when is not None:
                b.receipts.append((when, line["sku"], int(line["qty"])))
    for a in wms.get("adjustments") or []:
        when = b.vt(a.get("at"))
        if when is not None:
            b.adjustments.append((when, a["sku"], int(a["delta"]), a.get("reason", "cycle_count")))


def from_bare_journal(b: Builder) -> None:
    """Orders are named by a journal, never described: with the run's seed and scenario at
    hand, its generated orders are played again (the same ids, content and fate); without,
    only the faults are kept."""
    released: dict[str, float] = {}
    for x in b.evidence.exchanges:
        if x.event_type == "order.released" and x.ref and x.vt is not None:
            released.setdefault(x.ref, x.vt)
    numbers = [int(m.group(1)) for ref in released if (m := GENERATED_ID.match(ref))]
    if released and b.original is not None and numbers and len(numbers) == len(released):
        b.generated = max(numbers)
        missing = sorted(set(range(1, b.generated + 1)) - set(numbers))
        b.base.setdefault("demand", {})
        if missing:
            b.note(
                f"orders {', '.join(f'SO-{n:06d}' for n in missing[:10])} are not in the "
                "journal; the capsule plays the generated day without them"
            )
        for x in b.evidence.exchanges:
            if x.event_type == "order.cancelled" and x.ref in released and x.vt is not None:
                b.cancels.setdefault(x.ref, x.vt)
        b.note(
            "a journal has no bodies: the orders are the scenario's generated ones (seed "
            f"{b.original.seed}), their picks and scans drawn from the seed as they were"
        )
        return
    for ref, when in sorted(released.items(), key=lambda kv: kv[1]):
        b.note(
            f"{ref}: released at {moment_text(when)}; its lines and ship-to are not in a "
            "journal (add state.json or a HAR of the ERP)"
        )
    for x in b.evidence.exchanges:
        if x.event_type in ("order.cancelled", "order.updated") and x.ref and x.vt is not None:
            b.note(
                f"{x.ref}: {x.event_type} at {moment_text(x.vt)}; not replayed without the order"
            )
