"""Two feed faults that make a polling client's watermark bugs certain (docs/feeds.md):
``feed_torn_second`` (a batch commits its second in parts: the exclusive ``>`` reader loses the
rest) and ``feed_clock_skew`` (the vendor's list clock is off: the own-clock reader loses what
the vendor stamped earlier than it thought). Each through a simulator's HTTP face on a manual
clock, counted and journalled only where it changed an answer."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from harness import scenario
from simulators.common.faults import Fault
from simulators.tms.model import TmsModel
from simulators.wms.model import WmsModel
from tests.test_change_feeds import (
    SHIP_TO,
    erp,
    follow_links,
    ids,
    items,
    read_feed,
    read_list,
    released_orders,
    wms_orders,
)
from tests.test_feed_faults import applied, journalled, with_fault


def one_second_after(stamp: str) -> str:
    """What a client that reads ``>`` on whole-second stamps sends as updated_since."""
    moment = datetime.fromisoformat(stamp) + timedelta(seconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def newest_stamp(pages: list[dict[str, Any]]) -> str:
    return max(item["updated_at"] for page in pages for item in page["items"])


# -- the model ----------------------------------------------------------------------------
def test_the_new_kinds_take_their_own_parameters_and_are_labelled() -> None:
    torn = Fault.model_validate({"system": "erp", "kind": "feed_torn_second"})
    assert (torn.is_feed, torn.feed_label()) == (True, "feed_torn_second")
    behind = Fault.model_validate({"system": "erp", "kind": "feed_clock_skew", "skew_s": -180})
    assert (behind.is_feed, behind.feed_label()) == (True, "feed_clock_skew:-180s")
    ahead = Fault.model_validate({"system": "tms", "kind": "feed_clock_skew", "skew_s": 90})
    assert ahead.feed_label() == "feed_clock_skew:+90s"


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ({"kind": "feed_clock_skew"}, "needs skew_s"),
        ({"kind": "feed_clock_skew", "skew_s": 0}, "not 0"),
        ({"kind": "feed_clock_skew", "skew_s": 1.5}, "integer"),
        ({"kind": "feed_clock_skew", "skew_s": "60"}, "integer"),
        ({"kind": "feed_clock_skew", "skew_s": 86_401}, "less than or equal to 86400"),
        ({"kind": "feed_clock_skew", "skew_s": -86_401}, "greater than or equal to -86400"),
        ({"kind": "feed_clock_skew", "skew_s": 60, "rate": 0.5}, "give no match or rate"),
        ({"kind": "feed_clock_skew", "skew_s": 60, "match": "SO-1"}, "give no match or rate"),
        ({"kind": "feed_clock_skew", "skew_s": 60, "route": "GET /events"}, "change lists"),
        ({"kind": "feed_lag", "skew_s": 60}, "skew_s applies to kind feed_clock_skew"),
        ({"kind": "feed_torn_second", "lag_s": 5}, "lag_s applies to kind feed_lag"),
        ({"kind": "feed_torn_second", "event": "order.released"}, "give route, not event"),
    ],
)
def test_a_bad_feed_fault_is_refused_with_its_reason(fault: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        Fault.model_validate({"system": "erp", **fault})


def test_a_scenario_with_a_bad_skew_names_the_fault_and_the_field() -> None:
    text = "faults:\n  - {system: erp, kind: feed_clock_skew, route: GET /orders, skew_s: 100000}\n"
    with pytest.raises(scenario.ScenarioError) as refused:
        scenario.parse(text, "skew.yaml")
    assert "skew.yaml:2: faults.0.skew_s" in str(refused.value)


# -- feed_torn_second on a change list ------------------------------------------------------
def test_a_torn_second_shows_its_first_half_then_the_rest_with_the_original_stamp() -> None:
    sim, clock, client = with_fault("erp", kind="feed_torn_second", route="GET /orders")
    clock.set(3600)
    batch = released_orders(sim, 5)  # one batch job, one second: 01:00:00
    first = read_list(client, "/orders")
    assert ids(first) == batch[:2]  # the first half, rounded down
    watermark = newest_stamp(first)
    again = read_list(client, "/orders", updated_since=watermark)  # the same moment
    assert ids(again) == batch[:2]  # still committing
    clock.advance(300)  # the next poll
    inclusive = read_list(client, "/orders", updated_since=watermark)
    assert ids(inclusive) == batch  # the rest, read again with the rest: dedup by id
    assert {o["updated_at"] for o in items(inclusive)} == {"2026-11-23T01:00:00Z"}
    exclusive = read_list(client, "/orders", updated_since=one_second_after(watermark))
    assert ids(exclusive) == []  # `>` on whole seconds: three orders are never read
    assert applied(client) == {"feed_torn_second": 2}
    assert journalled(sim, "/orders") == ["feed_torn_second", "feed_torn_second", None, None]


def test_the_pages_of_a_sweep_at_the_moment_of_the_tear_never_show_the_rest() -> None:
    sim, clock, client = with_fault("erp", kind="feed_torn_second", route="GET /orders")
    older = released_orders(sim, 2)
    clock.advance(1)
    newer = released_orders(sim, 4)  # the newest second: two shown, two held back
    assert ids(read_list(client, "/orders", limit=1)) == [*older, *newer[:2]]
    clock.advance(1)
    assert ids(read_list(client, "/orders", limit=1)) == [*older, *newer]
    # only the last page of the first sweep met the torn second: it alone is counted
    assert journalled(sim, "/orders").count("feed_torn_second") == 1


def test_a_second_is_torn_once_and_only_while_it_is_the_newest() -> None:
    sim, clock, client = with_fault("erp", kind="feed_torn_second", route="GET /orders")
    (alone,) = released_orders(sim, 1)
    assert ids(read_list(client, "/orders")) == [alone]  # one record: nothing to tear
    clock.advance(10)
    pair = released_orders(sim, 2)
    assert ids(read_list(client, "/orders")) == [alone, pair[0]]
    clock.advance(10)
    trio = released_orders(sim, 3)
    # the pair's second is no longer the newest: it is whole; the trio's is torn now
    assert ids(read_list(client, "/orders")) == [alone, *pair, trio[0]]
    clock.advance(10)
    assert ids(read_list(client, "/orders")) == [alone, *pair, *trio]  # torn once, whole now
    assert applied(client) == {"feed_torn_second": 2}


def test_a_torn_second_is_left_alone_outside_the_window_and_the_route() -> None:
    sim, clock, client = with_fault(
        "erp", kind="feed_torn_second", route="GET /orders", at=100, **{"for": 100}
    )
    batch = released_orders(sim, 4)
    assert ids(read_list(client, "/orders")) == batch  # before the window
    assert [i["event"]["data"]["id"] for i in items(read_feed(client))] == batch  # /events
    clock.set(100)
    later = released_orders(sim, 4)
    assert ids(read_list(client, "/orders")) == [*batch, *later[:2]]
    clock.set(200)  # the window closed
    assert ids(read_list(client, "/orders")) == [*batch, *later]
    assert applied(client) == {"feed_torn_second": 1}


def test_clearing_the_fault_plan_forgets_the_seconds_it_tore() -> None:
    sim, clock, client = with_fault("erp", kind="feed_torn_second", route="GET /orders")
    batch = released_orders(sim, 2)
    assert ids(read_list(client, "/orders")) == batch[:1]
    clock.advance(1)  # the torn second is whole from now on, for this plan
    assert client.delete("/_sim/faults").status_code == 204
    client.post("/_sim/faults", json={"kind": "feed_torn_second", "route": "GET /orders"})
    assert ids(read_list(client, "/orders")) == batch[:1]  # a new plan tears it anew
    clock.advance(1)
    assert ids(read_list(client, "/orders")) == batch


def test_a_clock_set_back_with_a_reset_tears_the_new_day_afresh() -> None:
    """A simulator reused for another run (reset, its clock back at the start) must tear that
    run's seconds as it tore the first run's, though they are older than the last one torn."""
    sim, clock, client = with_fault("erp", kind="feed_torn_second", route="GET /orders")
    clock.set(100)
    first_day = released_orders(sim, 2)
    assert ids(read_list(client, "/orders")) == first_day[:1]
    assert client.post("/_sim/reset").status_code == 204
    clock.set(0)
    batch = released_orders(sim, 2)
    assert ids(read_list(client, "/orders")) == batch[:1]


def test_a_torn_second_on_the_wms_list_holds_back_the_rest_of_its_status_moves() -> None:
    sim, clock, client = with_fault("wms", kind="feed_torn_second", route="GET /fulfilment-orders")
    made = wms_orders(sim, clock, 1)
    clock.advance(60)
    model = sim.model
    assert isinstance(model, WmsModel)
    for ref in ("SO-A", "SO-B", "SO-C"):  # three accepted in the same second
        made.append(model.create_order(ref, SHIP_TO, "standard", [_LINE]).id)
    found, _ = follow_links(client, "/fulfilment-orders?limit=10")
    assert found == made[:2]
    clock.advance(1)
    found, _ = follow_links(client, "/fulfilment-orders?limit=10")
    assert found == made


_LINE = {"line": 1, "sku": "A-100", "qty": 1}


# -- feed_torn_second on the events feed ------------------------------------------------------
def test_a_torn_second_on_the_events_feed_only_delays_a_cursor_reader() -> None:
    sim, clock, client = with_fault("erp", kind="feed_torn_second", route="/events")
    released_orders(sim, 2)
    clock.advance(5)
    released_orders(sim, 4)  # positions 3..6 in one second
    first = read_feed(client)
    assert [i["position"] for i in items(first)] == [1, 2, 3, 4]
    assert first[-1]["has_more"] is False
    cursor = first[-1]["next_cursor"]
    assert read_feed(client, after=cursor)[0]["items"] == []  # the same moment
    clock.advance(1)
    assert [i["position"] for i in items(read_feed(client, after=cursor))] == [5, 6]  # no gap
    assert applied(client) == {"feed_torn_second": 2}


# -- feed_clock_skew ------------------------------------------------------------------------
def test_a_slow_vendor_clock_loses_the_own_clock_reader_and_not_the_stamp_reader() -> None:
    """The ERP's list runs 180 s slow. A client whose updated_since is its own clock at the
    start of its last poll skips a change made just after that poll began; a client whose
    watermark is the newest stamp the list gave it does not."""
    sim, clock, client = with_fault("erp", kind="feed_clock_skew", route="GET /orders", skew_s=-180)
    clock.set(900)
    (early,) = released_orders(sim, 1)
    clock.set(1000)
    own_clock = client.get("/_sim/clock").json()["now"]  # never skewed: the harness's clock
    first = read_list(client, "/orders")
    assert [(o["id"], o["updated_at"]) for o in items(first)] == [(early, "2026-11-23T00:12:00Z")]
    watermark = newest_stamp(first)  # 00:12:00 on the vendor's clock, 00:15:00 in truth
    clock.set(1100)
    (late,) = released_orders(sim, 1)
    assert client.get(f"/orders/{late}").json()["updated_at"] == "2026-11-23T00:18:20Z"
    clock.set(1200)
    assert ids(read_list(client, "/orders", updated_since=own_clock)) == []  # lost
    assert ids(read_list(client, "/orders", updated_since=watermark)) == [early, late]


def test_a_fast_vendor_clock_makes_the_own_clock_reader_read_twice_not_lose() -> None:
    sim, clock, client = with_fault("erp", kind="feed_clock_skew", route="GET /orders", skew_s=120)
    clock.set(900)
    (early,) = released_orders(sim, 1)
    clock.set(1000)
    own_clock = client.get("/_sim/clock").json()["now"]
    assert ids(read_list(client, "/orders")) == [early]
    assert ids(read_list(client, "/orders", updated_since=own_clock)) == [early]  # again


def test_skewed_pages_read_every_record_once_and_tokens_keep_true_positions() -> None:
    sim, clock, client = with_fault("erp", kind="feed_clock_skew", route="GET /orders", skew_s=-60)
    made = []
    for _ in range(5):
        made += released_orders(sim, 1)
        clock.advance(30)
    pages = read_list(client, "/orders", limit=2, updated_since="2026-11-22T23:59:00Z")
    assert ids(pages) == made
    stamps = [o["updated_at"] for o in items(pages)]
    assert stamps[0] == "2026-11-22T23:59:00Z" and stamps == sorted(stamps)
    # the filter is read on the vendor's clock: from its stamp of the third order on
    assert ids(read_list(client, "/orders", limit=2, updated_since=stamps[2])) == made[2:]


def test_skew_moves_the_wms_and_tms_change_stamps_and_nothing_else() -> None:
    sim, clock, client = with_fault(
        "wms", kind="feed_clock_skew", route="GET /fulfilment-orders", skew_s=-3600
    )
    (fo_id,) = wms_orders(sim, clock, 1)
    listed = client.get("/fulfilment-orders", params={"limit": 5}).json()["items"][0]
    single = client.get(f"/fulfilment-orders/{fo_id}").json()
    assert single["status_history"][-1]["at"] == "2026-11-23T00:00:00Z"  # a read is true
    assert listed["status_history"][-1]["at"] == "2026-11-22T23:00:00Z"
    assert {k: v for k, v in listed.items() if k != "status_history"} == {
        k: v for k, v in single.items() if k != "status_history"
    }
    sim, clock, client = with_fault("tms", kind="feed_clock_skew", route="/shipments", skew_s=90)
    model = sim.model
    assert isinstance(model, TmsModel)
    shipment = model.plan("SO-1", "FO-1", SHIP_TO, "standard", [{"weight_kg": 1.0}])
    listed = client.get("/shipments").json()["items"][0]
    assert (listed["updated_at"], listed["created_at"]) == (
        "2026-11-23T00:01:30Z",
        shipment.created_at,
    )


def test_skew_is_counted_only_where_it_changed_an_answer() -> None:
    sim, _, client = with_fault("erp", kind="feed_clock_skew", route="GET /orders", skew_s=-60)
    assert read_list(client, "/orders")[0]["items"] == []  # nothing listed: nothing bent
    assert erp(sim).orders == {} and applied(client) == {}
    released_orders(sim, 1)  # stamped 00:00:00, shown 23:59:00 the day before
    # a filter past it on either clock: the answer is the same empty list, not counted
    assert ids(read_list(client, "/orders", updated_since="2026-11-23T00:05:00Z")) == []
    assert applied(client) == {}
    # a filter the skew moved it out of: 23:59:30 shown is 00:00:30 in truth
    assert ids(read_list(client, "/orders", updated_since="2026-11-22T23:59:30Z")) == []
    assert len(ids(read_list(client, "/orders"))) == 1  # stamps written on the vendor's clock
    assert applied(client) == {"feed_clock_skew:-60s": 2}
    assert journalled(sim, "/orders")[-2:] == ["feed_clock_skew:-60s"] * 2
