"""A scenario's ``stack_restarts``: the launched stack is killed (or stopped) at a moment of the
day and started again with the same command, environment and files. A stack that keeps what it
owes in memory loses it, and the oracles see it missing at the end of the day."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import simulators
from harness import scenario
from harness.clock import LockstepClock
from harness.restarts import CallTrap, CallTraps
from harness.runner import RunConfig, run
from harness.stack import StackProcess
from simulators.common.clock import DEFAULT_EPOCH, ManualClock
from tests.test_faults import label

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
    assert crash.during is None
    (cut,) = scenario.parse(
        "name: r\nhorizon_days: 1\nstack_restarts:\n"
        "  - {at: '09:00', during: {system: wms, route: post /fulfilment-orders, match: SO-7}}\n"
    ).stack_restarts
    assert cut.during is not None and cut.kind == "crash"
    assert cut.during.describe() == "wms POST /fulfilment-orders with 'SO-7'"
    bad = {
        "{at: '10:30', kind: reboot}": r"r\.yaml:4: stack_restarts\.0\.kind: ",
        "{at: '10:30', for: -5}": r"r\.yaml:4: stack_restarts\.0\.for: ",
        "{at: 'day 1 09:00'}": r"r\.yaml:4: stack_restarts\.0\.at: at 118800 s \(day 1, 09:00\)",
        "{at: '10:30', kind: deploy, during: {system: wms, route: POST /x}}": (
            r"r\.yaml:4: stack_restarts\.0: .*only a crash cuts a call off"
        ),
        "{at: '10:30', during: {system: wms, route: 'FETCH /x'}}": (
            r"r\.yaml:4: stack_restarts\.0\.during\.route: .*unknown method 'FETCH'"
        ),
        "{at: '10:30', during: {system: wms, route: /webhooks/erp}}": (
            r"stack_restarts\.0\.during\.route: .*are not calls"
        ),
        "{at: '10:30', during: {system: mes, route: /orders}}": (
            r"stack_restarts\.0\.during\.system: "
        ),
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
            # Paced 4x faster: ministack's lost retries hold lockstep's pacing to the end of
            # its patience (87 -> 49 s of wall); the crashes and what they cut off are the same.
            scenario=scenario.load(INCIDENT, ("clock.pace=1200",)),
            stack_cmd=MINISTACK,
            stack_env={"MINISTACK_PROBE": "none"},
            report_dir=tmp_path / "ministack",
        )
    )
    failed = {r.name for r in outcome.results if not r.passed}
    assert "orders_terminal" in failed, outcome.notes
    said = [n.split(", exit code")[0] for n in outcome.notes if n.startswith("stack restart:")]
    quiet = [n for n in said if " (SIGKILL) at 10:30" in n or " at 10:45:00" in n or "14:00" in n]
    assert quiet == [
        "stack restart: crash (SIGKILL) at 10:30:00 (day 0)",
        "stack restart: started again at 10:45:00 (day 0)",
        "stack restart: deploy (SIGTERM) at 14:00:00 (day 0)",
        "stack restart: started again at 14:00:00 (day 0)",
    ]
    cut = [n for n in said if " during " in n]  # the five crashes in the middle of a call
    assert [n.split(" during ")[1].split(" ")[:2] for n in cut] == [
        ["wms", "POST"],
        ["wms", "POST"],  # a transfer create
        ["carrier", "POST"],
        ["wms", "POST"],
        ["erp", "POST"],
    ], said
    assert len([n for n in said if "started again" in n]) == 7
    killed = [n for n in outcome.notes if "(SIGKILL) at 10:30" in n]
    assert killed[0].endswith("exit code -9")  # killed: no shutdown code of its ran


# -- a crash during a call ------------------------------------------------------------------------
class FakeRestarts:
    """What a CallTrap asks of ``Restarts``: the probe's state, the clock, the take-down."""

    def __init__(self, clock: LockstepClock) -> None:
        self.clock = clock
        self.probe = SimpleNamespace(offline=False)
        self.downs: list[tuple[float, str | None]] = []
        self.ups: list[float] = []
        self.notes: list[str] = []

    async def take_down(self, restart, cut_off: str | None = None) -> None:
        self.downs.append((self.clock.now(), cut_off))
        self.probe.offline = True

    async def bring_up(self, restart) -> None:
        self.ups.append(self.clock.now())
        self.probe.offline = False


