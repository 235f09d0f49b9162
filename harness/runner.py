"""A run: start the simulators and the stack, play the world in lockstep, judge the outcome."""

from __future__ import annotations

import asyncio
import functools
import secrets
import shlex
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import simpy

import simulators
from harness import diagnosis, hosting, operator, oracles, restarts, slos
from harness.clock import LockstepClock, RealtimeClock
from harness.containers import CONTAINER_FILES, ContainerStack, StackImage
from harness.driving import REQUEST_WATCHDOG_S, Driver
from harness.driving import moment as virtual_moment
from harness.lockstep import STEP_WATCHDOG_S, Lockstep
from harness.operator import DeadCount, OnCall
from harness.oracles import evidence
from harness.oracles.base import OracleResult
from harness.oracles.view import Journals
from harness.polling import PollWatch
from harness.realtime import Realtime
from harness.report import digest, folder
from harness.report.progress import ProgressView
from harness.scenario import Scenario
from harness.scripted import moment_text
from harness.slos import ServiceLevel
from harness.stack import (
    HEALTH_PATH,
    REFERENCE_STACK_CMD,
    ProcessWatch,
    StackError,
    StackProbe,
    StackProcess,
    free_port,
)
from harness.world.world import World, catalogue_of
from simulators.common.clock import Clock
from simulators.common.guard import TOKEN_ENV, Guard, names, new_token, webhook_allow_from_env
from simulators.common.journal import Dicts
from simulators.common.simulator import Simulator

DAY = 86_400.0
LAUNCH_READY_S = 30.0  # a stack the harness starts may take a while to boot
URL_READY_S = 3.0  # a stack given by URL is already running: it answers at once or is missing
SLOW_CLIENTS_NAMED = 5  # connections the listeners gave up on, named one by one in the notes


class ConfigError(Exception):
    """The run cannot start as configured (exit code 2)."""


@dataclass
class RunConfig:
    scenario: Scenario
    scenario_path: str | None = None
    stack_url: str | None = None
    stack_cmd: str | None = None
    report_dir: Path = Path("reports/latest")
    port_base: int | None = None  # None: any free ports
    webhook_secret: str | None = None
    control_token: str | None = None  # the simulators' control-plane token; None: a new one
    webhook_allow: tuple[str, ...] = ()  # hosts subscriptions may call beyond loopback
    stack_env: dict[str, str] = field(default_factory=dict)  # extra variables for a launched stack
    ready_timeout_s: float | None = None  # None: LAUNCH_READY_S launched, URL_READY_S by URL
    health_path: str = HEALTH_PATH
    # Called after every lockstep step with the world and the launched stack (if any):
    # the progress view hangs here, and tests use it to break the stack mid-run.
    on_step: Callable[[World, StackProcess | ContainerStack | None], None] | None = None
    # Shown while the run plays (None: nothing is shown).
    progress: ProgressView | None = None
    # Watchdogs (wall seconds): a request in flight at a simulator longer than this is named
    # in the notes and no longer waited for; a lockstep step that cannot get quiet within
    # step_watchdog_s says what held it and goes on (docs/choreography.md).
    request_watchdog_s: float = REQUEST_WATCHDOG_S
    step_watchdog_s: float = STEP_WATCHDOG_S
    # The whole run stops this many wall seconds after it started (`run --max-wall`): the day
    # is judged as it stood, and the run fails. None: no limit.
    max_wall_s: float | None = None


