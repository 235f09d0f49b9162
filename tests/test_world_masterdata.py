"""Master data in the world: off by default; when on, case items, launches with orders right
behind them and item edits, all keyed, so they are the same however the stack interleaves."""

from __future__ import annotations

from typing import Any

import pytest

from harness import scenario
from harness.world.integrator import play

DAY = """
seed: 11
demand: {orders: 30, open: "08:00", close: "12:00"}
catalogue: {skus: 10, initial_stock: 400}
master_data:
  case_share: 0.4
  new_items_per_day: 3
  orders_per_new_item: 2
  changes_per_day: 4
"""


def master(played: Any) -> tuple[Any, ...]:
    """The item master at day end and every order's lines, as the ERP holds them."""
    erp = played.models["erp"]
    items = {
        sku: (i.uom, i.each_per_case, i.weight_kg, i.description, i.version, i.created_at)
        for sku, i in erp.items.items()
    }
    lines = {o.id: tuple(tuple(sorted(x.items())) for x in o.lines) for o in erp.orders.values()}
    return items, lines


@pytest.fixture(scope="module")
def plain() -> Any:
    return play(scenario.parse(DAY))


def test_the_section_off_leaves_every_line_as_it_was() -> None:
    played = play(scenario.parse("seed: 11\ndemand: {orders: 10}\n"))
    erp = played.models["erp"]
    assert all(i.uom == "EA" and i.version == 1 for i in erp.items.values())
    assert all(x["uom"] == "EA" for o in erp.orders.values() for x in o.lines)
    assert played.world.counts["items_launched"] == 0


def test_case_items_launches_and_edits_happen_and_the_day_is_clean(plain: Any) -> None:
    erp, wms = plain.models["erp"], plain.models["wms"]
    counts = plain.world.counts
    assert counts["items_launched"] == 3 and counts["new_item_orders"] == 6
    assert counts["items_changed"] == 4
    cases = {sku for sku, i in erp.items.items() if i.uom == "CS"}
    assert cases and all(
        wms.items[sku]["each_per_case"] == erp.items[sku].each_per_case for sku in cases
    )
    case_lines = [x for o in erp.orders.values() for x in o.lines if x["uom"] == "CS"]
    assert case_lines
    new_orders = [o for o in erp.orders.values() if o.lines[0]["sku"].startswith("NEW-")]
    assert len(new_orders) == 6
    for order in new_orders:  # placed minutes after the launch: racing the item to the WMS
        item = erp.items[order.lines[0]["sku"]]
        assert order.created_at >= item.created_at
    assert plain.integrator.errors == []
    assert plain.failed_oracles() == {}


@pytest.mark.parametrize("options", [{"shuffle": True, "seed": 3}, {"max_delay_s": 90, "seed": 4}])
def test_the_master_data_is_keyed_not_interleaved(plain: Any, options: dict) -> None:
    assert master(play(scenario.parse(DAY), **options)) == master(plain)


def test_a_description_too_long_for_the_wms_is_refused_then_shortened() -> None:
    """A pasted text over the WMS's 200 characters (its API refuses it: test_masterdata_sims),
    then the product team's shorter version: the last version, in both books."""
    played = play(scenario.parse(DAY + "  refused_edit_share: 1.0\n"))
    erp, wms, counts = played.models["erp"], played.models["wms"], played.world.counts
    too_long = counts["item_descriptions_too_long"]
    assert too_long >= 1  # every description edit of the day
    assert counts["items_changed"] == 4 + too_long  # each shortened once
    shortened = {sku for sku, i in erp.items.items() if i.description.endswith("(shortened)")}
    assert len(shortened) >= 1
    for sku in shortened:
        assert erp.items[sku].version >= 3  # cutover, the pasted text, the shortened one
        assert len(erp.items[sku].description) <= 200
        assert wms.items[sku]["description"] == erp.items[sku].description
    assert played.failed_oracles() == {}


def test_no_refused_edits_draws_the_day_it_drew_before(plain: Any) -> None:
    assert master(play(scenario.parse(DAY + "  refused_edit_share: 0.0\n"))) == master(plain)
