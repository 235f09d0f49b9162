"""Soak: the reference stack at twice the peak day's busiest hour, in realtime, for ten minutes.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--rate-factor 2] [--clock-factor 1]
        [--sample-every 5] [--warmup S] [--report-dir DIR]

Issue 14, item 7: "2x the peak day's hourly rate in realtime for 10 minutes against the
reference stack: 0 events lost (every event is acknowledged, dead-lettered, or still retrying,
and the verdict accounts for each), memory of every process flat within 10% after warm-up, no
stuck step."

The day is peak_day.yaml's world (catalogue, stock, pick and pack times, the early shift's
headcount) with its demand made flat at ``rate-factor`` x the orders of its busiest hour and
played from midnight in realtime at ``clock-factor`` virtual seconds per wall second, for
``minutes`` wall minutes (the horizon). Without waves, orders reach the floor a minute after
release, and a truck leaves a minute before the end, so releases, picks, packs, plans, labels,
shipments and goods issues all happen inside the window. The harness plays it in this process
(the four simulators live here too); the reference stack runs as its own process, started here
so that its dead-letter API and idle probe can be read after the day and before it stops.

Printed: the event ledger (every event a simulator sent the stack, by what became of it, cross-
checked against the run's journals and the stack's own inbox), the stack's open work and dead
letters, the resident memory (VmRSS from /proc) of each process at the end of warm-up and at
the end of the day, the longest any request stayed in flight, and the verdict. Exit code 0 when
nothing was lost, nothing got stuck and memory stayed within 10%; else 1.

Oracles: only the safety properties that hold at any instant are judged (one label, one goods
issue, lines and services carried as they were, nothing posted before its event, correlation
kept, scans in order ...). The day is cut at the horizon with work in flight, so "every order
ends terminal" and "books reconcile" cannot hold; what stands in for them here is the ledger
(no event lost) and the watch on requests in flight (no work stuck).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import secrets
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import time as time_of_day
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop

import simulators
from harness import runner
from harness.driving import REQUEST_WATCHDOG_S
from harness.report import run_files, verdict_json
from harness.runner import RunConfig, RunOutcome
from harness.scenario import Scenario, load
from harness.stack import REFERENCE_STACK_CMD, StackProcess, free_port
from harness.world.curves import hourly_weights, segments
from harness.world.warehouse import seconds_of_day
from simulators.common.simulator import Simulator
from simulators.common.webhooks import Delivery

ROOT = Path(__file__).resolve().parent.parent
PEAK_DAY = ROOT / "harness" / "bundled" / "scenarios" / "peak_day.yaml"
DAY_S = 86_400.0
FLAT_WITHIN = 0.10  # memory may grow this much after warm-up (the 10%)
# The oracles that hold at every instant of a day, finished or not: safety, not liveness. Left
# out: whatever needs work that may be in flight when the day is cut (every order terminal,
# books reconciled, one WMS order per release, each posting made exactly once, tracking and
# backorders in the ERP) and the address rows (a change on its way is not yet wrong).
SAFETY_ORACLES = [
    "cancelled_never_ships",
    "status_never_regresses",
    "one_paid_label_per_shipment",
    "correlation_id_kept",
    "forged_events_refused",
    "garbled_events_refused",
    "goods_issue_posted_once",
    "retry_after_respected",
    "order_lines_reach_wms",
    "service_level_planned",
    "label_service_as_planned",
    "parcel_contents_match_shipment",
    "tracking_posted_as_scanned",
    "nothing_posted_before_its_event",
]
HORIZON_NOTE = "the horizon ("  # the driver's note that the day was cut: expected here


# -- the day -------------------------------------------------------------------------------
def peak_hour_rate(day: Scenario) -> float:
    """Orders per hour in the day's busiest hour (its curve clipped to opening hours)."""
    demand = day.demand
    stretches = segments(
        hourly_weights(demand.curve), seconds_of_day(demand.open), seconds_of_day(demand.close)
    )
    total = sum(mass for _, _, mass in stretches)
    return max(demand.orders * mass / total / (length / 3600) for _, length, mass in stretches)


