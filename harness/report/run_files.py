"""What a run leaves behind besides its verdict: every exchange and the final state.

``journal.jsonl`` holds every simulator's journal, one entry per line, in virtual-time order
(wall time breaks ties); ``state.json`` the simulators' final state as ``/_sim/state`` gives it;
``dead_letters.json`` what the stack's dead-letter route listed at the end, when it has one.
``twinyard trace`` reads both, long after the simulators are gone.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

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
    (report_dir / STATE).write_bytes(orjson.dumps(outcome.snapshots))
    if outcome.dead_letters is not None:
        (report_dir / DEAD_LETTERS).write_bytes(orjson.dumps(outcome.dead_letters))


def _when(entry: dict[str, Any]) -> tuple[float, float]:
    return entry["virtual_time"], entry["wall_time"]


def in_time_order(journals: Journals) -> Iterator[dict[str, Any]]:
    """Every system's entries by (virtual, wall) time, ties in system order then journal
    order: what a stable sort of them all gives, streamed. A journal is merged as it reads;
    one that is not in time order already (a realtime day records an exchange when it ends,
    stamped when it began) is sorted on its own first. Never every entry in memory at once,
    which was the harness's peak on a large day."""
    streams = [
        entries if _ordered(entries) else sorted(entries, key=_when)
        for entries in journals.values()
    ]
    return heapq.merge(*streams, key=_when)


def _ordered(entries: Iterable[dict[str, Any]]) -> bool:
    last = (-math.inf, -math.inf)
    for entry in entries:
        when = _when(entry)
        if when < last:
            return False
        last = when
    return True
