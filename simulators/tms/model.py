"""The TMS: plans each parcel shipment with a carrier, prices it, and settles the freight bill.

Its rate card is its own (what the shipper is billed, where the carrier is said to go): real
TMSs keep one apart from the carrier's label prices, so the two numbers differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from simulators.common.clock import Clock
from simulators.common.errors import conflict, unprocessable
from simulators.common.model import Ids, SimModel, lookup
from simulators.common.schemas import money

CARRIER = "parcelco"
SERVED_COUNTRIES = frozenset(
    {"AT", "BE", "DE", "DK", "ES", "FI", "FR", "IE", "IT", "LU", "NL", "PL", "PT", "SE"}
)
MAX_PACKAGE_KG = Decimal(30)
BASE_RATE = {"ground": Decimal("4.90"), "express": Decimal("9.90")}
RATE_PER_KG = Decimal("0.80")


@dataclass(slots=True)
class Shipment:
    id: str
    order_ref: str
    fulfilment_order_id: str
    ship_to: dict[str, Any]
    service_level: str
    packages: list[dict[str, Any]]
    service: str
    rate: dict[str, str]
    created_at: str
    carrier: str = CARRIER
    status: str = "planned"  # planned -> cancelled | settled
    settled_at: str | None = None
    # The last change (planned, cancelled, settled), whole seconds: what the shipment list's
    # updated_since filters on. Not in ``to_dict``: the v1 shipment answer stays as it was,
    # and only the list (which v1 did not have) shows it (docs/feeds.md).
    updated_at: str = ""

    def listed(self) -> dict[str, Any]:
        """The shipment as the list shows it: with its last change."""
        return {**self.to_dict(), "updated_at": self.updated_at or self.created_at}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "order_ref": self.order_ref,
            "fulfilment_order_id": self.fulfilment_order_id,
            "ship_to": dict(self.ship_to),
            "service_level": self.service_level,
            "packages": [dict(p) for p in self.packages],
            "carrier": self.carrier,
            "service": self.service,
            "rate": dict(self.rate),
            "status": self.status,
            "created_at": self.created_at,
            "settled_at": self.settled_at,
        }


def kilograms(package: dict[str, Any]) -> Decimal:
    """A package's weight as a Decimal, so rates never pick up binary float noise."""
    return Decimal(str(package["weight_kg"]))


def check_tender(ship_to: dict[str, Any], packages: list[dict[str, Any]]) -> None:
    """Refuse what no carrier on the rate card will take, as a TMS tender does."""
    country = ship_to.get("country")
    if country not in SERVED_COUNTRIES:
        raise unprocessable(
            "tender_rejected",
            f"no carrier serves destination country {country}",
            reason="country_not_served",
            country=country,
        )
    for index, package in enumerate(packages):
        if kilograms(package) > MAX_PACKAGE_KG:
            raise unprocessable(
                "tender_rejected",
                f"package {index} weighs over {MAX_PACKAGE_KG} kg",
                reason="overweight",
                package=index,
                weight_kg=package["weight_kg"],
                max_kg=int(MAX_PACKAGE_KG),
            )


# Where the partner carrier bills in its own currency: the rate card's EUR price at a fixed
# rate (a rate card is set for the season, not traded). Everywhere else: EUR.
LOCAL_CURRENCY = {"DK": ("DKK", Decimal("7.46")), "PL": ("PLN", Decimal("4.30"))}


def rate(service: str, packages: list[dict[str, Any]], country: str = "DE") -> dict[str, str]:
    """Base price of the service plus a per-kg charge on the total weight, in the currency
    the destination's partner carrier bills in."""
    total_kg = sum((kilograms(p) for p in packages), Decimal(0))
    price = BASE_RATE[service] + RATE_PER_KG * total_kg
    currency, per_eur = LOCAL_CURRENCY.get(country, ("EUR", Decimal(1)))
    return money(price * per_eur, currency)


