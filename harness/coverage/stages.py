"""At which stage of its order each cancellation reached the stack.

A cancellation is judged at the moment the stack heard of it: the first delivery of the
order's ``order.cancelled`` event that the stack accepted (a 2xx answer; forged, garbled and
replayed copies do not count). A stack that was never sent one (it polls the ERP, or every delivery
failed) is judged at the moment the ERP cancelled the order (its ``status_history``).

The stage is what the WMS held for the order at that moment, from each fulfilment order's
``status_history``:

| stage | the WMS at that moment |
| --- | --- |
| before WMS order | no fulfilment order for the sales order yet |
| accepted | accepted, not yet picked |
| picking | picked, not yet packed |
| packed | packed or labelled, not yet shipped |

Timestamps in state are whole virtual seconds; a status reached in the same second as the
cancellation counts as reached before it, except the WMS's own ``cancelled`` (the stack acts
on a cancellation in the virtual second it hears of it). A cancellation that came after the
order shipped, or when every fulfilment order was already closed, is no stage of the map.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from harness.coverage.cells import ACCEPTED, BEFORE_WMS_ORDER, PACKED, PICKING

ISO = "%Y-%m-%dT%H:%M:%SZ"
# The WMS statuses of a live fulfilment order, in order, and the stage each one is.
_STAGE_OF = {
    "accepted": (0, ACCEPTED),
    "picked": (1, PICKING),
    "packed": (2, PACKED),
    "labelled": (2, PACKED),
    "shipped": (3, "shipped"),
}


def items(collection: Any) -> list[dict[str, Any]]:
    """A state collection as a list, whether the snapshot keeps it as a list or by id."""
    if isinstance(collection, dict):
        return [x for x in collection.values() if isinstance(x, dict)]
    return [x for x in collection or [] if isinstance(x, dict)]


def cancelled_at(order: dict[str, Any]) -> str | None:
    """When the ERP cancelled the order (ISO), or None when it never did."""
    for entry in order.get("status_history") or []:
        if entry.get("status") == "cancelled":
            return str(entry.get("at"))
    return None


def epoch(erp_orders: list[dict[str, Any]]) -> datetime | None:
    """Virtual time zero of the run: midnight (UTC) of the day the first order was created
    (a scenario's epoch is midnight of its start day, and every order arrives on day 0)."""
    created = [str(o["created_at"]) for o in erp_orders if o.get("created_at")]
    if not created:
        return None
    first = datetime.strptime(min(created), ISO).replace(tzinfo=UTC)
    return first.replace(hour=0, minute=0, second=0, microsecond=0)


def stages(state: dict[str, Any], told_at: Mapping[str, float]) -> dict[str, str]:
    """Each cancelled order's stage; ``told_at`` maps an order id to the virtual time of the
    first accepted delivery of its ``order.cancelled``. Orders at no stage are left out."""
    erp_orders = items((state.get("erp") or {}).get("orders"))
    zero = epoch(erp_orders)
    by_ref: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for fo in items((state.get("wms") or {}).get("orders")):
        by_ref[str(fo.get("order_ref"))].append(fo)
    found = {}
    for order in erp_orders:
        erp_moment = cancelled_at(order)
        if erp_moment is None:
            continue
        told = told_at.get(order["id"])
        moment = erp_moment
        if told is not None and zero is not None:
            moment = (zero + timedelta(seconds=int(told))).strftime(ISO)
        stage = stage_at(by_ref.get(order["id"], []), moment)
        if stage is not None:
            found[order["id"]] = stage
    return found


def stage_at(fulfilment_orders: list[dict[str, Any]], moment: str) -> str | None:
    """The stage of a sales order at ``moment`` (ISO), from its fulfilment orders' histories."""
    existed = False
    live: list[tuple[int, str]] = []
    for fo in fulfilment_orders:
        status = None
        for entry in fo.get("status_history") or []:
            at, reached = str(entry.get("at")), entry.get("status")
            # the WMS cancel the cancellation itself caused lands in the same second
            if at < moment or (at == moment and reached != "cancelled"):
                status = reached
        if status is None:
            continue  # created after the moment
        existed = True
        if status in _STAGE_OF:
            live.append(_STAGE_OF[status])
    if not existed:
        return BEFORE_WMS_ORDER
    if not live:
        return None  # every fulfilment order was already cancelled or short-closed
    stage = max(live)[1]
    return stage if stage != "shipped" else None
