"""Events to jobs: the choreography, one handler per event the stack consumes.

Handlers only read and write the store (no I/O), inside the transaction that marks the event
processed, and return the jobs they created. Each gets the stack's defects (see
``reference_stack.defects``); the behaviours they switch live in one function each here:
``enqueue_once`` (dedup), ``is_stale`` (out-of-order tracking), ``issued_qty`` (what a goods
issue posts), ``restocked_qty`` (what a return puts back into ERP stock) and ``handle`` (which
events are mapped at all).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from reference_stack import steps
from reference_stack.config import SYSTEMS
from reference_stack.defects import (
    DOUBLE_CREDIT,
    DOUBLE_GOODS_ISSUE,
    EACHES_AS_CASES,
    ORDERED_QTY,
    RESTOCK_DAMAGED,
    STALE_EVENTS,
    TRANSFER_RECEIVED_TWICE,
    ignored_events,
)
from reference_stack.steps import JobSpec
from reference_stack.store import Event, Job, Order, Store

Defects = frozenset[str]
Handler = Callable[[Store, Event, Defects], list[Job]]


def new_correlation_id(ref: str) -> str:
    return f"corr-{ref}-{uuid.uuid4().hex[:8]}"


def correlation(event: Event, order: Order | None = None, ref: str = "") -> str:
    """The event's own correlation id, else the order's (so one order keeps one id)."""
    if event.correlation_id:
        return event.correlation_id
    return order.correlation_id if order is not None else new_correlation_id(ref or event.id)


def enqueue_once(store: Store, spec: JobSpec, correlation_id: str, defects: Defects) -> list[Job]:
    """Dedup: one job per business action however many events (or duplicates) ask for it."""
    if steps.deduplicated(spec.kind, defects) and store.has_job(spec.key):
        return []
    return [store.add_job(*spec, correlation_id=correlation_id)]


def is_stale(order: Order, sequence: int, defects: Defects) -> bool:
    """A scan at or before the last one applied must not move the ERP's status backwards."""
    if STALE_EVENTS in defects:
        return False
    return order.last_tracking_seq is not None and sequence <= order.last_tracking_seq


def issued_qty(order: Order, line: dict[str, Any], defects: Defects) -> int:
    """What a goods issue posts for a shipped line: the qty shipped, which is the qty picked."""
    picked = (order.picked or {}).get(str(line["line"]))
    if ORDERED_QTY in defects and picked is not None:
        return picked["picked_qty"] + picked["short_qty"]  # what the customer ordered
    return line["qty"]


def issued_uom(store: Store, ref: str, line: dict[str, Any], defects: Defects) -> str:
    """The unit a goods issue line is posted in: eaches, what the WMS picked."""
    if EACHES_AS_CASES in defects:  # the ERP line's own unit, whatever was counted
        job = store.job_by_key(steps.key(steps.CREATE_FO, ref))
        uoms = (job.payload.get("uoms") or {}) if job is not None else {}
        return str(uoms.get(str(line["line"]), "EA"))
    return "EA"


def restocked_qty(line: dict[str, Any], defects: Defects) -> int:
    """What of a returned line goes back into the ERP's available stock: only the units the
    returns bench graded ``restock``; damaged and scrapped units are credited, not stocked."""
    if RESTOCK_DAMAGED in defects or line["condition"] == "restock":
        return int(line["qty"])
    return 0


def disposition_lines(received: dict[str, Any], defects: Defects) -> list[dict[str, int]]:
    """A return receipt per order line (the bench splits a line by condition): every unit that
    came back is credited, the restockable ones restocked."""
    qty: dict[int, int] = {}
    restock: dict[int, int] = {}
    for line in received["lines"]:
        number = int(line["line"])
        qty[number] = qty.get(number, 0) + int(line["qty"])
        restock[number] = restock.get(number, 0) + restocked_qty(line, defects)
    return [{"line": n, "qty": qty[n], "restock_qty": restock[n]} for n in sorted(qty)]


def _order(store: Store, event: Event, ref: str) -> Order:
    known = store.order(ref)  # a new correlation id (a uuid4) only for an order not yet seen
    if known is not None:
        return known
    return store.ensure_order(ref, event.correlation_id or new_correlation_id(ref))


