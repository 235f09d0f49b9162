"""The TMS model under random plan/cancel/settle sequences: its promises hold after each step.

A refusal (``SimError``) is a legal answer; what must never happen is freight settled twice,
a cancelled shipment settled, or a settlement event that disagrees with the shipment.
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule

from simulators.common.clock import ManualClock
from simulators.common.errors import SimError
from simulators.tms.model import TmsModel

ADDRESS = {"name": "Ada", "street": "Keizersgracht 1", "city": "Amsterdam", "postal_code": "1015"}


class TmsMachine(RuleBasedStateMachine):
    shipments = Bundle("shipments")

    def __init__(self) -> None:
        super().__init__()
        self.tms = TmsModel(ManualClock())
        self.history: dict[str, list[str]] = {}  # shipment id -> statuses it was seen in

    @rule(
        target=shipments,
        order=st.sampled_from(["SO-1", "SO-2", "SO-3"]),
        service_level=st.sampled_from(["standard", "express"]),
        country=st.sampled_from(["NL", "DE", "US"]),
        weights=st.lists(st.floats(0.1, 40.0), min_size=1, max_size=3),
    )
    def plan(self, order: str, service_level: str, country: str, weights: list[float]) -> Any:
        ship_to = {**ADDRESS, "country": country}
        packages = [{"weight_kg": w} for w in weights]
        try:
            shipment = self.tms.plan(order, f"FO-{order}", ship_to, service_level, packages)
        except SimError as refusal:
            assert refusal.code == "tender_rejected"
            assert country == "US" or max(weights) > 30
            return multiple()
        assert country != "US" and max(weights) <= 30
        assert shipment.service == ("express" if service_level == "express" else "ground")
        self.history[shipment.id] = [shipment.status]
        return shipment.id

    @rule(shipment_id=shipments)
    def cancel(self, shipment_id: str) -> None:
        before = self.tms.shipments[shipment_id].status
        try:
            self.tms.cancel(shipment_id)
        except SimError as refusal:
            assert refusal.status == 409 and before in ("settled", "cancelled")
        self.history[shipment_id].append(self.tms.shipments[shipment_id].status)

    @rule(shipment_id=shipments)
    def settle(self, shipment_id: str) -> None:
        before = self.tms.shipments[shipment_id].status
        try:
            self.tms.settle(shipment_id)
        except SimError as refusal:
            assert refusal.status == 409 and before != "planned"
        self.history[shipment_id].append(self.tms.shipments[shipment_id].status)

    @invariant()
    def settled_at_most_once_and_never_after_cancel(self) -> None:
        settlements = [d for kind, d, _ in self.tms.emitted if kind == "freight.settled"]
        ids = [d["shipment_id"] for d in settlements]
        assert len(ids) == len(set(ids)), "freight settled twice"
        for data in settlements:
            shipment = self.tms.shipments[data["shipment_id"]]
            assert shipment.status == "settled"
            assert data["amount"] == shipment.to_dict()["rate"]
            assert "cancelled" not in self.history[shipment.id]

    @invariant()
    def statuses_are_known_and_final_ones_stay(self) -> None:
        for shipment_id, seen in self.history.items():
            assert set(seen) <= {"planned", "cancelled", "settled"}
            for final in ("cancelled", "settled"):
                if final in seen:
                    assert seen[seen.index(final) :] == [final] * (len(seen) - seen.index(final))
            assert self.tms.shipments[shipment_id].status == seen[-1]


TmsMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
TestTmsStateMachine = TmsMachine.TestCase
