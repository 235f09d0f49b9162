"""The simulators' route table (``simulators.common.routing``) answers as Starlette's router did.

Two identical ERPs take the same requests, one routed by the table and one by Starlette alone:
every answer (status, headers, body) must be the same, business routes, refusals, a 404, a
405 with ``Allow``, ``HEAD``, an encoded slash and an endpoint that crashes.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from simulators.common.clock import ManualClock
from simulators.common.routing import FastRoutes
from simulators.common.simulator import Simulator
from simulators.erp.api import build
from tests.test_erp_api import ORDER

STOCK = {"A-100": 100, "B-200": 50, "SKU-1/XL": 5}


def erp(*, table: bool) -> tuple[Simulator, FastRoutes]:
    sim = build(ManualClock(), stock=dict(STOCK))
    routes = sim.app.app  # type: ignore[attr-defined]  # JournalMiddleware -> FastRoutes
    assert isinstance(routes, FastRoutes) and routes.enabled
    routes.enabled = table
    return sim, routes


def answer(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k, v) for k, v in response.headers.items() if k != "date")
    return response.status_code, headers, response.content


REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/orders", {"json": ORDER, "headers": {"Idempotency-Key": "k-1"}}),
    ("POST", "/orders", {"json": ORDER, "headers": {"Idempotency-Key": "k-1"}}),  # replayed
    ("GET", "/orders/SO-000001", {}),
    ("HEAD", "/orders/SO-000001", {}),
    ("POST", "/orders/SO-000001/release", {}),
    ("POST", "/orders/SO-000001/release", {}),  # refused: already released
    ("PATCH", "/orders/SO-000001", {"json": {"service_level": "overnight"}}),  # 422
    ("POST", "/orders", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("GET", "/orders/SO-999999", {}),  # 404 from the model
    ("GET", "/no/such/route", {}),  # 404 from the router
    ("GET", "/orders/", {}),  # redirected to /orders (307), as Starlette does
    ("DELETE", "/orders/SO-000001", {}),  # 405 with Allow
    ("PUT", "/orders", {}),
    ("GET", "/items/SKU-1%2FXL", {}),  # one segment holding an encoded slash
    ("GET", "/items/SKU-1/XL", {}),  # a bare slash is a separator: no route
    ("GET", "/orders?status=released", {}),
    ("GET", "/_sim/health", {}),
    ("GET", "/_sim/nothing", {}),
]


def test_every_answer_is_the_one_starlette_gave() -> None:
    fast_sim, slow_sim = erp(table=True)[0], erp(table=False)[0]
    fast_client = TestClient(fast_sim.app, follow_redirects=False)
    plain_client = TestClient(slow_sim.app, follow_redirects=False)
    for method, path, options in REQUESTS:
        got = answer(fast_client.request(method, path, **options))
        want = answer(plain_client.request(method, path, **options))
        assert got == want, (method, path)
    # the journals agree too, entry for entry (but for the wall clock)
    keep = ("method", "path", "status", "ref", "error", "query", "body_digest")
    fast = [{k: e[k] for k in keep} for e in fast_sim.journal.dicts()]
    slow = [{k: e[k] for k in keep} for e in slow_sim.journal.dicts()]
    assert fast == slow and len(fast) == len([r for r in REQUESTS if "/_sim/" not in r[1]])


@pytest.mark.parametrize("table", [True, False])
def test_an_endpoint_that_crashes_is_answered_500_and_raised_for_the_server_to_log(
    table: bool,
) -> None:
    async def crash(request: Request) -> Response:
        raise RuntimeError("a bug in the simulator")

    routes = [Route("/boom/{n}", crash, methods=["GET"])]
    errors = erp(table=True)[1].errors
    app = FastRoutes(routes, Starlette(routes=routes, exception_handlers=errors), errors)
    app.enabled = table
    client = TestClient(app, raise_server_exceptions=False)
    response = client.get("/boom/1")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "RuntimeError: a bug in the simulator" in response.json()["error"]["message"]
    with pytest.raises(RuntimeError, match="a bug in the simulator"):
        TestClient(app).get("/boom/1")


def test_a_route_that_may_span_segments_leaves_every_path_to_starlette() -> None:
    async def anything(request: Request) -> Response:
        return Response(request.path_params["rest"])

    routes = [Route("/files/{rest:path}", anything, methods=["GET"])]
    app = FastRoutes(routes, Starlette(routes=routes), {})
    assert not app.enabled
    assert TestClient(app).get("/files/a/b/c").text == "a/b/c"


def test_business_routes_never_reach_starlette_and_unknown_paths_do() -> None:
    sim, table = erp(table=True)
    reached: list[str] = []
    starlette = table.fallback

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])
        await starlette(scope, receive, send)

    table.fallback = counting
    client = TestClient(sim.app)
    assert client.post("/orders", json=ORDER).status_code == 201
    assert client.get("/orders/SO-000404").status_code == 404  # the model's 404, a SimError
    assert client.delete("/orders/SO-000001").status_code == 405
    assert client.get("/no/such/route").status_code == 404
    assert reached == ["/orders/SO-000001", "/no/such/route"]