@dataclass
class RunOutcome:
    scenario: Scenario
    scenario_path: str | None
    results: list[OracleResult]
    counts: dict[str, int]
    wall_s: float
    virtual_s: float
    steps: int
    notes: list[str] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    stack_log: str | None = None
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)  # final simulator state
    journals: Journals = field(default_factory=dict)  # every exchange
    faults_applied: dict[str, dict[str, int]] = field(default_factory=dict)  # system -> label -> n
    service_levels: list[ServiceLevel] = field(default_factory=list)
    diagnosis: list[str] = field(default_factory=list)  # why, said before the oracles' what
    ready_s: float = 0.0  # wall seconds the stack took to answer its health route
    started_at: str = ""  # wall clock, ISO-8601 UTC
    stack: str = ""  # what was tested: the command launched, or the URL
    scenario_digest: str = ""  # the scenario as loaded, defaults included
    outcome_digest: str = ""  # the business outcome, keyed by business identity
    cut_short: bool = False  # stopped at --max-wall: the day was not finished
    dead_letters: list[dict[str, Any]] | None = None  # the stack's at the end (None: not listed)

    def __repr__(self) -> str:
        """A line, not the day: asyncio's runner reprs the finished main task, its result
        included, twice on the way out (``signal.signal`` hands back the old SIGINT handler,
        a partial holding the task). The dataclass repr of every journal entry and the whole
        final state was the harness's peak memory on a large day (a 10,000-order peak day's
        outcome prints to hundreds of MB)."""
        failing = sum(not r.passed for r in self.results)
        return (
            f"<RunOutcome {self.scenario.name!r}: {'pass' if self.passed else 'fail'}, "
            f"{len(self.results)} oracles ({failing} failing), "
            f"{self.counts.get('exchanges', 0)} exchanges>"
        )

    @property
    def passed(self) -> bool:
        """Every oracle passed and every service level met its thresholds, on a day played
        to its end (a run stopped at --max-wall cannot pass)."""
        return (
            not self.cut_short
            and all(r.passed for r in self.results)
            and all(s.passed for s in self.service_levels)
        )


def private_files(report_dir: Path) -> dict[str, str]:
    """Where a launched stack may write (``TWINYARD_RUN_DIR``, and ``TMPDIR`` for anything
    that uses the temp folder): inside this run's report folder, so runs side by side (xdist
    workers, a selftest) never share a database or a spool file."""
    files = report_dir.resolve() / "stack-files"
    shutil.rmtree(files, ignore_errors=True)
    (files / "tmp").mkdir(parents=True)
    return {"TWINYARD_RUN_DIR": str(files), "TMPDIR": str(files / "tmp")}


def simulator_env(
    urls: dict[str, str], secret: str, port: int, token: str | None = None
) -> dict[str, str]:
    """What a stack is told about its world: one base URL per system, the webhook secret and
    the control-plane token (for a stack's own tooling that drives ``/_sim/``)."""
    env = {f"TWINYARD_{system.upper()}_URL": url for system, url in urls.items()}
    env["TWINYARD_WEBHOOK_SECRET"] = secret
    env["TWINYARD_STACK_PORT"] = str(port)
    if token is not None:
        env[TOKEN_ENV] = token
    return env


def run_guard(config: RunConfig) -> Guard:
    """The run's control-plane token, and the hosts its webhooks may call beyond loopback:
    those allowed (``TWINYARD_WEBHOOK_ALLOW``, ``webhook_allow``) and a ``--stack-url`` stack's
    own host, since the user named it."""
    allowed = webhook_allow_from_env() | names(config.webhook_allow)
    if config.stack_url and (host := urlsplit(config.stack_url).hostname):
        allowed |= names(host)
    return Guard(token=config.control_token or new_token(), webhook_hosts=allowed)


def declare_subscriptions(sims: dict[str, Simulator], stack_url: str, secret: str) -> list[str]:
    """Subscribe the stack where it did not subscribe itself (a stack started elsewhere)."""
    declared = []
    for system, sim in sims.items():
        if not sim.webhooks.subscriptions:
            sim.webhooks.subscribe(f"{stack_url}/webhooks/{system}", ["*"], secret)
            declared.append(system)
    return declared


def _step_hook(
    config: RunConfig,
    world: World,
    process: StackProcess | ContainerStack | None,
    clock: LockstepClock | RealtimeClock,
    sims: list[Simulator],
) -> Callable[[], None] | None:
    hooks: list[Callable[[], None]] = []
    if config.progress is not None:
        view = config.progress
        hooks.append(
            lambda: view.update(
                clock.iso(), world.counts, sum(len(s.journal.entries) for s in sims)
            )
        )
    if config.on_step is not None:
        user_hook = config.on_step
        hooks.append(lambda: user_hook(world, process))
    if not hooks:
        return None

    def after_step() -> None:
        for hook in hooks:
            hook()

    return after_step


