"""``twinyard load --find-knee``: the highest rate the stack sustains, and what breaks above it.

The search plays short load steps at increasing ``--rate-multiplier``, each on a fresh stack and
fresh simulators (``session.play`` with a step's window, no tail, no oracles):

1. A step plays ``step_s`` wall seconds of the day's busiest stretch at the rate the whole day
   has there (``step_window``), then ``drain_s`` more with no new orders, and stops.
2. It is judged on every flow that started in it (``judge_step``): its threshold
   (``expect.slos`` for the flow, else ``DEFAULT_P95``), over the flows that completed and
   those still open at the step's end at their age so far (a lower bound: a flow the stack
   never completes cannot look fast); and its backlog: a backlog *grows without bound* when
   the mean of the load window's last third is above ``GROWTH`` x that of its first third
   and above ``min_backlog`` open flows.
3. The multiplier doubles from ``--rate-multiplier`` until a step fails (or halves until one
   passes), then bisects between the highest passing and the lowest failing rate
   (``next_multiplier``) until they are within ``PRECISION``, ``--knee-steps`` steps were
   played, or ``--max-wall`` is near.

The knee is the highest passing rate below the lowest failing one; the flow that broke first
is the one, at that lowest failing rate, whose breach began earliest in virtual time.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.load import session
from harness.load.curve import HOUR, Plan, plan_of
from harness.load.flows import FLOWS, ROW
from harness.report.html_svg import when
from harness.runner import ConfigError
from harness.slos import statistic

# Virtual seconds: a flow's p95 when the scenario sets no threshold for it (docs/load.md).
DEFAULT_P95: dict[str, float] = {
    "release_latency": 300.0,  # a released order is in the WMS within 5 minutes
    "label_latency": 600.0,  # a packed parcel is labelled within 10 minutes
    "confirmation_latency": 900.0,  # a shipment is goods-issued within 15 minutes
    "tracking_latency": 1800.0,  # a scan is in the ERP within 30 minutes
    "accrual_latency": 3600.0,  # a settlement is accrued within the hour
}
GROWTH = 2.0  # the last third's mean backlog over the first third's, to grow without bound
MIN_BACKLOG = 50  # open flows: a backlog below this never counts as growing
PRECISION = 1.1  # stop bisecting once the lowest failing rate is within 10 % of the knee
STEP_S = 60.0  # wall seconds of load per step
STEPS = 6
START_S = 20.0  # wall seconds a step needs besides its load (the stack, Locust, the judgement)


def drain_of(step_s: float) -> float:
    """Wall seconds a step plays on after its window closes, for the last flows to finish."""
    return max(5.0, step_s / 4)


@dataclass
class FlowStep:
    """One flow in one step: its samples' statistics (virtual seconds) and its backlog."""

    measure: str
    count: int  # flows started in the step
    open: int  # of those, still open at its end (counted with their age)
    p95_s: float | None
    max_s: float | None
    max_backlog: int
    breaches: list[str] = field(default_factory=list)
    broke_at: float | None = None  # virtual second of day the first breach began

    @property
    def passed(self) -> bool:
        return not self.breaches

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow": ROW + FLOWS[self.measure],
            "measure": self.measure,
            "count": self.count,
            "open_at_end": self.open,
            "p95_s": _round(self.p95_s),
            "max_s": _round(self.max_s),
            "max_backlog": self.max_backlog,
            "passed": self.passed,
            "breaches": self.breaches,
            "broke_at": self.broke_at,
            "broke_at_clock": None if self.broke_at is None else when(self.broke_at),
        }


