"""What a run leaves behind besides its verdict: every exchange and the final state.

``journal.jsonl`` holds every simulator's journal, one entry per line, in virtual-time order
(wall time breaks ties); ``state.json`` the simulators' final state as ``/_sim/state`` gives it;
``dead_letters.json`` what the stack's dead-letter route listed at the end, when it has one.
``twinyard trace`` reads both, long after the simulators are gone.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from harness.oracles.view import Journals
from harness.runner import RunOutcome

JOURNAL = "journal.jsonl"
STATE = "state.json"
DEAD_LETTERS = "dead_letters.json"


def write(outcome: RunOutcome, report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    with (report_dir / JOURNAL).open("wb") as out:
        for entry in in_time_order(outcome.journals):
            out.write(orjson.dumps(entry))
            out.write(b"\n")
    with (report_dir / STATE).open("wb") as out:
        write_json(out, outcome.snapshots)
    if outcome.dead_letters is not None:
        (report_dir / DEAD_LETTERS).write_bytes(orjson.dumps(outcome.dead_letters))


def write_json(out: BinaryIO, value: Any, depth: int = 3) -> None:
    """``value`` as ``orjson.dumps`` gives it, byte for byte, written a piece at a time: the
    dicts and lists of its first ``depth`` levels an item at a time (for the final state: the
    systems, their collections, each record). A large day's state.json (40 MB) was one bytes
    object, and orjson's growing buffer beside it, at the harness's peak."""
    if depth and isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        out.write(b"{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.write(b",")
            out.write(orjson.dumps(key))
            out.write(b":")
            write_json(out, item, depth - 1)
        out.write(b"}")
    elif depth and isinstance(value, list) and value:
        out.write(b"[")
        for i, item in enumerate(value):
            if i:
                out.write(b",")
            write_json(out, item, depth - 1)
        out.write(b"]")
    else:
        out.write(orjson.dumps(value))


def in_time_order(journals: Journals) -> Iterator[dict[str, Any]]:
    """Every system's entries by (virtual, wall) time, ties in system order then journal
    order: what a stable sort of them all gives, streamed. A journal is merged as it reads;
    one that is not in time order already (a realtime day records an exchange when it ends,
    stamped when it began) is sorted on its own first. Never every entry in memory at once,
    which was the harness's peak on a large day."""
    streams = [
        entries if ordered(entries) else sorted(entries, key=when) for entries in journals.values()
    ]
    return heapq.merge(*streams, key=when)


def when(entry: dict[str, Any]) -> tuple[float, float]:
    """Where an entry falls in journal.jsonl: its virtual time, then its wall time."""
    return entry["virtual_time"], entry["wall_time"]


def ordered(entries: Sequence[dict[str, Any]]) -> bool:
    """Whether ``entries`` are in ``when`` order: a simulator's journal knows it as it records
    (``journal.Dicts.in_time_order``), saving a pass; any other sequence is looked through."""
    known = getattr(entries, "in_time_order", None)
    if isinstance(known, bool):
        return known
    return all(when(a) <= when(b) for a, b in itertools.pairwise(entries))
