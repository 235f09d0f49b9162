"""Demand: arrivals follow the curve, orders look like orders, customers cancel only in time.

Statistical checks run over many seeds; tolerances are stated as standard deviations of the
binomial count they test (4 sigma: a correct world fails about once in 16,000 runs, and
every seed is fixed, so a run that passes once passes always).
"""

from __future__ import annotations

import math
from collections import Counter

import pytest

from harness import scenario
from harness.world.catalogue import Catalogue
from harness.world.curves import PROFILES, hourly_weights, segments
from harness.world.demand import arrival_times
from harness.world.integrator import play
from harness.world.people import people
from harness.world.randomness import Draws

SIGMAS = 4.0


def within(observed: int, trials: int, p: float) -> bool:
    sigma = math.sqrt(trials * p * (1 - p)) or 1.0
    return abs(observed - trials * p) <= SIGMAS * sigma


def hourly_counts(demand, seeds: range) -> tuple[Counter[int], int]:
    counts: Counter[int] = Counter()
    total = 0
    for seed in seeds:
        times = arrival_times(seed, demand)
        assert times == sorted(times) and len(times) == demand.orders
        counts.update(int(t // 3600) for t in times)
        total += len(times)
    return counts, total


@pytest.mark.parametrize("curve", ["flat", "peak_monday", "evening"])
def test_arrivals_per_hour_follow_the_named_curve_within_4_sigma(curve):
    demand = scenario.parse(
        f'demand: {{orders: 2000, open: "00:00", close: "23:59", curve: {curve}}}'
    ).demand
    counts, total = hourly_counts(demand, range(40))
    stretches = segments(PROFILES[curve], 0, 23 * 3600 + 59 * 60)
    mass = sum(m for _, _, m in stretches)
    for start, _, weight in stretches:
        hour = int(start // 3600)
        assert within(counts[hour], total, weight / mass), (hour, counts[hour], total)


def test_arrivals_only_where_the_curve_has_weight_and_the_shop_is_open():
    weights = [1.0] * 24
    weights[12] = 0.0  # nobody orders over lunch
    weights[9] = 5.0
    text = f'demand: {{orders: 3000, open: "07:30", close: "17:15", curve: {weights}}}'
    demand = scenario.parse(text).demand
    counts, total = hourly_counts(demand, range(10))
    assert counts[12] == 0
    assert set(counts) == set(range(7, 18)) - {12}
    for seed in range(10):
        times = arrival_times(seed, demand)
        assert times[0] >= 7.5 * 3600 and times[-1] < 17.25 * 3600
    # The clipped half hour at 07:30 and quarter at 17:00 get their share of the weight.
    mass = sum(m for _, _, m in segments(hourly_weights(weights), 7.5 * 3600, 17.25 * 3600))
    assert within(counts[7], total, 1800 / mass)
    assert within(counts[9], total, 5 * 3600 / mass)
    assert within(counts[17], total, 900 / mass)


def test_orders_have_lines_qty_and_service_levels_as_the_scenario_says():
    day = scenario.parse(
        "seed: 3\ndemand: {orders: 50, lines_per_order: {min: 2, max: 4}, "
        "qty_per_line: {min: 1, max: 5}, express_share: 0.25}\ncatalogue: {skus: 60}"
    )
    played = play(day, until=1.0)  # the world built, nothing arrived yet
    customers = played.world.customers
    orders = [customers.order(n) for n in range(1, 4001)]
    for order in orders:
        skus = [line["sku"] for line in order["lines"]]
        assert 2 <= len(skus) <= 4 and len(set(skus)) == len(skus)
        assert all(1 <= line["qty"] <= 5 for line in order["lines"])
        to = order["ship_to"]
        assert to["country"] == "DE" and to["postal_code"].strip() and to["street"] and to["city"]
        assert order["customer"]["email"].isascii() and "@" in order["customer"]["email"]
    express = sum(o["service_level"] == "express" for o in orders)
    assert within(express, len(orders), 0.25)
    assert customers.order(17) == customers.order(17)  # keyed by its place in the day


def test_a_share_of_orders_repeats_a_sku_on_its_last_line_and_nothing_else_moves():
    text = "seed: 3\ndemand: {orders: 50, lines_per_order: {min: 1, max: 4}}\ncatalogue: {skus: 60}"
    plain = play(scenario.parse(text), until=1.0).world.customers
    repeating = play(
        scenario.parse(text.replace("max: 4}", "max: 4}, repeat_sku_rate: 0.3")), until=1.0
    ).world.customers
    repeated = 0
    for n in range(1, 4001):
        order, again = plain.order(n), repeating.order(n)
        skus = [line["sku"] for line in again["lines"]]
        if len(set(skus)) < len(skus):
            repeated += 1
            assert len(skus) > 1 and skus[-1] == skus[0] and len(set(skus)) == len(skus) - 1
            assert again["lines"][:-1] == order["lines"][:-1]  # only the last line's SKU differs
            assert again["lines"][-1]["qty"] == order["lines"][-1]["qty"]
        else:
            assert again == order  # the share's draw is one of its own: the rest is the same day
    several = sum(len(plain.order(n)["lines"]) > 1 for n in range(1, 4001))
    assert within(repeated, several, 0.3)


def test_a_share_of_orders_goes_abroad_with_that_countrys_addresses_and_nothing_else_moves():
    from harness.world.people import ABROAD

    text = "seed: 5\ndemand: {orders: 50}\ncatalogue: {skus: 60}"
    home = play(scenario.parse(text), until=1.0).world.customers
    mixed = play(
        scenario.parse(text.replace("orders: 50", "orders: 50, abroad_share: 0.3")), until=1.0
    ).world.customers
    abroad = Counter()
    for n in range(1, 3001):
        order, again = home.order(n), mixed.order(n)
        country = again["ship_to"]["country"]
        assert {k: v for k, v in again.items() if k not in ("customer", "ship_to")} == {
            k: v for k, v in order.items() if k not in ("customer", "ship_to")
        }  # the country's draw is one of its own: lines and service stay as they were
        if country == "DE":
            assert again == order
            continue
        abroad[country] += 1
        assert country in ABROAD and again["ship_to"]["postal_code"].strip()
        assert again["customer"]["name"] == again["ship_to"]["name"]
        assert mixed.order_address(n) == again["ship_to"]  # the address it should have had
    assert within(sum(abroad.values()), 3000, 0.3)
    assert set(abroad) == set(ABROAD)  # every country abroad comes up


@pytest.mark.parametrize("s", [0.0, 1.0, 1.5])
def test_sku_popularity_is_zipf_within_4_sigma(s):
    catalogue = Catalogue.build(40, 500, zipf_s=s)
    draws = [catalogue.draw_skus(Draws(7, "popularity", n), 1)[0] for n in range(20_000)]
    counts = Counter(draws)
    for index in (0, 1, 2, 10, 39):
        assert within(counts[catalogue.skus[index]], len(draws), catalogue.share(index)), index


def test_stock_can_follow_popularity():
    even = Catalogue.build(50, 200).stock()
    deep = Catalogue.build(50, 200, by_popularity=True).stock()
    assert set(even.values()) == {200}
    assert deep["SKU-00001"] > 10 * deep["SKU-00050"] >= 10
    assert sum(deep.values()) == pytest.approx(50 * 200, rel=0.01)


def test_customer_pools_are_built_once_per_seed_and_keyed_by_it():
    assert people(1) is people(1)
    assert people(1).first_names != people(2).first_names
    one = people(1).customer(Draws(1, "order", 5, "content"))
    assert one == people(1).customer(Draws(1, "order", 5, "content"))


CANCELLING = """
seed: {seed}
demand:
  orders: 600
  cancel_rate: 0.3
  cancel_after: {{min_minutes: 1, mean_minutes: 25, max_minutes: 240}}
warehouse:
  waves: {{every_minutes: {every}, lead_minutes: 10}}
"""


@pytest.mark.parametrize("every", [30, 0], ids=["waves", "no-waves"])
def test_cancellations_are_accepted_only_before_picking_starts(every):
    calls = accepted = 0
    for seed in range(4):
        played = play(scenario.parse(CANCELLING.format(seed=seed, every=every)))
        assert played.failed_oracles() == {}
        erp, wms, counts = played.models["erp"], played.models["wms"], played.world.counts
        for ref, order in erp.orders.items():
            if order.status != "cancelled":
                continue
            for fo_id in wms.by_ref.get(ref, []):
                history = [h["status"] for h in wms.orders[fo_id].status_history]
                assert history == ["accepted", "cancelled"], (ref, history)
        assert counts["cancel_refused"] > 0, "some customers call after picking started"
        calls += counts["cancelled"] + counts["cancel_refused"]
        accepted += counts["cancelled"]
    assert within(calls, 4 * 600, 0.3)
    assert accepted > 0


def test_a_customer_calling_after_the_order_shipped_is_told_no():
    played = play(scenario.parse("seed: 2\ndemand: {orders: 20}"))
    customers, erp = played.world.customers, played.models["erp"]
    shipped = next(ref for ref, o in erp.orders.items() if o.status == "delivered")
    assert not customers.call_to_cancel(shipped)
    assert erp.orders[shipped].status == "delivered"


ADDRESSES = """
seed: {seed}
demand:
  orders: 200
  address_error_rate: 0.2
  address_change_rate: 0.2
  address_change_after: {{min_minutes: 1, mean_minutes: 20, max_minutes: 120}}
warehouse: {{waves: {{every_minutes: 30, lead_minutes: 10}}}}
"""


def test_refused_addresses_are_corrected_and_moves_accepted_only_before_picking():
    errors = corrected = changed = refused = 0
    for seed in range(3):
        played = play(scenario.parse(ADDRESSES.format(seed=seed)))
        assert played.failed_oracles() == {}
        erp, carrier, counts = played.models["erp"], played.models["carrier"], played.world.counts
        customers = played.world.customers
        errors += len(customers.true_addresses)
        corrected += counts["address_corrected"]
        changed += counts["address_changed"]
        refused += counts["address_change_refused"]
        for ref, true_address in customers.true_addresses.items():
            order = erp.orders[ref]
            assert order.ship_to["postal_code"], f"{ref} was never corrected"
            if order.ship_to["street"] == true_address["street"]:
                assert order.ship_to == true_address  # corrected, not moved
        # every label goes to the address the ERP holds (the oracle checks it too)
        for label in carrier.labels.values():
            assert label.ship_to["postal_code"]
    assert within(errors, 600, 0.2)
    assert corrected > 0 and changed > 0 and refused > 0


def test_customers_who_call_again_move_the_delivery_twice_and_nothing_else_moves():
    """``address_change_again_rate``: a second call has draws of its own, so every order ends
    at the address it had without it except those whose second call was accepted."""
    base = ADDRESSES.format(seed=1)
    again = base.replace(
        "  address_change_after:", "  address_change_again_rate: 1.0\n  address_change_after:"
    )
    once, twice = play(scenario.parse(base)), play(scenario.parse(again))
    assert twice.failed_oracles() == {}
    seconds = twice.world.counts["address_changed"] - once.world.counts["address_changed"]
    assert seconds > 0
    first, second = once.models["erp"].orders, twice.models["erp"].orders
    moved_again = [ref for ref, order in second.items() if order.ship_to != first[ref].ship_to]
    assert len(moved_again) == seconds


def test_express_over_the_carriers_daily_capacity_ships_ground_the_same_day():
    text = (
        "seed: 4\ndemand: {orders: 80, express_share: 0.6}\ncarrier: {express_capacity_per_day: 5}"
    )
    played = play(scenario.parse(text))
    assert played.failed_oracles() == {}
    shipments = played.models["tms"].shipments.values()
    express_by_day = Counter(s.created_at[:10] for s in shipments if s.service == "express")
    assert express_by_day and max(express_by_day.values()) == 5
    erp = played.models["erp"]
    downgraded = [
        s
        for s in shipments
        if s.service == "ground" and erp.orders[s.order_ref].service_level == "express"
    ]
    assert downgraded  # the rest of the express orders went ground
