"""An outage at the connection level: the vendor's process is down, not answering 503.

The simulator is served by the real hosting code on an ephemeral port, on a lockstep clock
moved by hand: no wall-clock sleeps decide anything here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

import simulators
from harness import hosting
from harness.clock import LockstepClock
from simulators.common.clock import DEFAULT_EPOCH, ManualClock
from simulators.common.faults import Fault
from simulators.common.simulator import Simulator
from tests.test_faults import label


def down(**fields: Any) -> Fault:
    return Fault.model_validate({"system": "carrier", "kind": "outage", "mode": "down", **fields})


class KeptAlive:
    """One raw HTTP/1.1 connection kept open between requests (no pool to hide a reset)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> KeptAlive:
        host, port = url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def get(self, path: str) -> int:
        self.writer.write(f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".encode())
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        length = next(int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length"))
        await self.reader.readexactly(length)
        return int(lines[0].split()[1])

    def close(self) -> None:
        self.writer.close()


async def refused(url: str) -> bool:
    """Whether a new connection to ``url`` is refused (checked on a client with no pool)."""
    async with httpx.AsyncClient() as fresh:
        try:
            await fresh.get(f"{url}/_sim/health")
        except httpx.ConnectError:
            return True
    return False


@contextlib.asynccontextmanager
async def hosted(sim: Simulator) -> AsyncIterator[hosting.Hosted]:
    [item] = await hosting.serve([sim], [0])
    try:
        yield item
    finally:
        await hosting.shutdown([item])


@pytest.fixture
def clock() -> LockstepClock:
    return LockstepClock(DEFAULT_EPOCH)


# -- the model ---------------------------------------------------------------------------


def test_mode_belongs_to_outage_and_down_needs_a_window_and_the_whole_process():
    assert down(**{"for": 300}).is_down
    assert Fault.model_validate({"system": "erp", "kind": "outage"}).mode is None
    unavailable = Fault.model_validate({"system": "erp", "kind": "outage", "mode": "unavailable"})
    assert not unavailable.is_down and unavailable.applies_to("GET", "/orders")
    refused = {
        "mode applies to kind outage, not error": {"kind": "error", "mode": "down"},
        "mode applies to kind outage, not latency": {"kind": "latency", "ms": 5, "mode": "down"},
        "needs for": {"kind": "outage", "mode": "down"},
        "give no route": {"kind": "outage", "mode": "down", "for": 60, "route": "/labels"},
        "give no match or rate": {"kind": "outage", "mode": "down", "for": 60, "rate": 0.5},
        "Input should be 'unavailable' or 'down'": {"kind": "outage", "mode": "crashed"},
    }
    for message, data in refused.items():
        with pytest.raises(ValidationError, match=message):
            Fault.model_validate({"system": "carrier", **data})


def test_a_down_outage_never_touches_a_request_that_does_reach_the_app():
    """Served in-process (no sockets), a down outage cannot apply: requests pass untouched,
    and the control plane refuses to add one live, since it could not work."""
    clock = ManualClock()
    sim = simulators.build("carrier", clock)
    sim.faults.add(down(**{"for": 300}))
    http = TestClient(sim.app)
    assert http.post("/labels", json=label()).status_code == 201
    assert sim.faults.applied == [0] and [e.fault for e in sim.journal.entries] == [None]
    r = http.post("/_sim/faults", json={"kind": "outage", "mode": "down", "for": 60})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["errors"][0]["field"] == "mode"
    r = http.post("/_sim/faults", json={"kind": "outage", "mode": "down", "route": "/labels"})
    assert r.status_code == 422  # and the model's own checks still come first


# -- served over real sockets ------------------------------------------------------------


async def test_down_refuses_connections_resets_open_ones_and_comes_back_on_the_same_port(
    clock: LockstepClock,
):
    sim = simulators.build("carrier", clock)
    sim.faults.add(down(at=600, **{"for": 300}))  # a scenario fault: added before hosting
    async with hosted(sim) as item:
        url = item.url
        async with httpx.AsyncClient(base_url=url) as http:
            created = await http.post("/labels", json=label())
            assert created.status_code == 201
            label_id = created.json()["id"]
            kept = await KeptAlive.open(url)
            assert await kept.get(f"/labels/{label_id}") == 200

            clock.advance_to(599)
            assert (await http.get(f"/labels/{label_id}")).status_code == 200

            clock.advance_to(600)  # the process is down
            assert item.down == 1
            with pytest.raises(httpx.TransportError):  # the pooled connection was reset
                await http.get(f"/labels/{label_id}")
            with pytest.raises(httpx.ConnectError):  # and a new one is refused
                await http.get("/_sim/health")  # the control plane is down with it
            assert await refused(url)
            with pytest.raises(ConnectionResetError):
                await kept.get(f"/labels/{label_id}")  # reset, not a polite close
            kept.close()
            assert sim.faults.applied == [1]
            assert sim.faults.by_label == {"outage:down": 1}

            clock.advance_to(899)
            assert await refused(url)

            clock.advance_to(900)  # back, on the same port, with its state
            assert item.url == url and item.down == 0
            again = await http.get(f"/labels/{label_id}")
            assert again.status_code == 200 and again.json() == created.json()
            assert (await http.post("/labels", json=label("SH-000002"))).status_code == 201
            assert (await http.get("/_sim/faults")).json()["applied"] == {"outage:down": 1}
        journalled = [(e.method, e.path, e.virtual_time) for e in sim.journal.entries]
        # nothing reached the simulator in the window, so nothing of it is journalled
        assert not [t for _, _, t in journalled if 600 <= t < 900]
        assert [m for m, _, _ in journalled] == ["POST", "GET", "GET", "GET", "POST"]


async def test_a_down_outage_added_live_goes_down_once_it_has_answered(clock: LockstepClock):
    sim = simulators.build("carrier", clock)
    clock.advance_to(100)
    async with hosted(sim) as item, httpx.AsyncClient(base_url=item.url) as http:
        # a window open already: the 201 arrives, then the process goes down at once
        r = await http.post(
            "/_sim/faults", json={"kind": "outage", "mode": "down", "at": 50, "for": 100}
        )
        assert r.status_code == 201 and r.json()["mode"] == "down"
        with pytest.raises(httpx.ConnectError):
            await http.post("/labels", json=label())
        clock.advance_to(150)
        assert (await http.post("/labels", json=label())).status_code == 201

        # a window to come: armed now, down when the clock reaches it
        r = await http.post(
            "/_sim/faults", json={"kind": "outage", "mode": "down", "at": 200, "for": 60}
        )
        assert r.status_code == 201
        assert (await http.get("/_sim/health")).status_code == 200
        clock.advance_to(200)
        assert await refused(item.url)
        with pytest.raises(httpx.TransportError):  # reset, or refused once seen closed
            await http.get("/_sim/health")
        clock.advance_to(260)
        assert (await http.get("/_sim/health")).status_code == 200
        assert sim.faults.applied == [1, 1]

        # cleared before its window opens: it never goes down
        r = await http.post(
            "/_sim/faults", json={"kind": "outage", "mode": "down", "at": 400, "for": 60}
        )
        assert (await http.delete("/_sim/faults")).status_code == 204
        clock.advance_to(400)
        assert (await http.get("/_sim/health")).status_code == 200
        assert item.down == 0 and sim.faults.by_label == {}


async def test_overlapping_windows_and_a_shutdown_while_down(clock: LockstepClock):
    sim = simulators.build("carrier", clock)
    sim.faults.add(down(at=0, **{"for": 100}))  # open when serving starts: down at once
    sim.faults.add(down(at=50, **{"for": 100}))
    sim.faults.add(down(at=1000, **{"for": 100}))  # still ahead when the run ends
    [item] = await hosting.serve([sim], [0])
    async with httpx.AsyncClient(base_url=item.url) as http:
        assert await refused(item.url)
        clock.advance_to(100)  # the first window closed, the second is still open
        assert item.down == 1
        assert await refused(item.url)
        clock.advance_to(150)
        assert (await http.get("/_sim/health")).status_code == 200
        clock.advance_to(1000)
        assert item.down == 1
    await hosting.shutdown([item])  # while down: returns, and never listens again
    clock.advance_to(1100)
    assert sim.faults.applied == [1, 1, 1]
    assert await refused(item.url)
