"""What oracles read: the simulators' state snapshots and journals, indexed for judging."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

# Each system's journal, oldest first, an entry a dict as ``JournalEntry.to_dict`` gives it. A
# finished day's are ``simulators.common.journal.Dicts`` (read from the journal on every pass,
# never all in memory at once): read them in passes, and keep only what a pass needs.
Journals = Mapping[str, Sequence[dict[str, Any]]]


# What ``faulted_deliveries`` keeps of each entry: a day whose every delivery is faulted
# holds these few fields per delivery, not whole entries.
FAULTED_FIELDS = ("seq", "fault", "status", "ref", "event_type", "path", "virtual_time")


def items(collection: Any) -> list[dict[str, Any]]:
    if isinstance(collection, dict):
        return list(collection.values())
    return list(collection or [])


class SystemsView:
    """Built from ``/_sim/state`` snapshots (in process or fetched), never from stack code."""

    def __init__(
        self,
        snapshots: dict[str, dict[str, Any]],
        journals: Journals | None = None,
        dead_letters: list[dict[str, Any]] | None = None,
        dead_counts: Sequence[Any] = (),
    ) -> None:
        self.snapshots = snapshots
        self.journals: Journals = journals or {}
        # What the stack's dead-letter route listed at the end of the day (None: not asked,
        # or the stack has no such route). The one thing oracles read from the stack itself,
        # through its documented contract, never its internals.
        self.dead_letters = dead_letters
        # Beside each listing, the dead-letter count the stack's idle probe reported (objects
        # with ``when``, ``listed`` and ``reported``; empty when the probe reports none).
        self.dead_counts = list(dead_counts)
        erp, wms, carrier = snapshots["erp"], snapshots["wms"], snapshots["carrier"]
        self.erp_orders = {o["id"]: o for o in items(erp.get("orders"))}
        self.erp_stock: dict[str, int] = dict(erp.get("stock", {}))
        self.goods_issues_by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for gi in items(erp.get("goods_issues")):
            self.goods_issues_by_order[gi["order_id"]].append(gi)
        self.wms_orders = {o["id"]: o for o in items(wms.get("orders"))}
        self.wms_stock: dict[str, int] = dict(wms.get("stock", {}))
        self.wms_by_ref: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for fo in self.wms_orders.values():
            self.wms_by_ref[fo["order_ref"]].append(fo)
        self.labels_by_tracking = {
            label["tracking_number"]: label for label in items(carrier.get("labels"))
        }
        self.backorders_by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for bo in items(erp.get("backorders")):
            self.backorders_by_order[bo["order_id"]].append(bo)
        self.accruals_by_shipment: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for accrual in items(erp.get("accruals")):
            self.accruals_by_shipment[accrual["shipment_id"]].append(accrual)
        self.erp_items = {i["sku"]: i for i in items(erp.get("items"))}
        # Documents the lineage tables derive from this view, by name, with the reads left
        # before they are let go (``harness.oracles.documents.records``).
        self.documents: dict[str, list[Any]] = {}
        self.wms_items: dict[str, dict[str, Any]] = dict(wms.get("items") or {})
        tms = snapshots.get("tms") or {}
        self.tms_shipments = {s["id"]: s for s in items(tms.get("shipments"))}
        self._faulted: list[tuple[str, dict[str, Any]]] | None = None

    def order_of(self, ref: str | None) -> str | None:
        """The ERP order a business reference concerns (an order, WMS order or TMS shipment
        id), or None when it names something else (a SKU, a receipt) or nothing known."""
        if ref is None:
            return None
        if ref in self.erp_orders:
            return ref
        for index in (self.tms_shipments, self.wms_orders):
            if ref in index:
                return index[ref]["order_ref"]
        return None

    def order_named_in(self, item: dict[str, Any]) -> str | None:
        """The ERP order a stack's record (a dead letter) is about, if any of its values, or
        its payload's, names one: stacks describe their jobs in their own shapes."""
        values = list(item.values())
        if isinstance(item.get("payload"), dict):
            values += list(item["payload"].values())
        for value in values:
            if isinstance(value, str) and (order := self.order_of(value)):
                return order
        return None

    def faulted_deliveries(self) -> list[tuple[str, dict[str, Any]]]:
        """(system, journal entry) of every webhook delivery a fault label marks (forged and
        garbled probes among them), oldest first per system: one pass over the journals for
        the oracles that judge them (a peak day's journals hold 200,000 entries, its faulted
        deliveries a few hundred). Each entry keeps only ``FAULTED_FIELDS``."""
        if self._faulted is None:
            self._faulted = [
                (system, {name: entry.get(name) for name in FAULTED_FIELDS})
                for system, entries in self.journals.items()
                for entry in entries
                if entry["direction"] == "out" and entry.get("fault")
            ]
        return self._faulted

    def labels_by_order(self) -> dict[str, list[dict[str, Any]]]:
        """Carrier labels per ERP order (label.shipment_ref -> TMS shipment -> order_ref); a
        label whose shipment the TMS does not know is filed under its shipment ref."""
        by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for label in self.labels_by_tracking.values():
            ref = label["shipment_ref"]
            by_order[self.order_of(ref) or ref].append(label)
        return by_order

    def ordered_eaches(self, line: dict[str, Any]) -> int:
        """An ERP order line's qty in eaches: a case line converts with the item master."""
        item = self.erp_items.get(line["sku"])
        if line.get("uom") == "CS" and item is not None:
            return int(line["qty"]) * int(item["each_per_case"])
        return int(line["qty"])

    def released_orders(self) -> list[dict[str, Any]]:
        """ERP orders that were released to fulfilment at some point."""
        return [o for o in self.erp_orders.values() if o.get("released_at")]

    def shipped_fulfilment_orders(self) -> list[dict[str, Any]]:
        return [fo for fo in self.wms_orders.values() if fo["status"] == "shipped"]
