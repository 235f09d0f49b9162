"""The parcel carrier: sells labels and reports what happens to each parcel, scan by scan.

A label is paid when it is bought, so a retried purchase that buys a second label costs money:
``by_shipment`` keeps every label bought for a shipment to make such duplicates visible.

One model serves every version of the carrier's API (``api.py``): a version is an HTTP face
that translates its requests into these calls and these labels into its answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from simulators.common.clock import Clock
from simulators.common.errors import SimError, conflict, not_found, unprocessable
from simulators.common.model import Ids, SimModel, lookup
from simulators.common.schemas import money

SERVED_COUNTRIES = frozenset(
    {"AT", "BE", "DE", "DK", "ES", "FI", "FR", "IE", "IT", "LU", "NL", "PL", "PT", "SE"}
)
PRICE_PER_PACKAGE = {"ground": Decimal("5.40"), "express": Decimal("11.20")}

# Milestones a parcel passes in order; an exception can interrupt it after pickup.
MILESTONES = ("picked_up", "in_transit", "out_for_delivery", "delivered")
EXCEPTION = "exception"
SCAN_STATUSES = (*MILESTONES, EXCEPTION)
# The label status a scan leaves behind.
LABEL_STATUS = {
    "picked_up": "in_transit",
    "in_transit": "in_transit",
    "out_for_delivery": "in_transit",
    "delivered": "delivered",
    EXCEPTION: "exception",
}


@dataclass(slots=True)
class Label:
    id: str
    tracking_number: str
    shipment_ref: str
    service: str
    ship_to: dict[str, Any]
    packages: list[dict[str, Any]]
    cost: dict[str, str]
    created_at: str
    status: str = "created"  # created -> in_transit | exception | delivered; created -> voided
    events: list[dict[str, Any]] = field(default_factory=list)
    # What the label prints, not business state: answers from API 1.1 on show them, while
    # ``to_dict`` (the 1.0 answer and the snapshot) keeps the shape oracles and 1.0 read.
    label_format: str = "pdf"  # 1.0 printed PDF only
    reference: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tracking_number": self.tracking_number,
            "shipment_ref": self.shipment_ref,
            "service": self.service,
            "ship_to": dict(self.ship_to),
            "packages": [
                {**p, "contents": [dict(c) for c in p["contents"]]} for p in self.packages
            ],
            "cost": dict(self.cost),
            "status": self.status,
            "created_at": self.created_at,
            "events": [dict(e) for e in self.events],
        }

    def tracking(self) -> dict[str, Any]:
        """What the public tracking page shows: no shipper references, no price."""
        return {
            "tracking_number": self.tracking_number,
            "status": self.status,
            "events": [dict(e) for e in self.events],
        }


@dataclass(slots=True)
class ReturnLabel:
    """A prepaid label the customer sticks on a parcel going back to the warehouse.

    Kept apart from outbound labels: it is no shipment of the shipper's (no TMS plan, no
    freight accrual), and its scans name the RMA, not a shipment.
    """

    id: str
    tracking_number: str
    rma_id: str
    order_ref: str
    ship_from: dict[str, Any]
    packages: list[dict[str, Any]]
    cost: dict[str, str]
    created_at: str
    status: str = "created"  # created -> in_transit | exception | delivered (to the warehouse)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def shipment_ref(self) -> str:
        """What its scans are filed under: the RMA."""
        return self.rma_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tracking_number": self.tracking_number,
            "rma_id": self.rma_id,
            "order_ref": self.order_ref,
            "ship_from": dict(self.ship_from),
            "packages": [dict(p) for p in self.packages],
            "service": "ground",
            "cost": dict(self.cost),
            "status": self.status,
            "created_at": self.created_at,
            "events": [dict(e) for e in self.events],
        }


def check_address(ship_to: dict[str, Any]) -> None:
    """Refuse an address the carrier cannot deliver to, naming the field at fault."""
    if not str(ship_to.get("postal_code") or "").strip():
        raise unprocessable(
            "address_invalid", "postal code is required", field="ship_to.postal_code"
        )
    country = ship_to.get("country")
    if country not in SERVED_COUNTRIES:
        raise unprocessable(
            "address_invalid",
            f"we do not deliver to country {country}",
            field="ship_to.country",
        )


def scan_floor(events: list[dict[str, Any]]) -> int:
    """The lowest milestone index a next scan may report without moving backwards.

    After an exception the parcel may re-enter the network, so ``in_transit`` is legal again.
    """
    reached = [MILESTONES.index(e["status"]) for e in events if e["status"] != EXCEPTION]
    floor = max(reached, default=0)
    if events and events[-1]["status"] == EXCEPTION:
        floor = min(floor, MILESTONES.index("in_transit"))
    return floor


class CarrierModel(SimModel):
    system = "carrier"
    event_types = ("tracking.updated",)

    def __init__(
        self, clock: Clock, scan_time_zone: str | None = None, scan_time_millis: bool = False
    ) -> None:
        super().__init__(clock)
        # Carriers report a scan in the depot's local time with its UTC offset (+01:00, +02:00
        # in summer); None: in UTC, Z.
        self.scan_zone = ZoneInfo(scan_time_zone) if scan_time_zone else None
        # and some write every time to the millisecond, as JavaScript's toISOString does
        self.scan_timespec = "milliseconds" if scan_time_millis else "seconds"
        self.reset()

    def scanned_at(self) -> str:
        """Now as a scan's ``occurred_at``: UTC, or the depot's local time with its offset;
        to the second, or to the millisecond."""
        if self.scan_zone is None and self.scan_timespec == "seconds":
            return self.now()
        moment = datetime.fromisoformat(self.now().replace("Z", "+00:00"))
        if self.scan_zone is None:
            return moment.isoformat(timespec=self.scan_timespec).replace("+00:00", "Z")
        return moment.astimezone(self.scan_zone).isoformat(timespec=self.scan_timespec)

    def reset(self) -> None:
        self.labels: dict[str, Label] = {}
        self.by_tracking: dict[str, str] = {}
        self.by_shipment: dict[str, list[str]] = {}
        self._ids = Ids("LB")
        self._tracking_count = 0
        self.return_labels: dict[str, ReturnLabel] = {}
        self.returns_by_tracking: dict[str, str] = {}
        self.returns_by_rma: dict[str, str] = {}
        self._return_ids = Ids("RL")

    def create_label(
        self,
        shipment_ref: str,
        service: str,
        ship_to: dict[str, Any],
        packages: list[dict[str, Any]],
        *,
        label_format: str = "pdf",
        reference: str | None = None,
    ) -> Label:
        """Buy a label: it is paid now, whether or not the parcel ever ships."""
        check_address(ship_to)
        self._tracking_count += 1
        label = Label(
            id=self._ids.next(),
            tracking_number=f"PC{self._tracking_count:09d}",
            shipment_ref=shipment_ref,
            service=service,
            ship_to=dict(ship_to),
            packages=[
                {"weight_kg": p["weight_kg"], "contents": [dict(c) for c in p["contents"]]}
                for p in packages
            ],
            cost=money(PRICE_PER_PACKAGE[service] * len(packages)),
            created_at=self.now(),
            label_format=label_format,
            reference=reference,
        )
        self.labels[label.id] = label
        self.by_tracking[label.tracking_number] = label.id
        self.by_shipment.setdefault(shipment_ref, []).append(label.id)
        self.notify("label_created", label)
        return label

    def create_return_label(
        self, rma_id: str, order_ref: str, ship_from: dict[str, Any], packages: list[dict]
    ) -> ReturnLabel:
        """Sell a prepaid return label (ground) for an RMA; one per RMA, so asking again for
        the same RMA is 409 ``already_exists`` naming the label sold."""
        check_address(ship_from)
        sold = self.returns_by_rma.get(rma_id)
        if sold is not None:
            raise conflict(
                "already_exists",
                f"RMA {rma_id} already has return label {sold}",
                status=self.return_labels[sold].status,
                label_id=sold,
            )
        self._tracking_count += 1
        label = ReturnLabel(
            id=self._return_ids.next(),
            tracking_number=f"PR{self._tracking_count:09d}",
            rma_id=rma_id,
            order_ref=order_ref,
            ship_from=dict(ship_from),
            packages=[{"weight_kg": p["weight_kg"]} for p in packages],
            cost=money(PRICE_PER_PACKAGE["ground"] * len(packages)),
            created_at=self.now(),
        )
        self.return_labels[label.id] = label
        self.returns_by_tracking[label.tracking_number] = label.id
        self.returns_by_rma[rma_id] = label.id
        self.notify("return_label_created", label)
        return label

    def return_label(self, label_id: str) -> ReturnLabel:
        return lookup(self.return_labels, "return label", label_id)

    def get(self, label_id: str) -> Label:
        return lookup(self.labels, "label", label_id)

    def labels_for_shipment(self, shipment_ref: str) -> list[Label]:
        """Every label bought for a shipment, oldest first (none for an unknown one)."""
        return [self.labels[lid] for lid in self.by_shipment.get(shipment_ref, ())]

    def track(self, tracking_number: str) -> Label:
        label_id = self.by_tracking.get(tracking_number)
        if label_id is None:
            raise not_found("tracking number", tracking_number)
        return self.labels[label_id]

    def void(self, label_id: str) -> Label:
        """Void a label the carrier has not touched yet (it is refunded)."""
        label = self.get(label_id)
        if label.status != "created":
            raise conflict(
                "invalid_transition",
                f"label {label_id} cannot be voided: it is {label.status}",
                status=label.status,
            )
        label.status = "voided"
        return label

    def scan(self, tracking_number: str, status: str) -> Label | ReturnLabel:
        """Record a scan of the parcel (outbound or return) and report it as
        ``tracking.updated``."""
        returned = self.returns_by_tracking.get(tracking_number)
        label = self.return_labels[returned] if returned else self.track(tracking_number)
        self._check_scan(label, status)
        event = {
            "status": status,
            "occurred_at": self.scanned_at(),
            "sequence": len(label.events) + 1,
        }
        label.events.append(event)
        label.status = LABEL_STATUS[status]
        data = {"tracking_number": tracking_number, **event}
        if returned:  # a parcel coming back: the stack that shipped it never bought this label
            data["rma_id"] = label.rma_id
        self.emit("tracking.updated", data, label.shipment_ref)
        return label

    def _check_scan(self, label: Label | ReturnLabel, status: str) -> None:
        if status not in SCAN_STATUSES:
            raise unprocessable(
                "validation_failed",
                f"unknown scan status {status}",
                errors=[{"field": "status", "message": f"must be one of {SCAN_STATUSES}"}],
            )
        if label.status in ("voided", "delivered"):
            raise self._out_of_order(label, status, f"the label is {label.status}")
        if status == EXCEPTION:
            if not label.events:
                raise self._out_of_order(label, status, "the parcel was not picked up yet")
        elif MILESTONES.index(status) < scan_floor(label.events):
            raise self._out_of_order(label, status, "the parcel is already further along")

    @staticmethod
    def _out_of_order(label: Label | ReturnLabel, status: str, why: str) -> SimError:
        return conflict(
            "invalid_transition",
            f"cannot scan {label.tracking_number} as {status}: {why}",
            status=label.status,
            scan=status,
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "labels": {lid: label.to_dict() for lid, label in self.labels.items()},
            "by_tracking": dict(self.by_tracking),
            "by_shipment": {ref: list(ids) for ref, ids in self.by_shipment.items()},
            "return_labels": {lid: label.to_dict() for lid, label in self.return_labels.items()},
        }

    def seed_examples(self) -> None:
        """The labels the OpenAPI examples name: LB-000001 unused, LB-000002 picked up, and
        RL-000001 the return label of RMA-000001."""
        ship_to = {
            "name": "Ada Lovelace",
            "street": "Keizersgracht 1",
            "city": "Amsterdam",
            "postal_code": "1015 CJ",
            "country": "NL",
        }
        packages = [{"weight_kg": 2.5, "contents": [{"sku": "A-100", "qty": 3}]}]
        self.create_label("SH-000001", "ground", ship_to, packages)
        picked = self.create_label("SH-000002", "express", ship_to, packages)
        self.scan(picked.tracking_number, "picked_up")
        self.create_return_label("RMA-000001", "SO-000004", ship_to, [{"weight_kg": 0.5}])
