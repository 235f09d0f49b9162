"""The reference stack's bounds (issue 14): a webhook body is refused at the 1 MiB cap however
it is framed, without the rest being read; finished work is pruned after the retention window,
in small batches, while duplicates inside the window are still recognised."""

from __future__ import annotations

import asyncio
import re
import select
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.types import Message

from reference_stack import retention
from reference_stack.app import MAX_EVENT_BYTES, build_app
from reference_stack.config import RETENTION_S, SYSTEMS, Config, ConfigError
from reference_stack.stack import Stack
from reference_stack.store import DEAD, DONE, Event, Store
from simulators.common.signing import signed_headers

SECRET = "b0unds-s3cr3t"
URLS = {system: f"http://127.0.0.1:9/{system}" for system in SYSTEMS}  # never answered
CHUNK = 64 * 1024
HUGE = 200 * 1024 * 1024  # what the measured attack sent
DAY = 86_400.0


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    return Config(
        vendor_urls=URLS, webhook_secret=SECRET, db_path=tmp_path / "stack.db", **overrides
    )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(make_config(tmp_path))
    yield stack
    stack.store.close()


def chunked_scope(path: str = "/webhooks/erp") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"stack"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8700),
    }


async def call_streaming(app: Starlette, total: int) -> tuple[int, dict[bytes, bytes], int]:
    """POST ``total`` body bytes in chunks with no Content-Length, as a server hands over a
    chunked body; returns the status, the response headers and the bytes the app pulled."""
    pulled = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal pulled
        size = min(CHUNK, total - pulled)
        pulled += size
        return {"type": "http.request", "body": b"x" * size, "more_body": pulled < total}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(chunked_scope(), receive, send)
    start = sent[0]
    return start["status"], dict(start["headers"]), pulled


# -- the body cap --------------------------------------------------------------------------
async def test_a_chunked_body_over_the_cap_is_refused_after_the_cap_not_after_all_of_it(
    stack: Stack,
) -> None:
    status, headers, pulled = await call_streaming(build_app(stack), HUGE)
    assert status == 413
    assert MAX_EVENT_BYTES < pulled <= MAX_EVENT_BYTES + CHUNK  # one chunk past the cap, no more
    assert headers[b"connection"] == b"close"  # the rest is not drained from the socket either
    assert stack.store.unprocessed_events() == []


async def test_a_chunked_body_at_the_cap_is_read_and_judged(stack: Stack) -> None:
    status, headers, pulled = await call_streaming(build_app(stack), MAX_EVENT_BYTES)
    assert pulled == MAX_EVENT_BYTES
    assert status == 401  # read in full and judged: unsigned, not too large
    assert b"connection" not in headers


