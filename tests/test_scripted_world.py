"""Scripted worlds: a scenario's ``orders:`` and ``timeline:`` happen as written, what they
leave out is drawn as in any day, and a replay that skips things says so (docs/capsules.md).

Most tests play the world against the simulator models with the in-process integrator; one
plays a scripted day through the reference stack with ``twinyard run``.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from harness import scenario
from harness.cli import main
from harness.scripted import ScriptedOrder, TimelineEntry
from harness.world.integrator import Played, play
from harness.world.people import people
from harness.world.randomness import Draws

DAY = 86_400
ADA = "{name: Ada Lovelace, street: Main 1, city: Berlin, postal_code: '10115', country: DE}"


def at(iso: str, played: Played) -> float:
    """An ISO timestamp a model wrote, as virtual seconds."""
    epoch = played.world.scenario.epoch
    return (datetime.fromisoformat(iso.replace("Z", "+00:00")) - epoch).total_seconds()


def status_at(fo: Any, status: str) -> str:
    return next(h["at"] for h in fo.status_history if h["status"] == status)


def fo_of(played: Played, order_id: str) -> Any:
    wms = played.models["wms"]
    return wms.orders[wms.by_ref[order_id][0]]


def shelves_agree(played: Played) -> bool:
    """With no damage or shrink, what is on each shelf is what the WMS books say."""
    wms, shelves = played.models["wms"], played.world.shelves
    return all(shelves.good[sku] == wms.stock[sku] for sku in shelves.skus)


def day(text: str) -> scenario.Scenario:
    return scenario.parse(text, "day.yaml")


# -- orders ------------------------------------------------------------------------------
BESIDE = f"""
seed: 5
demand: {{orders: 20, close: "18:00"}}
catalogue: {{skus: 10, initial_stock: 500}}
orders:
  - id: INC-1
    at: "10:30"
    lines: [{{sku: SKU-00001, qty: 3}}, {{sku: SKU-00002, qty: 2}}]
  - id: INC-2
    at: "20:15:30"
    service_level: express
    ship_to: {ADA}
    lines: [{{sku: SKU-00003, qty: 1}}]
"""


def test_explicit_orders_are_placed_with_their_id_lines_and_time_beside_generated_ones():
    played = play(day(BESIDE))
    erp, world = played.models["erp"], played.world
    assert played.failed_oracles() == {} and world.incidents == []
    assert world.counts["released"] == 22 and world.counts["scripted_orders"] == 2
    first, second = erp.orders["INC-1"], erp.orders["INC-2"]
    assert at(first.created_at, played) == 10.5 * 3600
    assert at(second.released_at, played) == 20 * 3600 + 15 * 60 + 30
    assert [(x["line"], x["sku"], x["qty"]) for x in first.lines] == [
        (1, "SKU-00001", 3),
        (2, "SKU-00002", 2),
    ]
    assert (first.service_level, second.service_level) == ("standard", "express")
    # What the script leaves out is drawn, keyed by the order id.
    customer, ship_to = people(5).customer(Draws(5, "order", "INC-1", "content"))
    assert first.ship_to == ship_to and first.customer == customer
    assert second.ship_to["name"] == "Ada Lovelace" and second.customer["name"] == "Ada Lovelace"
    assert second.customer["email"]  # drawn: the vendors' APIs require one
    assert world.customers.released_at["INC-2"] == 20 * 3600 + 15 * 60 + 30
    for order_id in ("INC-1", "INC-2"):
        assert erp.orders[order_id].status == "delivered"
        assert fo_of(played, order_id).status == "shipped"


def test_the_day_keeps_arriving_until_the_last_scripted_order_is_placed():
    scripted = day(BESIDE)
    evening = play(scripted, until=20 * 3600)  # generated demand closed at 18:00
    assert evening.world.customers.arriving
    assert evening.world.floor_needed()
    assert "INC-2" not in evening.models["erp"].orders
    later = play(scripted, until=21 * 3600)
    assert not later.world.customers.arriving
    assert "INC-2" in later.models["erp"].orders


def test_a_scripted_order_drawn_with_a_typo_is_corrected_by_customer_service():
    played = play(
        day(
            "seed: 2\ndemand: {orders: 0, address_error_rate: 1.0}\n"
            "orders: [{id: TYPO-1, at: '09:00', lines: [{sku: SKU-00001, qty: 1}]}]"
        )
    )
    order = played.models["erp"].orders["TYPO-1"]
    assert played.world.counts["address_corrected"] == 1
    assert order.ship_to == people(2).customer(Draws(2, "order", "TYPO-1", "content"))[1]
    assert order.status == "delivered"


# -- picks -------------------------------------------------------------------------------
PICKS = """
seed: 8
demand: {orders: 30}
catalogue: {skus: 10, initial_stock: 500}
warehouse: {short_pick_rate: 1.0}
orders:
  - id: INC-1
    at: "09:00"
    lines: [{sku: SKU-00001, qty: 3}, {sku: SKU-00002, qty: 4}, {sku: SKU-00003, qty: 2}]