def _trap(clock: LockstepClock, queue: list, entry: str) -> tuple[CallTrap, FakeRestarts]:
    (restart,) = scenario.parse(
        f"name: r\nhorizon_days: 1\nstack_restarts:\n  - {entry}\n"
    ).stack_restarts
    restarts = FakeRestarts(clock)
    return CallTrap(restarts, restart, queue), restarts  # type: ignore[arg-type]


async def test_a_call_trap_springs_once_on_the_first_fitting_call_from_its_moment():
    clock, queue = LockstepClock(DEFAULT_EPOCH), []
    trap, restarts = _trap(
        clock, queue, "{at: 100, for: 60, during: {system: wms, route: POST /orders, match: SO-7}}"
    )
    gate = CallTraps()
    gate.traps.append(trap)
    assert gate.hold("POST", "/orders", b'{"ref": "SO-7"}', 99.0) is None  # too early
    assert gate.hold("GET", "/orders", b"SO-7", 100.0) is None  # another method
    assert gate.hold("POST", "/ordersx", b"SO-7", 100.0) is None  # another route
    assert gate.hold("POST", "/orders", b'{"ref": "SO-8"}', 100.0) is None  # another body
    clock.advance_to(150)
    release = gate.hold("POST", "/orders/SO-7/lines", b'{"ref": "SO-7"}', 150.0)
    assert release is not None
    assert gate.hold("POST", "/orders", b"SO-7", 150.0) is None  # taken: once only
    await release()
    assert restarts.downs == [(150.0, "wms POST /orders/SO-7/lines")]
    clock.advance_to(209)
    assert queue == []
    clock.advance_to(210)  # up ``for`` after the crash, on the clock
    assert len(queue) == 1
    await queue[0]()
    assert restarts.ups == [210.0]


def test_a_call_trap_never_springs_while_the_stack_is_down():
    clock, queue = LockstepClock(DEFAULT_EPOCH), []
    trap, restarts = _trap(clock, queue, "{at: 0, during: {system: erp, route: /orders}}")
    restarts.probe.offline = True  # down for another restart: it makes no calls
    assert not trap.fits("POST", "/orders", b"", 10.0)
    restarts.probe.offline = False
    assert trap.fits("POST", "/orders", b"", 10.0)


async def test_a_held_answer_goes_out_after_the_vendor_did_the_work_and_the_gate_passed():
    """The simulator holds the answer of a call its gate takes: the work is done (the label
    exists) and journalled with its status before the gate's release runs; then the answer
    goes on to a client that, here, is still there."""
    import httpx

    sim = simulators.build("carrier", ManualClock())
    seen: list[int] = []

    class Gate:
        def hold(self, method: str, path: str, body: bytes, now: float):
            if method != "POST":
                return None

            async def release() -> None:
                seen.append(len(sim.model.labels))

            return release

    sim.answer_gate = Gate()
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        answer = await http.post("/labels", json=label())
        assert answer.status_code == 201
        assert (await http.get(f"/labels/{answer.json()['id']}")).status_code == 200
    assert seen == [1]  # the label was bought before the gate's release ran
    assert [e.status for e in sim.journal.entries] == [201, 200]


def test_a_crash_that_found_no_call_to_cut_off_says_so():
    from harness.restarts import Restarts

    clock, notes = LockstepClock(DEFAULT_EPOCH), []
    restarts = Restarts(None, SimpleNamespace(offline=False), 30.0, clock, notes)  # type: ignore[arg-type]
    (restart,) = scenario.parse(
        "name: r\nhorizon_days: 1\nstack_restarts:\n"
        "  - {at: '16:00', during: {system: tms, route: POST /shipments}}\n"
    ).stack_restarts
    restarts.traps.append(CallTrap(restarts, restart, []))
    restarts.unsprung()
    assert notes == [
        "stack restart: crash during tms POST /shipments from 16:00:00 (day 0) not played: "
        "the stack made no such call"
    ]
