"""What a run leaves behind besides its verdict: every exchange and the final state.

``journal.jsonl`` holds every simulator's journal, one entry per line, in virtual-time order
(wall time breaks ties); ``state.json`` the simulators' final state as ``/_sim/state`` gives it;
``dead_letters.json`` what the stack's dead-letter route listed at the end, when it has one.
``twinyard trace`` reads both, long after the simulators are gone.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from harness.runner import RunOutcome

JOURNAL = "journal.jsonl"
STATE = "state.json"
DEAD_LETTERS = "dead_letters.json"


def write(outcome: RunOutcome, report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    entries = [e for entries in outcome.journals.values() for e in entries]
    entries.sort(key=lambda e: (e["virtual_time"], e["wall_time"]))
    with (report_dir / JOURNAL).open("wb") as out:
        for entry in entries:
            out.write(orjson.dumps(entry))
            out.write(b"\n")
    (report_dir / STATE).write_bytes(orjson.dumps(outcome.snapshots))
    if outcome.dead_letters is not None:
        (report_dir / DEAD_LETTERS).write_bytes(orjson.dumps(outcome.dead_letters))
