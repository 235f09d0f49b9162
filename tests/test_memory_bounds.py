"""Bounded memory in the simulators (issue 14): request bodies and headers capped with vendor
error bodies, the journal spilled to disk and still read whole and in order, idempotency keys
and finished webhook deliveries forgotten on the virtual clock. Real HTTP to a simulator on an
ephemeral loopback port; the virtual clock is moved by hand, never waited for."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import simulators
from harness import hosting
from harness.clock import LockstepClock
from simulators.common.clock import DEFAULT_EPOCH
from simulators.common.journal import Journal, body_digest
from simulators.common.limits import KIB, MIB, Limits, LimitsError
from simulators.common.simulator import Simulator
from tests.support import Receiver, serving, until
from tests.test_erp_api import ORDER as ERP_ORDER

ROOT = Path(__file__).resolve().parent.parent
ORDER = {**ERP_ORDER, "lines": [{"sku": "A-100", "qty": 1}]}  # one unit: stock lasts
JSON = {"content-type": "application/json"}
HOUR = 3600.0


@contextlib.asynccontextmanager
async def served(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """``sim`` on a loopback port, and a client of it (one kept-alive connection at a time)."""
    hosted = await hosting.serve([sim], [0])
    try:
        async with httpx.AsyncClient(
            base_url=hosted[0].url, limits=httpx.Limits(max_connections=1), timeout=30
        ) as http:
            yield http
    finally:
        await hosting.shutdown(hosted)


def erp(clock: LockstepClock | None = None, **limits: Any) -> Simulator:
    """An ERP with plenty of stock and ``limits`` changed from the defaults."""
    sim = simulators.build("erp", clock or LockstepClock(DEFAULT_EPOCH), stock={"A-100": 10**6})
    sim.limits = dataclasses.replace(sim.limits, **limits)
    return sim


def vendor_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The simulators' error envelope, after checking its status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


async def raw_post(port: int, announced: int, sent: bytes) -> tuple[int, bytes]:
    """A POST whose Content-Length says ``announced`` bytes and that sends only ``sent``:
    the status and body of the answer, which must come within 5 s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        "POST /orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {announced}\r\n\r\n"
    )
    writer.write(head.encode() + sent)
    await writer.drain()
    try:
        raw_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(raw_head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        body = await asyncio.wait_for(reader.readexactly(length), 5)
    finally:
        writer.close()
    return int(raw_head.split()[1]), body


# -- bodies ------------------------------------------------------------------------------------
async def test_a_body_announced_over_the_cap_is_answered_413_without_being_read():
    sim = erp()
    hosted = await hosting.serve([sim], [0])
    try:
        async with httpx.AsyncClient(base_url=hosted[0].url, timeout=30) as http:
            over = b'{"note": "' + b"x" * MIB + b'"}'  # just over the default 1 MiB
            response = await http.post("/orders", content=over, headers=JSON)
            after = await http.post("/orders", json=ORDER)
        # Content-Length says 10 GiB and 1 KiB comes: answered at once, not waited for
        status, _ = await raw_post(hosted[0].port, 10 * 1024 * MIB, b"x" * KIB)
    finally:
        await hosting.shutdown(hosted)
    error = vendor_error(response, 413, "payload_too_large")
    assert error["details"] == {"limit": MIB, "content_length": len(over)}
    assert "1048576 bytes" in error["message"]
    assert after.status_code == 201  # the rest of the big body was discarded, not misread
    assert status == 413
    refused, created, lied = sim.journal.entries
    assert (refused.status, refused.error, lied.status) == (413, "payload_too_large", 413)
    assert refused.body_digest == lied.body_digest == body_digest(b"")  # nothing of it kept
    assert created.status == 201


async def test_a_chunked_body_is_read_only_up_to_the_cap_then_answered_413():
    sim = erp(body_bytes=64 * KIB)
    chunk = b"x" * (64 * KIB)

    async def four_mib() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield chunk

    async with served(sim) as http:
        response = await http.post("/orders", content=four_mib(), headers=JSON)
        after = await http.get("/orders")
    assert response.request.headers["transfer-encoding"] == "chunked"
    error = vendor_error(response, 413, "payload_too_large")
    details = error["details"]
    assert set(details) == {"limit", "received_at_least"} and details["limit"] == 64 * KIB
    # reading stopped at the first piece past the cap, far short of the 4 MiB sent
    assert 64 * KIB < details["received_at_least"] <= 64 * KIB + 512 * KIB
    assert after.status_code == 200


async def test_the_control_plane_has_a_body_cap_of_its_own():
    sim = erp(body_bytes=1 * KIB, control_body_bytes=16 * KIB)
    padded = {"note": "p" * (4 * KIB)}  # over the business cap, under the control plane's
    async with served(sim) as http:
        business = await http.post("/orders", json={**ORDER, **padded})
        control = await http.post("/_sim/reset", json=padded)
        too_much = await http.post("/_sim/reset", json={"note": "p" * (32 * KIB)})
    assert vendor_error(business, 413, "payload_too_large")["details"]["limit"] == KIB
    assert control.status_code == 204
    assert vendor_error(too_much, 413, "payload_too_large")["details"]["limit"] == 16 * KIB


# -- headers -----------------------------------------------------------------------------------
async def test_huge_headers_are_431_and_a_long_correlation_id_is_400_never_kept_whole():
    sim = erp()
    async with served(sim) as http:
        huge = await http.get("/orders", headers={"X-Correlation-Id": "c" * MIB})
        many = await http.get(
            "/orders", headers={f"x-note-{i}": "n" * (4 * KIB) for i in range(10)}
        )
        long_id = await http.get("/orders", headers={"X-Correlation-Id": "c" * 300})
        long_path = await http.get("/orders/" + "S" * (17 * KIB))
        fine = await http.get("/orders", headers={"X-Correlation-Id": "c" * 255})
    error = vendor_error(huge, 431, "request_header_fields_too_large")
    line = MIB + len("x-correlation-id: \r\n")
    assert error["details"] == {"header": "x-correlation-id", "limit": 8 * KIB, "size": line}
    error = vendor_error(many, 431, "request_header_fields_too_large")
    assert error["details"]["limit"] == 32 * KIB and "header" not in error["details"]
    error = vendor_error(long_id, 400, "invalid_header_value")
    assert error["details"] == {"header": "X-Correlation-Id", "limit": 255, "size": 300}
    assert vendor_error(long_path, 414, "uri_too_long")["details"]["limit"] == 16 * KIB
    assert fine.status_code == 200 and fine.headers["x-correlation-id"] == "c" * 255
    assert len(huge.headers["x-correlation-id"]) < 300  # not echoed back whole either
    entries = list(sim.journal.entries)
    assert [e.status for e in entries] == [431, 431, 400, 414, 200]
    assert entries[0].correlation_id == "c" * 255 + f"...(+{MIB - 255} chars)"
    assert entries[2].correlation_id == "c" * 255 + "...(+45 chars)"
    assert entries[4].correlation_id == "c" * 255


# -- the journal -------------------------------------------------------------------------------
async def test_a_spilled_journal_is_read_in_order_through_every_reader():
    sim = erp(journal_memory_entries=4)
    async with served(sim) as http:
        for i in range(25):
            await http.get("/inventory/A-100", headers={"X-Correlation-Id": f"c-{i:02d}"})
        journal = sim.journal
        assert journal.spilled >= 21 and len(journal) - journal.spilled <= 4
        assert journal.spilled_bytes > journal.spilled * 200  # whole entries, on disk
        listed = (await http.get("/_sim/journal")).json()["items"]
        page = (await http.get("/_sim/journal", params={"since": 3, "limit": 5})).json()["items"]
        one = (await http.get("/_sim/journal", params={"correlation_id": "c-01"})).json()["items"]
    entries = journal.entries  # what the harness reads (runner, lockstep, polling, timers)
    assert len(entries) == 25
    assert [e.seq for e in entries] == list(range(1, 26))
    assert [e.correlation_id for e in entries] == [f"c-{i:02d}" for i in range(25)]
    assert listed == [e.to_dict() for e in entries] == list(journal.dicts())
    assert [e["seq"] for e in page] == [4, 5, 6, 7, 8]
    assert [e["seq"] for e in one] == [2]
    assert [e.seq for e in entries[2:7]] == [3, 4, 5, 6, 7]
    assert [e.seq for e in entries[-3:]] == [23, 24, 25]
    assert (entries[0].seq, entries[-1].seq, entries[24].seq) == (1, 25, 25)
    with pytest.raises(IndexError):
        entries[25]


async def test_a_reset_empties_a_spilled_journal_and_its_file():
    sim = erp(journal_memory_entries=2)
    async with served(sim) as http:
        for _ in range(5):
            await http.get("/inventory/A-100")
        assert sim.journal.spilled_bytes > 0
        assert (await http.post("/_sim/reset")).status_code == 204
        listed = (await http.get("/_sim/journal")).json()["items"]
        emptied = sim.journal.spilled_bytes
        await http.get("/inventory/A-100")
    assert listed == [] and emptied == 0
    assert [e.seq for e in sim.journal.entries] == [1]  # counted from 1 again


def test_a_reader_that_pauses_while_entries_spill_still_gets_every_one_in_order():
    journal = Journal("erp", memory_entries=4)
    for i in range(6):
        journal.record("in", "GET", "/inventory", 200, virtual_time=float(i))
    reader = journal.iter()  # as many as there are now: six
    first = [next(reader).seq for _ in range(3)]
    for i in range(6, 40):  # meanwhile the ones it has not read yet go to disk
        journal.record("in", "GET", "/inventory", 200, virtual_time=float(i))
    assert journal.spilled > 6
    assert first + [e.seq for e in reader] == [1, 2, 3, 4, 5, 6]
    assert [d["virtual_time"] for d in journal.dicts(30)] == [float(i) for i in range(30, 40)]
    journal.close()
    assert journal.spilled_bytes == 0 and len(journal) == 0


def test_the_spill_file_has_no_name_so_even_a_killed_process_leaves_nothing(tmp_path):
    code = textwrap.dedent(
        """
        import os, sys
        from simulators.common.journal import Journal
        journal = Journal("erp", memory_entries=2)
        for i in range(10):
            journal.record("in", "GET", "/inventory", 200, virtual_time=float(i))
        assert journal.spilled >= 8 and journal.spilled_bytes > 0
        assert [e.virtual_time for e in journal.entries] == [float(i) for i in range(10)]
        print(os.listdir(os.environ["TMPDIR"]), flush=True)
        sys.stdin.read()  # until killed
        """
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert child.stdout is not None
    listed = child.stdout.readline()
    child.kill()  # SIGKILL: no atexit, no finalizer
    child.wait()
    assert listed.strip() == "[]"  # spilled, and nothing to see in the folder
    assert list(tmp_path.iterdir()) == []


# -- idempotency -------------------------------------------------------------------------------
async def test_an_idempotency_key_replays_for_24_virtual_hours_then_creates_anew():
    clock = LockstepClock(DEFAULT_EPOCH)
    sim = erp(clock)
    key = {"Idempotency-Key": "create-order-1"}
    async with served(sim) as http:
        first = await http.post("/orders", json=ORDER, headers=key)
        clock.advance_to(24 * HOUR - 1)
        inside = await http.post("/orders", json=ORDER, headers=key)
        clock.advance_to(24 * HOUR)
        after = await http.post("/orders", json=ORDER, headers=key)
        again = await http.post("/orders", json=ORDER, headers=key)
    assert first.status_code == 201 and first.json()["id"] == "SO-000001"
    assert inside.json() == first.json() and inside.headers["idempotent-replayed"] == "true"
    assert after.status_code == 201 and after.json()["id"] == "SO-000002"
    assert "idempotent-replayed" not in after.headers
    assert again.json()["id"] == "SO-000002" and again.headers["idempotent-replayed"] == "true"


async def test_at_most_max_keys_are_kept_oldest_first_and_a_long_key_is_refused():
    sim = erp(idempotency_max_keys=2)
    async with served(sim) as http:
        ids = {}
        for key in ("a", "b", "c"):
            answer = await http.post("/orders", json=ORDER, headers={"Idempotency-Key": key})
            ids[key] = answer.json()["id"]
        c = await http.post("/orders", json=ORDER, headers={"Idempotency-Key": "c"})
        a = await http.post("/orders", json=ORDER, headers={"Idempotency-Key": "a"})
        long_key = await http.post("/orders", json=ORDER, headers={"Idempotency-Key": "k" * 256})
    assert ids == {"a": "SO-000001", "b": "SO-000002", "c": "SO-000003"}
    assert c.json()["id"] == "SO-000003" and c.headers["idempotent-replayed"] == "true"
    assert a.status_code == 201 and a.json()["id"] == "SO-000004"  # "a" was forgotten
    assert len(sim.idempotency) == 2
    error = vendor_error(long_key, 400, "invalid_idempotency_key")
    assert error["details"] == {"limit": 255, "size": 256}


# -- webhook deliveries ------------------------------------------------------------------------
async def test_finished_deliveries_are_kept_for_a_window_and_a_count_pending_ones_until_done():
    clock = LockstepClock(DEFAULT_EPOCH)
    sim = erp(clock, deliveries_kept=2, delivery_ttl_s=10.0)
    receiver = Receiver(statuses=[200, 200, 200, 500])  # the fourth event's first try fails

    async def listed(http: httpx.AsyncClient) -> list[tuple[str, str, int]]:
        items = (await http.get("/_sim/deliveries")).json()["items"]
        assert [d.id for d in sim.webhooks.deliveries] == [d["id"] for d in items]
        return [(d["id"], d["status"], d["attempts"]) for d in items]

    async def release(http: httpx.AsyncClient) -> None:
        order = (await http.post("/orders", json=ORDER)).json()
        assert (await http.post(f"/orders/{order['id']}/release")).status_code == 200

    async with serving(receiver.app) as hook, served(sim) as http:
        subscription = {"url": f"{hook}/hook", "events": ["order.released"], "secret": "s3cr3t"}
        assert (await http.post("/webhooks", json=subscription)).status_code == 201
        for _ in range(3):
            await release(http)
        await until(lambda: len(receiver.requests) == 3 and sim.webhooks.quiet())
        # the newest two finished ones
        assert await listed(http) == [("DL-000002", "delivered", 1), ("DL-000003", "delivered", 1)]
        await release(http)
        await until(lambda: len(receiver.requests) == 4 and sim.webhooks.quiet())
        assert (await listed(http))[-1] == ("DL-000004", "pending", 1)  # retried at 30 s
        clock.advance_to(20.0)  # the finished ones ended at 0: past their 10 s
        assert await listed(http) == [("DL-000004", "pending", 1)]
        clock.advance_to(30.0)  # the retry is due
        await until(lambda: len(receiver.requests) == 5 and sim.webhooks.quiet())
        assert await listed(http) == [("DL-000004", "delivered", 2)]
        clock.advance_to(40.0)
        assert await listed(http) == []
    # the journal still has every attempt
    assert sum(e.direction == "out" for e in sim.journal.entries) == 5


# -- configuration -----------------------------------------------------------------------------
async def test_limits_come_from_twinyard_limit_variables(monkeypatch):
    monkeypatch.setenv("TWINYARD_LIMIT_BODY_BYTES", "2048")
    monkeypatch.setenv("TWINYARD_LIMIT_IDEMPOTENCY_TTL_S", "60.5")
    sim = simulators.build("erp", LockstepClock(DEFAULT_EPOCH))
    assert (sim.limits.body_bytes, sim.idempotency.ttl_s) == (2048, 60.5)
    async with served(sim) as http:
        response = await http.post("/orders", json={**ORDER, "note": "n" * 3000})
    assert vendor_error(response, 413, "payload_too_large")["details"]["limit"] == 2048
    monkeypatch.setenv("TWINYARD_LIMIT_JOURNAL_MEMORY_ENTRIES", "lots")
    with pytest.raises(LimitsError, match="JOURNAL_MEMORY_ENTRIES must be a positive int, not"):
        Limits.from_env()


# -- after the day -----------------------------------------------------------------------------
async def test_a_simulator_that_no_longer_serves_lets_go_of_its_feed_and_stored_answers_only():
    sim = erp()
    sim.webhooks.subscribe("http://127.0.0.1:9/webhooks/erp", ["*"], "secret")
    async with served(sim) as http:
        for key in ("a", "b"):
            answer = await http.post("/orders", json=ORDER, headers={"Idempotency-Key": key})
            sim.model.release(answer.json()["id"])  # order.released: the feed and a delivery
    held = (len(sim.webhooks.feed), len(sim.idempotency))
    state, journal = sim.model.snapshot(), list(sim.journal.dicts())
    deliveries, newest = list(sim.webhooks.deliveries), sim.webhooks.feed.newest
    sim.release()
    assert held[0] >= 2 and held[1] == 2 and len(deliveries) >= 2
    assert (len(sim.webhooks.feed), len(sim.idempotency)) == (0, 0)
    assert sim.model.snapshot() == state and list(sim.journal.dicts()) == journal
    assert sim.webhooks.deliveries == deliveries
    assert sim.webhooks.feed.newest == newest  # positions are never reused