def _driver(
    config: RunConfig,
    env: simpy.Environment,
    clock: LockstepClock | RealtimeClock,
    sims: list[Simulator],
    probe: StackProbe,
    on_step: Callable[[], None] | None,
) -> Lockstep | Realtime:
    scenario = config.scenario
    horizon_s = scenario.horizon_days * DAY
    if isinstance(clock, RealtimeClock):
        return Realtime(
            env,
            clock,
            sims,
            probe,
            horizon_s=horizon_s,
            on_step=on_step,
            request_watchdog_s=config.request_watchdog_s,
        )
    return Lockstep(
        env,
        clock,
        sims,
        probe,
        horizon_s=horizon_s,
        resolution_s=scenario.clock.resolution_s,
        settle_s=scenario.stack.settle_ms / 1000,
        on_step=on_step,
        polls=PollWatch(sims, scenario.stack.schedule, scenario.stack.poll_every),
        request_watchdog_s=config.request_watchdog_s,
        stall_timeout_s=config.step_watchdog_s,
    )


async def _play_within(driver: Driver, deadline: float | None) -> bool:
    """Play the day; False when the wall-clock ``deadline`` (``time.perf_counter()``) came
    first and stopped it."""
    if deadline is None:
        await driver.run()
        return True
    try:
        async with asyncio.timeout(max(0.0, deadline - time.perf_counter())) as limit:
            await driver.run()
    except TimeoutError:
        if not limit.expired():
            raise  # a timeout of the driver's own, not the run's limit
        return False
    return True


@dataclass
class EndOfDay:
    """What the simulators hold when a day ends, ready to judge and to report."""

    counts: dict[str, int]
    snapshots: dict[str, Any]
    journals: Journals  # also the journal file and `twinyard trace`
    view: oracles.SystemsView
    faults_applied: dict[str, dict[str, int]]


def end_of_day(
    world: Any,
    sims: dict[str, Simulator],
    scenario: Scenario,
    notes: list[str],
    dead_letters: list[dict[str, Any]] | None = None,
    dead_counts: Sequence[DeadCount] = (),
) -> EndOfDay:
    """The day's counts, state and journals (``notes`` gains the faults applied, if any);
    ``dead_letters`` is what the stack listed at the end (None: not listed), ``dead_counts``
    what its probe reported beside each listing."""
    counts = dict(world.counts) | {
        "exchanges": sum(len(sim.journal.entries) for sim in sims.values())
    }
    if scenario.faults:
        counts["faults_applied"] = sum(sum(sim.faults.applied) for sim in sims.values())
        applied = [
            f"{s} {label} x{n}"
            for s, sim in sims.items()
            for label, n in sorted(sim.faults.by_label.items())
        ]
        notes.append(f"faults applied: {', '.join(applied) or 'none'}")
    snapshots = {s: sim.model.snapshot() for s, sim in sims.items()}
    journals = {s: Dicts(sim.journal) for s, sim in sims.items()}
    return EndOfDay(
        counts,
        snapshots,
        journals,
        oracles.SystemsView(snapshots, journals, dead_letters, dead_counts),
        {
            s: dict(sorted(sim.faults.by_label.items()))
            for s, sim in sims.items()
            if sim.faults.by_label
        },
    )


def start_stack(
    stack_url: str | None,
    stack_cmd: str | list[str] | None,
    report_dir: Path,
    ready_timeout_s: float | None,
    env_for_port: Callable[[int], dict[str, str]],
    restarts: bool = False,
) -> tuple[str, float, StackProcess | ContainerStack | None]:
    """The stack's base URL, how long to wait for it to be ready, and its process when the
    harness launches it (on a free port, with ``env_for_port(port)``, its own files and its
    log in ``report_dir``); a stack given by URL is only reached. A ``StackImage`` as
    ``stack_cmd`` runs in a container (``harness.containers``)."""
    if stack_url:
        return stack_url.rstrip("/"), ready_timeout_s or URL_READY_S, None
    port = free_port()
    log = report_dir / "stack.log"
    process: StackProcess | ContainerStack
    if isinstance(stack_cmd, StackImage):  # `--stack-image`: files of its own, in the container
        env = env_for_port(port) | CONTAINER_FILES
        process = ContainerStack(stack_cmd.image, env, log, keep_run_dir=restarts)
    else:
        launched_env = env_for_port(port) | private_files(report_dir)
        launched_env["REFSTACK_DB"] = str(report_dir.resolve() / "refstack.db")
        process = StackProcess(stack_cmd or REFERENCE_STACK_CMD, launched_env, log)
    return f"http://127.0.0.1:{port}", ready_timeout_s or LAUNCH_READY_S, process


