"""The reference stack's group commit: units of work of one loop pass share a commit, a unit
that fails rolls back alone, and nothing is told to the outside before its commit."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from reference_stack.store import Event, Store


def committed_events(path: Path) -> list[str]:
    """What another connection reads: only what was committed (and so survives a crash)."""
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT event_id FROM inbox ORDER BY event_id")]
    finally:
        db.close()


def event(event_id: str) -> Event:
    return Event(event_id, "erp", "order.released", {"order_id": event_id}, None)


def add(store: Store, event_id: str) -> None:
    with store.transaction():
        store.add_event(event(event_id), b"{}", handled=True)


async def test_units_of_one_loop_pass_share_one_commit(tmp_path: Path) -> None:
    store = Store(tmp_path / "stack.db")
    before = store.commits
    for event_id in ("E1", "E2", "E3"):
        add(store, event_id)
    await store.flushed()
    assert store.commits == before + 1
    add(store, "E4")  # a later pass: a group of its own
    await store.flushed()
    assert store.commits == before + 2
    store.close()
    assert committed_events(tmp_path / "stack.db") == ["E1", "E2", "E3", "E4"]


CRASH = """
import asyncio, os, sys
from pathlib import Path
from reference_stack.store import Event, Store

async def main():
    store = Store(Path(sys.argv[1]))
    for event_id, then in (("E1", "flush"), ("E2", "crash")):
        with store.transaction():
            store.add_event(Event(event_id, "erp", "t", {}, None), b"{}", handled=True)
        if then == "flush":
            await store.flushed()
        else:
            os._exit(0)  # killed before the group's commit: nobody was told E2 is kept

asyncio.run(main())
"""


def test_a_crash_before_the_group_commits_loses_only_what_nobody_was_told(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stack.db"
    subprocess.run([sys.executable, "-c", CRASH, str(path)], check=True, timeout=60)
    assert committed_events(path) == ["E1"]


async def test_a_failing_unit_rolls_back_alone_and_its_group_still_commits(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "stack.db")
    add(store, "E1")
    with pytest.raises(RuntimeError), store.transaction():
        store.add_event(event("E2"), b"{}", handled=True)
        raise RuntimeError("a handler's bug")
    add(store, "E3")
    await store.flushed()
    store.close()
    assert committed_events(tmp_path / "stack.db") == ["E1", "E3"]


async def test_a_waiter_cancelled_does_not_cancel_the_commit_of_the_others(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "stack.db")
    add(store, "E1")
    impatient = asyncio.create_task(store.flushed())
    patient = asyncio.create_task(store.flushed())
    await asyncio.sleep(0)
    impatient.cancel()
    await patient
    store.close()
    assert committed_events(tmp_path / "stack.db") == ["E1"]


def test_outside_an_event_loop_each_transaction_commits_at_once(tmp_path: Path) -> None:
    path = tmp_path / "stack.db"
    store = Store(path)
    add(store, "E1")
    assert store.commits == 1
    store.close()
    assert committed_events(path) == ["E1"]


async def test_close_commits_an_open_group(tmp_path: Path) -> None:
    store = Store(tmp_path / "stack.db")
    add(store, "E1")
    store.close()  # a graceful stop: what was handled is kept
    assert committed_events(tmp_path / "stack.db") == ["E1"]


async def test_an_order_read_back_is_what_the_database_holds(tmp_path: Path) -> None:
    """Orders are read from memory: a change rolled back is not read back, a change kept is,
    and what a caller does to the order it was given changes nothing stored."""
    path = tmp_path / "stack.db"
    store = Store(path)
    with store.transaction():
        store.ensure_order("SO-1", "corr-1")
    with pytest.raises(RuntimeError), store.transaction():
        store.update_order("SO-1", cancelled=True, picked={"1": {"picked_qty": 2}})
        assert store.order("SO-1").cancelled is True  # type: ignore[union-attr]
        raise RuntimeError("a handler's bug")
    order = store.order("SO-1")
    assert order is not None and order.cancelled is False and order.picked is None
    with store.transaction():
        store.update_order("SO-1", picked={"1": {"picked_qty": 2}}, label_attached=True)
    order = store.order("SO-1")
    assert order is not None and order.picked == {"1": {"picked_qty": 2}}
    order.picked["1"]["picked_qty"] = 99  # type: ignore[index]
    assert store.order("SO-1").picked == {"1": {"picked_qty": 2}}  # type: ignore[union-attr]
    await store.flushed()
    store.close()
    again = Store(path)  # read from the file this time
    fresh = again.order("SO-1")
    assert fresh is not None and fresh.picked == {"1": {"picked_qty": 2}}
    assert fresh.label_attached is True and fresh.cancelled is False
    again.close()
