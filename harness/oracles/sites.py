"""Oracles about sites and transfers: each order leaves from the site the ERP assigned, each
site's books match its shelves, and each transfer is booked once for what moved.

ERP orders carry ``site``; WMS fulfilment orders carry the ``site`` that fulfilled them. Both
snapshots hold ``sites`` (stock per site); the WMS's ``transfers`` (``WT-``, with shipped and
received qty per line) are the physical truth, the ERP's ``transfer_issues`` and
``transfer_receipts`` (``reference`` = the WMS transfer) the books. A day with one site and no
transfers has nothing to judge beyond the default site, which ``stock_reconciled`` judges.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from harness.oracles.base import Judgement, oracle
from harness.oracles.view import SystemsView, items
from simulators.common.sites import DEFAULT_SITE


def _postings(view: SystemsView, kind: str) -> dict[str, list[dict[str, Any]]]:
    """ERP transfer postings of one kind by the WMS transfer they report."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for posting in items((view.snapshots.get("erp") or {}).get(kind)):
        found[str(posting.get("reference"))].append(posting)
    return found


def _transfers(view: SystemsView) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in items((view.snapshots.get("wms") or {}).get("transfers"))}


def _per_line(lines: list[dict[str, Any]], field: str) -> dict[str, int]:
    counted: dict[str, int] = {}
    for line in lines:
        if line[field]:
            counted[f"line {line['line']}"] = counted.get(f"line {line['line']}", 0) + line[field]
    return dict(sorted(counted.items()))


@oracle(
    "order_fulfilled_at_assigned_site",
    "Every fulfilment order is worked at the site the ERP assigned to its sales order: "
    "another site ships from stock the books say is elsewhere",
)
def order_fulfilled_at_assigned_site(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for fo in sorted(view.wms_orders.values(), key=lambda f: f["id"]):
        order = view.erp_orders.get(fo["order_ref"])
        if order is None:
            continue
        judgement.checked += 1
        assigned = order.get("site") or DEFAULT_SITE
        worked = fo.get("site") or DEFAULT_SITE
        if worked != assigned:
            judgement.fail(
                order["id"],
                f"{fo['id']} was created at {worked}; the ERP assigned {order['id']} to {assigned}",
                assigned,
                worked,
            )
    return judgement


@oracle(
    "site_stock_reconciled",
    "At the end of the day ERP book stock equals WMS physical stock for every SKU at every "
    "site beyond the default one (stock_reconciled judges the default site)",
)
def site_stock_reconciled(view: SystemsView) -> Judgement:
    judgement = Judgement()
    books = (view.snapshots.get("erp") or {}).get("sites") or {}
    shelves = (view.snapshots.get("wms") or {}).get("sites") or {}
    for site in sorted((set(books) | set(shelves)) - {DEFAULT_SITE}):
        book, shelf = books.get(site) or {}, shelves.get(site) or {}
        for sku in sorted(set(book) | set(shelf)):
            judgement.checked += 1
            # a SKU a site holds no record of has none there (an item launched mid-day is
            # opened at every site by the WMS, at its own site only by the ERP)
            booked, shelved = book.get(sku, 0), shelf.get(sku, 0)
            if booked != shelved:
                judgement.fail(
                    f"{site}/{sku}", f"at {site}: ERP {booked} vs WMS {shelved}", shelved, booked
                )
    return judgement


@oracle(
    "transfer_issued_as_shipped",
    "Every transfer the shipping site shipped is issued in the ERP once, for the qty per line "
    "that left (else the books keep stock that is on a truck, or lose stock twice)",
)
def transfer_issued_as_shipped(view: SystemsView) -> Judgement:
    judgement = Judgement()
    issues = _postings(view, "transfer_issues")
    for transfer_id, transfer in sorted(_transfers(view).items()):
        if transfer["status"] == "accepted":
            continue  # not shipped yet: nothing to issue
        judgement.checked += 1
        posted = issues.get(transfer_id, [])
        shipped = _per_line(transfer["lines"], "shipped_qty")
        issued = [_per_line(p["lines"], "qty") for p in posted]
        if len(posted) != 1 or issued[0] != shipped:
            judgement.fail(
                transfer["transfer_ref"],
                f"{transfer_id} shipped at {transfer['from_site']}: the ERP holds "
                f"{len(posted)} goods issue(s) for it",
                [shipped],
                issued,
            )
    return judgement


@oracle(
    "transfer_received_once",
    "Every transfer the receiving site received is received in the ERP exactly once, for the "
    "qty per line that arrived, and nothing is received that no site shipped",
)
def transfer_received_once(view: SystemsView) -> Judgement:
    judgement = Judgement()
    receipts = _postings(view, "transfer_receipts")
    transfers = _transfers(view)
    for transfer_id, transfer in sorted(transfers.items()):
        if transfer["status"] != "received":
            continue
        judgement.checked += 1
        posted = receipts.get(transfer_id, [])
        arrived = _per_line(transfer["lines"], "received_qty")
        booked = [_per_line(p["lines"], "qty") for p in posted]
        if len(posted) != 1 or booked[0] != arrived:
            ids = ", ".join(p["id"] for p in posted) or "none"
            judgement.fail(
                transfer["transfer_ref"],
                f"{transfer_id} received at {transfer['to_site']}: the ERP booked "
                f"{len(posted)} receipt(s) for it ({ids})",
                [arrived],
                booked,
            )
    for reference, posted in sorted(receipts.items()):
        found = transfers.get(reference)
        if found is None or found["status"] != "received":
            for posting in posted:
                judgement.checked += 1
                judgement.fail(
                    posting["transfer_id"],
                    f"{posting['id']} receives {reference}, which no site received",
                    None,
                    _per_line(posting["lines"], "qty"),
                )
    return judgement
