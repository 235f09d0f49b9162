"""Durable state in SQLite: the inbox of events, the outbox of jobs, and what is known of orders.

Nothing may be lost when a call fails or the process dies: an event is committed to the inbox
before its webhook is acknowledged, and it is turned into jobs in the same transaction that
marks it processed. One connection is used from the event loop only; every statement is short.
Finished work is deleted once it is older than the dedup window (``prune``, driven by
reference_stack.retention).

A commit is the stack's largest single cost per webhook (about 1.5 commits per HTTP exchange on
a played day), so the pragmas are chosen for it, and what each gives up is stated:

- ``journal_mode=WAL``: a commit appends the pages it changed to the write-ahead log; nothing
  given up.
- ``synchronous=OFF``: no fsync, neither at a commit (``NORMAL`` skips that too in WAL mode) nor
  at a checkpoint. A commit is handed to the operating system before the webhook is
  acknowledged, so a crash of the stack's process loses nothing (the kernel still holds and
  writes the pages); a crash of the operating system or a power cut may lose the last
  transactions and can leave the file corrupt. A fair price for a test stack whose database
  lives in one run's report folder; a production middleware would keep ``NORMAL`` or ``FULL``.
- ``locking_mode=EXCLUSIVE``: the file is locked once, when first used, instead of several
  lock calls per transaction, and no ``-shm`` index is made. Given up: no other process can
  read the database while the stack runs (the ``/_stack/`` routes show its state); once the
  stack has stopped, or been killed, it opens as usual.

Group commit. Inside the event loop, the units of work of one pass of the loop share one
commit: the first ``transaction()`` of a pass opens a SQLite transaction and schedules its
COMMIT for the loop's next pass; each unit runs in a savepoint of its own, so a unit that
fails rolls back alone, as it did with a commit of its own. A page that several webhooks of a
burst change is written to the log once, not once per webhook (WAL frames were half the
stack's SQLite time on a peak day). Nothing leaves the process before it is committed: the
webhook route answers, the worker sends a call, and the idle and replay routes answer only
after ``await store.flushed()``. A crash between a unit and its group's commit loses that
unit whole, as a crash before a commit of its own did. Outside an event loop (tools, tests)
each transaction commits at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("reference_stack.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    event_id TEXT PRIMARY KEY,
    system TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    correlation_id TEXT,
    received_at REAL NOT NULL,
    processed INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS inbox_unprocessed ON inbox (received_at) WHERE processed = 0;
CREATE INDEX IF NOT EXISTS inbox_processed ON inbox (received_at) WHERE processed = 1;

CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    entity TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    send_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    waits INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    last_status INTEGER,
    last_response TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_key ON jobs (idempotency_key);
CREATE INDEX IF NOT EXISTS jobs_entity ON jobs (entity);
CREATE INDEX IF NOT EXISTS jobs_open ON jobs (status) WHERE status != 'done';
CREATE INDEX IF NOT EXISTS jobs_done ON jobs (updated_at) WHERE status = 'done';

CREATE TABLE IF NOT EXISTS orders (
    order_ref TEXT PRIMARY KEY,
    correlation_id TEXT NOT NULL,
    fulfilment_order_id TEXT,
    picked TEXT,
    shipment_id TEXT,
    service TEXT,
    carrier TEXT,
    label_id TEXT,
    tracking_number TEXT,
    label_attached INTEGER NOT NULL DEFAULT 0,
    goods_issue_id TEXT,
    cancelled INTEGER NOT NULL DEFAULT 0,
    last_tracking_seq INTEGER,
    posted_tracking_seq INTEGER,
    ship_to TEXT
);

CREATE TABLE IF NOT EXISTS items (
    sku TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    each_per_case INTEGER NOT NULL,
    synced_version INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS tracking (
    tracking_number TEXT PRIMARY KEY,
    order_ref TEXT NOT NULL
);
"""

PENDING, RUNNING, DONE, DEAD = "pending", "running", "done", "dead"
# A dead job the stack itself made obsolete (a label refused for an address the customer has
# since changed): no longer a dead letter, so the on-call is not paged to replay it.
SUPERSEDED = "superseded"


@dataclass(slots=True)
class Event:
    """One webhook as received: the envelope's id and type, its data, the caller's correlation."""

    id: str
    system: str
    type: str
    data: dict[str, Any]
    correlation_id: str | None


