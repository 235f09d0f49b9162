"""A load run: the simulators, the stack and the world (in realtime) here; Locust beside it.

1. The simulators and the stack start as for ``twinyard run``; the world is built with
   ``ExternalDemand`` for customers and a clock held at the window's open.
2. Locust starts (``harness.load.engine``) and reads its plan from the feed; its shape's first
   tick starts the clock, so the window's first minute is its first minute.
3. The world plays in realtime while Locust's users release orders along the curve; flows are
   followed from the simulators (``harness.load.flows``) and read by Locust from the feed.
4. Locust's window ends: it says so, and the world plays on until its last parcel settles.
5. The day is over: open flows become failures, the flows' service levels are judged, Locust
   reads the last of it, fires it into its statistics, sets its exit code and writes its CSV
   and HTML; the oracles judge the whole day as for ``twinyard run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import simpy

from harness import diagnosis, hosting, oracles
from harness.driving import moment
from harness.load import engine, feed, saturation
from harness.load.curve import FEED_ENV, PER_USER, Plan, plan_of
from harness.load.flows import FLOWS, ROW, FlowWatch
from harness.load.world import LoadClock, load_world
from harness.oracles import evidence
from harness.oracles.base import Finding, OracleResult
from harness.realtime import Realtime
from harness.report import digest, folder
from harness.report.progress import ProgressView
from harness.runner import (
    ConfigError,
    RunConfig,
    RunOutcome,
    build_simulators,
    declare_subscriptions,
    end_of_day,
    run_guard,
    simulator_env,
    slow_client_notes,
    stack_name,
    start_stack,
)
from harness.scenario import ClockSettings, Scenario
from harness.slos import ServiceLevel
from harness.stack import (
    HEALTH_PATH,
    ProcessWatch,
    StackError,
    StackProbe,
    StackProcess,
)

LOCUST_START_S = 60.0  # wall seconds Locust has to start its first tick
LOCUST_END_S = 60.0  # and to write its reports and exit once the day is over
FOLLOW_S = 0.1  # wall seconds between reads of the journals
BACKLOG_EVERY_S = 0.5  # wall seconds between backlog samples
NAMED = 10  # orders named per never-completed flow
LOAD_FILES = ("load.json", "locust.log", "locust.html", "locust_*.csv")  # besides run's


@dataclass
class LoadConfig:
    scenario: Scenario
    scenario_path: str | None = None
    multiplier: float = 1.0
    factor: float | None = None  # None: the scenario's clock factor
    per_user: float = PER_USER
    engine: engine.EngineOptions = field(default_factory=engine.EngineOptions)
    stack_url: str | None = None
    stack_cmd: str | None = None
    report_dir: Path = Path("reports/load")
    port_base: int | None = None
    webhook_secret: str | None = None
    control_token: str | None = None
    ready_timeout_s: float | None = None
    health_path: str = HEALTH_PATH
    max_wall_s: float | None = None
    progress: ProgressView | None = None
    # A short step (``--find-knee``): the load window only ``window`` (virtual seconds of day,
    # at the same rate the whole day has there), and the play stops ``drain_s`` wall seconds
    # after it closes instead of playing the tail; the day is not judged by the oracles.
    window: tuple[float, float] | None = None
    drain_s: float | None = None
    judge_day: bool = True


@dataclass
class LoadOutcome:
    """The day judged (``run``: as ``twinyard run`` gives it), and what Locust made of it."""

    run: RunOutcome
    plan: Plan
    flows: dict[str, dict[str, Any]]  # measure -> row, completed, never, wall ms p50 ... max
    judgement: dict[str, Any]  # what Locust was told: SLO breaches, never-completed flows
    backlog: list[tuple[float, dict[str, int]]]
    locust_exit: int | None  # None: it had to be stopped
    locust_log: Path
    csv: Path | None
    html: Path | None
    orders_sent: int = 0
    # measure -> (virtual start s, virtual seconds, completed) of every flow the run started; a
    # flow still open at the end counts with its age then (a lower bound)
    flow_times: dict[str, list[tuple[float, float, bool]]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.run.passed and self.locust_exit == 0


async def play(config: LoadConfig) -> LoadOutcome:
    """Play the load with the report folder held for this run alone."""
    try:
        with folder.claimed(config.report_dir):
            for stale in LOAD_FILES:  # the last run's, so none is taken for this one's
                for path in config.report_dir.glob(stale):
                    path.unlink(missing_ok=True)
            return await _play(config)
    except folder.FolderInUse as exc:
        raise ConfigError(str(exc)) from None


def _check(config: LoadConfig, plan: Plan) -> None:
    try:
        oracles.select(config.scenario.expect.oracles)
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None
    if config.stack_url and config.stack_cmd:
        raise ConfigError("give --stack-url or --stack-cmd, not both")
    if not engine.available():
        raise ConfigError("Locust is not installed here: pip install 'locust>=2.20'")
    if not config.engine.locustfile.is_file():
        raise ConfigError(f"--locustfile {config.engine.locustfile}: no such file")
    if plan.curve.mass <= 0 or plan.curve.total < 1:
        raise ConfigError(
            f"{config.scenario_path or config.scenario.name}: the load window brings no orders "
            f"({plan.curve.orders} orders x {plan.curve.multiplier:g})"
        )


async def _play(config: LoadConfig) -> LoadOutcome:
    scenario = config.scenario
    plan = plan_of(scenario, config.multiplier, config.factor, config.per_user)
    _check(config, plan)
    if config.window is not None:
        plan = windowed(plan, *config.window)
    curve = plan.curve
    played = scenario.model_copy(
        update={"clock": ClockSettings(mode="realtime", factor=curve.factor)}
    )
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    started = time.perf_counter()
    clock = LoadClock(scenario.epoch, curve.factor, curve.open_s)
    env = simpy.Environment(initial_time=curve.open_s)
    run_config = RunConfig(
        scenario=played, stack_url=config.stack_url, control_token=config.control_token
    )
    guard = run_guard(run_config)
    sims = build_simulators(scenario, clock, guard)
    ports = [0] * 4 if config.port_base is None else [config.port_base + i for i in range(4)]
    try:
        hosted = await hosting.serve(list(sims.values()), ports)
    except hosting.PortInUse as exc:
        raise ConfigError(str(exc)) from None
    urls = {system: h.url for system, h in zip(sims, hosted, strict=True)}
    secret = config.webhook_secret or secrets.token_hex(16)
    watch = FlowWatch(sims, clock, scenario.epoch.timestamp())
    notes: list[str] = []
    lag = saturation.LoopLag()
    process: StackProcess | None = None
    locust: engine.LocustProcess | None = None
    server = None
    probe: StackProbe | None = None
    ready_s = 0.0
    cut_short = False
    locust_exit: int | None = None
    judgement: dict[str, Any] = {}
    try:
        base, ready_timeout, process = start_stack(
            config.stack_url,
            config.stack_cmd,
            config.report_dir,
            config.ready_timeout_s,
            lambda port: simulator_env(urls, secret, port, guard.token),
        )
        probe = StackProbe(base, scenario.stack.idle_path, config.health_path)
        if process is not None and ProcessWatch.available():
            probe.process = ProcessWatch(process.proc.pid)
        waited = time.perf_counter()
        try:
            await probe.wait_ready(ready_timeout, process)
        except StackError as exc:
            raise ConfigError(str(exc)) from None
        ready_s = time.perf_counter() - waited
        if not scenario.stack.schedule and (declared := declare_subscriptions(sims, base, secret)):
            notes.append(f"declared webhook subscriptions for: {', '.join(declared)}")
        world = load_world(scenario, env, {s: sim.model for s, sim in sims.items()})
        demand = world.customers
        on_step = _progress(config.progress, world, clock, list(sims.values()))
        driver = Realtime(
            env,
            clock,
            list(sims.values()),
            probe,
            horizon_s=scenario.horizon_days * 86_400.0,
            on_step=on_step,
        )

        def start_clock() -> Plan:
            clock.go()
            return plan.anchored(clock.now(), time.time())

        state = feed.FeedState(plan, watch, start_clock, demand.close)  # type: ignore[attr-defined]
        sock = hosting.bind(hosting.LOOPBACK, 0)
        server = await hosting.start_server(feed.app(state), sock)
        feed_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        argv = engine.command(config.engine, urls["erp"], feed_url)
        try:
            locust = engine.LocustProcess(
                argv, config.report_dir / "locust.log", {FEED_ENV: feed_url}
            )
        except engine.EngineError as exc:
            raise ConfigError(str(exc)) from None
        await _locust_started(locust, state)
        deadline = None if config.max_wall_s is None else started + config.max_wall_s
        if config.drain_s is not None:  # a knee step: the window, then drain_s, then judged
            step_end = time.perf_counter() + curve.wall_seconds + config.drain_s
            deadline = step_end if deadline is None else min(deadline, step_end)
        follower = asyncio.create_task(_follow(watch, locust, demand, notes))
        lag.start()
        try:
            if not await _within(driver.run(), deadline):
                cut_short = True
                why = "the step ended" if config.drain_s is not None else "stopped at --max-wall"
                notes.insert(
                    0,
                    f"{why} after {time.perf_counter() - started:.1f} s at "
                    f"virtual {moment(clock.now())}; the day was not finished",
                )
        finally:
            await lag.stop()
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        watch.sample_backlog()
        flow_times = watch.times()
        never = watch.finish()
        levels = watch.service_levels(dict(scenario.expect.slos))
        judgement = _judgement(levels, watch)
        state.judgement, state.done = judgement, True
        wait_s = LOCUST_END_S + (engine.WEB_AUTOQUIT_S if config.engine.web else 0)
        locust_exit = await locust.wait(wait_s)
        if locust_exit is None:
            notes.append(f"Locust did not stop {wait_s:.0f} s after the day ended: stopped")
        elif locust_exit != 0:
            notes.append(f"Locust exited with code {locust_exit} ({locust.log_path})")
    finally:
        if locust is not None and locust.exited() is None:
            locust.stop()
        if server is not None:
            server.should_exit = True
            await server.shutdown()
        if probe is not None:
            await probe.close()
        exit_code = process.exited() if process is not None else None
        if process is not None:
            process.stop()
        await hosting.shutdown(hosted)
    notes += driver.stalls + slow_client_notes(list(sims.values())) + world.incidents
    if driver.stack_down:
        notes.append("the stack stopped answering during the run")
    sent = demand.released  # type: ignore[attr-defined]
    notes.insert(
        1 if cut_short else 0,  # after where --max-wall stopped it, which always comes first
        f"load: {sent} orders released by Locust at {curve.multiplier:g}x the real rate "
        f"(peak {curve.peak_per_hour():,.0f} orders per virtual hour, "
        f"{curve.peak_per_hour() * curve.factor / 3600:,.1f} per wall second), "
        f"virtual time at {curve.factor:g}x wall",
    )
    run = _outcome(config, played, sims, urls, world, driver, clock, notes, levels, never, watch)
    loop_lag = lag.stats()
    run.notes.append(saturation.note(loop_lag, saturation.service_times(run.journals)))
    if config.judge_day:
        run.results.append(saturation.judge(loop_lag))
    run.wall_s = time.perf_counter() - started
    run.ready_s, run.started_at, run.cut_short = ready_s, started_at, cut_short
    run.diagnosis = diagnosis.diagnose(
        oracles.SystemsView(run.snapshots, run.journals),
        run.journals,
        launched=process is not None,
        exit_code=exit_code,
    )
    return LoadOutcome(
        run=run,
        plan=state.plan,
        flows=watch.stats(),
        judgement=judgement,
        backlog=watch.backlog,
        locust_exit=locust_exit,
        locust_log=config.report_dir / "locust.log",
        csv=config.engine.csv,
        html=config.engine.html,
        orders_sent=sent,
        flow_times=flow_times,
    )


def windowed(plan: Plan, open_s: float, close_s: float) -> Plan:
    """The plan with its load window cut to ``[open_s, close_s)`` at the rates the whole day
    has there (the multiplier scaled by the share of the day's orders that window brings)."""
    curve = plan.curve
    part = replace(curve, open_s=max(open_s, curve.open_s), close_s=min(close_s, curve.close_s))
    if part.mass <= 0:
        raise ConfigError("the step's window brings no orders")
    return replace(plan, curve=replace(part, multiplier=curve.multiplier * part.mass / curve.mass))


async def _locust_started(locust: engine.LocustProcess, state: feed.FeedState) -> None:
    """Until Locust's shape has started the clock (it reads the plan first)."""
    deadline = time.monotonic() + LOCUST_START_S
    while not state.started:
        if (code := locust.exited()) is not None:
            tail = locust.tail(3).replace("\n", " | ")
            raise ConfigError(
                f"Locust exited with code {code} before it started ({locust.log_path}): {tail}"
            )
        if time.monotonic() > deadline:
            raise ConfigError(
                f"Locust did not start within {LOCUST_START_S:.0f} s ({locust.log_path})"
            )
        await asyncio.sleep(0.05)


async def _follow(
    watch: FlowWatch, locust: engine.LocustProcess, demand: Any, notes: list[str]
) -> None:
    """Read the journals as they grow, sample the backlog, and end the arrivals if Locust
    ends without saying so."""
    next_sample = 0.0
    while True:
        watch.poll()
        now = time.monotonic()
        if now >= next_sample:
            watch.sample_backlog()
            next_sample = now + BACKLOG_EVERY_S
        if demand.arriving and (code := locust.exited()) is not None:
            notes.append(f"Locust ended (exit code {code}) before its window did")
            demand.close()
        await asyncio.sleep(FOLLOW_S)


async def _within(work: Any, deadline: float | None) -> bool:
    """Await ``work``; False when the wall-clock ``deadline`` came first."""
    if deadline is None:
        await work
        return True
    try:
        async with asyncio.timeout(max(0.0, deadline - time.perf_counter())) as limit:
            await work
    except TimeoutError:
        if not limit.expired():
            raise
        return False
    return True


def _progress(
    view: ProgressView | None, world: Any, clock: LoadClock, sims: list[Any]
) -> Callable[[], None] | None:
    if view is None:
        return None
    return lambda: view.update(clock.iso(), world.counts, sum(len(s.journal.entries) for s in sims))


def _judgement(levels: list[ServiceLevel], watch: FlowWatch) -> dict[str, Any]:
    """What Locust is told at the end: each threshold missed, and the flows never completed."""
    breaches = [
        f"{ROW}{FLOWS[level.name]} {stat} {value:.1f} s > {limit:g} s "
        f"(virtual seconds, {level.name})"
        for level in levels
        for stat, (value, limit) in level.breaches.items()
    ]
    never = {ROW + FLOWS[m]: c["never"] for m, c in watch.counts().items() if c["never"]}
    return {"passed": not breaches, "breaches": breaches, "never_completed": never}


def flows_result(never: dict[str, list[str]], watch: FlowWatch) -> OracleResult:
    """Every flow the day started completed by its end: one finding per flow left open."""
    counts = watch.counts()
    findings = []
    for measure, orders in never.items():
        shown = ", ".join(orders[:NAMED]) + (" ..." if len(orders) > NAMED else "")
        findings.append(
            Finding(
                f"{ROW}{FLOWS[measure]}",
                f"{counts[measure]['never']} never completed by the day's end: {shown}",
                expected=0,
                actual=counts[measure]["never"],
            )
        )
    checked = sum(c["completed"] + c["never"] for c in counts.values())
    return OracleResult(
        "flows_completed",
        "Every business flow the day started reached the next system by the day's end "
        "(load: nothing stuck behind the peak)",
        checked,
        findings,
    )


def _outcome(
    config: LoadConfig,
    played: Scenario,
    sims: dict[str, Any],
    urls: dict[str, str],
    world: Any,
    driver: Realtime,
    clock: LoadClock,
    notes: list[str],
    levels: list[ServiceLevel],
    never: dict[str, list[str]],
    watch: FlowWatch,
) -> RunOutcome:
    """The day judged as ``twinyard run`` judges one (runner._run's ending), with the flows'
    service levels (measured live, at wall precision) and ``flows_completed``."""
    day = end_of_day(world, sims, played, notes)
    results = []
    if config.judge_day:
        results = evidence.attach(oracles.judge(day.view, played.expect.oracles), day.view)
        results.append(flows_result(never, watch))
    return RunOutcome(
        scenario=played,
        scenario_path=config.scenario_path,
        results=results,
        counts=day.counts,
        wall_s=0.0,
        virtual_s=clock.now(),
        steps=driver.steps,
        notes=notes,
        urls=urls,
        stack_log=str(config.report_dir / "stack.log") if not config.stack_url else None,
        snapshots=day.snapshots,
        journals=day.journals,
        service_levels=levels,
        faults_applied=day.faults_applied,
        stack=stack_name(config.stack_url, config.stack_cmd),
        scenario_digest=digest.digest(played.model_dump(mode="json")),
        outcome_digest=digest.outcome(day.view),
    )
