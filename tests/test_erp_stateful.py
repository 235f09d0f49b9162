"""Random sequences of ERP operations; the books must stay consistent after every step.

Refusals (``SimError``) are legal answers: the machine only checks that whatever the model
accepted leaves stock, orders and postings in agreement.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from simulators.common.clock import ManualClock
from simulators.common.errors import SimError
from simulators.erp.model import (
    ADJUSTMENT_REASONS,
    ORDER_STATUSES,
    TRACKING_STATUSES,
    ErpModel,
    SalesOrder,
)

SKUS = ("A-100", "B-200", "C-300")
CUSTOMER = {"name": "Grace Hopper", "email": "grace@example.com"}
SHIP_TO = {
    "name": "Grace",
    "street": "1 Cobol Rd",
    "city": "Paris",
    "postal_code": "75001",
    "country": "FR",
}
# Every status an order can have come from (``None``: created).
PREDECESSORS = {
    "open": {None},
    "released": {"open"},
    "shipped": {"released"},
    "backordered": {"released"},
    "delivered": {"shipped"},
    "cancelled": {"open", "released"},
}

# Mostly known SKUs: an unknown one now and then checks the refusal leaves no trace.
skus = st.sampled_from((*SKUS, *SKUS, "Z-999"))
qtys = st.integers(min_value=0, max_value=8)
order_lines = st.lists(
    st.fixed_dictionaries({"sku": skus, "qty": st.integers(min_value=1, max_value=8)}),
    min_size=1,
    max_size=3,
)
issued_lines = st.lists(
    st.fixed_dictionaries({"line": st.integers(min_value=1, max_value=3), "qty": qtys}),
    max_size=4,
)


def has_orders(machine: ErpBooks) -> bool:
    return bool(machine.erp.orders)


class ErpBooks(RuleBasedStateMachine):
    """Drives ``ErpModel`` and checks its invariants after each step."""

    @initialize(stock=st.lists(st.integers(min_value=5, max_value=40), min_size=3, max_size=3))
    def open_books(self, stock: list[int]) -> None:
        self.clock = ManualClock()
        self.initial_stock = dict(zip(SKUS, stock, strict=True))
        self.erp = ErpModel(self.clock, self.initial_stock)
        self.events: list[tuple[str, dict[str, Any], str | None]] = self.erp.emitted

    def attempt(self, call: Callable[..., Any], *args: Any) -> Any:
        """Call the model one virtual second later; a refusal must change nothing."""
        self.clock.advance(1)
        before = self.erp.snapshot()
        try:
            return call(*args)
        except SimError as err:
            assert 400 <= err.status < 500
            assert self.erp.snapshot() == before
            return None

    def pick(self, data: st.DataObject, *statuses: str) -> str:
        """An order id: mostly one in ``statuses``, else any order or an unknown one."""
        ids = [o.id for o in self.erp.orders.values()]
        fitting = [o.id for o in self.erp.orders.values() if o.status in statuses]
        if fitting and data.draw(st.integers(0, 3)) > 0:
            ids = fitting
        return data.draw(st.sampled_from([*ids, "SO-999999"]))

    @rule(lines=order_lines, service_level=st.sampled_from(("standard", "express")))
    def create(self, lines: list[dict], service_level: str) -> None:
        self.attempt(self.erp.create_order, CUSTOMER, SHIP_TO, service_level, lines)

    @rule(lines=order_lines, data=st.data())
    def order_to_shipment(self, lines: list[dict], data: st.DataObject) -> None:
        """Create, release and issue in one step, so deep states come up within a short run."""
        order = self.attempt(self.erp.create_order, CUSTOMER, SHIP_TO, "standard", lines)
        if order is not None and self.attempt(self.erp.release, order.id) is not None:
            self.issue_as_picked(data, order)

    @precondition(has_orders)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        order_id = self.pick(data, "open")
        order = self.attempt(self.erp.release, order_id)
        if order is not None:
            assert self.events[-1] == ("order.released", order.to_dict(), order_id)

    @precondition(has_orders)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        order_id = self.pick(data, "open", "released")
        if self.attempt(self.erp.cancel, order_id) is not None:
            kind, event, _ = self.events[-1]
            assert (kind, event["order_id"]) == ("order.cancelled", order_id)

    @precondition(has_orders)
    @rule(data=st.data(), lines=issued_lines)
    def goods_issue(self, data: st.DataObject, lines: list[dict]) -> None:
        self.issue(self.pick(data, "released"), lines)

    @precondition(lambda self: self.released())
    @rule(data=st.data())
    def pick_and_issue(self, data: st.DataObject) -> None:
        self.issue_as_picked(data, data.draw(st.sampled_from(self.released())))

    def issue_as_picked(self, data: st.DataObject, order: SalesOrder) -> None:
        """Issue as a warehouse would: up to the qty ordered, now and then one over."""
        lines = [
            {"line": line["line"], "qty": data.draw(st.integers(0, line["qty"] + 1))}
            for line in order.lines
            if data.draw(st.sampled_from((True, True, False)))  # left out: 0 issued
        ]
        self.issue(order.id, lines)

    def released(self) -> list[SalesOrder]:
        return [o for o in self.erp.orders.values() if o.status == "released"]

    def issue(self, order_id: str, lines: list[dict]) -> None:
        stock_before = dict(self.erp.stock)
        gi = self.attempt(self.erp.goods_issue, order_id, lines, "PC1", "parcelco", "SH-1")
        if gi is not None:
            taken: Counter[str] = Counter()
            for line in gi.lines:
                taken[line["sku"]] += line["qty"]
            assert all(self.erp.stock[s] == stock_before[s] - taken[s] for s in stock_before)

    @precondition(has_orders)
    @rule(data=st.data(), status=st.sampled_from(TRACKING_STATUSES))
    def track(self, data: st.DataObject, status: str) -> None:
        order_id = self.pick(data, "shipped", "delivered")
        self.attempt(self.erp.post_tracking, order_id, "PC1", status, self.clock.iso())

    @rule(
        sku=skus,
        delta=st.integers(min_value=-15, max_value=15),
        reason=st.sampled_from(ADJUSTMENT_REASONS),
    )
    def adjust(self, sku: str, delta: int, reason: str) -> None:
        self.attempt(self.erp.adjust_inventory, sku, delta, reason, None)

    @rule(lines=order_lines)
    def receive(self, lines: list[dict]) -> None:
        self.attempt(self.erp.receive_goods, "RC-1", lines)

    # -- invariants ----------------------------------------------------------------------
    @invariant()
    def stock_is_never_negative(self) -> None:
        assert all(on_hand >= 0 for on_hand in self.erp.stock.values())

    @invariant()
    def stock_is_the_sum_of_its_movements(self) -> None:
        movements: Counter[str] = Counter(self.initial_stock)
        for adjustment in self.erp.adjustments.values():
            movements[adjustment.sku] += adjustment.delta
        for receipt in self.erp.receipts.values():
            for line in receipt.lines:
                movements[line["sku"]] += line["qty"]
        for gi in self.erp.goods_issues.values():
            for line in gi.lines:
                movements[line["sku"]] -= line["qty"]
        assert all(self.erp.stock[sku] == movements[sku] for sku in SKUS)

    @invariant()
    def every_order_has_a_known_status_and_a_consistent_history(self) -> None:
        for order in self.erp.orders.values():
            assert order.status in ORDER_STATUSES
            history = [entry["status"] for entry in order.status_history]
            assert history[-1] == order.status
            for before, after in pairwise([None, *history]):
                assert before in PREDECESSORS[after], (order.id, history)

    @invariant()
    def goods_issues_match_their_orders(self) -> None:
        listed: list[str] = []
        for order in self.erp.orders.values():
            issued = order.status in ("shipped", "delivered", "backordered")
            assert len(order.goods_issues) == (1 if issued else 0)
            if issued:
                self.check_issued_order(order.id, order.goods_issues[0])
            listed += order.goods_issues
        assert sorted(listed) == sorted(self.erp.goods_issues)

    def check_issued_order(self, order_id: str, gi_id: str) -> None:
        """Issued + backordered == ordered per line, and issued never exceeds ordered."""
        order = self.erp.orders[order_id]
        gi = self.erp.goods_issues[gi_id]
        assert gi.order_id == order_id
        issued = {line["line"]: line["qty"] for line in gi.lines}
        backordered: Counter[int] = Counter()
        for backorder_id in order.backorders:
            for line in self.erp.backorders[backorder_id].lines:
                backordered[line["line"]] += line["qty"]
        assert len(order.backorders) <= 1
        for line in order.lines:
            assert 0 <= issued[line["line"]] <= line["qty"]
            assert issued[line["line"]] + backordered[line["line"]] == line["qty"]
        shipped_any = any(issued.values())
        assert (order.status == "backordered") == (not shipped_any)


ErpBooks.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestErpBooks = ErpBooks.TestCase