def clock_time(seconds: float) -> str:
    """``HH:MM:SS`` of ``seconds`` after midnight, as a scenario writes a time of day."""
    whole = int(seconds)
    return time_of_day(whole // 3600, whole % 3600 // 60, whole % 60).isoformat()


def soak_scenario(
    peak: Scenario, *, minutes: float, rate_factor: float, clock_factor: float
) -> Scenario:
    """``peak``'s world, with flat demand at ``rate_factor`` x its busiest hour, played in
    realtime at ``clock_factor`` for ``minutes`` wall minutes from midnight."""
    window_s = minutes * 60 * clock_factor  # virtual seconds
    if not 60 <= window_s < DAY_S:
        raise ValueError("the window must be at least a virtual minute and under a day")
    early = max(peak.warehouse.shifts, key=lambda s: s.pickers, default=None)
    data = peak.model_dump(mode="json", warnings=False)  # a curve given as weights warns
    data["name"] = f"soak_{peak.name}"
    data["description"] = (
        f"{peak.name}'s world at {rate_factor:g}x its peak hour, {minutes:g} wall minutes "
        f"in realtime x{clock_factor:g}"
    )
    data["horizon_days"] = window_s / DAY_S
    data["clock"] = {"mode": "realtime", "factor": clock_factor}
    data["expect"] = {"oracles": SAFETY_ORACLES}
    data["demand"] |= {
        "orders": max(1, round(rate_factor * peak_hour_rate(peak) * window_s / 3600)),
        "curve": "flat",
        "open": "00:00:00",
        "close": clock_time(window_s),
    }
    data["warehouse"] |= {
        "shifts": [],
        "pickers": early.pickers if early else peak.warehouse.pickers,
        "packers": early.packers if early else peak.warehouse.packers,
        "waves": {"every_minutes": 0, "lead_minutes": 1.0},
        "cutoff": clock_time(max(window_s - 60, 1)),
        "staging_minutes": 1.0,
    }
    return Scenario.model_validate(data)


# -- memory ----------------------------------------------------------------------------------
def vm_rss_kb(pid: int) -> int | None:
    """Resident memory of ``pid`` in kB, as /proc says it (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class RssSampler:
    """VmRSS of each named process every ``every_s`` wall seconds, on a thread of its own."""

    def __init__(self, pids: dict[str, int], every_s: float) -> None:
        self.pids = pids
        self.every_s = every_s
        self.started = time.monotonic()
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            now = time.monotonic() - self.started
            rss = {name: vm_rss_kb(pid) for name, pid in self.pids.items()}
            self.samples.append((now, {k: v for k, v in rss.items() if v is not None}))
            if self._stop.wait(self.every_s):
                return

    def at(self, t: float) -> dict[str, int]:
        """The last sample taken at or before ``t`` seconds from the start."""
        taken = [rss for when, rss in self.samples if when <= t]
        return taken[-1] if taken else self.samples[0][1]

    def peak_after(self, t: float, until: float) -> dict[str, int]:
        peak: dict[str, int] = {}
        for when, rss in self.samples:
            if t <= when <= until:
                for name, kb in rss.items():
                    peak[name] = max(peak.get(name, 0), kb)
        return peak


@dataclass
class Memory:
    process: str
    warm_kb: int
    end_kb: int
    peak_kb: int
    curve_kb: list[int] = field(default_factory=list)  # at each tenth of the day, start to end

    @property
    def change(self) -> float:
        return (self.end_kb - self.warm_kb) / self.warm_kb

    @property
    def flat(self) -> bool:
        return self.change <= FLAT_WITHIN


# -- watching the day ------------------------------------------------------------------------
@dataclass
class Watch:
    """What the soak sees of the run as it plays: the simulators, the day's end, and the
    longest a request or a delivery stayed in flight."""

    sims: dict[str, Simulator] = field(default_factory=dict)
    day_ended_at: float = 0.0  # time.monotonic() of the last step
    longest_in_flight_s: float = 0.0
    stuck: list[str] = field(default_factory=list)

    def step(self) -> None:
        now = time.monotonic()
        self.day_ended_at = now
        for sim in self.sims.values():
            for request in sim.requests.values():  # oldest first
                self._saw(now - request.since - request.held_s, f"{sim.system} {request.call()}")
                break
            for delivery, since, _ in sim.webhooks.on_wire.values():
                self._saw(now - since, f"{sim.system} delivery of {delivery.event_id}")

    def _saw(self, age_s: float, what: str) -> None:
        self.longest_in_flight_s = max(self.longest_in_flight_s, age_s)
        if age_s > REQUEST_WATCHDOG_S and what not in self.stuck:
            self.stuck.append(what)


@contextlib.contextmanager
def simulators_kept(watch: Watch) -> Iterator[None]:
    """The run's simulators, kept for the ledger: what each delivery became is theirs alone
    (a delivery still queued at the cut is in no journal)."""
    build = runner.build_simulators

    def building(*args: Any, **kwargs: Any) -> dict[str, Simulator]:
        watch.sims = build(*args, **kwargs)
        return watch.sims

    runner.build_simulators = building
    try:
        yield
    finally:
        runner.build_simulators = build


def free_ports(count: int) -> int:
    """A first port N with N..N+count-1 free now (the simulators' --port-base)."""
    for _ in range(100):
        first = free_port()
        socks = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"found no {count} free ports in a row")


# -- the ledger ------------------------------------------------------------------------------
@dataclass
class Ledger:
    published: int = 0  # events the simulators had for the stack
    queued: int = 0  # published, not yet sent when the day was cut
    sent: int = 0  # sent at least once: the rest add up to this
    acknowledged: int = 0  # 2xx, and kept and handled by the stack
    retrying: int = 0  # no 2xx yet; the simulator will send it again
    dead_lettered: int = 0  # no 2xx, and the simulator gave up: on its failed list
    lost: int = 0  # none of the above
    lost_examples: list[str] = field(default_factory=list)
    stack_dead_letters: int = 0  # jobs on the stack's dead-letter list (GET /_stack/dead-letters)
    events_with_dead_work: int = 0  # acknowledged events about an entity with a dead letter
    stack_open: dict[str, int] = field(default_factory=dict)  # its idle probe after the day

    @property
    def accounted(self) -> int:
        return self.acknowledged + self.retrying + self.dead_lettered + self.lost

    def lose(self, event_id: str, why: str) -> None:
        self.lost += 1
        if len(self.lost_examples) < 5:
            self.lost_examples.append(f"{event_id}: {why}")


def digest(body: bytes) -> str:
    """The journal's body digest (simulators.common.journal.body_digest)."""
    return hashlib.sha256(body).hexdigest()[:16]


def journalled(journals: dict[str, list[dict[str, Any]]]) -> dict[str, list[int]]:
    """Statuses of every webhook attempt in the run's journals, by body digest."""
    attempts: dict[str, list[int]] = {}
    for entries in journals.values():
        for entry in entries:
            if entry["direction"] == "out":
                attempts.setdefault(entry["body_digest"], []).append(entry["status"])
    return attempts


def inbox(db: Path) -> dict[str, str | None]:
    """The stack's inbox after it stopped: event id -> the error it was handled with (None:
    handled cleanly; "unhandled" if it never was)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT event_id, processed, error FROM inbox").fetchall()
    return {event_id: error if processed else "unhandled" for event_id, processed, error in rows}


def account(
    deliveries: list[Delivery],
    journals: dict[str, list[dict[str, Any]]],
    kept: dict[str, str | None],
    dead_entities: set[str],
) -> Ledger:
    """What became of every event the simulators had for the stack.

    Acknowledged counts only an event whose 2xx is in the journal (so the verdict saw it) and
    whose id is in the stack's inbox, handled without error; acknowledged and then dropped or
    forgotten is lost. Every attempt of a sent event must be journalled, bar one cut off on
    the wire when the day ended."""
    ledger = Ledger()
    seen = journalled(journals)
    by_event: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        if not delivery.probe:  # forged and replayed copies are refused on purpose
            by_event.setdefault(delivery.event_id, []).append(delivery)
    for event_id, copies in by_event.items():
        ledger.published += 1
        attempts = sum(d.attempts for d in copies)
        if attempts == 0:
            ledger.queued += 1
            continue
        ledger.sent += 1
        statuses = [s for body in {digest(d.body) for d in copies} for s in seen.get(body, [])]
        pending = any(d.status == "pending" for d in copies)
        if len(statuses) < attempts - (1 if pending else 0):
            ledger.lose(event_id, f"{attempts} attempts, {len(statuses)} in the journals")
        elif any(d.status == "delivered" for d in copies):
            if not any(200 <= s < 300 for s in statuses):
                ledger.lose(event_id, "acknowledged, but no 2xx in the journals")
            elif event_id not in kept:
                ledger.lose(event_id, "acknowledged, but not in the stack's inbox")
            elif kept[event_id] is not None:
                ledger.lose(event_id, f"acknowledged, then dropped: {kept[event_id]}")
            else:
                ledger.acknowledged += 1
                refs = {d.ref for d in copies}
                ledger.events_with_dead_work += bool(refs & dead_entities)
        elif pending:
            ledger.retrying += 1
        else:
            ledger.dead_lettered += 1
    return ledger


# -- the run ---------------------------------------------------------------------------------
@dataclass
class SoakResult:
    scenario: Scenario
    outcome: RunOutcome
    ledger: Ledger
    memory: list[Memory]
    warmup_s: float
    day_s: float
    longest_in_flight_s: float
    stuck: list[str]
    report_dir: Path

    @property
    def notes(self) -> list[str]:
        """The run's notes (watchdogs, slow clients, incidents), bar the expected one that
        the horizon cut the day."""
        return [n for n in self.outcome.notes if not n.startswith(HORIZON_NOTE)]

    @property
    def held(self) -> bool:
        """Nothing lost, nothing stuck, every process's memory flat after warm-up."""
        return self.ledger.lost == 0 and not self.stuck and all(m.flat for m in self.memory)


async def stack_after_day(base: str) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """The stack's idle probe and dead letters, read once the day is over."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        probe = (await client.get("/_stack/idle")).json()
        dead = (await client.get("/_stack/dead-letters")).json()["items"]
    return {k: int(v) for k, v in probe.items() if k != "idle"}, dead


async def soak(
    *,
    minutes: float = 10.0,
    rate_factor: float = 2.0,
    clock_factor: float = 1.0,
    report_dir: Path,
    sample_every_s: float = 5.0,
    warmup_s: float | None = None,
) -> SoakResult:
    day = soak_scenario(
        load(PEAK_DAY), minutes=minutes, rate_factor=rate_factor, clock_factor=clock_factor
    )
    wall_s = minutes * 60
    warmup_s = min(120.0, wall_s / 5) if warmup_s is None else warmup_s
    report_dir.mkdir(parents=True, exist_ok=True)
    files = report_dir / "stack"  # not a name the run's report folder clears
    files.mkdir(exist_ok=True)
    db = files / "refstack.db"
    for stale in files.glob("refstack.db*"):
        stale.unlink()
    port_base, port = free_ports(4), free_port()
    secret = secrets.token_hex(16)
    urls = {s: f"http://127.0.0.1:{port_base + i}" for i, s in enumerate(simulators.SYSTEMS)}
    env = runner.simulator_env(urls, secret, port) | {"REFSTACK_DB": str(db), "TMPDIR": str(files)}
    stack = StackProcess(REFERENCE_STACK_CMD, env, files / "stack.log")
    base = f"http://127.0.0.1:{port}"
    watch = Watch()
    config = RunConfig(
        scenario=day,
        scenario_path=str(PEAK_DAY),
        stack_url=base,
        port_base=port_base,
        webhook_secret=secret,
        report_dir=report_dir,
        ready_timeout_s=30.0,
        on_step=lambda world, process: watch.step(),
    )
    try:
        with RssSampler({"harness": os.getpid(), "stack": stack.proc.pid}, sample_every_s) as rss:
            with simulators_kept(watch):
                outcome = await runner.run(config)
            probe, dead = await stack_after_day(base)
    finally:
        stack.stop()
    verdict_json.write(outcome, report_dir)
    run_files.write(outcome, report_dir)
    deliveries = [d for sim in watch.sims.values() for d in sim.webhooks.deliveries]
    ledger = account(deliveries, outcome.journals, inbox(db), {d["entity"] for d in dead})
    ledger.stack_dead_letters, ledger.stack_open = len(dead), probe
    day_s = (watch.day_ended_at or time.monotonic()) - rss.started
    warm, end, peak = rss.at(warmup_s), rss.at(day_s), rss.peak_after(warmup_s, day_s)
    tenths = [rss.at(day_s * k / 10) for k in range(11)]
    memory = [
        Memory(name, warm[name], end[name], peak[name], [t.get(name, 0) for t in tenths])
        for name in rss.pids
    ]
    result = SoakResult(
        day,
        outcome,
        ledger,
        memory,
        warmup_s,
        day_s,
        watch.longest_in_flight_s,
        watch.stuck,
        report_dir,
    )
    (report_dir / "soak.json").write_bytes(
        orjson.dumps(figures(result), option=orjson.OPT_INDENT_2)
    )
    return result


# -- what is printed -------------------------------------------------------------------------
def figures(result: SoakResult) -> dict[str, Any]:
    outcome = result.outcome
    return {
        "scenario": result.scenario.name,
        "orders": result.scenario.demand.orders,
        "clock_factor": result.scenario.clock.factor,
        "wall_seconds": round(outcome.wall_s, 1),
        "day_seconds": round(result.day_s, 1),
        "virtual_seconds": round(outcome.virtual_s, 1),
        "counts": outcome.counts,
        "ledger": asdict(result.ledger),
        "memory_kb": [asdict(m) | {"change": round(m.change, 4)} for m in result.memory],
        "warmup_seconds": result.warmup_s,
        "longest_in_flight_seconds": round(result.longest_in_flight_s, 3),
        "stuck": result.stuck,
        "passed": outcome.passed,
        "failed_oracles": [r.name for r in outcome.results if not r.passed],
        "diagnosis": outcome.diagnosis,
        "notes": outcome.notes,
        "held": result.held,
    }


def render(result: SoakResult, out: Callable[[str], None] = print) -> None:
    outcome, ledger, day = result.outcome, result.ledger, result.scenario
    out(
        f"soak: {day.description}: {day.demand.orders} orders in {outcome.virtual_s / 60:.1f} "
        f"virtual minutes ({outcome.wall_s:.0f} s wall, day {result.day_s:.0f} s)"
    )
    counts = outcome.counts
    out(
        "  world: "
        + ", ".join(f"{k} {counts[k]}" for k in ("released", "shipped", "exchanges") if k in counts)
    )
    out(
        f"events: published {ledger.published} (queued unsent at the cut {ledger.queued}); "
        f"sent {ledger.sent} = acknowledged {ledger.acknowledged} + dead-lettered "
        f"{ledger.dead_lettered} + retrying {ledger.retrying} + lost {ledger.lost}"
    )
    for example in ledger.lost_examples:
        out(f"  lost: {example}")
    open_work = ", ".join(f"{k} {v}" for k, v in ledger.stack_open.items())
    out(
        f"stack: {ledger.stack_dead_letters} dead letters (about {ledger.events_with_dead_work} "
        f"acknowledged events' work); after the day: {open_work}"
    )
    out(f"memory (VmRSS; warm-up {result.warmup_s:.0f} s):")
    for m in result.memory:
        out(
            f"  {m.process:8} warm-up end {m.warm_kb / 1024:7.1f} MiB  end {m.end_kb / 1024:7.1f}"
            f" MiB  ({m.change:+.1%})  peak after warm-up {m.peak_kb / 1024:.1f} MiB  "
            f"{'flat' if m.flat else 'GREW'}"
        )
        out(f"           by tenths of the day: {' '.join(f'{kb / 1024:.1f}' for kb in m.curve_kb)}")
    out(
        f"in flight: longest {result.longest_in_flight_s:.2f} s (watchdog "
        f"{REQUEST_WATCHDOG_S:g} s); stuck: {', '.join(result.stuck) or 'none'}"
    )
    for note in result.notes:
        out(f"  note: {note}")
    failed = [r.name for r in outcome.results if not r.passed]
    verdict = "passed" if outcome.passed else f"failed ({', '.join(failed) or 'cut short'})"
    out(f"verdict: {verdict}; {len(outcome.results)} oracles judged")
    for line in outcome.diagnosis:
        out(f"  diagnosis: {line}")
    out(f"soak {'held' if result.held else 'did NOT hold'}; reports in {result.report_dir}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="wall minutes (default 10)")
    parser.add_argument(
        "--rate-factor", type=float, default=2.0, help="x the peak hour's order rate (default 2)"
    )
    parser.add_argument(
        "--clock-factor", type=float, default=1.0, help="virtual s per wall s (default 1)"
    )
    parser.add_argument("--sample-every", type=float, default=5.0, help="RSS sampling, s")
    parser.add_argument("--warmup", type=float, default=None, help="s (default 20%%, <= 120)")
    parser.add_argument("--report-dir", type=Path, default=Path("reports/soak"))
    args = parser.parse_args(argv)
    result = uvloop.run(
        soak(
            minutes=args.minutes,
            rate_factor=args.rate_factor,
            clock_factor=args.clock_factor,
            report_dir=args.report_dir,
            sample_every_s=args.sample_every,
            warmup_s=args.warmup,
        )
    )
    render(result)
    return 0 if result.held else 1


if __name__ == "__main__":
    sys.exit(main())