class TmsModel(SimModel):
    system = "tms"
    event_types = ("freight.settled",)

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.reset()

    def reset(self) -> None:
        # Express parcels the carrier takes per day (None: no cap). At peak, carriers cap each
        # shipper's express volume; tenders beyond the cap are declined until the next day.
        self.express_capacity_per_day: int | None = None
        self.shipments: dict[str, Shipment] = {}
        self.by_order_ref: dict[str, list[str]] = {}
        # Express tenders the carrier declined: the TMS's own record of why an express order
        # may ship by ground (the lineage oracles read it).
        self.declined_tenders: list[dict[str, Any]] = []
        self._ids = Ids("SH")

    def plan(
        self,
        order_ref: str,
        fulfilment_order_id: str,
        ship_to: dict[str, Any],
        service_level: str,
        packages: list[dict[str, Any]],
        *,
        shipment_id: str | None = None,
    ) -> Shipment:
        """Tender the shipment to the carrier and book it at the rate-card price (under
        ``shipment_id`` when a provider state names it)."""
        check_tender(ship_to, packages)
        if shipment_id in self.shipments:
            raise conflict("already_exists", f"shipment {shipment_id} already exists")
        service = "express" if service_level == "express" else "ground"
        if service == "express":
            self._check_express_capacity(order_ref)
        weights = [{"weight_kg": p["weight_kg"]} for p in packages]
        shipment = Shipment(
            id=shipment_id or self._ids.next(),
            order_ref=order_ref,
            fulfilment_order_id=fulfilment_order_id,
            ship_to=dict(ship_to),
            service_level=service_level,
            packages=weights,
            service=service,
            rate=rate(service, weights, str(ship_to.get("country") or "")),
            created_at=self.now(),
        )
        shipment.updated_at = shipment.created_at
        self.shipments[shipment.id] = shipment
        self.by_order_ref.setdefault(order_ref, []).append(shipment.id)
        self.notify("planned", shipment)
        return shipment

    def _check_express_capacity(self, order_ref: str) -> None:
        """Refuse an express tender once today's express capacity is taken (and keep it)."""
        cap = self.express_capacity_per_day
        if cap is None:
            return
        today = self.now()[:10]
        taken = sum(
            1
            for s in self.shipments.values()
            if s.service == "express" and s.status != "cancelled" and s.created_at[:10] == today
        )
        if taken >= cap:
            self.declined_tenders.append(
                {
                    "order_ref": order_ref,
                    "service_level": "express",
                    "reason": "capacity_exhausted",
                    "at": self.now(),
                }
            )
            raise unprocessable(
                "tender_rejected",
                f"the carrier's express capacity for {today} ({cap} parcels) is taken",
                reason="capacity_exhausted",
                service="express",
                available=["ground"],
            )

    def get(self, shipment_id: str) -> Shipment:
        return lookup(self.shipments, "shipment", shipment_id)

    def cancel(self, shipment_id: str) -> Shipment:
        shipment = self._expect(shipment_id, "cancel", "planned")
        shipment.status = "cancelled"
        shipment.updated_at = self.now()
        return shipment

    def settle(self, shipment_id: str) -> Shipment:
        """The carrier's invoice is matched: the freight cost becomes final and is reported."""
        shipment = self._expect(shipment_id, "settle", "planned")
        shipment.status = "settled"
        shipment.settled_at = shipment.updated_at = self.now()
        data = {
            "shipment_id": shipment.id,
            "order_ref": shipment.order_ref,
            "amount": dict(shipment.rate),
            "settled_at": shipment.settled_at,
        }
        self.emit("freight.settled", data, shipment.order_ref)
        return shipment

    def _expect(self, shipment_id: str, action: str, status: str) -> Shipment:
        """The shipment, if it is in ``status``; a 409 naming its real status otherwise."""
        shipment = self.get(shipment_id)
        if shipment.status != status:
            raise conflict(
                "invalid_transition",
                f"cannot {action} shipment {shipment_id}: it is {shipment.status}",
                status=shipment.status,
            )
        return shipment

    def snapshot(self) -> dict[str, Any]:
        return {
            "shipments": {sid: s.to_dict() for sid, s in self.shipments.items()},
            "by_order_ref": {ref: list(ids) for ref, ids in self.by_order_ref.items()},
            "declined_tenders": [dict(d) for d in self.declined_tenders],
        }

    def seed_examples(self) -> None:
        """The shipments the OpenAPI examples name: SH-000001 planned, SH-000002 settled."""
        ship_to = {
            "name": "Ada Lovelace",
            "street": "Keizersgracht 1",
            "city": "Amsterdam",
            "postal_code": "1015 CJ",
            "country": "NL",
        }
        self.plan("SO-000001", "FO-000001", ship_to, "standard", [{"weight_kg": 2.5}])
        settled = self.plan("SO-000002", "FO-000002", ship_to, "express", [{"weight_kg": 1.0}])
        self.settle(settled.id)