timeline:
  - pick: {order: INC-1, line: 2, short: 1}
    at: "11:45"
  - pick: {order: INC-1, line: 3, short: 2}
"""


def test_a_scripted_pick_is_short_by_exactly_the_script_and_done_when_it_says():
    played = play(day(PICKS))
    fo = fo_of(played, "INC-1")
    # Every generated line is mis-picked (short_pick_rate 1.0); the scripted order's line 1,
    # which the script leaves out, is picked whole.
    assert [(x.line, x.picked_qty, x.short_qty) for x in fo.lines] == [
        (1, 3, 0),
        (2, 3, 1),
        (3, 0, 2),
    ]
    assert at(status_at(fo, "picked"), played) == 11.75 * 3600
    assert played.world.counts["scripted_picks"] == 1
    assert played.world.incidents == []
    assert shelves_agree(played)
    backorders = played.models["erp"].backorders.values()
    assert sorted(
        (b.order_id, line["sku"], line["qty"])
        for b in backorders
        for line in b.lines
        if b.order_id == "INC-1"
    ) == [("INC-1", "SKU-00002", 1), ("INC-1", "SKU-00003", 2)]


def test_a_pick_the_shelf_cannot_give_takes_what_is_there_and_says_so():
    played = play(
        day(
            "seed: 3\ndemand: {orders: 0}\ncatalogue: {skus: 4, initial_stock: 2}\n"
            "stock: {replenishment: {reorder_at: 0}}\n"
            "orders: [{id: BIG, at: '09:00', lines: [{sku: SKU-00001, qty: 5}, "
            "{sku: SKU-00002, qty: 1}]}]\n"
            "timeline: [{pick: {order: BIG, line: 1, short: 1}}]"
        )
    )
    fo = fo_of(played, "BIG")
    assert [(x.picked_qty, x.short_qty) for x in fo.lines] == [(2, 3), (1, 0)]
    assert played.world.shelves.good["SKU-00001"] == 0
    assert shelves_agree(played)
    (incident,) = played.world.incidents
    assert "BIG: the script could not be followed" in incident
    assert "picks 4 of SKU-00001" in incident and "held 2" in incident


def test_a_scripted_pick_of_a_generated_order_and_a_duplicate_fo_left_alone():
    played = play(
        day(
            "seed: 4\ndemand: {orders: 10}\nwarehouse: {short_pick_rate: 0}\n"
            "timeline: [{pick: {order: SO-000003, line: 1, short: 1}}]"
        )
    )
    fo = fo_of(played, "SO-000003")
    assert fo.lines[0].short_qty == 1 and fo.lines[0].picked_qty == fo.lines[0].qty - 1
    shorts = {
        f.order_ref
        for f in played.models["wms"].orders.values()
        if any(x.short_qty for x in f.lines)
    }
    assert shorts == {"SO-000003"}


# -- calls -------------------------------------------------------------------------------
CALLS = f"""
seed: 6
demand: {{orders: 0}}
warehouse: {{short_pick_rate: 0, waves: {{every_minutes: 60, lead_minutes: 30}}}}
orders:
  - {{id: A, at: "09:05", lines: [{{sku: SKU-00001, qty: 1}}]}}
  - {{id: B, at: "09:05", lines: [{{sku: SKU-00002, qty: 1}}]}}
  - {{id: C, at: "09:05", lines: [{{sku: SKU-00003, qty: 1}}]}}
  - {{id: D, at: "09:05", lines: [{{sku: SKU-00004, qty: 1}}]}}
