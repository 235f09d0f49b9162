"""A scenario's ``stack_restarts``: the launched stack is killed (or stopped) at a moment of the
day and started again with the same command, environment and files. A stack that keeps what it
owes in memory loses it, and the oracles see it missing at the end of the day."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from harness import scenario
from harness.runner import RunConfig, run
from harness.stack import StackProcess

ROOT = Path(__file__).resolve().parent.parent
INCIDENT = ROOT / "scenarios" / "incidents" / "middleware_restarts.yaml"
MINISTACK = [sys.executable, "-m", "tests.stacks.ministack"]


def test_restarts_are_read_with_their_defaults_and_bad_ones_named_by_field_and_line():
    day = scenario.parse(
        "name: r\nhorizon_days: 1\nstack_restarts:\n"
        "  - {at: '10:30', kind: crash, for: 900}\n  - {at: '14:00'}\n"
    )
    crash, deploy = day.stack_restarts
    assert (crash.at, crash.kind, crash.for_) == (37_800, "crash", 900)
    assert (deploy.at, deploy.kind, deploy.for_) == (50_400, "crash", 0)
    bad = {
        "{at: '10:30', kind: reboot}": r"r\.yaml:4: stack_restarts\.0\.kind: ",
        "{at: '10:30', for: -5}": r"r\.yaml:4: stack_restarts\.0\.for: ",
        "{at: 'day 1 09:00'}": r"r\.yaml:4: stack_restarts\.0\.at: at 118800 s \(day 1, 09:00\)",
    }
    for entry, where in bad.items():
        text = f"name: r\nhorizon_days: 1\nstack_restarts:\n  - {entry}\n"
        with pytest.raises(scenario.ScenarioError, match=where):
            scenario.parse(text, "r.yaml")


def test_a_crashed_stack_is_killed_and_started_again_with_its_log_kept(tmp_path):
    """SIGKILL (no shutdown code runs: its exit code says so), then the same command again,
    its output appended to the same log; a deploy is a SIGTERM it may handle."""
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    log = tmp_path / "stack.log"

    def started(times: int) -> None:  # each has said "up": its SIGTERM handler is set
        deadline = time.monotonic() + 30
        while log.read_text().split() != ["up"] * times:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)

    stack = StackProcess([sys.executable, "-c", script], {}, log)
    try:
        started(1)
        assert stack.halt("crash") == -9
        first = stack.pid
        stack.start_again()
        assert stack.pid != first and stack.exited() is None
        started(2)  # the second's output follows the first's in the same log
        assert stack.halt("deploy") == 0  # its handler ran: a graceful stop
    finally:
        stack.stop()


@pytest.mark.e2e
@pytest.mark.long(40)
async def test_a_stack_that_keeps_its_work_in_memory_loses_it_in_a_crash(tmp_path, monkeypatch):
    """ministack (written from the README) keeps its job queue and what it has seen in
    memory: killed at 10:30 with label purchases waiting on retries, it never buys them, and
    the orders behind them never ship. (The reference stack keeps them in SQLite and passes
    the incident: the library's clean run in test_library_under_xdist.)"""
    monkeypatch.chdir(ROOT)  # `python -m tests.stacks.ministack` from the checkout
    outcome = await run(
        RunConfig(
            scenario=scenario.load(INCIDENT),
            stack_cmd=MINISTACK,
            stack_env={"MINISTACK_PROBE": "none"},
            report_dir=tmp_path / "ministack",
        )
    )
    failed = {r.name for r in outcome.results if not r.passed}
    assert "orders_terminal" in failed, outcome.notes
    said = [n for n in outcome.notes if n.startswith("stack restart:")]
    assert [n.split(", exit code")[0] for n in said] == [
        "stack restart: crash (SIGKILL) at 10:30:00 (day 0)",
        "stack restart: started again at 10:45:00 (day 0)",
        "stack restart: deploy (SIGTERM) at 14:00:00 (day 0)",
        "stack restart: started again at 14:00:00 (day 0)",
    ]
    assert said[0].endswith("exit code -9")  # killed: no shutdown code of its ran