def stack_name(stack_url: str | None, stack_cmd: str | list[str] | None) -> str:
    """The stack as the verdict names it: its URL, or the command that launched it."""
    if stack_url:
        return stack_url
    cmd = stack_cmd or REFERENCE_STACK_CMD
    return cmd if isinstance(cmd, str) else shlex.join(cmd)


def slow_client_notes(sims: list[Simulator]) -> list[str]:
    """The connections the simulators' listeners gave up on, the first few by name."""
    lines = [line for sim in sims for line in sim.slow_clients]
    if len(lines) <= SLOW_CLIENTS_NAMED:
        return lines
    more = len(lines) - SLOW_CLIENTS_NAMED
    return [
        *lines[:SLOW_CLIENTS_NAMED],
        f"... and {more} more slow connections the simulators let go",
    ]


def build_simulators(
    scenario: Scenario, clock: Clock, guard: Guard | None = None
) -> dict[str, Simulator]:
    """The four simulators as the scenario's world sets them up, on ``clock``: its catalogue
    on the shelves of the stock keepers, its carrier API version, and its faults in their
    plans, keyed by its seed (windows on ``clock``: ``at`` counts from its zero); ``guard``
    closes their control plane (``simulators.common.guard``)."""
    stock = catalogue_of(scenario).stock()
    carrier = scenario.carrier
    options = {  # what each simulator's world varies beyond the defaults
        "erp": {"line_step": scenario.demand.line_step},
        "carrier": {
            "api_version": carrier.api_version,
            "scan_time_zone": carrier.scan_time_zone,
            "scan_time_millis": carrier.scan_time_millis,
        },
    }
    sims = {
        s: simulators.build(s, clock, stock=stock, guard=guard, **options.get(s, {}))
        for s in simulators.SYSTEMS
    }
    for sim in sims.values():
        sim.faults.seed = scenario.seed
    for fault in scenario.faults:
        sims[fault.system].faults.add(fault)
    return sims


async def run(config: RunConfig) -> RunOutcome:
    """Play the scenario with the report folder held for this run alone."""
    try:
        with folder.claimed(config.report_dir):
            return await _run(config)
    except folder.FolderInUse as exc:
        raise ConfigError(str(exc)) from None


