"""Change feeds for stacks that poll: the events feed on every simulator, and the lists read by
what changed (ERP orders, WMS fulfilment orders, TMS shipments). In process, on a manual
clock: time passes only when a test moves it (docs/feeds.md)."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

import simulators
from simulators.common import cursors
from simulators.common.clock import ManualClock
from simulators.common.simulator import Simulator
from simulators.erp.model import ErpModel
from simulators.tms.model import TmsModel
from simulators.wms.model import WmsModel

SHIP_TO = {
    "name": "Ada Lovelace",
    "street": "Keizersgracht 1",
    "city": "Amsterdam",
    "postal_code": "1015 CJ",
    "country": "NL",
}
MOVED = {**SHIP_TO, "street": "Prinsengracht 2"}
CUSTOMER = {"name": "Ada Lovelace", "email": "ada@example.com"}
WHOLE_SECOND = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
PACT_CURSOR = "eyJrIjoiZXZlbnRzIiwicCI6MCwidCI6MH0"  # docs/feeds.md, Pacts


def build(system: str) -> tuple[Simulator, ManualClock, TestClient]:
    clock = ManualClock()
    sim = simulators.build(system, clock, stock={"A-100": 10_000, "B-200": 10_000})
    return sim, clock, TestClient(sim.app)


def erp(sim: Simulator) -> ErpModel:
    assert isinstance(sim.model, ErpModel)
    return sim.model


def released_orders(sim: Simulator, n: int) -> list[str]:
    """``n`` orders created and released: one ``order.released`` event each."""
    model = erp(sim)
    ids = []
    for _ in range(n):
        order = model.create_order(CUSTOMER, SHIP_TO, "standard", [{"sku": "A-100", "qty": 1}])
        model.release(order.id)
        ids.append(order.id)
    return ids


def read_feed(client: TestClient, after: str | None = None, **params: Any) -> list[dict]:
    """Every page of ``GET /events`` from ``after`` until ``has_more`` is false."""
    pages = []
    while True:
        query = {**params, **({"after": after} if after else {})}
        response = client.get("/events", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        after = page["next_cursor"]
        if not page["has_more"]:
            return pages


def items(pages: list[dict]) -> list[dict]:
    return [item for page in pages for item in page["items"]]


def read_list(client: TestClient, path: str, **params: Any) -> list[dict]:
    """Every page of a change list that pages with ``next_page_token``."""
    pages = []
    while True:
        response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        if not page["has_more"]:
            assert page["next_page_token"] is None
            return pages
        params = {**params, "page_token": page["next_page_token"]}


def ids(pages: list[dict]) -> list[str]:
    return [item["id"] for page in pages for item in page["items"]]


def refused(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


# -- the events feed ----------------------------------------------------------------------
@pytest.mark.parametrize("system", simulators.SYSTEMS)
def test_every_simulator_serves_an_events_feed(system: str) -> None:
    sim, _, client = build(system)
    sim.model.seed_examples()  # each system's examples publish at least one event
    feed = items(read_feed(client))
    assert feed and [item["position"] for item in feed] == list(range(1, len(feed) + 1))
    assert {item["event"]["source"] for item in feed} == {system}
    # the position-0 cursor docs/feeds.md offers pacts reads the whole feed anywhere
    start = client.get("/events", params={"after": PACT_CURSOR}).json()
    assert start["items"] == feed[:100]


def test_the_feed_holds_every_event_with_the_webhook_bytes_subscribed_or_not() -> None:
    sim, _, client = build("erp")
    released_orders(sim, 1)  # nobody subscribed yet
    client.post("/webhooks", json={"url": "http://127.0.0.1:9/h", "events": ["*"], "secret": "s"})
    released_orders(sim, 1)
    feed = items(read_feed(client))
    assert [item["event"]["data"]["id"] for item in feed] == ["SO-000001", "SO-000002"]
    (delivery,) = sim.webhooks.deliveries
    assert feed[1]["event"] == orjson.loads(delivery.body)  # one code path makes both
    assert orjson.dumps(feed[1]["event"]) == delivery.body


def test_paging_reads_every_event_once_in_order() -> None:
    sim, _, client = build("erp")
    released_orders(sim, 23)
    pages = read_feed(client, limit=5)
    assert [len(page["items"]) for page in pages] == [5, 5, 5, 5, 3]
    assert [p["has_more"] for p in pages] == [True, True, True, True, False]
    positions = [item["position"] for item in items(pages)]
    assert positions == list(range(1, 24))  # no loss, no duplicate, stable order
    assert [i["event"]["data"]["id"] for i in items(pages)] == [f"SO-{n:06d}" for n in range(1, 24)]


def test_a_cursor_stays_put_while_new_events_arrive() -> None:
    sim, clock, client = build("erp")
    released_orders(sim, 4)
    first = client.get("/events", params={"limit": 2}).json()
    clock.advance(60)
    released_orders(sim, 3)  # the feed grows behind the client's back
    rest = items(read_feed(client, first["next_cursor"]))
    assert [i["position"] for i in rest] == [3, 4, 5, 6, 7]
    # each item's own cursor resumes right after it (commit per event)
    after_third = items(read_feed(client, rest[0]["cursor"]))
    assert [i["position"] for i in after_third] == [4, 5, 6, 7]
    # a cursor at the end is where the next poll starts: nothing, then only what is new
    end = client.get("/events", params={"after": rest[-1]["cursor"]}).json()
    assert (end["items"], end["has_more"]) == ([], False)
    released_orders(sim, 1)
    assert [i["position"] for i in items(read_feed(client, end["next_cursor"]))] == [8]


def test_types_filter_the_feed_and_the_cursor_skips_what_was_not_asked_for() -> None:
    sim, _, client = build("erp")
    model = erp(sim)
    (kept,) = released_orders(sim, 1)
    for _ in range(3):
        cancelled = model.create_order(CUSTOMER, SHIP_TO, "standard", [{"sku": "A-100", "qty": 1}])
        model.cancel(cancelled.id)
    page = client.get("/events", params={"types": "order.released"}).json()
    assert [i["event"]["data"]["id"] for i in page["items"]] == [kept]
    assert cursors.decode(page["next_cursor"], "events", "after").position == 4
    both = client.get("/events", params={"types": "order.cancelled,order.released"}).json()
    assert [i["event"]["type"] for i in both["items"]] == ["order.released"] + 3 * [
        "order.cancelled"
    ]


def test_bad_queries_get_vendor_error_bodies() -> None:
    sim, _, client = build("erp")
    released_orders(sim, 2)
    for limit in ("0", "501", "ten", "-1"):
        err = refused(client.get("/events", params={"limit": limit}), 422, "validation_failed")
        assert err["details"]["errors"][0]["field"] == "limit"
    assert len(client.get("/events", params={"limit": 500}).json()["items"]) == 2
    for junk in ("nope", "e30", "eyJrIjoiZXZlbnRzIn0", "🙂"):  # not base64 JSON; {}; no position
        err = refused(client.get("/events", params={"after": junk}), 422, "invalid_cursor")
        assert err["details"] == {"field": "after"}
    orders_token = cursors.encode("erp.orders", {"after": ["x", "y"]}, 0.0)
    refused(client.get("/events", params={"after": orders_token}), 422, "invalid_cursor")
    err = refused(client.get("/events", params={"types": "order.lost"}), 422, "unknown_event_type")
    assert err["details"]["known"] == [
        "item.changed",
        "item.created",
        "order.cancelled",
        "order.released",
        "order.updated",
        "return.authorised",
        "transfer.released",
    ]
    refused(client.get("/events", params={"types": "order.released,"}), 422, "validation_failed")


def test_a_cursor_past_the_newest_event_is_gone() -> None:
    """A cursor no position of this feed matches (another process's): start again."""
    sim, _, client = build("erp")
    released_orders(sim, 1)
    err = refused(
        client.get("/events", params={"after": cursors.encode("events", 9, 0.0)}),
        410,
        "cursor_expired",
    )
    assert err["details"] == {"field": "after", "reason": "unknown_position"}


def test_reset_empties_the_feed_and_positions_are_never_reused() -> None:
    sim, _, client = build("erp")
    released_orders(sim, 3)
    old = client.get("/events", params={"limit": 2}).json()["next_cursor"]
    assert client.post("/_sim/reset").status_code == 204
    assert items(read_feed(client)) == []
    released_orders(sim, 2)
    assert [i["position"] for i in items(read_feed(client))] == [4, 5]
    assert [i["position"] for i in items(read_feed(client, old))] == [4, 5]  # nothing skipped


def test_feed_requests_are_journalled_like_business_requests() -> None:
    sim, _, client = build("wms")
    client.get("/events", params={"limit": 3}, headers={"X-Correlation-Id": "poll-1"})
    (entry,) = sim.journal.query(path="/events")
    assert (entry.method, entry.status, entry.correlation_id) == ("GET", 200, "poll-1")


# -- the ERP order list in change order -----------------------------------------------------
def test_orders_page_in_change_order_with_no_loss_and_no_duplicate() -> None:
    sim, clock, client = build("erp")
    for _ in range(12):
        released_orders(sim, 1)
        clock.advance(0.4)  # several changes share each whole second
    pages = read_list(client, "/orders", limit=5)
    assert [len(p["items"]) for p in pages] == [5, 5, 2]
    seen = [item for page in pages for item in page["items"]]
    assert [o["id"] for o in seen] == [f"SO-{n:06d}" for n in range(1, 13)]
    keys = [(o["updated_at"], o["id"]) for o in seen]
    assert keys == sorted(keys)  # (updated_at, id): ties in a second broken by id
    assert all(WHOLE_SECOND.match(o["updated_at"]) for o in seen)


def test_every_change_stamps_updated_at_and_moves_the_order_to_the_end() -> None:
    sim, clock, client = build("erp")
    model = erp(sim)
    first, second = released_orders(sim, 2)
    created = client.get(f"/orders/{first}").json()
    assert created["updated_at"] == created["created_at"] == "2026-11-23T00:00:00Z"
    clock.advance(61.9)
    model.change_ship_to(first, MOVED)
    assert ids(read_list(client, "/orders")) == [second, first]
    assert client.get(f"/orders/{first}").json()["updated_at"] == "2026-11-23T00:01:01Z"
    clock.advance(60)
    model.goods_issue(second, [{"line": 1, "qty": 1}], "PC1", "parcelco", None)
    clock.advance(60)
    model.post_tracking(second, "PC1", "in_transit", "2026-11-23T00:03:00Z")
    listed = read_list(client, "/orders", updated_since="2026-11-23T00:01:02Z")
    assert [(o["id"], o["updated_at"]) for p in listed for o in p["items"]] == [
        (second, "2026-11-23T00:03:01Z")
    ]


def test_updated_since_is_inclusive_so_same_second_changes_are_not_lost() -> None:
    """Stamps are whole seconds: asking for ``>`` the newest stamp seen misses a change made
    later in that same second; ``>=`` (what the list does) gets it."""
    sim, clock, client = build("erp")
    clock.set(30.2)
    (a,) = released_orders(sim, 1)
    seen = ids(read_list(client, "/orders", updated_since="2026-11-23T00:00:30Z"))
    assert seen == [a]
    watermark = client.get(f"/orders/{a}").json()["updated_at"]  # 00:00:30Z
    clock.set(30.8)  # the same second, after the poll
    (b,) = released_orders(sim, 1)
    assert client.get(f"/orders/{b}").json()["updated_at"] == watermark
    inclusive = ids(read_list(client, "/orders", updated_since=watermark))
    assert inclusive == [a, b]  # a again (dedupe by id), b not lost
    exclusive = ids(read_list(client, "/orders", updated_since="2026-11-23T00:00:31Z"))
    assert exclusive == []  # the ``>`` client: b is gone for good
    # a fraction rounds up, as the comparison with whole-second stamps demands
    assert ids(read_list(client, "/orders", updated_since="2026-11-23T00:00:30.5Z")) == []
    assert ids(read_list(client, "/orders", updated_since="2026-11-23T01:00:30+01:00")) == [a, b]


def test_a_change_during_paging_is_met_again_never_lost() -> None:
    sim, clock, client = build("erp")
    model = erp(sim)
    orders = released_orders(sim, 6)
    page = client.get("/orders", params={"limit": 3}).json()
    clock.advance(5)
    model.change_ship_to(orders[0], MOVED)  # behind the cursor: it moves past the end
    rest = read_list(client, "/orders", limit=3, page_token=page["next_page_token"])
    assert [o["id"] for o in page["items"]] + ids(rest) == [*orders, orders[0]]


def test_a_same_second_change_behind_the_cursor_waits_for_the_next_inclusive_poll() -> None:
    """The hazard of one-second stamps with a keyset token: an order changed in the same
    second as the page's last one, and sorting before it, is not on the next page; the next
    poll from the newest stamp seen (inclusive) gets it."""
    sim, _, client = build("erp")
    model = erp(sim)
    orders = released_orders(sim, 4)
    first = client.get("/orders", params={"limit": 2}).json()
    model.change_ship_to(orders[0], MOVED)  # same second: (00:00:00Z, SO-000001) < cursor
    rest = read_list(client, "/orders", limit=2, page_token=first["next_page_token"])
    sweep = first["items"] + [o for p in rest for o in p["items"]]
    assert [o["id"] for o in sweep] == orders  # SO-000001's new address is not there yet
    watermark = max(o["updated_at"] for o in sweep)
    again = {
        o["id"]: o
        for p in read_list(client, "/orders", updated_since=watermark)
        for o in p["items"]
    }
    assert again[orders[0]]["ship_to"] == MOVED


def test_the_page_token_carries_its_query() -> None:
    sim, clock, client = build("erp")
    model = erp(sim)
    orders = released_orders(sim, 5)
    clock.advance(1)
    model.cancel(orders[1])
    query = {"status": "released", "updated_since": "2026-11-23T00:00:00Z", "limit": 2}
    first = client.get("/orders", params=query).json()
    assert [o["id"] for o in first["items"]] == [orders[0], orders[2]]
    token = first["next_page_token"]
    rest = read_list(client, "/orders", page_token=token)  # no filters: the token's
    assert ids(rest) == [orders[3], orders[4]]
    same = client.get("/orders", params={**query, "page_token": token})
    assert same.status_code == 200  # the same filters again: fine
    err = refused(
        client.get("/orders", params={"status": "cancelled", "page_token": token}),
        422,
        "validation_failed",
    )
    assert err["details"]["errors"][0]["field"] == "status"
    refused(
        client.get(
            "/orders", params={"updated_since": "2026-11-24T00:00:00Z", "page_token": token}
        ),
        422,
        "validation_failed",
    )


def test_bad_list_queries_get_vendor_error_bodies() -> None:
    _, _, client = build("erp")
    for since in ("yesterday", "2026-11-23T09:00:00", "2026-13-01T00:00:00Z"):
        err = refused(
            client.get("/orders", params={"updated_since": since}), 422, "validation_failed"
        )
        assert err["details"]["errors"][0]["field"] == "updated_since"
    refused(client.get("/orders", params={"limit": 1001}), 422, "validation_failed")
    refused(client.get("/orders", params={"page_token": "x"}), 422, "invalid_cursor")
    events_cursor = cursors.encode("events", 1, 0.0)
    refused(client.get("/orders", params={"page_token": events_cursor}), 422, "invalid_cursor")


def test_reset_empties_the_lists_and_an_old_token_reads_only_what_is_new() -> None:
    sim, clock, client = build("erp")
    released_orders(sim, 3)
    token = client.get("/orders", params={"limit": 1}).json()["next_page_token"]
    client.post("/_sim/reset")
    assert read_list(client, "/orders")[0]["items"] == []
    clock.advance(10)
    (new,) = released_orders(sim, 1)
    assert ids(read_list(client, "/orders", page_token=token)) == [new]


# -- the WMS list: v1 as it was, or in change order with a Link header -----------------------
def wms_orders(sim: Simulator, clock: ManualClock, n: int) -> list[str]:
    model = sim.model
    assert isinstance(model, WmsModel)
    lines = [{"line": 1, "sku": "A-100", "qty": 1}]
    made = []
    for k in range(n):
        made.append(model.create_order(f"SO-{k:06d}", SHIP_TO, "standard", lines).id)
        clock.advance(1)
    return made


def follow_links(client: TestClient, url: str) -> tuple[list[str], list[str]]:
    """Every page of a Link-paged list: the ids and the Link headers seen."""
    found, links = [], []
    while True:
        response = client.get(url)
        assert response.status_code == 200, response.text
        found += [fo["id"] for fo in response.json()["items"]]
        link = response.headers.get("link")
        if link is None:
            return found, links
        links.append(link)
        url = re.fullmatch(r'<(.+)>; rel="next"', link).group(1)  # type: ignore[union-attr]


def test_the_wms_list_without_change_parameters_is_v1_as_it_was() -> None:
    sim, clock, client = build("wms")
    made = wms_orders(sim, clock, 3)
    sim.model.pick(made[0], {1: 1})  # type: ignore[attr-defined]
    response = client.get("/fulfilment-orders")
    assert set(response.json()) == {"items"} and "link" not in response.headers
    assert [fo["id"] for fo in response.json()["items"]] == made  # creation order


def test_the_wms_list_in_change_order_pages_by_link_header() -> None:
    sim, clock, client = build("wms")
    made = wms_orders(sim, clock, 7)
    sim.model.pick(made[0], {1: 1})  # type: ignore[attr-defined]  # its last status move: now
    found, links = follow_links(client, "/fulfilment-orders?limit=3")
    assert found == [*made[1:], made[0]]  # by (last status move, id)
    assert len(links) == 2 and all("limit=3" in link for link in links)
    since = sim.model.get(made[0]).status_history[-1]["at"]  # type: ignore[attr-defined]
    body = client.get("/fulfilment-orders", params={"updated_since": since}).json()
    assert [fo["id"] for fo in body["items"]] == [made[0]] and set(body) == {"items"}
    by_ref = client.get("/fulfilment-orders", params={"order_ref": "SO-000002", "limit": 5})
    assert [fo["id"] for fo in by_ref.json()["items"]] == [made[2]]


# -- the TMS shipment list -----------------------------------------------------------------
def test_the_tms_list_shows_each_shipment_with_its_last_change() -> None:
    sim, clock, client = build("tms")
    model = sim.model
    assert isinstance(model, TmsModel)
    shipments = []
    for k in range(5):
        shipments.append(
            model.plan(f"SO-{k}", f"FO-{k}", SHIP_TO, "standard", [{"weight_kg": 1.0}]).id
        )
    clock.advance(90)
    model.settle(shipments[0])
    clock.advance(90)
    model.cancel(shipments[1])
    pages = read_list(client, "/shipments", limit=2)
    listed = [s for p in pages for s in p["items"]]
    assert [s["id"] for s in listed] == [*shipments[2:], shipments[0], shipments[1]]
    assert [s["updated_at"] for s in listed[-2:]] == [
        "2026-11-23T00:01:30Z",
        "2026-11-23T00:03:00Z",
    ]
    single = client.get(f"/shipments/{shipments[0]}").json()
    assert "updated_at" not in single  # the v1 answer is as it was
    assert {k: v for k, v in listed[-2].items() if k != "updated_at"} == single


def test_master_data_and_returns_are_on_the_events_feed_for_a_poller() -> None:
    """docs/feeds.md: a polling stack reads the ERP's item events and the WMS's return.received
    on `GET /events` (`types=` to read only them), and the ERP's items by `updated_since`."""
    sim, clock, client = build("erp")
    clock.advance(60)
    erp(sim).create_item("N-1", "Kettle", "CS", 6, 1.2, opening_stock=10)
    clock.advance(60)
    erp(sim).change_item("N-1", weight_kg=1.3)
    types = "item.created,item.changed"
    feed = items(read_feed(client, types=types))
    assert [(i["event"]["type"], i["event"]["data"]["version"]) for i in feed] == [
        ("item.created", 1),
        ("item.changed", 2),
    ]
    changed = feed[-1]["event"]["occurred_at"]
    listed = client.get("/items", params={"updated_since": changed}).json()
    assert [(i["sku"], i["version"]) for i in listed["items"]] == [("N-1", 2)]
    assert not listed["has_more"]

    wms, _, wms_client = build("wms")
    lines = [{"line": 1, "sku": "A-100", "qty": 2, "condition": "restock"}]
    wms.model.receive_return("RMA-000001", "SO-000001", lines, receipt_id="RR-000001")
    received = items(read_feed(wms_client, types="return.received"))
    assert [i["event"]["data"]["receipt_id"] for i in received] == ["RR-000001"]