# -- ERP -------------------------------------------------------------------------------------
def order_released(store: Store, event: Event, defects: Defects) -> list[Job]:
    ref = event.data["id"]
    order = _order(store, event, ref)
    if order.cancelled:
        return []
    spec = steps.create_fulfilment_order(event.data, defects)
    return enqueue_once(store, spec, correlation(event, order), defects)


def order_cancelled(store: Store, event: Event, defects: Defects) -> list[Job]:
    ref = event.data["order_id"]
    order = _order(store, event, ref)
    store.update_order(ref, cancelled=True)
    # A create still queued will skip itself; one already sent needs its order cancelled.
    if order.fulfilment_order_id or store.has_job(steps.key(steps.CREATE_FO, ref)):
        spec = steps.cancel_fulfilment_order(ref)
        return enqueue_once(store, spec, correlation(event, order), defects)
    return []


def order_updated(store: Store, event: Event, defects: Defects) -> list[Job]:
    """A new ship-to after release: remember it, and carry it to the WMS order."""
    data = event.data
    ref = data["order_id"]
    order = _order(store, event, ref)
    if "ship_to" not in data.get("changed", ["ship_to"]) or order.cancelled:
        return []
    store.update_order(ref, ship_to=data["ship_to"])
    spec = steps.change_address(ref, data["ship_to"], data["updated_at"])
    return enqueue_once(store, spec, correlation(event, order), defects)


def item_changed(store: Store, event: Event, defects: Defects) -> list[Job]:
    """``item.created`` or ``item.changed``: carry the whole item to the WMS registry."""
    data = event.data
    store.note_item(data["sku"], int(data["version"]), int(data["each_per_case"]))
    spec = steps.sync_item(data)
    return enqueue_once(store, spec, correlation(event, ref=data["sku"]), defects)


# -- WMS -------------------------------------------------------------------------------------
def order_picked(store: Store, event: Event, defects: Defects) -> list[Job]:
    ref, lines = event.data["order_ref"], event.data["lines"]
    order = _order(store, event, ref)
    picked = {
        str(x["line"]): {"picked_qty": x["picked_qty"], "short_qty": x["short_qty"]} for x in lines
    }
    store.update_order(ref, picked=picked)
    if not lines or any(x["picked_qty"] > 0 for x in lines):
        return []  # the goods issue follows order.shipped
    # Nothing picked: nothing will ship. Posting zero turns the whole order into a backorder.
    body = {"lines": [{"line": x["line"], "qty": 0} for x in lines]}
    spec = steps.goods_issue(ref, event.data["fulfilment_order_id"], body)
    return enqueue_once(store, spec, correlation(event, order), defects)


def order_packed(store: Store, event: Event, defects: Defects) -> list[Job]:
    order = _order(store, event, event.data["order_ref"])
    if order.cancelled:
        return []
    spec = steps.plan_shipment(event.data)
    return enqueue_once(store, spec, correlation(event, order), defects)


def order_shipped(store: Store, event: Event, defects: Defects) -> list[Job]:
    data = event.data
    ref = data["order_ref"]
    order = _order(store, event, ref)
    body: dict[str, Any] = {
        "lines": [
            {
                "line": x["line"],
                "qty": issued_qty(order, x, defects),
                "uom": issued_uom(store, ref, x, defects),
            }
            for x in data["lines"]
        ],
        "tracking_number": data["tracking_number"],
        "carrier": data["carrier"],
        "shipment_id": order.shipment_id,
    }
    spec = steps.goods_issue(ref, data["fulfilment_order_id"], body)
    if DOUBLE_GOODS_ISSUE in defects:  # keyed by the event, not by the picking it reports
        spec = spec._replace(key=f"{spec.key}-{event.id}")
    return enqueue_once(store, spec, correlation(event, order), defects)


def inventory_adjusted(store: Store, event: Event, defects: Defects) -> list[Job]:
    spec = steps.inventory_adjustment(event.data)
    return enqueue_once(store, spec, correlation(event, ref=event.data["adjustment_id"]), defects)


