"""Oracles about stock: the books and the shelves agree."""

from __future__ import annotations

from harness.oracles.base import Judgement, oracle
from harness.oracles.view import SystemsView


@oracle(
    "stock_reconciled",
    "At the end of the day ERP book stock equals WMS physical stock for every SKU",
)
def stock_reconciled(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for sku in sorted(set(view.erp_stock) | set(view.wms_stock)):
        judgement.checked += 1
        book, physical = view.erp_stock.get(sku), view.wms_stock.get(sku)
        if book != physical:
            judgement.fail(sku, f"ERP {book} vs WMS {physical}", expected=physical, actual=book)
    return judgement
