"""CPU per request of a simulator's app, routed by its table or by Starlette alone, side by side.

    .venv/bin/python benchmarks/sim_routing.py [--requests 8000] [--rounds 3]

Issue 15: a played day's every business exchange passes a simulator's router. This calls the
ERP's ASGI app in process (no sockets, so only the app's own cost is measured: journal,
guards, routing, endpoint, model) with the same mix for both routers: GET an order, and every
third request a tracking POST. Two fresh ERPs per round, one per router, alternating, so the
machine's other load falls on both; prints microseconds of CPU per request per round and the
best of each.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from simulators.common.clock import ManualClock
from simulators.common.routing import FastRoutes
from simulators.erp.api import build
from tests.test_erp_api import ORDER  # the ERP tests' order: two lines, an address in Berlin

SCAN = orjson.dumps(
    {"status": "in_transit", "occurred_at": "2026-11-30T10:00:00Z", "tracking_number": "T1"}
)
ORDERS = 300


def _scope(method: str, path: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "scheme": "http",
        "http_version": "1.1",
    }


async def _call(app: Any, method: str, path: str, body: bytes = b"") -> int:
    sent: list[dict[str, Any]] = []
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if given:
            await asyncio.Event().wait()  # a client that sends nothing more
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(_scope(method, path, body), receive, send)
    return int(sent[0]["status"])


async def _round(table: bool, requests: int) -> float:
    sim = build(ManualClock(), stock={"A-100": 10**9, "B-200": 10**9})
    routes = sim.app.app  # type: ignore[attr-defined]  # JournalMiddleware -> FastRoutes
    assert isinstance(routes, FastRoutes)
    routes.enabled = table
    body = orjson.dumps(ORDER)
    for _ in range(ORDERS):
        assert await _call(sim.app, "POST", "/orders", body) == 201
    sent = 0
    started = time.process_time()
    for n in range(requests):
        order = f"/orders/SO-{n % ORDERS + 1:06d}"
        if n % 3 == 2:
            status = await _call(sim.app, "POST", f"{order}/tracking", SCAN)
        else:
            status = await _call(sim.app, "GET", order)
        assert status == 200, status
        sent += 1
    return (time.process_time() - started) / sent * 1e6


async def main(requests: int, rounds: int) -> None:
    figures: dict[str, list[float]] = {"table": [], "starlette": []}
    for _ in range(rounds):
        figures["table"].append(await _round(True, requests))
        figures["starlette"].append(await _round(False, requests))
    print(f"ERP app in process, {requests} requests per round (2 GETs : 1 tracking POST)")
    for name, values in figures.items():
        shown = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name:10s} us CPU per request: {shown}; best {min(values):.1f}")
    best_table, best_plain = min(figures["table"]), min(figures["starlette"])
    print(f"table / starlette = {best_table / best_plain:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
