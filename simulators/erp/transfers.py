"""Stock transfer orders between sites, as the ERP books them (SAP's stock transport order).

The ERP plans the move (``TO-...``, emits ``transfer.released``); the integration posts what
the WMS reports: one transfer goods issue when the shipping site ships (book stock leaves
``from_site``; 409 ``already_issued`` for a second, as for a sales order), and the transfer
goods receipt when the receiving site counts it in (book stock arrives at ``to_site``). The
ERP takes every receipt it is sent, as partial receipts of one transfer are legal: only the
integration knows that two receipts report one WMS document, so a receipt posted twice is
stock counted twice (the ``transfer_received_once`` oracle).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simulators.common.errors import conflict, unprocessable
from simulators.common.errors import invalid_field as _invalid
from simulators.common.model import Ids, lookup
from simulators.erp.postings import qty_per_line

if TYPE_CHECKING:
    from simulators.erp.model import ErpModel

TRANSFER_STATUSES = ("released", "in_transit", "received", "closed")


@dataclass(slots=True)
class TransferOrder:
    id: str
    from_site: str
    to_site: str
    lines: list[dict[str, Any]]  # {"line", "sku", "qty"}
    status: str
    released_at: str
    issues: list[str] = field(default_factory=list)
    receipts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from_site": self.from_site,
            "to_site": self.to_site,
            "lines": [dict(line) for line in self.lines],
            "status": self.status,
            "released_at": self.released_at,
            "issues": list(self.issues),
            "receipts": list(self.receipts),
        }


@dataclass(slots=True)
class TransferPosting:
    """A transfer goods issue (``TI-``) or goods receipt (``TR-``): what moved, per line."""

    id: str
    transfer_id: str
    site: str
    reference: str | None  # the WMS transfer document it reports
    lines: list[dict[str, Any]]  # {"line", "sku", "qty"}
    posted_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "transfer_id": self.transfer_id,
            "site": self.site,
            "reference": self.reference,
            "lines": [dict(line) for line in self.lines],
            "posted_at": self.posted_at,
        }


class TransferBook:
    def __init__(self, erp: ErpModel) -> None:
        self.erp = erp
        self.orders: dict[str, TransferOrder] = {}
        self.issues: dict[str, TransferPosting] = {}
        self.receipts: dict[str, TransferPosting] = {}
        self._ids = {prefix: Ids(prefix) for prefix in ("TO", "TI", "TR")}

    def get(self, transfer_id: str) -> TransferOrder:
        return lookup(self.orders, "transfer order", transfer_id)

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "transfers": [t.to_dict() for t in self.orders.values()],
            "transfer_issues": [p.to_dict() for p in self.issues.values()],
            "transfer_receipts": [p.to_dict() for p in self.receipts.values()],
        }

    def release(
        self, from_site: str, to_site: str, lines: list[dict], transfer_id: str | None = None
    ) -> TransferOrder:
        """Plan a move of stock between two sites; emits ``transfer.released``."""
        erp = self.erp
        erp.sites.stock(from_site, "from_site")
        erp.sites.stock(to_site, "to_site")
        if from_site == to_site:
            raise _invalid("to_site", "a transfer moves stock to another site")
        if not lines:
            raise _invalid("lines", "a transfer needs at least one line")
        for index, line in enumerate(lines):
            erp.require_sku(line["sku"], f"lines.{index}.sku")
            if line["qty"] < 1:
                raise _invalid(f"lines.{index}.qty", "qty must be at least 1")
        if transfer_id in self.orders:
            raise conflict("already_exists", f"transfer order {transfer_id} already exists")
        numbered = [{"line": n, "sku": x["sku"], "qty": x["qty"]} for n, x in enumerate(lines, 1)]
        order = TransferOrder(
            transfer_id or self._ids["TO"].next(),
            from_site,
            to_site,
            numbered,
            "released",
            erp.now(),
        )
        self.orders[order.id] = order
        erp.emit("transfer.released", order.to_dict(), order.id)
        erp.notify("transfer_released", order)
        return order

    def issue(self, transfer_id: str, reference: str | None, lines: list[dict]) -> TransferPosting:
        """Book what the shipping site shipped: stock leaves ``from_site``; one per transfer."""
        order = self.get(transfer_id)
        if order.issues:
            raise conflict(
                "already_issued",
                f"transfer order {order.id} already has goods issue {order.issues[0]}",
                status=order.status,
                transfer_id=order.id,
                issue_id=order.issues[0],
            )
        moved = self._moved(order, lines)
        stock = self.erp.sites.stock(order.from_site)
        for sku, qty in _by_sku(order, moved).items():
            if qty > stock[sku]:
                raise unprocessable(
                    "insufficient_stock",
                    f"issuing {qty} of {sku} would take book stock at {order.from_site} below zero",
                    sku=sku,
                    site=order.from_site,
                    on_hand=stock[sku],
                    requested=qty,
                )
        posting = self._post("TI", order, order.from_site, reference, moved, -1)
        self.issues[posting.id] = posting
        order.issues.append(posting.id)
        order.status = "in_transit" if any(moved.values()) else "closed"
        return posting

    def receive(
        self, transfer_id: str, reference: str | None, lines: list[dict]
    ) -> TransferPosting:
        """Book what the receiving site counted in: stock arrives at ``to_site``."""
        order = self.get(transfer_id)
        if order.status not in ("in_transit", "received"):
            raise conflict(
                "invalid_status",
                f"transfer order {order.id} is {order.status}: nothing of it is in transit",
                status=order.status,
                transfer_id=order.id,
            )
        moved = self._moved(order, lines)
        posting = self._post("TR", order, order.to_site, reference, moved, +1)
        self.receipts[posting.id] = posting
        order.receipts.append(posting.id)
        order.status = "received"
        return posting

    @staticmethod
    def _moved(order: TransferOrder, lines: list[dict]) -> dict[int, int]:
        ordered = {line["line"]: line["qty"] for line in order.lines}
        return qty_per_line(
            lines,
            ordered,
            document=order.id,
            verb="moves",
            limit="the transfer is for {}",
            detail="requested",
        )

    def _post(
        self,
        prefix: str,
        order: TransferOrder,
        site: str,
        reference: str | None,
        moved: dict[int, int],
        sign: int,
    ) -> TransferPosting:
        stock = self.erp.sites.stock(site)
        for sku, qty in _by_sku(order, moved).items():
            stock[sku] += sign * qty
        lines = [{"line": x["line"], "sku": x["sku"], "qty": moved[x["line"]]} for x in order.lines]
        return TransferPosting(
            self._ids[prefix].next(), order.id, site, reference, lines, self.erp.now()
        )


def _by_sku(order: TransferOrder, moved: dict[int, int]) -> Counter[str]:
    wanted: Counter[str] = Counter()
    for line in order.lines:
        wanted[line["sku"]] += moved[line["line"]]
    return wanted