async def _run(config: RunConfig) -> RunOutcome:
    scenario = config.scenario
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        oracles.select(scenario.expect.oracles)
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None
    if config.stack_url and config.stack_cmd:
        raise ConfigError("give --stack-url or --stack-cmd, not both")
    started = time.perf_counter()
    settings = scenario.clock
    clock: LockstepClock | RealtimeClock = (
        RealtimeClock(scenario.epoch, settings.factor)
        if settings.mode == "realtime"
        else LockstepClock(scenario.epoch, settings.pace)
    )
    env = simpy.Environment()
    guard = run_guard(config)
    sims = build_simulators(scenario, clock, guard)
    ports = [0] * 4 if config.port_base is None else [config.port_base + i for i in range(4)]
    try:
        hosted = await hosting.serve(list(sims.values()), ports)
    except hosting.PortInUse as exc:
        raise ConfigError(str(exc)) from None
    urls = {system: h.url for system, h in zip(sims, hosted, strict=True)}
    secret = config.webhook_secret or secrets.token_hex(16)
    notes: list[str] = []
    cut_short = False
    if scenario.carrier.api_version != "v1":  # a red day on an upgrade says so on its face
        notes.append(f"the carrier serves its API {scenario.carrier.api_version}")
    process = None
    dead_letters: list[dict[str, Any]] | None = None
    bounces: restarts.Restarts | None = None  # the scenario's stack_restarts, when played
    try:
        base, ready_timeout, process = start_stack(
            config.stack_url,
            config.stack_cmd,
            config.report_dir,
            config.ready_timeout_s,
            lambda port: simulator_env(urls, secret, port, guard.token) | config.stack_env,
            restarts=bool(scenario.stack_restarts),
        )
        probe = StackProbe(base, scenario.stack.idle_path, config.health_path)
        if process is not None and process.pid is not None and ProcessWatch.available():
            probe.process = ProcessWatch(process.pid)
        try:
            waited = time.perf_counter()
            try:
                await probe.wait_ready(ready_timeout, process)
            except StackError as exc:
                raise ConfigError(str(exc)) from None
            ready_s = time.perf_counter() - waited
            polls_only = bool(scenario.stack.schedule)  # a stack that polls takes no webhooks
            if not polls_only and (declared := declare_subscriptions(sims, base, secret)):
                notes.append(f"declared webhook subscriptions for: {', '.join(declared)}")
            world = World(scenario, env, {s: sim.model for s, sim in sims.items()})
            on_step = _step_hook(config, world, process, clock, list(sims.values()))
            driver = _driver(config, env, clock, list(sims.values()), probe, on_step)
            on_call = OnCall(base, scenario.stack.dead_letters_path, scenario.stack.idle_path)
            for at in scenario.on_call.replay_dead_letters_at:
                action = functools.partial(on_call.replay_dead_letters, moment_text(at))
                operator.schedule(env, at, action, driver.actions)
            if scenario.stack_restarts:
                if process is not None and restarts.restartable(process):
                    bounces = restarts.Restarts(process, probe, ready_timeout, clock, notes)
                    bounces.schedule(env, scenario.stack_restarts, driver, sims)
                else:
                    why = (
                        "the harness did not launch the stack (--stack-url): restart it yourself"
                        if process is None
                        else "its container engine is not on this machine, so its files "
                        "could not be kept across a restart"
                    )
                    notes.append(restarts.not_played(len(scenario.stack_restarts), why))
            deadline = None if config.max_wall_s is None else started + config.max_wall_s
            if not await _play_within(driver, deadline):
                cut_short = True
                notes.insert(
                    0,
                    f"stopped at --max-wall after {time.perf_counter() - started:.1f} s at "
                    f"virtual {virtual_moment(clock.now())}; the day was not finished",
                )
            if bounces is not None:
                bounces.unsprung()
            if (said := probe.note()) is not None:
                notes.append(said)
            notes += on_call.notes
            if not cut_short and not driver.stack_down:
                dead_letters = await on_call.leftover()
                if dead_letters:
                    notes.append(f"the stack ended the day with {len(dead_letters)} dead letters")
        finally:
            await probe.close()
    finally:
        exit_code = process.exited() if process is not None else None
        if process is not None:
            process.stop()
        await hosting.shutdown(hosted)
    for sim in sims.values():
        sim.release()  # judged from state and journals: the peak of a large day is judging
    notes += driver.stalls + slow_client_notes(list(sims.values())) + world.incidents
    if isinstance(driver, Lockstep):
        notes += [n for n in (driver.pacing_note(), driver.polling_note()) if n is not None]
    if driver.stack_down:
        notes.append("the stack stopped answering during the run")
    with hosting.collector_paused():  # the end of the day: a burst of long-lived objects
        day = end_of_day(world, sims, scenario, notes, dead_letters, on_call.counts)
        counts, snapshots, journals, view = day.counts, day.snapshots, day.journals, day.view
        launched = process is not None
        stack = stack_name(config.stack_url, config.stack_cmd)
        return RunOutcome(
            diagnosis=diagnosis.diagnose(
                view,
                journals,
                launched=launched,
                exit_code=exit_code,
                downtime=bounces.downtime if bounces is not None else (),
            ),
            ready_s=ready_s,
            started_at=started_at,
            stack=stack,
            scenario_digest=digest.digest(scenario.model_dump(mode="json")),
            outcome_digest=digest.outcome(view),
            scenario=scenario,
            scenario_path=config.scenario_path,
            results=evidence.attach(oracles.judge(view, scenario.expect.oracles), view),
            counts=counts,
            wall_s=time.perf_counter() - started,
            virtual_s=clock.now(),
            steps=driver.steps,
            notes=notes,
            cut_short=cut_short,
            urls=urls,
            stack_log=str(process.log_path) if process else None,
            snapshots=snapshots,
            journals=journals,
            service_levels=slos.measure(view, dict(scenario.expect.slos)),
            faults_applied=day.faults_applied,
            dead_letters=dead_letters,
        )