def receipt_confirmed(store: Store, event: Event, defects: Defects) -> list[Job]:
    spec = steps.goods_receipt(event.data)
    return enqueue_once(store, spec, correlation(event, ref=event.data["receipt_id"]), defects)


def return_received(store: Store, event: Event, defects: Defects) -> list[Job]:
    """A customer return at the returns bench: post its financial disposition to the ERP."""
    data = event.data
    order = _order(store, event, data["order_ref"])
    spec = steps.return_disposition(data, disposition_lines(data, defects))
    if DOUBLE_CREDIT in defects:  # keyed by the event, not by the receipt it reports
        spec = spec._replace(key=f"{spec.key}-{event.id}")
    return enqueue_once(store, spec, correlation(event, order), defects)


# -- transfers between sites -----------------------------------------------------------------
def transfer_released(store: Store, event: Event, defects: Defects) -> list[Job]:
    spec = steps.create_transfer(event.data)
    return enqueue_once(store, spec, correlation(event, ref=event.data["id"]), defects)


def transfer_shipped(store: Store, event: Event, defects: Defects) -> list[Job]:
    spec = steps.transfer_posting(steps.TRANSFER_ISSUE, event.data)
    return enqueue_once(store, spec, correlation(event, ref=event.data["transfer_ref"]), defects)


def transfer_received(store: Store, event: Event, defects: Defects) -> list[Job]:
    spec = steps.transfer_posting(steps.TRANSFER_RECEIPT, event.data)
    if TRANSFER_RECEIVED_TWICE in defects:  # keyed by the event, not by the WMS transfer
        spec = spec._replace(key=f"{spec.key}-{event.id}")
    return enqueue_once(store, spec, correlation(event, ref=event.data["transfer_ref"]), defects)


# -- TMS and carrier -------------------------------------------------------------------------
def freight_settled(store: Store, event: Event, defects: Defects) -> list[Job]:
    order = _order(store, event, event.data["order_ref"])
    spec = steps.freight_accrual(event.data)
    return enqueue_once(store, spec, correlation(event, order), defects)


def tracking_updated(store: Store, event: Event, defects: Defects) -> list[Job]:
    ref = store.order_ref_for_tracking(event.data["tracking_number"])
    if ref is None:
        return []  # a parcel this stack did not label
    order = _order(store, event, ref)
    sequence = int(event.data["sequence"])
    if is_stale(order, sequence, defects):
        return []
    store.update_order(ref, last_tracking_seq=sequence)
    spec = steps.post_tracking(ref, event.data)
    return enqueue_once(store, spec, correlation(event, order), defects)


HANDLERS: dict[tuple[str, str], Handler] = {
    ("erp", "order.released"): order_released,
    ("erp", "order.cancelled"): order_cancelled,
    ("erp", "order.updated"): order_updated,
    ("erp", "item.created"): item_changed,
    ("erp", "item.changed"): item_changed,
    ("wms", "order.picked"): order_picked,
    ("wms", "order.packed"): order_packed,
    ("wms", "order.shipped"): order_shipped,
    ("wms", "inventory.adjusted"): inventory_adjusted,
    ("wms", "receipt.confirmed"): receipt_confirmed,
    ("wms", "return.received"): return_received,
    ("erp", "transfer.released"): transfer_released,
    ("wms", "transfer.shipped"): transfer_shipped,
    ("wms", "transfer.received"): transfer_received,
    ("tms", "freight.settled"): freight_settled,
    ("carrier", "tracking.updated"): tracking_updated,
}

# What the stack subscribes to on each system: exactly the events it has a handler for.
CONSUMED: dict[str, list[str]] = {
    system: [kind for (source, kind) in HANDLERS if source == system] for system in SYSTEMS
}


def handle(store: Store, event: Event, defects: Defects) -> list[Job]:
    """The jobs an event calls for (none for an event type the stack does not consume, or
    one a defect leaves unmapped: acknowledged, then dropped)."""
    if (event.system, event.type) in ignored_events(defects):
        return []
    handler = HANDLERS.get((event.system, event.type))
    return handler(store, event, defects) if handler is not None else []
