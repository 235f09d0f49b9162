"""What an idle probe buys: one scenario, in lockstep, against stacks with and without one.

    .venv/bin/python benchmarks/probe_modes.py [--scenario scenarios/happy_day.yaml] [--repeat 1]

Plays, one after the other in this one run (so the machine's load is shared alike):
ministack (tests/stacks/ministack, written from the README only) with no probe, with a probe
that says only ``idle`` and with one that also reports ``scheduled``; then the reference stack
with its probe and with its probe switched off (``stack.idle_path`` pointing nowhere); then
pollstack (tests/stacks/pollstack: no webhooks, no probe, polls on a 300 s virtual schedule).
Prints wall seconds, the verdict, each stack's no-probe / probe ratio (issue 12 asks <= 3x)
and the polling stack against the webhook-driven reference stack (issue 13 asks <= 3x).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from harness import bundled, scenario
from harness.runner import RunConfig, run
from harness.scenario import ScheduledRead

ROOT = Path(__file__).resolve().parent.parent
MINISTACK = [sys.executable, "-m", "tests.stacks.ministack"]
POLLSTACK = [sys.executable, "-m", "tests.stacks.pollstack"]
POLL_SCHEDULE = [  # pollstack reads the ERP's /events and /orders, the others' /events
    ScheduledRead(system="erp", route="/", every=300),
    *(ScheduledRead(system=s, route="/events", every=300) for s in ("wms", "tms", "carrier")),
]
NO_PROBE = "/no-such-probe"  # the reference stack answers 404 there: a stack without a probe


def play(day: scenario.Scenario, stack: str, probe: str) -> tuple[float, bool]:
    """Wall seconds of one whole run (start-up, day, judging) and whether it passed."""
    report_dir = Path(tempfile.mkdtemp(prefix=f"twinyard-probe-{stack}-{probe}-"))
    if stack == "pollstack":  # no webhooks, no probe: polls every 0.05 s, 300 s virtual
        schedule = day.stack.model_copy(update={"schedule": POLL_SCHEDULE})
        config = RunConfig(
            scenario=day.with_stack(schedule),
            stack_cmd=POLLSTACK,
            stack_env={"POLLSTACK_INTERVAL_S": "0.05"},
            report_dir=report_dir,
        )
    elif stack == "ministack":
        config = RunConfig(
            scenario=day,
            stack_cmd=MINISTACK,
            stack_env={"MINISTACK_PROBE": probe},
            report_dir=report_dir,
        )
    else:
        if probe == "none":
            day = day.model_copy(
                update={"stack": day.stack.model_copy(update={"idle_path": NO_PROBE})}
            )
        config = RunConfig(scenario=day, report_dir=report_dir)
    started = time.perf_counter()
    outcome = uvloop.run(run(config))
    return time.perf_counter() - started, outcome.passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=bundled.HAPPY_DAY)
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode (median shown)")
    args = parser.parse_args()
    day = scenario.load(args.scenario)
    modes = [
        ("ministack", "none"),
        ("ministack", "idle"),
        ("ministack", "scheduled"),
        ("reference", "full"),
        ("reference", "none"),
        ("pollstack", "none"),
    ]
    walls: dict[tuple[str, str], float] = {}
    print(f"{args.scenario.name}, {day.demand.orders} orders, lockstep, {args.repeat} run(s) each")
    print(f"{'stack':10} {'probe':10} {'wall s':>8}  verdict")
    for stack, probe in modes:
        runs = [play(day, stack, probe) for _ in range(args.repeat)]
        walls[stack, probe] = statistics.median(w for w, _ in runs)
        verdict = "PASS" if all(ok for _, ok in runs) else "FAIL"
        print(f"{stack:10} {probe:10} {walls[stack, probe]:8.1f}  {verdict}", flush=True)
    for stack, probe in (("ministack", "idle"), ("ministack", "scheduled"), ("reference", "full")):
        ratio = walls[stack, "none"] / walls[stack, probe]
        print(f"{stack}: no probe / {probe} probe = {ratio:.2f}x")
    polling = walls["pollstack", "none"] / walls["reference", "full"]
    print(f"pollstack (polls, 300 s schedule) / reference stack (webhooks, probe) = {polling:.2f}x")


if __name__ == "__main__":
    if Path.cwd() != ROOT:
        sys.exit(f"run from the checkout ({ROOT}): ministack starts as tests.stacks.ministack")
    main()
