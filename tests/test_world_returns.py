"""Customer returns in the world: off by default, and when on, keyed by the sales order, so
each order comes back (or not) with the same units in the same condition however the stack
interleaves its calls."""

from __future__ import annotations

from typing import Any

import pytest

from harness import scenario
from harness.world.integrator import play

DAY = """
seed: 7
horizon_days: 8
demand: {orders: 40}
returns: {return_rate: 0.5, conditions: {restock: 1, damaged: 1, scrap: 1}}
"""


def returned(played: Any) -> dict[str, tuple[Any, ...]]:
    """What came back per order, as the WMS graded it and the ERP authorised it."""
    erp, wms = played.models["erp"], played.models["wms"]
    rmas = {rma.order_id: rma for rma in erp.returns.values()}
    return {
        r["order_ref"]: (
            tuple((x["line"], x["sku"], x["qty"], x["condition"]) for x in r["lines"]),
            rmas[r["order_ref"]].reason,
            rmas[r["order_ref"]].resolution,
            r["received_at"],
        )
        for r in wms.return_receipts.values()
    }


@pytest.fixture(scope="module")
def plain() -> Any:
    return play(scenario.parse(DAY))


def test_no_returns_by_default() -> None:
    played = play(scenario.parse("seed: 7\ndemand: {orders: 20}"))
    assert played.models["erp"].returns == {}
    assert played.models["carrier"].return_labels == {}
    assert not [c for c in played.world.counts if c.startswith("returns")]


def test_a_returns_day_is_credited_and_restocked_and_every_oracle_passes(plain) -> None:
    counts = plain.world.counts
    assert counts["returns_authorised"] == counts["returns_received"] > 5
    assert plain.integrator.errors == [] and plain.world.incidents == []
    assert plain.failed_oracles() == {}
    conditions = {line[3] for lines, *_ in returned(plain).values() for line in lines}
    assert conditions == {"restock", "damaged", "scrap"}
    labels = plain.models["carrier"].return_labels.values()
    assert all(label.status == "delivered" for label in labels)


def test_returns_are_the_same_however_the_stack_interleaves(plain) -> None:
    shuffled = play(scenario.parse(DAY), shuffle=True, max_delay_s=120, seed=3)
    assert returned(shuffled) == returned(plain)


def test_a_return_is_never_more_than_was_issued(plain) -> None:
    erp = plain.models["erp"]
    for rma in erp.returns.values():
        issued = {
            line["line"]: line["qty"]
            for gi in erp.orders[rma.order_id].goods_issues
            for line in erp.goods_issues[gi].lines
        }
        assert all(0 < line["qty"] <= issued[line["line"]] for line in rma.lines)
