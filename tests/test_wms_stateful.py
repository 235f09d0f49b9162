"""Random floor activity against the WMS model; stock and statuses must always add up.

Every operation may be refused (a ``SimError``); a refusal must leave the model untouched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule

from simulators.common.clock import ManualClock
from simulators.common.errors import SimError
from simulators.wms.model import ADJUSTMENT_REASONS, STATUSES, WmsModel

INITIAL = {"A-100": 30, "B-200": 12, "C-300": 0}
PICK_OUTCOMES = ("picked", "short_closed")
SKUS = [*INITIAL, "D-400"]  # D-400 is unknown until a receipt brings it in
SHIP_TO = {
    "name": "Katherine Johnson",
    "street": "3 Orbit Road",
    "city": "Lyon",
    "postal_code": "69001",
    "country": "FR",
}
order_lines = st.lists(
    st.tuples(st.sampled_from(SKUS), st.integers(1, 6)), min_size=1, max_size=3
).map(lambda pairs: [{"line": i + 1, "sku": s, "qty": q} for i, (s, q) in enumerate(pairs)])


class WmsMachine(RuleBasedStateMachine):
    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.wms = WmsModel(ManualClock(), INITIAL)
        self.received: Counter[str] = Counter()
        self.adjusted: Counter[str] = Counter()

    def attempt(self, operation: Callable[..., Any], *args: Any) -> Any:
        """Run an operation; a refusal is legal but must change nothing and emit nothing."""
        before = (self.wms.snapshot(), len(self.wms.emitted))
        try:
            return operation(*args)
        except SimError:
            assert (self.wms.snapshot(), len(self.wms.emitted)) == before
            return None

    # -- rules ---------------------------------------------------------------------------
    @rule(target=orders, ref=st.sampled_from(["SO-1", "SO-2", "SO-3"]), lines=order_lines)
    def create(self, ref: str, lines: list[dict]) -> Any:
        fo = self.attempt(self.wms.create_order, ref, SHIP_TO, "standard", lines)
        return multiple() if fo is None else fo.id

    @rule(fo_id=orders, data=st.data())
    def pick(self, fo_id: str, data: st.DataObject) -> None:
        fo = self.wms.orders[fo_id]
        picked = {line.line: data.draw(st.integers(0, line.qty)) for line in fo.lines}
        self.attempt(self.wms.pick, fo_id, picked)

    @rule(fo_id=orders, steps=st.integers(1, 4))
    def progress(self, fo_id: str, steps: int) -> None:
        """The floor's next steps for one order, so that long happy paths happen too."""
        fo = self.wms.orders[fo_id]
        for _ in range(steps):
            following: dict[str, tuple[Any, ...]] = {
                "accepted": (self.wms.pick, fo_id, {line.line: line.qty for line in fo.lines}),
                "picked": (self.wms.pack, fo_id),
                "packed": (self.wms.attach_label, fo_id, "PC1", "parcelco", "LB-PC1"),
                "labelled": (self.wms.ship, fo_id),
            }
            if fo.status in following:
                self.attempt(*following[fo.status])

    @rule(fo_id=orders)
    def pack(self, fo_id: str) -> None:
        self.attempt(self.wms.pack, fo_id)

    @rule(fo_id=orders, tracking=st.sampled_from(["PC1", "PC2"]))
    def label(self, fo_id: str, tracking: str) -> None:
        self.attempt(self.wms.attach_label, fo_id, tracking, "parcelco", f"LB-{tracking}")

    @rule(fo_id=orders)
    def ship(self, fo_id: str) -> None:
        self.attempt(self.wms.ship, fo_id)

    @rule(fo_id=orders)
    def cancel(self, fo_id: str) -> None:
        self.attempt(self.wms.cancel, fo_id)

    @rule(
        sku=st.sampled_from(SKUS),
        delta=st.integers(-8, 8),
        reason=st.sampled_from(ADJUSTMENT_REASONS),
    )
    def adjust(self, sku: str, delta: int, reason: str) -> None:
        if self.attempt(self.wms.adjust, sku, delta, reason) is not None:
            self.adjusted[sku] += delta

    @rule(sku=st.sampled_from(SKUS), qty=st.integers(1, 5))
    def receive(self, sku: str, qty: int) -> None:
        reference = f"RC-{len(self.wms.receipts) + 1:06d}"
        if self.attempt(self.wms.receive, reference, [{"sku": sku, "qty": qty}]) is not None:
            self.received[sku] += qty

    # -- invariants ----------------------------------------------------------------------
    @invariant()
    def stock_never_negative(self) -> None:
        assert all(qty >= 0 for qty in self.wms.stock.values())

    @invariant()
    def picked_within_ordered(self) -> None:
        for fo in self.wms.orders.values():
            was_picked = any(h["status"] in PICK_OUTCOMES for h in fo.status_history)
            for line in fo.lines:
                assert 0 <= line.picked_qty <= line.qty
                assert line.short_qty == (line.qty - line.picked_qty if was_picked else 0)

    @invariant()
    def shipped_orders_carry_a_label(self) -> None:
        for fo in self.wms.orders.values():
            if fo.status == "shipped":
                assert fo.label is not None and fo.packages

    @invariant()
    def stock_is_conserved(self) -> None:
        """What came in equals what is on the shelf plus what was picked and not put back."""
        held: Counter[str] = Counter()
        for fo in self.wms.orders.values():
            if fo.status != "cancelled":
                held.update(fo.picked_by_sku())
        for sku in {*INITIAL, *self.received, *self.wms.stock}:
            expected = INITIAL.get(sku, 0) + self.received[sku] + self.adjusted[sku]
            assert expected == self.wms.stock.get(sku, 0) + held[sku], sku

    @invariant()
    def each_order_has_one_known_status(self) -> None:
        listed = [fo_id for ids in self.wms.by_ref.values() for fo_id in ids]
        assert sorted(listed) == sorted(self.wms.orders)
        for fo in self.wms.orders.values():
            assert fo.status in STATUSES
            assert fo.status_history[-1]["status"] == fo.status
            assert fo.id in self.wms.by_ref[fo.order_ref]


WmsMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
TestWmsMachine = WmsMachine.TestCase
