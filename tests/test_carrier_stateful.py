"""The carrier model under random create/void/scan sequences: its promises hold after each step.

A refusal (``SimError``) is a legal answer to any step; what must never happen is a state
that breaks an invariant the stack and the oracles rely on.
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule

from simulators.carrier.model import LABEL_STATUS, SCAN_STATUSES, CarrierModel
from simulators.common.clock import ManualClock
from simulators.common.errors import SimError

ADDRESS = {"name": "Ada", "street": "Keizersgracht 1", "city": "Amsterdam", "postal_code": "1015"}
PARCEL = {"weight_kg": 1.5, "contents": [{"sku": "A-100", "qty": 1}]}


class CarrierMachine(RuleBasedStateMachine):
    labels = Bundle("labels")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.carrier = CarrierModel(self.clock)
        self.voided: set[str] = set()
        self.delivered: dict[str, int] = {}  # label id -> its scan count when first seen delivered

    @rule(
        target=labels,
        shipment=st.sampled_from(["SH-000001", "SH-000002", "SH-000003"]),
        service=st.sampled_from(["ground", "express"]),
        country=st.sampled_from(["NL", "DE", "US"]),
        postal_code=st.sampled_from(["1015", " "]),
        parcels=st.integers(1, 3),
    )
    def create(
        self, shipment: str, service: str, country: str, postal_code: str, parcels: int
    ) -> Any:
        ship_to = {**ADDRESS, "country": country, "postal_code": postal_code}
        try:
            label = self.carrier.create_label(shipment, service, ship_to, [PARCEL] * parcels)
        except SimError:
            return multiple()  # refused (blank postal code, unserved country): nothing bought
        return label.id

    @rule(label_id=labels)
    def void(self, label_id: str) -> None:
        try:
            self.carrier.void(label_id)
        except SimError:
            return
        self.voided.add(label_id)

    @rule(label_id=labels, status=st.sampled_from(SCAN_STATUSES), minutes=st.integers(0, 600))
    def scan(self, label_id: str, status: str, minutes: int) -> None:
        self.clock.advance(minutes * 60)
        try:
            self.carrier.scan(self.carrier.labels[label_id].tracking_number, status)
        except SimError:
            return
        assert label_id not in self.voided

    @invariant()
    def sequences_strictly_increase(self) -> None:
        for label in self.carrier.labels.values():
            assert [e["sequence"] for e in label.events] == list(range(1, len(label.events) + 1))

    @invariant()
    def a_voided_label_is_never_scanned(self) -> None:
        for label_id in self.voided:
            label = self.carrier.labels[label_id]
            assert (label.status, label.events) == ("voided", [])

    @invariant()
    def delivered_is_final(self) -> None:
        for label_id, label in self.carrier.labels.items():
            if label.status == "delivered":
                self.delivered.setdefault(label_id, len(label.events))
        for label_id, count in self.delivered.items():
            label = self.carrier.labels[label_id]
            assert (label.status, len(label.events)) == ("delivered", count)

    @invariant()
    def tracking_numbers_are_unique(self) -> None:
        numbers = [label.tracking_number for label in self.carrier.labels.values()]
        assert len(set(numbers)) == len(numbers)
        assert {self.carrier.by_tracking[n] for n in numbers} == set(self.carrier.labels)

    @invariant()
    def status_matches_the_last_scan(self) -> None:
        for label in self.carrier.labels.values():
            if label.events:
                assert label.status == LABEL_STATUS[label.events[-1]["status"]]
            else:
                assert label.status in ("created", "voided")

    @invariant()
    def every_scan_was_reported(self) -> None:
        reported = [(d["tracking_number"], d["sequence"]) for _, d, _ in self.carrier.emitted]
        scans = [
            (label.tracking_number, e["sequence"])
            for label in self.carrier.labels.values()
            for e in label.events
        ]
        assert sorted(reported) == sorted(scans)


CarrierMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
test_carrier_state_machine = CarrierMachine.TestCase
