"""Oracles about money: what the carrier bills is accrued in the books, once."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from harness.oracles.base import Judgement, oracle
from harness.oracles.view import SystemsView


def _money(amount: Any) -> tuple[Decimal | None, str | None]:
    """An amount comparable however it was written ("6.9" equals "6.90")."""
    amount = amount or {}
    try:
        value = Decimal(str(amount.get("amount")))
    except InvalidOperation:
        value = None
    return value, amount.get("currency")


@oracle(
    "freight_accrued_once",
    "Every settled freight bill is accrued in the ERP exactly once, for the settled amount, so "
    "the month-end close finds no carrier invoice without an accrual (and none twice)",
)
def freight_accrued_once(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for shipment in view.tms_shipments.values():
        if shipment["status"] != "settled":
            continue
        judgement.checked += 1
        accruals = view.accruals_by_shipment.get(shipment["id"], [])
        entity = f"{shipment['id']} ({shipment['order_ref']})"
        if len(accruals) != 1:
            judgement.fail(
                entity,
                f"{len(accruals)} freight accruals"
                + (f": {', '.join(a['id'] for a in accruals)}" if accruals else ""),
                expected=1,
                actual=len(accruals),
            )
        elif _money(accruals[0]["amount"]) != _money(shipment["rate"]):
            judgement.fail(
                entity,
                f"accrual {accruals[0]['id']} differs from the settled amount",
                expected=shipment["rate"],
                actual=accruals[0]["amount"],
            )
    return judgement
