"""The TMS model: planning and pricing, tender refusals, and the shipment's legal transitions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from simulators.common.clock import ManualClock
from simulators.common.errors import SimError
from simulators.tms.model import TmsModel

NL = {
    "name": "Ada Lovelace",
    "street": "Keizersgracht 1",
    "city": "Amsterdam",
    "postal_code": "1015 CJ",
    "country": "NL",
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def tms(clock: ManualClock) -> TmsModel:
    return TmsModel(clock)


def plan(tms: TmsModel, *weights: float, service_level: str = "standard", **ship_to: Any):
    packages = [{"weight_kg": w} for w in weights or (2.5,)]
    return tms.plan("SO-000001", "FO-000001", {**NL, **ship_to}, service_level, packages)


def refusal(call: Callable[[], Any]) -> SimError:
    """The SimError ``call`` raises (it must raise one)."""
    with pytest.raises(SimError) as caught:
        call()
    return caught.value


def test_plan_books_ground_at_base_plus_per_kg(tms: TmsModel) -> None:
    shipment = plan(tms, 2.5)
    assert shipment.id == "SH-000001"
    assert (shipment.carrier, shipment.service) == ("parcelco", "ground")
    assert shipment.status == "planned"
    assert shipment.rate == {"amount": "6.90", "currency": "EUR"}  # 4.90 + 0.80 * 2.5
    assert shipment.created_at == "2026-11-23T00:00:00Z"
    assert shipment.settled_at is None
    assert tms.by_order_ref == {"SO-000001": ["SH-000001"]}


def test_express_service_level_books_express_on_total_weight(tms: TmsModel) -> None:
    shipment = plan(tms, 1.2, 3.3, service_level="express")
    assert shipment.service == "express"
    assert shipment.rate["amount"] == "13.50"  # 9.90 + 0.80 * 4.5, no float noise


def test_express_beyond_the_days_capacity_is_declined_with_ground_offered(
    tms: TmsModel, clock: ManualClock
) -> None:
    tms.express_capacity_per_day = 2
    plan(tms, service_level="express")
    cancelled = plan(tms, service_level="express")
    tms.cancel(cancelled.id)  # a cancelled tender gives its capacity back
    plan(tms, service_level="express")
    err = refusal(lambda: plan(tms, service_level="express"))
    assert (err.status, err.code) == (422, "tender_rejected")
    assert err.details == {
        "reason": "capacity_exhausted",
        "service": "express",
        "available": ["ground"],
    }
    assert plan(tms).service == "ground"  # ground is not capped
    clock.advance(86_400)  # a new day, a new allowance
    assert plan(tms, service_level="express").service == "express"


def test_rate_is_rounded_to_cents(tms: TmsModel) -> None:
    assert plan(tms, 0.333).rate["amount"] == "5.17"  # 4.90 + 0.2664


@pytest.mark.parametrize(
    ("country", "currency", "amount"),
    [("NL", "EUR", "6.90"), ("DK", "DKK", "51.47"), ("PL", "PLN", "29.67")],
)
def test_a_partner_carrier_abroad_bills_in_its_own_currency_and_settles_the_same(
    tms: TmsModel, country: str, currency: str, amount: str
) -> None:
    shipment = plan(tms, 2.5, country=country)  # 4.90 + 2.5 x 0.80 = 6.90 EUR
    assert shipment.rate == {"amount": amount, "currency": currency}
    tms.settle(shipment.id)
    settled = [data for kind, data, _ in tms.emitted if kind == "freight.settled"]
    assert settled[-1]["amount"] == {"amount": amount, "currency": currency}


def test_packages_keep_only_their_weight(tms: TmsModel) -> None:
    packages = [{"package_id": "P1", "weight_kg": 2.0, "contents": [{"sku": "A-100", "qty": 1}]}]
    shipment = tms.plan("SO-000001", "FO-000001", NL, "standard", packages)
    assert shipment.packages == [{"weight_kg": 2.0}]


def test_plan_tells_observers(tms: TmsModel) -> None:
    seen: list[tuple[str, Any]] = []
    tms.observe(lambda what, obj: seen.append((what, obj)))
    shipment = plan(tms)
    assert seen == [("planned", shipment)]


def test_tender_rejected_for_an_unserved_country(tms: TmsModel) -> None:
    err = refusal(lambda: plan(tms, 2.0, country="US"))
    assert (err.status, err.code) == (422, "tender_rejected")
    assert err.details == {"reason": "country_not_served", "country": "US"}
    assert tms.shipments == {}


def test_tender_rejected_for_a_package_over_30_kg(tms: TmsModel) -> None:
    err = refusal(lambda: plan(tms, 2.0, 31))
    assert (err.status, err.code) == (422, "tender_rejected")
    assert err.details["reason"] == "overweight"
    assert err.details["package"] == 1
    assert plan(tms, 30).status == "planned"  # the limit itself is fine


def test_cancel_a_planned_shipment(tms: TmsModel) -> None:
    shipment = plan(tms)
    assert tms.cancel(shipment.id).status == "cancelled"


@pytest.mark.parametrize("first", ["cancel", "settle"])
@pytest.mark.parametrize("then", ["cancel", "settle"])
def test_nothing_follows_cancel_or_settle(tms: TmsModel, first: str, then: str) -> None:
    shipment = plan(tms)
    getattr(tms, first)(shipment.id)
    err = refusal(lambda: getattr(tms, then)(shipment.id))
    assert (err.status, err.code) == (409, "invalid_transition")
    assert err.details == {"status": shipment.status}


def test_settle_emits_freight_settled(tms: TmsModel, clock: ManualClock) -> None:
    shipment = plan(tms, 2.5)
    clock.advance(86_400)
    settled = tms.settle(shipment.id)
    assert (settled.status, settled.settled_at) == ("settled", "2026-11-24T00:00:00Z")
    data = {
        "shipment_id": "SH-000001",
        "order_ref": "SO-000001",
        "amount": {"amount": "6.90", "currency": "EUR"},
        "settled_at": "2026-11-24T00:00:00Z",
    }
    assert tms.emitted == [("freight.settled", data, "SO-000001")]


def test_unknown_shipment_is_not_found(tms: TmsModel) -> None:
    for action in (tms.get, tms.cancel, tms.settle):
        err = refusal(lambda action=action: action("SH-999999"))
        assert (err.status, err.code) == (404, "not_found")


def test_snapshot_is_json_and_reset_starts_over(tms: TmsModel) -> None:
    shipment = plan(tms)
    state = orjson.loads(orjson.dumps(tms.snapshot()))
    assert state["shipments"]["SH-000001"]["rate"] == shipment.rate
    assert state["by_order_ref"] == {"SO-000001": ["SH-000001"]}
    tms.reset()
    assert tms.snapshot() == {"shipments": {}, "by_order_ref": {}, "declined_tenders": []}
    assert plan(tms).id == "SH-000001"


def test_seed_examples_creates_what_the_spec_names(tms: TmsModel) -> None:
    tms.seed_examples()
    assert tms.get("SH-000001").status == "planned"
    assert tms.get("SH-000002").status == "settled"
