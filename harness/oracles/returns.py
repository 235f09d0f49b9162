"""Oracles about customer returns: what the returns bench received is what the ERP credits
and restocks, once, and nothing is credited that never came back.

The WMS's return receipts (``return_receipts``, each unit graded restock, damaged or scrap)
are the physical truth; the ERP's credit memos (``credit_memos``, one per receipt by its
``receipt_id``) the financial one. A day with no returns has nothing to judge and passes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from harness.oracles.base import Judgement, oracle
from harness.oracles.view import SystemsView, items


def _receipts(view: SystemsView) -> dict[str, dict[str, Any]]:
    wms = view.snapshots.get("wms") or {}
    return {r["receipt_id"]: r for r in items(wms.get("return_receipts"))}


def _memos_by_receipt(view: SystemsView) -> dict[str, list[dict[str, Any]]]:
    erp = view.snapshots.get("erp") or {}
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for memo in items(erp.get("credit_memos")):
        found[memo["receipt_id"]].append(memo)
    return found


def _credited(view: SystemsView) -> Iterator[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """Each received return that has credit memos, with them (in receipt order): a receipt
    without one is returns_reconciled's finding, not these oracles'."""
    memos = _memos_by_receipt(view)
    for receipt_id, receipt in sorted(_receipts(view).items()):
        if posted := memos.get(receipt_id):
            yield receipt_id, receipt, posted


def _per_line(lines: list[dict[str, Any]], field: str, condition: str | None = None) -> dict:
    """Qty per order line, keyed ``"line 1"`` (reports are JSON); ``condition``: only the
    units graded so. Lines with none are left out."""
    counted: Counter[int] = Counter()
    for line in lines:
        if condition is None or line.get("condition") == condition:
            counted[line["line"]] += line[field]
    return {f"line {n}": q for n, q in sorted(counted.items()) if q}


def _entity(receipt: dict[str, Any]) -> str:
    return str(receipt.get("order_ref") or receipt["receipt_id"])


@oracle(
    "return_credited_once",
    "Every customer return received is credited in the ERP by exactly one credit memo, for "
    "the qty per line that came back (a second memo pays the customer twice)",
)
def return_credited_once(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for receipt_id, receipt, posted in _credited(view):
        judgement.checked += 1
        entity = _entity(receipt)
        if len(posted) > 1:
            ids = ", ".join(m["id"] for m in posted)
            judgement.fail(entity, f"return {receipt_id} credited {len(posted)} times: {ids}", 1)
            continue
        received = _per_line(receipt["lines"], "qty")
        credited = _per_line(posted[0]["lines"], "qty")
        if credited != received:
            judgement.fail(
                entity,
                f"{posted[0]['id']} credits other qty than return {receipt_id} received "
                "(per order line)",
                received,
                credited,
            )
    return judgement


@oracle(
    "return_restocked_good_only",
    "A return puts back into ERP stock exactly the units the returns bench graded restock: "
    "damaged and scrapped units are credited but never become available to sell",
)
def return_restocked_good_only(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for receipt_id, receipt, posted in _credited(view):
        judgement.checked += 1
        good = _per_line(receipt["lines"], "qty", "restock")
        restocked: Counter[str] = Counter()
        for memo in posted:
            restocked.update(_per_line(memo["lines"], "restock_qty"))
        if dict(sorted(restocked.items())) != good:
            judgement.fail(
                _entity(receipt),
                f"return {receipt_id}: the ERP restocked other qty than the bench graded "
                "restock (per order line)",
                good,
                dict(sorted(restocked.items())),
            )
    return judgement


@oracle(
    "no_credit_without_receipt",
    "Every credit memo in the ERP disposes of a return the WMS received, for the same RMA: "
    "no customer is credited for goods that never came back",
)
def no_credit_without_receipt(view: SystemsView) -> Judgement:
    judgement = Judgement()
    receipts = _receipts(view)
    for receipt_id, posted in sorted(_memos_by_receipt(view).items()):
        for memo in posted:
            judgement.checked += 1
            receipt = receipts.get(receipt_id)
            if receipt is None:
                judgement.fail(
                    memo["order_id"],
                    f"{memo['id']} credits return {receipt_id}, which the WMS never received",
                    "a WMS return receipt",
                    None,
                )
            elif receipt["rma_id"] != memo["rma_id"]:
                judgement.fail(
                    memo["order_id"],
                    f"{memo['id']} credits return {receipt_id} against another RMA",
                    receipt["rma_id"],
                    memo["rma_id"],
                )
    return judgement


@oracle(
    "returns_reconciled",
    "No return is left pending financial reconciliation at the end of the day: every return "
    "the WMS received has its credit memo in the ERP",
)
def returns_reconciled(view: SystemsView) -> Judgement:
    judgement = Judgement()
    memos = _memos_by_receipt(view)
    for receipt_id, receipt in sorted(_receipts(view).items()):
        judgement.checked += 1
        if not memos.get(receipt_id):
            judgement.fail(
                _entity(receipt),
                f"return {receipt_id} (RMA {receipt['rma_id']}) was received on "
                f"{receipt['received_at']} and never credited in the ERP",
                1,
                0,
            )
    return judgement


@oracle(
    "return_disposition_posted_once",
    "The stack posts one disposition per return receipt: never a second one the ERP has to "
    "refuse (an ERP without that guard would credit the customer twice)",
    needs_journals=True,
)
def return_disposition_posted_once(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for entry in view.journals.get("erp", []):
        if entry["direction"] != "in" or entry["method"] != "POST":
            continue
        if not str(entry["path"]).endswith("/disposition"):
            continue
        judgement.checked += 1
        if entry.get("error") == "already_disposed":
            rma = unquote(entry["path"].split("/")[2])  # an id may hold "/" (%2F)
            judgement.fail(
                view.order_of(entry.get("ref")) or rma,
                f"a second disposition was posted for a return of {rma} (ERP journal "
                f"#{entry['seq']}, answered 409 already_disposed): the stack credits a return "
                "twice on an ERP that allows it",
                1,
                2,
            )
    return judgement
