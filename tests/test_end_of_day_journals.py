"""A finished day's journals are read from the simulators' journals on every pass (spilled
entries from disk), journal.jsonl is written by merging them and state.json a record at a
time: never all of it in memory at once."""

from __future__ import annotations

import io
import itertools
import random

import orjson
import pytest

from harness.report.run_files import in_time_order, write_json
from simulators.common.journal import Dicts, Journal


def journal(system: str, times: list[float], memory_entries: int = 4) -> Journal:
    kept = Journal(system, memory_entries=memory_entries)
    for i, at in enumerate(times):
        kept.record("in", "GET", f"/things/{i}", 200, virtual_time=at, ref=f"{system}-{i}")
    return kept


def test_the_dicts_of_a_spilled_journal_read_back_as_to_dict_gives_them_on_every_pass():
    kept = journal("erp", [float(i) for i in range(50)])
    assert kept.spilled > 40  # most of it on disk
    view = Dicts(kept)
    expected = [e.to_dict() for e in kept.entries]
    assert list(view) == expected
    assert list(view) == expected  # a second pass reads it all again
    assert len(view) == 50
    assert view[0] == expected[0] and view[-1] == expected[-1] and view[17] == expected[17]
    assert view[10:13] == expected[10:13] and view[::10] == expected[::10]
    with pytest.raises(IndexError):
        view[50]


def test_entries_recorded_after_the_view_was_taken_are_not_part_of_it():
    kept = journal("wms", [1.0, 2.0, 3.0])
    view = Dicts(kept)
    kept.record("in", "GET", "/late", 200, virtual_time=9.0)
    assert len(view) == 3
    assert [d["path"] for d in view] == ["/things/0", "/things/1", "/things/2"]
    assert view[-1]["path"] == "/things/2"


def test_the_merge_gives_what_a_stable_sort_of_every_entry_gives():
    shuffled = random.Random(7)
    times = {
        "erp": sorted(shuffled.choice([0.0, 1.0, 2.0, 3.0]) for _ in range(30)),
        "wms": sorted(shuffled.choice([0.0, 1.0, 2.0, 3.0]) for _ in range(25)),
        # a realtime day: an exchange is recorded when it ends, stamped when it began
        "tms": [shuffled.choice([0.0, 1.0, 2.0, 3.0]) for _ in range(20)],
        "carrier": [],
    }
    journals = {system: Dicts(journal(system, at)) for system, at in times.items()}
    assert [j.in_time_order for j in journals.values()] == [True, True, False, True]
    every = list(itertools.chain.from_iterable(journals.values()))
    # every wall stamp equal: the ties must fall as a stable sort leaves them (system order,
    # then journal order)
    for entry in every:
        entry["wall_time"] = 0.0
    flat = {s: [e for e in every if e["system"] == s] for s in journals}
    expected = sorted(every, key=lambda e: (e["virtual_time"], e["wall_time"]))
    assert list(in_time_order(flat)) == expected
    assert [e["ref"] for e in in_time_order(journals)] == [
        e["ref"]
        for e in sorted(
            itertools.chain.from_iterable(journals.values()),
            key=lambda e: (e["virtual_time"], e["wall_time"]),
        )
    ]


@pytest.mark.parametrize("depth", [0, 1, 3, 6])
def test_the_state_is_written_a_record_at_a_time_as_orjson_writes_it_whole(depth):
    state = {
        "erp": {
            "orders": {"SO-1": {"id": "SO-1", "lines": [{"qty": 2, "é": 'ü\n"x"'}]}},
            "stock": {},
            "postings": [],
        },
        "wms": {"orders": [{"id": "FO-1", "at": 1.5, "none": None, "ok": True}], "n": 3},
        "tms": {},
        "carrier": {"labels": [[1, 2], [], "three"]},
    }
    out = io.BytesIO()
    write_json(out, state, depth)
    assert out.getvalue() == orjson.dumps(state)


def test_a_key_orjson_refuses_is_refused_the_same_way():
    with pytest.raises(orjson.JSONEncodeError):
        write_json(io.BytesIO(), {"erp": {1: "one"}})
