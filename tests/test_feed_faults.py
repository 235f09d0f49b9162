"""Feed faults: what polling clients meet in real feeds, each doing what it says only inside
its window, counted and journalled only on the answers it changed (docs/feeds.md)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from simulators.common.clock import ManualClock
from simulators.common.faults import Fault
from simulators.common.simulator import Simulator
from tests.test_change_feeds import (
    MOVED,
    build,
    erp,
    ids,
    items,
    read_feed,
    read_list,
    refused,
    released_orders,
)


def with_fault(system: str, **fault: Any) -> tuple[Simulator, ManualClock, TestClient]:
    sim, clock, client = build(system)
    response = client.post("/_sim/faults", json=fault)
    assert response.status_code == 201, response.text
    return sim, clock, client


def applied(client: TestClient) -> dict[str, int]:
    return client.get("/_sim/faults").json()["applied"]


def journalled(sim: Simulator, path: str) -> list[str | None]:
    return [e.fault for e in sim.journal.query(path=path)]


# -- the model ----------------------------------------------------------------------------
def test_feed_fault_parameters_belong_to_their_kinds() -> None:
    lag = Fault.model_validate({"system": "erp", "kind": "feed_lag", "route": "/events"})
    assert (lag.is_feed, lag.feed_label()) == (True, "feed_lag:30s")
    ttl = Fault.model_validate({"system": "erp", "kind": "token_expiry", "ttl_s": 60})
    assert ttl.feed_label() == "token_expiry:60s"
    for bad in (
        {"kind": "feed_lag", "ttl_s": 5},
        {"kind": "token_expiry", "lag_s": 5},
        {"kind": "feed_overlap", "lag_s": 5},
        {"kind": "feed_lag", "lag_s": 0},
        {"kind": "feed_lag", "event": "order.released"},  # a route fault, not an event one
    ):
        with pytest.raises(ValidationError):
            Fault.model_validate({"system": "erp", **bad})


# -- feed_lag -----------------------------------------------------------------------------
def test_feed_lag_shows_an_event_only_lag_s_after_it_happened() -> None:
    sim, clock, client = with_fault("erp", kind="feed_lag", route="/events", lag_s=30)
    released_orders(sim, 2)
    clock.advance(10)
    released_orders(sim, 1)  # at t=10
    clock.advance(20)  # t=30: the first two are 30 s old, the third 20 s
    page = client.get("/events").json()
    assert [i["position"] for i in page["items"]] == [1, 2] and page["has_more"] is False
    clock.advance(9)
    assert client.get("/events", params={"after": page["next_cursor"]}).json()["items"] == []
    clock.advance(1)  # t=40: the third is 30 s old
    later = client.get("/events", params={"after": page["next_cursor"]}).json()
    assert [i["position"] for i in later["items"]] == [3]  # late, never lost
    assert applied(client) == {"feed_lag:30s": 2}
    assert journalled(sim, "/events") == ["feed_lag:30s", "feed_lag:30s", None]


def test_feed_lag_catches_a_client_that_keeps_its_own_clock_as_watermark() -> None:
    """A change stays out of the list for lag_s, stamped with the time it happened: a client
    whose watermark is its own clock at the poll misses it; one whose watermark is the newest
    stamp it saw does not."""
    sim, clock, client = with_fault("erp", kind="feed_lag", route="GET /orders", lag_s=30)
    clock.set(100)
    released_orders(sim, 1)
    clock.set(130)
    (late,) = released_orders(sim, 1)  # stamped 00:02:10, visible from 00:02:40
    clock.set(140)
    seen = [o for p in read_list(client, "/orders") for o in p["items"]]
    assert late not in [o["id"] for o in seen]
    own_clock, newest_seen = sim.clock.iso(), max(o["updated_at"] for o in seen)
    clock.set(200)
    assert late not in ids(read_list(client, "/orders", updated_since=own_clock))
    assert late in ids(read_list(client, "/orders", updated_since=newest_seen))


def test_feed_lag_bends_nothing_outside_its_window() -> None:
    sim, clock, client = with_fault("erp", kind="feed_lag", route="/events", at=100, **{"for": 50})
    released_orders(sim, 1)
    assert len(items(read_feed(client))) == 1  # before the window: no lag
    clock.set(120)
    released_orders(sim, 1)
    assert len(items(read_feed(client))) == 1  # inside: the new one is 0 s old, held back
    clock.set(150)
    assert len(items(read_feed(client))) == 2  # the window closed: everything, at once
    assert applied(client) == {"feed_lag:30s": 1}


# -- feed_overlap -------------------------------------------------------------------------
def test_feed_overlap_repeats_the_last_event_of_a_page_first_on_the_next() -> None:
    sim, _, client = with_fault("erp", kind="feed_overlap", route="/events")
    released_orders(sim, 5)
    pages = read_feed(client, limit=3)
    positions = [[i["position"] for i in p["items"]] for p in pages]
    assert positions == [[1, 2, 3], [3, 4, 5]]
    event_ids = [i["event"]["id"] for i in items(pages)]
    assert len(event_ids) == 6 and len(set(event_ids)) == 5  # dedupe by event id
    assert applied(client) == {"feed_overlap": 1}  # only the page that repeated one
    # a page of one cannot repeat and move on: limit 1 is left alone
    assert [i["position"] for i in items(read_feed(client, limit=1))] == [1, 2, 3, 4, 5]


def test_feed_overlap_on_a_change_list() -> None:
    sim, clock, client = with_fault("erp", kind="feed_overlap", route="GET /orders", **{"for": 60})
    orders = released_orders(sim, 4)
    pages = read_list(client, "/orders", limit=2)
    assert ids(pages) == [orders[0], orders[1], orders[1], orders[2], orders[2], orders[3]]
    clock.set(60)  # the window closed
    assert ids(read_list(client, "/orders", limit=2)) == orders
    assert journalled(sim, "/orders").count("feed_overlap") == 2


# -- token_expiry -------------------------------------------------------------------------
def test_token_expiry_refuses_an_old_cursor_with_410() -> None:
    sim, clock, client = with_fault("erp", kind="token_expiry", route="/events", ttl_s=300)
    released_orders(sim, 3)
    cursor = client.get("/events", params={"limit": 1}).json()["next_cursor"]
    clock.advance(300)
    assert client.get("/events", params={"after": cursor}).status_code == 200  # 300 s: alive
    clock.advance(1)
    err = refused(client.get("/events", params={"after": cursor}), 410, "cursor_expired")
    assert err["details"] == {"field": "after", "reason": "ttl", "age_s": 301.0, "ttl_s": 300.0}
    fresh = client.get("/events").json()
    assert [i["position"] for i in fresh["items"]] == [1, 2, 3]  # start again: no after
    assert applied(client) == {"token_expiry:300s": 1}
    assert journalled(sim, "/events")[-2:] == ["token_expiry:300s", None]


def test_a_client_that_keeps_its_next_cursor_fresh_never_meets_expiry() -> None:
    sim, clock, client = with_fault("erp", kind="token_expiry", route="/events", ttl_s=60)
    cursor = client.get("/events").json()["next_cursor"]
    for _ in range(5):  # polls every 50 s, each answer re-issuing the cursor
        clock.advance(50)
        released_orders(sim, 1)
        page = client.get("/events", params={"after": cursor}).json()
        assert len(page["items"]) == 1
        cursor = page["next_cursor"]
    assert applied(client) == {}


def test_token_expiry_on_a_page_token_only_inside_its_window_and_route() -> None:
    sim, clock, client = with_fault(
        "erp", kind="token_expiry", route="GET /orders", ttl_s=10, at=100, **{"for": 100}
    )
    released_orders(sim, 4)
    token = client.get("/orders", params={"limit": 2}).json()["next_page_token"]
    cursor = client.get("/events", params={"limit": 1}).json()["next_cursor"]
    clock.set(50)  # 50 s old, but the window opens at 100
    assert client.get("/orders", params={"page_token": token}).status_code == 200
    clock.set(150)
    refused(client.get("/orders", params={"page_token": token}), 410, "cursor_expired")
    assert client.get("/events", params={"after": cursor}).status_code == 200  # another route
    clock.set(200)
    assert client.get("/orders", params={"page_token": token}).status_code == 200
    assert applied(client) == {"token_expiry:10s": 1}


def test_an_answer_fault_wins_and_the_feed_fault_is_not_counted() -> None:
    sim, _, client = build("erp")
    client.post("/_sim/faults", json={"kind": "feed_overlap", "route": "/events"})
    client.post("/_sim/faults", json={"kind": "error", "route": "/events", "status": 503})
    released_orders(sim, 3)
    refused(client.get("/events"), 503, "service_unavailable")
    assert applied(client) == {"error:503": 1}


def test_feed_faults_leave_single_reads_alone() -> None:
    sim, _, client = with_fault("erp", kind="feed_lag", route="/orders", lag_s=60)
    (order,) = released_orders(sim, 1)
    erp(sim).change_ship_to(order, MOVED)
    assert client.get(f"/orders/{order}").json()["ship_to"] == MOVED  # a read is current
    assert read_list(client, "/orders")[0]["items"] == []  # the list lags
    assert applied(client) == {"feed_lag:60s": 1}