@dataclass
class Step:
    """One step of the search, judged."""

    multiplier: float
    flows: dict[str, FlowStep]
    orders: int = 0
    peak_per_hour: float = 0.0  # virtual orders per hour at the day's peak, at this rate
    factor: float = 1.0
    wall_s: float = 0.0
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)
    report_dir: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.flows.values())

    @property
    def broken(self) -> list[FlowStep]:
        """The flows that broke, the earliest breach first."""
        failed = [f for f in self.flows.values() if not f.passed]
        order = list(FLOWS)
        return sorted(
            failed,
            key=lambda f: (f.broke_at is None, f.broke_at or 0.0, order.index(f.measure)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate_multiplier": self.multiplier,
            "peak_orders_per_virtual_hour": round(self.peak_per_hour, 1),
            "peak_orders_per_wall_second": round(self.peak_per_hour * self.factor / HOUR, 2),
            "orders_released": self.orders,
            "passed": self.passed,
            "broken": [ROW + FLOWS[f.measure] for f in self.broken],
            "flows": {m: f.to_dict() for m, f in self.flows.items()},
            "wall_s": round(self.wall_s, 1),
            "load_average": [round(x, 2) for x in self.load_average],
            "report_dir": self.report_dir,
            "notes": self.notes,
        }


# -- the search ------------------------------------------------------------------------------
def bracket(tried: list[tuple[float, bool]]) -> tuple[float | None, float | None]:
    """(the knee: the highest passing rate below the lowest failing one, that failing rate)."""
    bad = min((m for m, ok in tried if not ok), default=None)
    good = max((m for m, ok in tried if ok and (bad is None or m < bad)), default=None)
    return good, bad


def next_multiplier(tried: list[tuple[float, bool]], start: float) -> float | None:
    """The rate to try next, or None when the knee is found within ``PRECISION``."""
    if not tried:
        return start
    good, bad = bracket(tried)
    if bad is None:  # everything passed: double the highest
        return _nice(2 * max(m for m, _ in tried))
    if good is None:  # everything failed: halve the lowest
        lowest = min(m for m, _ in tried)
        return _nice(lowest / 2) if lowest / 2 >= 0.01 else None
    if bad <= good * PRECISION:
        return None
    return _nice((good + bad) / 2)


def _nice(m: float) -> float:
    return round(m, 3) if m < 10 else round(m, 1)


# -- judging one step ------------------------------------------------------------------------
def thresholds_of(slos: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Each flow's threshold: the scenario's, or the default p95 for a flow it sets none for."""
    return {m: dict(slos.get(m) or {"p95": DEFAULT_P95[m]}) for m in FLOWS}


def growing(
    backlog: list[tuple[float, int]], window: tuple[float, float], min_backlog: int
) -> float | None:
    """When a backlog grows without bound over the load window, the virtual time it first
    passed ``min_backlog`` in the window's last third; None when it does not grow."""
    start, end = window
    third = (end - start) / 3
    first = [n for t, n in backlog if start <= t < start + third]
    last = [(t, n) for t, n in backlog if end - third <= t <= end]
    if not first or not last:
        return None
    before = sum(first) / len(first)
    after = sum(n for _, n in last) / len(last)
    if after <= GROWTH * before or after <= min_backlog:
        return None
    over = [t for t, n in backlog if start <= t <= end and n > min_backlog]
    return over[0] if over else last[0][0]


def judge_flow(
    measure: str,
    times: list[tuple[float, float, bool]],
    backlog: list[tuple[float, int]],
    window: tuple[float, float],
    threshold: dict[str, float],
    min_backlog: int = MIN_BACKLOG,
) -> FlowStep:
    """One flow of a step against its threshold and the backlog rule."""
    samples = sorted(v for _, v, _ in times)
    flow = FlowStep(
        measure,
        count=len(times),
        open=sum(1 for *_, done in times if not done),
        p95_s=statistic(samples, "p95"),
        max_s=statistic(samples, "max"),
        max_backlog=max((n for _, n in backlog), default=0),
    )
    started: list[float] = []
    for stat, limit in threshold.items():
        value = statistic(samples, stat)
        if value is not None and value > limit:
            flow.breaches.append(f"{stat} {value:,.1f} s > {limit:g} s")
            started.append(min(t for t, v, _ in times if v > limit))
    if (at := growing(backlog, window, min_backlog)) is not None:
        first = [n for t, n in backlog if window[0] <= t < window[0] + (window[1] - window[0]) / 3]
        last = [n for t, n in backlog if window[1] - (window[1] - window[0]) / 3 <= t <= window[1]]
        flow.breaches.append(
            f"backlog grows: {sum(last) / len(last):,.0f} open in the window's last third, "
            f"{sum(first) / len(first):,.0f} in its first"
        )
        started.append(at)
    flow.broke_at = min(started) if started else None
    return flow


def judge_step(
    outcome: session.LoadOutcome,
    thresholds: dict[str, dict[str, float]],
    min_backlog: int = MIN_BACKLOG,
) -> dict[str, FlowStep]:
    """Every flow that started in the step, judged (a flow that never started is left out)."""
    curve = outcome.plan.curve
    window = (curve.open_s, curve.close_s)
    judged = {}
    for measure in FLOWS:
        times = outcome.flow_times.get(measure, [])
        if not times:
            continue
        backlog = [(t, open_now.get(measure, 0)) for t, open_now in outcome.backlog]
        judged[measure] = judge_flow(
            measure, times, backlog, window, thresholds[measure], min_backlog
        )
    return judged


def step_window(plan: Plan, step_s: float) -> tuple[float, float]:
    """``step_s`` wall seconds of the day's load, from the start of its busiest hour (moved
    earlier if the day closes before the step would end)."""
    curve = plan.curve
    length = step_s * curve.factor
    hours = [h * HOUR for h in range(24) if curve.rate(max(h * HOUR, curve.open_s)) > 0]
    busiest = max(hours, key=lambda h: curve.rate(max(h, curve.open_s)), default=curve.open_s)
    start = max(busiest, curve.open_s)
    if start + length > curve.close_s:
        start = max(curve.open_s, curve.close_s - length)
    return start, min(curve.close_s, start + length)


# -- running the search ----------------------------------------------------------------------
@dataclass
class KneeConfig:
    base: session.LoadConfig  # the load as asked; each step is a copy at its own rate
    steps: int = STEPS
    step_s: float = STEP_S
    drain_s: float | None = None  # None: drain_of(step_s)
    min_backlog: int = MIN_BACKLOG
    max_wall_s: float | None = None


@dataclass
class Knee:
    config: KneeConfig
    window: tuple[float, float]
    thresholds: dict[str, dict[str, float]]
    steps: list[Step] = field(default_factory=list)
    stopped: str = ""
    wall_s: float = 0.0

    @property
    def tried(self) -> list[tuple[float, bool]]:
        return [(s.multiplier, s.passed) for s in self.steps]

    @property
    def knee(self) -> Step | None:
        good, _ = bracket(self.tried)
        return next((s for s in self.steps if s.multiplier == good), None)

    @property
    def first_failing(self) -> Step | None:
        _, bad = bracket(self.tried)
        return next((s for s in self.steps if s.multiplier == bad), None)

    @property
    def passed(self) -> bool:
        """Some rate was sustained."""
        return self.knee is not None


async def find(config: KneeConfig, on_step: Callable[[Step], None] | None = None) -> Knee:
    """Play the steps, one after another, and find the knee."""
    base = config.base
    drain = config.drain_s if config.drain_s is not None else drain_of(config.step_s)
    full = plan_of(base.scenario, base.multiplier, base.factor, base.per_user)
    window = step_window(full, config.step_s)
    knee = Knee(config, window, thresholds_of(dict(base.scenario.expect.slos)))
    started = time.perf_counter()
    for index in range(1, config.steps + 1):
        multiplier = next_multiplier(knee.tried, base.multiplier)
        if multiplier is None:
            knee.stopped = "converged"
            break
        left = None
        if config.max_wall_s is not None:
            left = config.max_wall_s - (time.perf_counter() - started)
            if left < config.step_s + drain + START_S:
                knee.stopped = "--max-wall"
                break
        step = await play_step(config, knee, index, multiplier, window, drain, left)
        knee.steps.append(step)
        if on_step is not None:
            on_step(step)
    else:
        knee.stopped = "converged" if next_multiplier(knee.tried, 0) is None else "--knee-steps"
    knee.wall_s = time.perf_counter() - started
    return knee


async def play_step(
    config: KneeConfig,
    knee: Knee,
    index: int,
    multiplier: float,
    window: tuple[float, float],
    drain_s: float,
    max_wall_s: float | None,
) -> Step:
    base = config.base
    folder = base.report_dir / "knee" / f"step-{index}-x{multiplier:g}"
    folder.mkdir(parents=True, exist_ok=True)
    step_config = dataclasses.replace(
        base,
        multiplier=multiplier,
        report_dir=folder,
        engine=dataclasses.replace(base.engine, csv=folder / "locust", html=None, web=False),
        window=window,
        drain_s=drain_s,
        judge_day=False,
        max_wall_s=max_wall_s,
        progress=None,
    )
    began = time.perf_counter()
    outcome = await session.play(step_config)
    flows = judge_step(outcome, knee.thresholds, config.min_backlog)
    full = plan_of(base.scenario, multiplier, base.factor, base.per_user).curve
    notes = [n for n in outcome.run.notes if not n.startswith(("load: ", "the step ended"))]
    return Step(
        multiplier=multiplier,
        flows=flows,
        orders=outcome.orders_sent,
        peak_per_hour=full.peak_per_hour(),
        factor=full.factor,
        wall_s=time.perf_counter() - began,
        load_average=os.getloadavg(),
        report_dir=str(folder),
        notes=notes[:5],
    )


def facts(knee: Knee) -> dict[str, Any]:
    """``knee.json``."""
    base = knee.config.base
    good, bad = knee.knee, knee.first_failing
    first = bad.broken[0] if bad is not None and bad.broken else None
    factor = knee.steps[0].factor if knee.steps else (base.factor or base.scenario.clock.factor)
    return {
        "scenario": base.scenario_path or base.scenario.name,
        "found": good is not None and bad is not None,
        "stopped": knee.stopped,
        "sustainable": None
        if good is None
        else {
            "rate_multiplier": good.multiplier,
            "orders_per_day": round(base.scenario.demand.orders * good.multiplier),
            "peak_orders_per_virtual_hour": round(good.peak_per_hour, 1),
            "peak_orders_per_wall_second": round(good.peak_per_hour * good.factor / HOUR, 2),
        },
        "first_broken": None
        if first is None or bad is None
        else {
            "rate_multiplier": bad.multiplier,
            "flow": ROW + FLOWS[first.measure],
            "measure": first.measure,
            "why": first.breaches,
            "broke_at": first.broke_at,
            "broke_at_clock": None if first.broke_at is None else when(first.broke_at),
            "also_broken": [ROW + FLOWS[f.measure] for f in bad.broken[1:]],
        },
        "steps": [s.to_dict() for s in knee.steps],
        "rule": {
            "factor": factor,
            "step_wall_s": knee.config.step_s,
            "drain_wall_s": knee.config.drain_s
            if knee.config.drain_s is not None
            else drain_of(knee.config.step_s),
            "window": list(knee.window),
            "thresholds_virtual_s": knee.thresholds,
            "threshold_from": {
                m: "expect.slos" if m in base.scenario.expect.slos else "default" for m in FLOWS
            },
            "backlog_growth": GROWTH,
            "min_backlog": knee.config.min_backlog,
            "precision": PRECISION,
        },
        "wall_s": round(knee.wall_s, 1),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def check(config: KneeConfig) -> None:
    """What would make the search meaningless, refused before anything starts."""
    if config.base.engine.web:
        raise ConfigError("--find-knee runs headless: leave out --web")
    if config.step_s <= 0:
        raise ConfigError("--knee-step must be above 0 s")


__all__ = ["Knee", "KneeConfig", "Step", "facts", "find", "judge_step", "next_multiplier"]