@asynccontextmanager
async def served(app: Starlette) -> AsyncIterator[int]:
    """The app behind uvicorn as ``python -m reference_stack`` runs it, on an ephemeral port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


def post_chunked(port: int, total: int) -> tuple[bytes, int, bool]:
    """Send a chunked POST of ``total`` bytes, stopping as soon as an answer arrives; returns
    the answer, the body bytes sent, and whether the server then closed the connection."""
    piece = b"%x\r\n" % CHUNK + b"x" * CHUNK + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            b"POST /webhooks/erp HTTP/1.1\r\nhost: stack\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        conn.setblocking(False)
        sent, pending = 0, memoryview(piece)
        while sent < total:
            readable, writable, _ = select.select([conn], [conn], [], 10)
            if readable:
                break
            assert writable, "the server neither read nor answered for 10 s"
            try:
                pending = pending[conn.send(pending) :]
            except (BrokenPipeError, ConnectionResetError):
                break
            if not pending:
                sent, pending = sent + CHUNK, memoryview(piece)
        conn.settimeout(30)
        if sent == total:  # all of it was taken: end the body, or the server waits for more
            conn.sendall(b"0\r\n\r\n")
        answer, closed = conn.recv(65536), False
        conn.settimeout(5)  # the rest of the answer, then the end of the connection
        try:
            while data := conn.recv(65536):
                answer += data
            closed = True
        except ConnectionResetError:
            closed = True
        except TimeoutError:
            pass  # still open after the answer
    return answer, sent, closed


async def test_over_real_http_the_stack_answers_413_and_closes_before_the_body_is_sent(
    stack: Stack,
) -> None:
    async with served(build_app(stack)) as port:
        answer, sent, closed = await asyncio.to_thread(post_chunked, port, HUGE)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"payload_too_large" in answer
    # The cap, plus what the kernel's socket buffers took before the answer came back: a few
    # MiB on loopback, nowhere near the 200 MiB the sender had.
    assert sent < 32 * 1024 * 1024
    assert closed


# -- pruning ---------------------------------------------------------------------------------
def add_event(store: Store, event_id: str, *, processed: bool = True) -> None:
    store.add_event(Event(event_id, "erp", "order.released", {}, None), b"{}")
    if processed:
        store.mark_processed(event_id)


def add_job(store: Store, key: str, status: str) -> None:
    job = store.add_job("create_fulfilment_order", key, key, {}, "corr")
    if status != "pending":
        store.settle_job(job, status)


def aged(store: Store, days: float) -> None:
    """Everything in the store so far, as if it had happened ``days`` ago."""
    shift = days * DAY
    with store.transaction():
        store._db.execute("UPDATE inbox SET received_at = received_at - ?", (shift,))
        store._db.execute("UPDATE jobs SET updated_at = updated_at - ?", (shift,))


def rows(store: Store) -> tuple[list[str], list[tuple[str, str]]]:
    events = [r[0] for r in store._db.execute("SELECT event_id FROM inbox ORDER BY event_id")]
    jobs = store._db.execute("SELECT entity, status FROM jobs ORDER BY entity").fetchall()
    return events, [tuple(j) for j in jobs]


async def test_pruning_forgets_old_finished_work_and_keeps_what_is_open_or_dead(
    stack: Stack,
) -> None:
    store = stack.store
    for n in range(5):
        add_event(store, f"EV-OLD-{n}")
        add_job(store, f"OLD-DONE-{n}", DONE)
    add_event(store, "EV-OLD-UNHANDLED", processed=False)
    add_job(store, "OLD-DEAD", DEAD)
    add_job(store, "OLD-PENDING", "pending")
    aged(store, 8)
    add_event(store, "EV-NEW")
    add_job(store, "NEW-DONE", DONE)

    removed = await retention.prune(store, time.time() - RETENTION_S, batch=2)

    assert removed == 10
    events, jobs = rows(store)
    assert events == ["EV-NEW", "EV-OLD-UNHANDLED"]
    assert jobs == [("NEW-DONE", DONE), ("OLD-DEAD", DEAD), ("OLD-PENDING", "pending")]


async def test_pruning_goes_in_batches_and_lets_the_loop_run_between_them(stack: Stack) -> None:
    store = stack.store
    for n in range(10):
        add_event(store, f"EV-{n}")
    aged(store, 8)
    batches: list[tuple[int, int]] = []
    prune_batch = store.prune

    def counted(before: float, limit: int) -> tuple[int, int]:
        batches.append(prune_batch(before, limit))
        return batches[-1]

    store.prune = counted  # type: ignore[method-assign]
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    bystander = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    turns = 0
    await retention.prune(store, time.time() - RETENTION_S, batch=3)
    bystander.cancel()
    assert batches == [(3, 0), (3, 0), (3, 0), (1, 0), (0, 0)]
    assert turns >= 4  # the loop ran something else between every two batches


def test_each_batch_reads_an_index_of_finished_rows_not_the_whole_table(stack: Stack) -> None:
    statements: list[str] = []
    stack.store._db.set_trace_callback(statements.append)
    stack.store.prune(time.time(), 10)
    stack.store._db.set_trace_callback(None)
    deletes = [s for s in statements if s.startswith("DELETE")]
    plans = [
        " | ".join(row[3] for row in stack.store._db.execute(f"EXPLAIN QUERY PLAN {s}"))
        for s in deletes
    ]
    assert len(plans) == 2
    assert "USING INDEX inbox_processed" in plans[0], plans[0]
    assert "USING INDEX jobs_done" in plans[1], plans[1]


ORDER = {
    "id": "SO-000001",
    "ship_to": {"name": "A", "street": "B 1", "city": "C", "postal_code": "1", "country": "DE"},
    "service_level": "standard",
    "lines": [{"line": 1, "sku": "A-100", "qty": 1}],
}


async def release(client: httpx.AsyncClient, event_id: str) -> httpx.Response:
    """ERP's order.released for SO-000001 under ``event_id``, signed as the simulators sign."""
    raw = orjson.dumps({"id": event_id, "type": "order.released", "source": "erp", "data": ORDER})
    headers = {"content-type": "application/json", **signed_headers(SECRET, raw)}
    return await client.post("/webhooks/erp", content=raw, headers=headers)


