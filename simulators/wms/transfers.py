"""Transfer orders between sites, as the WMS executes them: shipped at one, received at the other.

The ERP plans a transfer (``TO-...``); the integration creates it here at the shipping site
(``WT-...``, carrying the ERP's id as ``transfer_ref``). The floor ships what it finds (short
is possible), the truck carries it, and the receiving site counts what arrived. Each move is
one WMS document and one event: ``transfer.shipped`` with the shipped qty, ``transfer.received``
with the received qty, both with the ``site`` where it happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simulators.common.errors import SimError, conflict
from simulators.common.errors import invalid_field as _invalid
from simulators.common.model import Ids, lookup

if TYPE_CHECKING:
    from simulators.wms.model import WmsModel

TRANSFER_STATUSES = ("accepted", "shipped", "received", "short_closed")


@dataclass(slots=True)
class Transfer:
    id: str
    transfer_ref: str
    from_site: str
    to_site: str
    lines: list[dict[str, Any]]  # {"line", "sku", "qty", "shipped_qty", "received_qty"}
    created_at: str
    status: str = "accepted"
    shipped_at: str | None = None
    received_at: str | None = None
    status_history: list[dict[str, str]] = field(default_factory=list)

    def move_to(self, status: str, at: str) -> None:
        self.status = status
        self.status_history.append({"status": status, "at": at})

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "transfer_ref": self.transfer_ref,
            "from_site": self.from_site,
            "to_site": self.to_site,
            "lines": [dict(line) for line in self.lines],
            "status": self.status,
            "created_at": self.created_at,
            "shipped_at": self.shipped_at,
            "received_at": self.received_at,
            "status_history": [dict(h) for h in self.status_history],
        }

    def event(self, site: str, qty_field: str, at_field: str) -> dict[str, Any]:
        """The data of a shipped or received event: each line with the qty that moved."""
        return {
            "transfer_id": self.id,
            "transfer_ref": self.transfer_ref,
            "from_site": self.from_site,
            "to_site": self.to_site,
            "site": site,
            "lines": [
                {"line": x["line"], "sku": x["sku"], "qty": x[qty_field]} for x in self.lines
            ],
            at_field: getattr(self, at_field),
        }


class TransferDesk:
    """The WMS's transfers: created by the integration, shipped and received by the floor."""

    def __init__(self, wms: WmsModel) -> None:
        self.wms = wms
        self.by_id: dict[str, Transfer] = {}
        self.by_ref: dict[str, list[str]] = {}
        self._ids = Ids("WT")

    def all(self) -> list[Transfer]:
        return list(self.by_id.values())

    def get(self, transfer_id: str) -> Transfer:
        return lookup(self.by_id, "transfer", transfer_id)

    def find(self, transfer_ref: str | None) -> list[Transfer]:
        if transfer_ref is None:
            return self.all()
        return [self.by_id[i] for i in self.by_ref.get(transfer_ref, [])]

    def create(
        self,
        transfer_ref: str,
        from_site: str,
        to_site: str,
        lines: list[dict],
        transfer_id: str | None,
    ) -> Transfer:
        wms = self.wms
        wms.sites.stock(from_site, "from_site")
        wms.sites.stock(to_site, "to_site")
        if from_site == to_site:
            raise _invalid("to_site", "a transfer moves stock to another site")
        if transfer_id in self.by_id:
            raise conflict("already_exists", f"transfer {transfer_id} already exists")
        now = wms.now()
        transfer = Transfer(
            transfer_id or self._ids.next(),
            transfer_ref,
            from_site,
            to_site,
            [
                {
                    "line": x["line"],
                    "sku": x["sku"],
                    "qty": x["qty"],
                    "shipped_qty": 0,
                    "received_qty": 0,
                }
                for x in lines
            ],
            now,
        )
        transfer.move_to("accepted", now)
        self.by_id[transfer.id] = transfer
        self.by_ref.setdefault(transfer_ref, []).append(transfer.id)
        wms.notify("transfer_created", transfer)
        return transfer

    def ship(self, transfer_id: str, shipped: dict[int, int]) -> Transfer:
        """The shipping site loads what it found; nothing at all closes the transfer short
        (its ``transfer.shipped`` then reports every line at 0)."""
        wms, transfer = self.wms, self.get(transfer_id)
        if transfer.status != "accepted":
            raise _illegal(transfer, "ship")
        stock = wms.stock_at(transfer.from_site)
        wanted = _per_line(transfer, shipped, "qty")
        for line in transfer.lines:
            qty = wanted.get(line["line"], 0)
            if qty > stock[line["sku"]]:
                raise conflict(
                    "insufficient_stock",
                    f"{qty} x {line['sku']} shipped but only {stock[line['sku']]} on hand at "
                    f"{transfer.from_site}",
                    id=transfer.id,
                    status=transfer.status,
                )
        for line in transfer.lines:
            line["shipped_qty"] = wanted.get(line["line"], 0)
            stock[line["sku"]] -= line["shipped_qty"]
        transfer.shipped_at = wms.now()
        moved = any(line["shipped_qty"] for line in transfer.lines)
        transfer.move_to("shipped" if moved else "short_closed", transfer.shipped_at)
        data = transfer.event(transfer.from_site, "shipped_qty", "shipped_at")
        wms.emit("transfer.shipped", data, ref=transfer.transfer_ref)
        wms.notify("transfer_shipped", transfer)
        return transfer

    def receive(self, transfer_id: str, received: dict[int, int]) -> Transfer:
        """The receiving site counts what came off the truck (at most what was shipped)."""
        wms, transfer = self.wms, self.get(transfer_id)
        if transfer.status != "shipped":
            raise _illegal(transfer, "receive")
        counted = _per_line(transfer, received, "shipped_qty")
        stock = wms.stock_at(transfer.to_site)
        for line in transfer.lines:
            line["received_qty"] = counted.get(line["line"], 0)
            stock[line["sku"]] += line["received_qty"]
        transfer.received_at = wms.now()
        transfer.move_to("received", transfer.received_at)
        data = transfer.event(transfer.to_site, "received_qty", "received_at")
        wms.emit("transfer.received", data, ref=transfer.transfer_ref)
        wms.notify("transfer_received", transfer)
        return transfer


def _per_line(transfer: Transfer, moved: dict[int, int], limit: str) -> dict[int, int]:
    lines = {line["line"]: line for line in transfer.lines}
    for number, qty in moved.items():
        line = lines.get(number)
        if line is None:
            raise _invalid(f"lines.{number}", f"transfer {transfer.id} has no line {number}")
        if not 0 <= qty <= line[limit]:
            raise _invalid(f"lines.{number}", f"qty must be 0..{line[limit]}")
    return dict(moved)


def _illegal(transfer: Transfer, action: str) -> SimError:
    return conflict(
        "invalid_transition",
        f"transfer {transfer.id} is {transfer.status}; cannot {action}",
        id=transfer.id,
        status=transfer.status,
    )
