"""The carrier model: paid labels, address refusals, voids, and the order scans must keep."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from simulators.carrier.model import CarrierModel, Label
from simulators.common.clock import ManualClock
from simulators.common.errors import SimError

NL = {
    "name": "Ada Lovelace",
    "street": "Keizersgracht 1",
    "city": "Amsterdam",
    "postal_code": "1015 CJ",
    "country": "NL",
}
PARCEL = {"weight_kg": 2.5, "contents": [{"sku": "A-100", "qty": 3}]}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def carrier(clock: ManualClock) -> CarrierModel:
    return CarrierModel(clock)


def buy(carrier: CarrierModel, service: str = "ground", parcels: int = 1, **ship_to: Any) -> Label:
    return carrier.create_label("SH-000001", service, {**NL, **ship_to}, [PARCEL] * parcels)


def scanned(carrier: CarrierModel, *statuses: str) -> Label:
    """A fresh label scanned through ``statuses`` in order."""
    label = buy(carrier)
    for status in statuses:
        carrier.scan(label.tracking_number, status)
    return label


def refusal(call: Callable[[], Any]) -> SimError:
    """The SimError ``call`` raises (it must raise one)."""
    with pytest.raises(SimError) as caught:
        call()
    return caught.value


def test_labels_get_sequential_tracking_numbers(carrier: CarrierModel) -> None:
    first, second = buy(carrier), buy(carrier)
    assert (first.id, first.tracking_number) == ("LB-000001", "PC000000001")
    assert (second.id, second.tracking_number) == ("LB-000002", "PC000000002")
    assert carrier.by_tracking == {"PC000000001": "LB-000001", "PC000000002": "LB-000002"}
    assert first.status == "created"
    assert first.packages == [PARCEL]


def test_a_label_bought_twice_for_one_shipment_is_visible(carrier: CarrierModel) -> None:
    buy(carrier)
    buy(carrier)
    assert carrier.by_shipment == {"SH-000001": ["LB-000001", "LB-000002"]}


@pytest.mark.parametrize(
    ("service", "parcels", "cost"), [("ground", 1, "5.40"), ("express", 3, "33.60")]
)
def test_cost_is_per_package(carrier: CarrierModel, service: str, parcels: int, cost: str) -> None:
    assert buy(carrier, service, parcels).cost == {"amount": cost, "currency": "EUR"}


def test_create_label_tells_observers(carrier: CarrierModel) -> None:
    seen: list[tuple[str, Any]] = []
    carrier.observe(lambda what, obj: seen.append((what, obj)))
    label = buy(carrier)
    assert seen == [("label_created", label)]


@pytest.mark.parametrize(
    ("ship_to", "field"),
    [
        ({"postal_code": ""}, "ship_to.postal_code"),
        ({"postal_code": "   "}, "ship_to.postal_code"),
        ({"country": "US"}, "ship_to.country"),
    ],
)
def test_undeliverable_address_is_refused(
    carrier: CarrierModel, ship_to: dict[str, str], field: str
) -> None:
    err = refusal(lambda: buy(carrier, **ship_to))
    assert (err.status, err.code, err.details) == (422, "address_invalid", {"field": field})
    assert carrier.labels == {}


def test_void_an_unused_label(carrier: CarrierModel) -> None:
    assert carrier.void(buy(carrier).id).status == "voided"


@pytest.mark.parametrize(
    ("statuses", "status"),
    [(("picked_up",), "in_transit"), (("picked_up", "delivered"), "delivered")],
)
def test_void_once_picked_up_is_a_conflict(
    carrier: CarrierModel, statuses: tuple[str, ...], status: str
) -> None:
    label = scanned(carrier, *statuses)
    err = refusal(lambda: carrier.void(label.id))
    assert (err.status, err.code, err.details) == (409, "invalid_transition", {"status": status})


def test_void_twice_is_a_conflict(carrier: CarrierModel) -> None:
    label = buy(carrier)
    carrier.void(label.id)
    assert refusal(lambda: carrier.void(label.id)).status == 409


def test_scans_number_each_parcel_and_emit_tracking_updated(
    carrier: CarrierModel, clock: ManualClock
) -> None:
    label, other = buy(carrier), buy(carrier)
    carrier.scan(label.tracking_number, "picked_up")
    clock.advance(3600)
    carrier.scan(other.tracking_number, "picked_up")
    carrier.scan(label.tracking_number, "in_transit")
    assert [e["sequence"] for e in label.events] == [1, 2]
    assert [e["sequence"] for e in other.events] == [1]
    assert carrier.emitted[-1] == (
        "tracking.updated",
        {
            "tracking_number": "PC000000001",
            "status": "in_transit",
            "occurred_at": "2026-11-23T01:00:00Z",
            "sequence": 2,
        },
        "SH-000001",
    )


@pytest.mark.parametrize(
    ("statuses", "status"),
    [
        ((), "created"),
        (("picked_up",), "in_transit"),
        (("picked_up", "out_for_delivery"), "in_transit"),
        (("picked_up", "exception"), "exception"),
        (("picked_up", "exception", "delivered"), "delivered"),
    ],
)
def test_label_status_follows_the_scans(
    carrier: CarrierModel, statuses: tuple[str, ...], status: str
) -> None:
    assert scanned(carrier, *statuses).status == status


@pytest.mark.parametrize(
    "statuses",
    [
        ("picked_up", "exception", "in_transit"),
        ("picked_up", "out_for_delivery", "exception", "in_transit", "out_for_delivery"),
        ("picked_up", "in_transit", "in_transit"),
    ],
)
def test_legal_scan_sequences(carrier: CarrierModel, statuses: tuple[str, ...]) -> None:
    label = scanned(carrier, *statuses)
    assert [e["status"] for e in label.events] == list(statuses)


@pytest.mark.parametrize(
    ("statuses", "then"),
    [
        (("picked_up", "out_for_delivery"), "in_transit"),  # backwards
        (("picked_up", "in_transit"), "picked_up"),  # backwards
        (("picked_up", "in_transit", "exception"), "picked_up"),  # only in_transit on again
        ((), "exception"),  # an exception before pickup
        (("picked_up", "delivered"), "delivered"),  # delivered is final
        (("picked_up", "delivered"), "exception"),
    ],
)
def test_illegal_scans_are_conflicts(
    carrier: CarrierModel, statuses: tuple[str, ...], then: str
) -> None:
    label = scanned(carrier, *statuses)
    before = list(label.events)
    err = refusal(lambda: carrier.scan(label.tracking_number, then))
    assert (err.status, err.code) == (409, "invalid_transition")
    assert err.details == {"status": label.status, "scan": then}
    assert label.events == before


def test_a_voided_label_is_never_scanned(carrier: CarrierModel) -> None:
    label = buy(carrier)
    carrier.void(label.id)
    assert refusal(lambda: carrier.scan(label.tracking_number, "picked_up")).status == 409
    assert label.events == []


def test_unknown_ids_and_statuses(carrier: CarrierModel) -> None:
    assert refusal(lambda: carrier.get("LB-999999")).status == 404
    assert refusal(lambda: carrier.void("LB-999999")).status == 404
    assert refusal(lambda: carrier.scan("PC999999999", "picked_up")).status == 404
    err = refusal(lambda: carrier.scan(buy(carrier).tracking_number, "lost"))
    assert (err.status, err.code) == (422, "validation_failed")


def test_snapshot_is_json_and_reset_starts_over(carrier: CarrierModel) -> None:
    scanned(carrier, "picked_up")
    state = orjson.loads(orjson.dumps(carrier.snapshot()))
    assert state["labels"]["LB-000001"]["events"][0]["status"] == "picked_up"
    assert state["by_tracking"] == {"PC000000001": "LB-000001"}
    assert state["by_shipment"] == {"SH-000001": ["LB-000001"]}
    carrier.reset()
    assert carrier.snapshot() == {
        "labels": {},
        "by_tracking": {},
        "by_shipment": {},
        "return_labels": {},
    }
    assert buy(carrier).tracking_number == "PC000000001"


def test_seed_examples_creates_what_the_spec_names(carrier: CarrierModel) -> None:
    carrier.seed_examples()
    assert carrier.get("LB-000001").status == "created"
    assert carrier.track("PC000000002").status == "in_transit"


def test_scans_are_stamped_in_the_depots_local_time_when_a_zone_is_given(clock: ManualClock):
    """2026-11-23 is winter in Berlin: +01:00, the same instant as the UTC stamp."""
    from datetime import datetime

    utc, local = CarrierModel(clock), CarrierModel(clock, "Europe/Berlin")
    clock.set(14 * 3600 + 2 * 60)
    assert utc.scanned_at().endswith("Z")
    stamped = local.scanned_at()
    assert stamped.endswith("+01:00")
    same = datetime.fromisoformat(utc.scanned_at().replace("Z", "+00:00"))
    assert datetime.fromisoformat(stamped) == same
    label = buy(local)
    local.scan(label.tracking_number, "picked_up")
    assert label.events[0]["occurred_at"] == stamped


def test_scans_carry_milliseconds_as_javascript_writes_them_when_asked(clock: ManualClock):
    """toISOString's form (``...00.000Z``), in UTC or with the depot's offset: the same
    instant as the seconds-only stamp."""
    from datetime import datetime

    clock.set(14 * 3600 + 2 * 60)
    seconds = CarrierModel(clock).scanned_at()
    millis = CarrierModel(clock, scan_time_millis=True).scanned_at()
    local = CarrierModel(clock, "Europe/Berlin", scan_time_millis=True).scanned_at()
    assert seconds == "2026-11-23T14:02:00Z"
    assert millis == "2026-11-23T14:02:00.000Z"
    assert local == "2026-11-23T15:02:00.000+01:00"
    instants = {datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (seconds, millis, local)}
    assert len(instants) == 1
    with pytest.raises(ValueError):  # what a seconds-only parser makes of it
        datetime.strptime(millis, "%Y-%m-%dT%H:%M:%S%z")