@dataclass(slots=True)
class Job:
    """One call to a vendor, retried until done or dead.

    ``idempotency_key`` names the business action (for dedup); ``send_key`` is the
    Idempotency-Key on the wire, which differs after a refused job is replayed, or retried past a
    refusal the vendor remembers (a receipt that overtook its issue).
    """

    id: int
    kind: str
    entity: str
    idempotency_key: str
    send_key: str
    payload: dict[str, Any]
    correlation_id: str
    status: str = PENDING
    attempts: int = 0
    waits: int = 0  # of the attempts, those told to wait their turn (throttled, item in flight)
    next_attempt_at: float = 0.0
    last_error: str | None = None
    last_status: int | None = None
    last_response: Any = None

    def public(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class Order:
    order_ref: str
    correlation_id: str
    fulfilment_order_id: str | None = None
    picked: dict[str, Any] | None = None
    shipment_id: str | None = None
    service: str | None = None
    carrier: str | None = None
    label_id: str | None = None
    tracking_number: str | None = None
    label_attached: bool = False
    goods_issue_id: str | None = None
    cancelled: bool = False
    last_tracking_seq: int | None = None  # the newest scan received
    posted_tracking_seq: int | None = None  # the newest scan the ERP has been told of
    ship_to: dict[str, Any] | None = None  # the latest address the ERP announced a change to

    def public(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


ORDER_COLUMNS = frozenset(f.name for f in fields(Order)) - {"order_ref"}
JSON_COLUMNS = frozenset({"picked", "ship_to"})
ORDERS_KEPT = 50_000  # order rows kept in memory at most (Store.order)


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: test clients may run the app on a helper thread; the stack
        # itself only ever touches the connection from its one event loop.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        # Set before the first access, so no shared-memory index is made (see the docstring).
        self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA temp_store=MEMORY")
        self._db.executescript(SCHEMA)
        # Dead letters now, kept by every status change below (the idle probe reports it on
        # each poll, so it is not counted there); a rolled-back transaction counts again.
        self.dead = self.count_dead()
        self._group: asyncio.Future[None] | None = None  # the open group's commit
        self.commits = 0  # group commits made (units of work share them)
        self._orders: dict[str, dict[str, Any]] = {}  # order rows as stored (Store.order)

    def close(self) -> None:
        if self._group is not None:
            self._commit_group()
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A unit of work that is kept or rolled back whole (see Group commit, above)."""
        if self._group is None:  # none open (asking for the loop costs a getpid() call)
            loop = asyncio._get_running_loop()
            if loop is None:  # no event loop: a commit of its own
                with self._committed_alone():
                    yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._group = loop.create_future()
            loop.call_soon(self._commit_group)
        with self.savepoint():  # inside the group: a failing unit rolls back alone
            yield

    @contextmanager
    def _committed_alone(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            self._rolled_back()
            raise
        self._db.execute("COMMIT")
        self.commits += 1

    def _rolled_back(self) -> None:
        """What is kept in memory follows the database back (a rollback is rare)."""
        self.dead = self.count_dead()
        self._orders.clear()

    async def flushed(self) -> None:
        """Return once everything written so far is committed."""
        if self._group is not None:
            await asyncio.shield(self._group)

    def _commit_group(self) -> None:
        group, self._group = self._group, None
        if group is None:
            return  # committed already (by close)
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error:
            # The units were handed on (jobs queued, answers waiting) as if they would be
            # kept: a stack that cannot commit cannot be trusted to go on. It stops, and a
            # restart resumes from what the database holds.
            log.critical("the database refused a commit: stopping", exc_info=True)
            os._exit(70)
        self.commits += 1
        if not group.done():
            group.set_result(None)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of a transaction that can fail alone: rolled back on an exception, which is
        raised again, while the rest of the transaction stays (a commit of its own outside
        one)."""
        self._db.execute("SAVEPOINT part")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK TO part")
            self._db.execute("RELEASE part")
            self._rolled_back()
            raise
        self._db.execute("RELEASE part")

    # -- inbox ---------------------------------------------------------------------------
    def add_event(self, event: Event, body: bytes, *, handled: bool = False) -> bool:
        """Keep an event before acknowledging it; False when its id was already received.
        ``handled``: the caller handles it in this same transaction, so it is kept as
        processed at once (one statement per webhook, not an insert and an update; a failed
        handling still records its error with ``mark_processed``)."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO inbox (event_id, system, type, body, correlation_id,"
            " received_at, processed) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event.id,
                event.system,
                event.type,
                body.decode(),
                event.correlation_id,
                time.time(),
                int(handled),
            ),
        )
        return cursor.rowcount == 1

    def mark_processed(self, event_id: str, error: str | None = None) -> None:
        self._db.execute(
            "UPDATE inbox SET processed = 1, error = ? WHERE event_id = ?", (error, event_id)
        )

    def unprocessed_events(self) -> list[Event]:
        rows = self._db.execute(
            "SELECT event_id, system, type, body, correlation_id FROM inbox"
            " WHERE processed = 0 ORDER BY received_at"
        ).fetchall()
        return [
            Event(
                r["event_id"],
                r["system"],
                r["type"],
                orjson.loads(r["body"]).get("data", {}),
                r["correlation_id"],
            )
            for r in rows
        ]

    # -- jobs ----------------------------------------------------------------------------
    def add_job(
        self, kind: str, entity: str, key: str, payload: dict[str, Any], correlation_id: str
    ) -> Job:
        now = time.time()
        cursor = self._db.execute(
            "INSERT INTO jobs (kind, entity, idempotency_key, send_key, payload, correlation_id,"
            " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (kind, entity, key, key, orjson.dumps(payload).decode(), correlation_id, now, now, now),
        )
        assert cursor.lastrowid is not None
        return Job(
            cursor.lastrowid, kind, entity, key, key, payload, correlation_id, next_attempt_at=now
        )

    def has_job(self, key: str) -> bool:
        """Whether this business action was ever asked for (whatever became of it)."""
        row = self._db.execute("SELECT 1 FROM jobs WHERE idempotency_key = ? LIMIT 1", (key,))
        return row.fetchone() is not None

    def job(self, job_id: int) -> Job | None:
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def start_job(self, job: Job) -> None:
        job.attempts += 1
        job.status = RUNNING
        self._db.execute(
            "UPDATE jobs SET status = ?, attempts = ?, updated_at = ? WHERE id = ?",
            (RUNNING, job.attempts, time.time(), job.id),
        )

    def settle_job(
        self,
        job: Job,
        status: str,
        *,
        error: str | None = None,
        http_status: int | None = None,
        response: Any = None,
        next_attempt_at: float | None = None,
        waited: bool = False,
    ) -> None:
        """Record an attempt's end: done, dead, or pending again until ``next_attempt_at``
        (or superseded: a dead letter the stack itself made obsolete); ``waited``: the
        attempt was told to wait its turn, not failed."""
        self.dead += (status == DEAD) - (job.status == DEAD)
        job.waits += waited
        job.status, job.last_error, job.last_status = status, error, http_status
        job.last_response = response
        if next_attempt_at is not None:
            job.next_attempt_at = next_attempt_at
        self._db.execute(
            "UPDATE jobs SET status = ?, last_error = ?, last_status = ?, last_response = ?,"
            " next_attempt_at = ?, waits = ?, updated_at = ? WHERE id = ?",
            (
                status,
                error,
                http_status,
                None if response is None else orjson.dumps(response).decode(),
                job.next_attempt_at,
                job.waits,
                time.time(),
                job.id,
            ),
        )

    def rekey_job(self, job: Job, send_key: str) -> None:
        """The next attempt goes under a new Idempotency-Key (inside the settle's transaction)."""
        job.send_key = send_key
        self._db.execute("UPDATE jobs SET send_key = ? WHERE id = ?", (send_key, job.id))

    def replay_job(self, job: Job, send_key: str) -> None:
        """A dead job back to pending with a fresh attempt budget."""
        self.dead -= job.status == DEAD
        job.status, job.attempts, job.waits, job.send_key = PENDING, 0, 0, send_key
        job.next_attempt_at = time.time()
        self._db.execute(
            "UPDATE jobs SET status = ?, attempts = 0, waits = 0, send_key = ?,"
            " next_attempt_at = ?, updated_at = ? WHERE id = ?",
            (PENDING, send_key, job.next_attempt_at, job.next_attempt_at, job.id),
        )

    def open_jobs(self) -> list[Job]:
        """Pending and running jobs in creation order, for recovery after a restart."""
        rows = self._db.execute(
            "SELECT * FROM jobs WHERE status IN (?, ?) ORDER BY id", (PENDING, RUNNING)
        ).fetchall()
        return [_job(r) for r in rows]

    def requeue_running(self) -> None:
        """Jobs cut off mid-call go back to pending: their idempotency keys make a rerun safe."""
        self._db.execute("UPDATE jobs SET status = ? WHERE status = ?", (PENDING, RUNNING))

    def dead_jobs(self) -> list[Job]:
        rows = self._db.execute("SELECT * FROM jobs WHERE status = ? ORDER BY id", (DEAD,))
        return [_job(r) for r in rows.fetchall()]

    def count_dead(self) -> int:
        return self._db.execute("SELECT count(*) FROM jobs WHERE status = ?", (DEAD,)).fetchone()[0]

    def job_by_key(self, key: str) -> Job | None:
        """The latest job for this business action, if any."""
        row = self._db.execute(
            "SELECT * FROM jobs WHERE idempotency_key = ? ORDER BY id DESC LIMIT 1", (key,)
        ).fetchone()
        return _job(row) if row else None

    def jobs_for(self, entity: str) -> list[Job]:
        rows = self._db.execute("SELECT * FROM jobs WHERE entity = ? ORDER BY id", (entity,))
        return [_job(r) for r in rows.fetchall()]

    # -- retention -----------------------------------------------------------------------
    def prune(self, before: float, limit: int) -> tuple[int, int]:
        """Delete up to ``limit`` processed events received, and ``limit`` done jobs finished,
        before ``before``; returns how many of each went. Events not yet handled, open jobs
        and dead letters are never pruned. Both scans walk a partial index, oldest first."""
        with self.transaction():
            events = self._db.execute(
                "DELETE FROM inbox WHERE rowid IN (SELECT rowid FROM inbox"
                " WHERE processed = 1 AND received_at < ? ORDER BY received_at LIMIT ?)",
                (before, limit),
            )
            jobs = self._db.execute(
                "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs"
                " WHERE status = 'done' AND updated_at < ? ORDER BY updated_at LIMIT ?)",
                (before, limit),
            )
        return events.rowcount, jobs.rowcount

    # -- orders --------------------------------------------------------------------------
    # Each webhook and each step reads its order, so the rows are also kept in memory as
    # stored (JSON columns as text), written through on every change and dropped whole when a
    # unit rolls back; a read is then a dict copy, not a statement (about 4% of the stack's
    # CPU on a peak day).
    def order(self, order_ref: str) -> Order | None:
        stored = self._orders.get(order_ref)
        if stored is None:
            row = self._db.execute(
                "SELECT * FROM orders WHERE order_ref = ?", (order_ref,)
            ).fetchone()
            if row is None:
                return None
            stored = self._remember(order_ref, dict(row))
        values = dict(stored)
        for name in JSON_COLUMNS:
            values[name] = orjson.loads(values[name]) if values[name] else None
        values["label_attached"] = bool(values["label_attached"])
        values["cancelled"] = bool(values["cancelled"])
        return Order(**values)

    def ensure_order(self, order_ref: str, correlation_id: str) -> Order:
        """The order's row, created with this correlation id the first time it is seen."""
        order = self.order(order_ref)
        if order is not None:
            return order  # the common case: one statement, not an INSERT OR IGNORE first
        self._db.execute(
            "INSERT INTO orders (order_ref, correlation_id) VALUES (?, ?)",
            (order_ref, correlation_id),
        )
        order = self.order(order_ref)
        assert order is not None
        return order

    def update_order(self, order_ref: str, **values: Any) -> None:
        unknown = set(values) - ORDER_COLUMNS
        if unknown:
            raise ValueError(f"orders has no column(s) {sorted(unknown)}")
        for name in JSON_COLUMNS & values.keys():
            values[name] = orjson.dumps(values[name]).decode()
        columns = ", ".join(f"{name} = ?" for name in values)
        self._db.execute(
            f"UPDATE orders SET {columns} WHERE order_ref = ?", (*values.values(), order_ref)
        )
        stored = self._orders.get(order_ref)
        if stored is not None:
            stored.update(values)

    def _remember(self, order_ref: str, stored: dict[str, Any]) -> dict[str, Any]:
        if len(self._orders) >= ORDERS_KEPT:
            self._orders.clear()  # a long soak's orders: start again from the database
        self._orders[order_ref] = stored
        return stored

    # -- items ---------------------------------------------------------------------------
    def note_item(self, sku: str, version: int, each_per_case: int) -> None:
        """Remember the newest version of an item heard of (a case size never changes)."""
        self._db.execute(
            "INSERT INTO items (sku, version, each_per_case) VALUES (?, ?, ?)"
            " ON CONFLICT (sku) DO UPDATE SET version = MAX(version, excluded.version),"
            " each_per_case = excluded.each_per_case",
            (sku, version, each_per_case),
        )

    def each_per_case(self, sku: str) -> int | None:
        row = self._db.execute("SELECT each_per_case FROM items WHERE sku = ?", (sku,)).fetchone()
        return row[0] if row else None

    def synced_version(self, sku: str) -> int:
        row = self._db.execute("SELECT synced_version FROM items WHERE sku = ?", (sku,)).fetchone()
        return row[0] if row else 0

    def item_synced(self, sku: str, version: int) -> None:
        self._db.execute(
            "UPDATE items SET synced_version = MAX(synced_version, ?) WHERE sku = ?",
            (version, sku),
        )

    def index_tracking(self, tracking_number: str, order_ref: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO tracking (tracking_number, order_ref) VALUES (?, ?)",
            (tracking_number, order_ref),
        )

    def order_ref_for_tracking(self, tracking_number: str) -> str | None:
        row = self._db.execute(
            "SELECT order_ref FROM tracking WHERE tracking_number = ?", (tracking_number,)
        ).fetchone()
        return row[0] if row else None


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        entity=row["entity"],
        idempotency_key=row["idempotency_key"],
        send_key=row["send_key"],
        payload=orjson.loads(row["payload"]),
        correlation_id=row["correlation_id"],
        status=row["status"],
        attempts=row["attempts"],
        waits=row["waits"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        last_status=row["last_status"],
        last_response=orjson.loads(row["last_response"]) if row["last_response"] else None,
    )