timeline:
  - {{cancel: A, at: "09:10"}}
  - {{cancel: B, at: "11:00"}}
  - {{address: {{order: C, ship_to: {ADA}}}, at: "09:20"}}
  - {{address: {{order: D, ship_to: {ADA}}}, at: "12:00"}}
  - {{cancel: A, at: "09:05"}}
"""


def test_scripted_calls_reach_customer_service_at_their_times_under_its_rules():
    played = play(day(CALLS))
    erp, counts = played.models["erp"], played.world.counts
    # A's wave (10:00) is planned at 09:30: the call at 09:05, placed in the same moment,
    # comes after the order exists and is accepted; the one at 09:10 finds it cancelled.
    assert erp.orders["A"].status == "cancelled"
    assert [h["at"][11:16] for h in erp.orders["A"].status_history][-1] == "09:05"
    # B's call comes after its wave went out: refused, and B ships.
    assert erp.orders["B"].status == "delivered"
    assert counts["cancelled"] == 1 and counts["cancel_refused"] == 2
    assert erp.orders["C"].ship_to["name"] == "Ada Lovelace"
    assert fo_of(played, "C").ship_to["street"] == "Main 1"  # the stack carried it over
    assert erp.orders["D"].ship_to["name"] != "Ada Lovelace"
    assert counts["address_changed"] == 1 and counts["address_change_refused"] == 1
    assert played.failed_oracles() == {}


def test_a_scripted_correction_is_taken_after_the_warehouse_started_a_move_is_not():
    """Customer service fixing a typo is accepted until the order leaves (as the generated
    day's corrections are); a customer's move only before the warehouse starts."""
    late = CALLS + f'  - {{address: {{order: B, ship_to: {ADA}, correction: true}}, at: "12:00"}}\n'
    played = play(day(late))
    erp, counts = played.models["erp"], played.world.counts
    assert erp.orders["B"].ship_to["name"] == "Ada Lovelace"  # corrected after its wave
    assert erp.orders["D"].ship_to["name"] != "Ada Lovelace"  # moved too late: refused
    assert counts["address_corrected"] == 1 and counts["address_change_refused"] == 1


# -- scans -------------------------------------------------------------------------------
SCANS = """
seed: 9
demand: {orders: 0}
carrier: {settle_after_hours: 2}
orders:
  - {id: P, at: "09:00", lines: [{sku: SKU-00001, qty: 1}]}
  - {id: Q, at: "09:00", lines: [{sku: SKU-00002, qty: 1}]}
timeline:
  - scans:
      order: P
      events:
        - {status: picked_up, at: "10:00"}
        - {status: in_transit, at: "day 1 03:10:20"}
        - {status: exception, at: "day 1 08:00"}
        - {status: in_transit, at: "day 2 07:00"}
        - {status: out_for_delivery, at: "day 2 08:30"}
        - {status: delivered, at: "day 2 11:11"}
  - scans:
      order: Q
      events:
        - {status: picked_up, at: "day 0 18:00"}
        - {status: in_transit, at: "day 1 06:00"}
"""


def test_scripted_scans_reach_the_erp_with_exactly_those_times_and_settle_after_delivery():
    played = play(day(SCANS))
    erp, world = played.models["erp"], played.world
    history = [
        (h["status"], at(h["occurred_at"], played)) for h in erp.orders["P"].tracking_history
    ]
    assert history == [
        ("picked_up", 17 * 3600),  # before the truck took it: scanned when it did (cut-off)
        ("in_transit", DAY + 3 * 3600 + 10 * 60 + 20),
        ("exception", DAY + 8 * 3600),
        ("in_transit", 2 * DAY + 7 * 3600),
        ("out_for_delivery", 2 * DAY + 8.5 * 3600),
        ("delivered", 2 * DAY + 11 * 3600 + 11 * 60),
    ]
    assert erp.orders["P"].status == "delivered"
    (accrual,) = [a for a in erp.accruals.values() if a.order_id == "P"]
    assert at(accrual.posted_at, played) == 2 * DAY + 13 * 3600 + 11 * 60
    assert world.counts["exceptions"] == 1 and world.counts["delivered"] == 1
    # Q is never delivered in the script: it stays on the road, and the world busy with it.
    assert [h["status"] for h in erp.orders["Q"].tracking_history] == ["picked_up", "in_transit"]
    assert erp.orders["Q"].status == "shipped"
    assert world.road.on_road == 1 and world.busy()
    assert world.incidents == []


def test_a_scan_the_carrier_refuses_is_an_incident_and_the_journey_goes_on():
    played = play(
        day(
            "seed: 9\ndemand: {orders: 0}\n"
            "orders: [{id: P, at: '09:00', lines: [{sku: SKU-00001, qty: 1}]}]\n"
            "timeline:\n  - scans: {order: P, events: ["
            "{status: out_for_delivery, at: 'day 1 08:00'},"
            " {status: picked_up, at: 'day 1 09:00'}, {status: delivered, at: 'day 1 12:00'}]}\n"
        )
    )
    (incident,) = played.world.incidents
    assert "P: the script could not be followed: scan picked_up at day 1 09:00 " in incident
    assert played.models["erp"].orders["P"].status == "delivered"
    assert played.world.road.on_road == 0 and not played.world.busy()


# -- stock -------------------------------------------------------------------------------
STOCK = """
seed: 1
demand: {orders: 0}
catalogue: {skus: 5, initial_stock: 10}
timeline:
  - {receipt: {sku: SKU-00002, qty: 25}, at: "11:00"}
  - {adjustment: {sku: SKU-00003, delta: -4, reason: damage}, at: "12:00"}
  - {adjustment: {sku: SKU-00004, delta: 3, reason: found}, at: "12:00"}
  - {receipt: {sku: SKU-00002, qty: 5}, at: "day 1 08:00"}
"""


def test_scripted_receipts_and_adjustments_reach_the_erp_and_the_shelves_agree():
    played = play(day(STOCK))
    erp, shelves = played.models["erp"], played.world.shelves
    receipts = sorted((r.reference, r.lines[0]["qty"]) for r in erp.receipts.values())
    assert receipts == [("RC-SKU-00002-S001", 25), ("RC-SKU-00002-S002", 5)]
    adjustments = sorted((a.sku, a.delta, a.reason) for a in erp.adjustments.values())
    assert adjustments == [("SKU-00003", -4, "damage"), ("SKU-00004", 3, "found")]
    assert erp.on_hand("SKU-00002") == 40 and erp.on_hand("SKU-00003") == 6
    assert (shelves.good["SKU-00002"], shelves.good["SKU-00003"]) == (40, 6)
    assert shelves_agree(played)
    last = max(erp.receipts.values(), key=lambda r: r.posted_at)
    assert at(last.posted_at, played) == DAY + 8 * 3600  # the run waited for it
    assert played.failed_oracles() == {}


def test_an_adjustment_larger_than_the_shelf_empties_it_and_says_so():
    played = play(
        day(
            "demand: {orders: 0}\ncatalogue: {skus: 2, initial_stock: 10}\n"
            "timeline: [{adjustment: {sku: SKU-00001, delta: -12}, at: '10:00'}]"
        )
    )
    # The WMS refuses a change below zero; nothing moves and the incident names it.
    assert played.world.shelves.good["SKU-00001"] == 10
    assert any("SKU-00001: the WMS refused an adjustment" in i for i in played.world.incidents)


# -- the same fate -----------------------------------------------------------------------
FATEFUL = """
seed: 21
demand: {orders: 40, cancel_rate: 0.15, lines_per_order: {min: 1, max: 3}}
catalogue: {skus: 8, initial_stock: 12}
warehouse:
  short_pick_rate: 0.1
  waves: {every_minutes: 30, lead_minutes: 10}
stock: {replenishment: {reorder_at: 0.3, lead_time_hours: 5}}
carrier: {exception_rate: 0.2}
"""


def fates(played: Played) -> dict[str, tuple[Any, ...]]:
    """Per order: its ERP status, picked and short qty per line, ship day, delivery time."""
    erp, wms, carrier = (played.models[s] for s in ("erp", "wms", "carrier"))
    result: dict[str, tuple[Any, ...]] = {}
    for ref, order in erp.orders.items():
        if order.status == "cancelled":
            result[ref] = ("cancelled",)
            continue
        fo = wms.orders[wms.by_ref[ref][0]]
        events = carrier.track(fo.label.tracking_number).events if fo.label else []
        delivered = next((e["occurred_at"] for e in events if e["status"] == "delivered"), None)
        lines = tuple((x.line, x.picked_qty, x.short_qty) for x in fo.lines)
        shipped = next((h["at"][:10] for h in fo.status_history if h["status"] == "shipped"), "")
        result[ref] = (order.status, lines, shipped, delivered)
    return result


def test_a_generated_day_rewritten_as_scripted_orders_keeps_every_orders_fate():
    generated = scenario.parse(FATEFUL)
    before = play(generated)
    erp, customers = before.models["erp"], before.world.customers
    assert before.world.counts["cancelled"] and before.world.counts["short_lines"]
    scripted = tuple(
        ScriptedOrder.model_validate(
            {
                "id": order.id,
                "at": customers.released_at[order.id],
                "lines": [{"sku": x["sku"], "qty": x["qty"]} for x in order.lines],
                "service_level": order.service_level,
                "ship_to": order.ship_to,
                "customer": order.customer,
            }
        )
        for order in reversed(erp.orders.values())  # the file's order does not matter
    )
    rewritten = generated.model_copy(
        update={"demand": generated.demand.model_copy(update={"orders": 0}), "orders": scripted}
    )
    after = play(rewritten)
    assert after.world.counts["scripted_orders"] == 40
    assert fates(after) == fates(before)
    # Scripting one order's pick changes that order's line; the others keep their fates but
    # for those that compete with it for the units it leaves on the shelf.
    chosen = next(
        ref
        for ref, fate in fates(before).items()
        if fate[0] != "cancelled" and fate[1][0][2] == 0 and erp.orders[ref].lines[0]["qty"] > 1
    )
    qty = erp.orders[chosen].lines[0]["qty"]
    pick = {"pick": {"order": chosen, "line": 1, "short": qty - 1}}
    picked = rewritten.model_copy(update={"timeline": (TimelineEntry.model_validate(pick),)})
    changed = fates(play(picked))
    assert changed[chosen][1][0] == (1, 1, qty - 1)
    sku = erp.orders[chosen].lines[0]["sku"]
    moved = {ref for ref, fate in changed.items() if fate != fates(before)[ref]} - {chosen}
    assert all(sku in {x["sku"] for x in erp.orders[ref].lines} for ref in moved)


# -- scenario files ----------------------------------------------------------------------
ORDER = "{id: %s, at: '09:00', lines: [{sku: SKU-00001, qty: 2}]}"


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        (
            f"demand: {{orders: 0}}\norders:\n  - {ORDER % 'A'}\n  - {ORDER % 'A'}\n",
            "4",
            "orders.1.id",
            "A is placed twice",
        ),
        (
            f"demand: {{orders: 5}}\norders:\n  - {ORDER % 'SO-000001'}\n",
            "3",
            "orders.0.id",
            "the form of a generated order's id",
        ),
        (
            "demand: {orders: 0}\ncatalogue: {skus: 3}\norders:\n  - id: A\n    at: '09:00'\n"
            "    lines:\n      - {sku: SKU-00001, qty: 1}\n      - {sku: SKU-00004, qty: 1}\n",
            "8",
            "orders.0.lines.1.sku",
            "SKU-00004 is not in the catalogue (SKU-00001 to SKU-00003",
        ),
        (
            f"demand: {{orders: 0}}\norders: [{ORDER % 'A'}]\ntimeline:\n"
            "  - {cancel: B, at: '10:00'}\n",
            "4",
            "timeline.0.cancel",
            "no order B is placed",
        ),
        (
            "demand: {orders: 5}\ntimeline:\n  - {cancel: SO-000006, at: '10:00'}\n",
            "3",
            "timeline.0.cancel",
            "no order SO-000006 is placed",
        ),
        (
            f"demand: {{orders: 0}}\norders: [{ORDER % 'A'}]\ntimeline:\n"
            "  - pick: {order: A, line: 2, short: 0}\n",
            "4",
            "timeline.0.pick.line",
            "A has 1 line(s)",
        ),
        (
            f"demand: {{orders: 0}}\norders: [{ORDER % 'A'}]\ntimeline:\n"
            "  - pick: {order: A, line: 1, short: 3}\n",
            "4",
            "timeline.0.pick.short",
            "short is more than the line's qty",
        ),
        (
            f"demand: {{orders: 0}}\norders: [{ORDER % 'A'}]\ntimeline:\n"
            "  - pick: {order: A, line: 1, short: 1}\n  - pick: {order: A, line: 1, short: 0}\n",
            "5",
            "timeline.1.pick",
            "line 1 of A is picked in timeline.0 already",
        ),
        (
            f"demand: {{orders: 0}}\norders: [{ORDER % 'A'}]\ntimeline:\n"
            "  - scans: {order: A, events: [{status: picked_up, at: '17:00'}]}\n"
            "  - scans: {order: A, events: [{status: delivered, at: 'day 1 12:00'}]}\n",
            "5",
            "timeline.1.scans",
            "the scans of A are in timeline.0 already",
        ),
        (
            f"horizon_days: 2\ndemand: {{orders: 0}}\norders: [{ORDER % 'A'}]\ntimeline:\n"
            "  - scans:\n      order: A\n      events:\n"
            "        - {status: picked_up, at: '17:00'}\n"
            "        - {status: delivered, at: 'day 2 09:00'}\n",
            "9",
            "timeline.0.scans.events.1.at",
            "it would never be scanned",
        ),
        (
            "horizon_days: 1\ndemand: {orders: 0}\norders:\n"
            "  - {id: A, at: 'day 1 09:00', lines: [{sku: SKU-00001, qty: 1}]}\n",
            "4",
            "orders.0.at",
            "never placed",
        ),
        (
            "demand: {orders: 0}\ntimeline:\n"
            "  - {receipt: {sku: SKU-99999, qty: 1}, at: '10:00'}\n",
            "3",
            "timeline.0.receipt.sku",
            "SKU-99999 is not in the catalogue",
        ),
        (
            "demand: {orders: 0}\ntimeline:\n  - {adjustment: {sku: SKU-00001, delta: 1}}\n",
            "3",
            "timeline.0",
            "a adjustment needs at",
        ),
        (
            f"demand: {{orders: 0}}\norders: [{ORDER % 'A'}]\ntimeline:\n"
            "  - {cancel: A, receipt: {sku: SKU-00001, qty: 1}, at: '10:00'}\n",
            "4",
            "timeline.0",
            "this one has cancel, receipt",
        ),
        (
            "demand: {orders: 0}\norders:\n  - id: A\n    at: '25:00'\n"
            "    lines: [{sku: SKU-00001, qty: 1}]\n",
            "4",
            "orders.0.at",
            "HH:MM[:SS]",
        ),
        (
            "demand: {orders: 0}\norders:\n  - id: A\n    at: '09:00'\n"
            "    ship_to: {name: '', street: s, city: c, postal_code: '1', country: de}\n"
            "    lines: [{sku: SKU-00001, qty: 1}]\n",
            "5",
            "orders.0.ship_to.country",
            "should match pattern",
        ),
    ],
    ids=[
        "twice",
        "generated-form",
        "unknown-sku",
        "unplaced",
        "beyond-generated",
        "pick-line",
        "pick-short",
        "pick-twice",
        "scans-twice",
        "scan-after-horizon",
        "order-after-horizon",
        "receipt-sku",
        "no-at",
        "two-kinds",
        "bad-time",
        "bad-country",
    ],
)
def test_a_broken_script_names_file_line_and_field(text, line, field, words, tmp_path, capsys):
    path = tmp_path / "day.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    said = capsys.readouterr()
    lines = (said.err + said.out).strip().splitlines()
    hit = [e for e in lines if f"{path}:{line}: {field}: " in e and words in e]
    assert hit, lines


def test_a_good_script_validates():
    for text in (BESIDE, PICKS, CALLS, SCANS, STOCK):
        assert day(text).orders or day(text).timeline


# -- through the reference stack -----------------------------------------------------------
THROUGH_THE_STACK = f"""
name: scripted_incident
seed: 3
demand: {{orders: 6}}
catalogue: {{skus: 6, initial_stock: 50}}
warehouse: {{short_pick_rate: 0, waves: {{every_minutes: 60, lead_minutes: 30}}}}
orders:
  - id: INC-4711
    at: "10:12"
    ship_to: {ADA}
    lines: [{{sku: SKU-00001, qty: 2}}, {{sku: SKU-00002, qty: 3}}]
  - id: INC-4712
    at: "10:14"
    lines: [{{sku: SKU-00003, qty: 1}}]
timeline:
  - pick: {{order: INC-4711, line: 2, short: 1}}
  - {{cancel: INC-4712, at: "10:20"}}
  - scans:
      order: INC-4711
      events:
        - {{status: picked_up, at: "17:30"}}
        - {{status: in_transit, at: "21:05"}}
        - {{status: delivered, at: "day 1 10:42:05"}}
  - {{receipt: {{sku: SKU-00005, qty: 12}}, at: "13:00"}}
  - {{adjustment: {{sku: SKU-00006, delta: -2, reason: damage}}, at: "14:00"}}
capsule:
  source: incident-4711.har
  unmapped:
    - "erp PATCH /orders/INC-4711 (customer note): no scripted form"
    - "wms GET /stock (polled 40 times)"
    - "carrier webhook tracking.updated of PC-OTHER: no order"
    - "tms quote requests"
"""


@pytest.mark.e2e
def test_a_scripted_day_through_the_reference_stack(tmp_path, capsys):
    import jsonschema_rs

    path = tmp_path / "incident.yaml"
    path.write_text(THROUGH_THE_STACK)
    report = tmp_path / "report"
    assert main(["run", str(path), "--quiet", "--report-dir", str(report)]) == 0
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if "this replay skips" in x]
    assert "this replay skips 4 things its recording held: erp PATCH /orders/INC-4711" in line
    assert "(+1 more)" in line and "see verdict.json" in line

    verdict = json.loads((report / "verdict.json").read_text())
    schema = json.loads((Path(__file__).parent.parent / "docs" / "verdict.schema.json").read_text())
    jsonschema_rs.validator_for(schema).validate(verdict)
    assert verdict["capsule"]["source"] == "incident-4711.har"
    assert len(verdict["capsule"]["unmapped"]) == 4
    assert verdict["counts"]["released"] == 8 and verdict["counts"]["scripted_orders"] == 2

    erp = json.loads((report / "state.json").read_text())["erp"]
    orders = {o["id"]: o for o in erp["orders"]}
    incident = orders["INC-4711"]
    assert incident["created_at"] == "2026-11-23T10:12:00Z"
    assert [(x["sku"], x["qty"]) for x in incident["lines"]] == [("SKU-00001", 2), ("SKU-00002", 3)]
    assert incident["ship_to"]["name"] == "Ada Lovelace"
    assert incident["status"] == "delivered"
    assert [(h["status"], h["occurred_at"]) for h in incident["tracking_history"]] == [
        ("picked_up", "2026-11-23T17:30:00Z"),
        ("in_transit", "2026-11-23T21:05:00Z"),
        ("delivered", "2026-11-24T10:42:05Z"),
    ]
    (backorder,) = [b for b in erp["backorders"] if b["order_id"] == "INC-4711"]
    assert [(x["sku"], x["qty"]) for x in backorder["lines"]] == [("SKU-00002", 1)]
    assert orders["INC-4712"]["status"] == "cancelled"
    assert [(r["lines"][0]["sku"], r["lines"][0]["qty"]) for r in erp["receipts"]] == [
        ("SKU-00005", 12)
    ]
    assert [(a["sku"], a["delta"], a["reason"]) for a in erp["adjustments"]] == [
        ("SKU-00006", -2, "damage")
    ]


def test_a_day_without_a_capsule_says_nothing_of_one():
    from io import StringIO

    from rich.console import Console

    from harness.report import terminal, verdict_json
    from harness.runner import RunOutcome

    plain = RunOutcome(scenario.parse("name: x"), None, [], {}, 0.0, 0.0, 0)
    assert verdict_json.capsule(plain) is None
    assert terminal.skipped_line(plain) is None
    imported = RunOutcome(
        scenario.parse("name: x\ncapsule: {source: rec.har, unmapped: ['[red]x[/] thing']}"),
        None,
        [],
        {},
        0.0,
        0.0,
        0,
    )
    assert verdict_json.capsule(imported) == {"source": "rec.har", "unmapped": ["[red]x[/] thing"]}
    shown = StringIO()
    terminal.render(imported, Console(file=shown, width=300))
    (line,) = [x for x in shown.getvalue().splitlines() if "skips" in x]
    assert "this replay skips 1 thing its recording held: [red]x[/] thing;" in line
