"""A finished run's outcome reprs as one line: asyncio reprs the main task's result on the
way out of ``asyncio.run`` / ``uvloop.run``, and the dataclass repr of a large day's journals
and final state was the harness's peak memory."""

from __future__ import annotations

from harness import scenario
from harness.oracles.base import Finding, OracleResult
from harness.runner import RunOutcome

ENTRY = {"seq": 1, "system": "wms", "path": "/fulfilment-orders", "ref": "SO-000001"}


def _outcome(entries: int) -> RunOutcome:
    return RunOutcome(
        scenario=scenario.Scenario(name="big_day"),
        scenario_path=None,
        results=[
            OracleResult("fine", "all is well", 3, []),
            OracleResult("broken", "all is not well", 3, [Finding("SO-000001", "lost")]),
        ],
        counts={"exchanges": entries},
        wall_s=1.0,
        virtual_s=3600.0,
        steps=1,
        snapshots={"wms": {"orders": {f"FO-{i}": {"id": f"FO-{i}"} for i in range(entries)}}},
        journals={"wms": [dict(ENTRY, seq=i) for i in range(entries)]},
    )


def test_the_repr_names_the_run_and_leaves_out_the_journals_and_the_state():
    text = repr(_outcome(10_000))
    assert text == "<RunOutcome 'big_day': fail, 2 oracles (1 failing), 10000 exchanges>"