async def test_inside_the_window_duplicates_are_still_recognised_after_a_prune(
    stack: Stack,
) -> None:
    app = build_app(stack)  # no lifespan: no worker runs, the create job waits
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://stack") as client:
        assert (await release(client, "EV-1")).status_code == 202
        [job] = stack.store.jobs_for("SO-000001")
        stack.store.settle_job(job, DONE)  # finished: only its age decides whether it may go
        aged(stack.store, 6)  # six days old: inside the week
        assert await retention.prune(stack.store, time.time() - RETENTION_S, 100) == 0

        again = await release(client, "EV-1")
        assert (again.status_code, again.json()["status"]) == (200, "duplicate")
        # The same release under a new event id (a vendor re-sending it as a new event) is
        # acknowledged and makes no second job: the done job's key is still known.
        assert (await release(client, "EV-2")).status_code == 202
        assert len(stack.store.jobs_for("SO-000001")) == 1

        aged(stack.store, 2)  # eight days since EV-1 and the job, two since EV-2
        assert await retention.prune(stack.store, time.time() - RETENTION_S, 100) == 2
        assert rows(stack.store) == (["EV-2"], [])


async def test_the_running_stack_prunes_on_its_own(tmp_path: Path) -> None:
    stack = Stack(make_config(tmp_path, prune_every_s=0.01))
    app = build_app(stack)
    async with app.router.lifespan_context(app):
        add_event(stack.store, "EV-OLD")
        add_job(stack.store, "OLD-DONE", DONE)
        aged(stack.store, 8)
        add_event(stack.store, "EV-NEW")
        deadline = time.monotonic() + 5
        while rows(stack.store)[0] != ["EV-NEW"]:
            assert time.monotonic() < deadline, rows(stack.store)
            await asyncio.sleep(0.01)
        assert rows(stack.store)[1] == []


def test_retention_settings_come_from_the_environment() -> None:
    env = {f"TWINYARD_{s.upper()}_URL": f"http://127.0.0.1:9/{s}" for s in SYSTEMS}
    env["TWINYARD_WEBHOOK_SECRET"] = SECRET
    default = Config.from_env(env)
    assert (default.retention_s, default.prune_every_s, default.prune_batch) == (7 * DAY, 60, 100)
    tuned = Config.from_env(
        env
        | {
            "REFSTACK_RETENTION_S": "3600",
            "REFSTACK_PRUNE_EVERY_S": "5",
            "REFSTACK_PRUNE_BATCH": "50",
        }
    )
    assert (tuned.retention_s, tuned.prune_every_s, tuned.prune_batch) == (3600, 5, 50)
    with pytest.raises(ConfigError, match=re.escape("REFSTACK_RETENTION_S must be >= 1.0")):
        Config.from_env(env | {"REFSTACK_RETENTION_S": "0"})
