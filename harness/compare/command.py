"""``twinyard compare``: plan the plays, run them, compare each seed, write the reports."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from harness import scenario as scenarios
from harness.compare import html
from harness.compare import report as reports
from harness.compare.play import Played, Side, play_all
from harness.compare.result import Comparison, compare_seed
from harness.compare.spec import CompareSpec


@dataclass(frozen=True)
class Plan:
    scenario: Path  # a scenario file, or a library folder of them
    scenarios: list[Path]
    a: str
    b: str
    a_overrides: tuple[str, ...]
    b_overrides: tuple[str, ...]
    seeds: list[int | None]
    noise: bool
    spec: CompareSpec
    jobs: int
    report_dir: Path


def compare(plan: Plan, progress: Console) -> Comparison:
    sides = [Side("a", plan.a, plan.a_overrides), Side("b", plan.b, plan.b_overrides)]
    if plan.noise:
        sides.append(Side("a2", plan.a, plan.a_overrides))
    started = time.perf_counter()

    def done(played: Played) -> None:
        seed = "own seed" if played.seed is None else f"seed {played.seed}"
        seed = f"{played.scenario.stem} {seed}"
        state = "played" if played.usable else f"NOT PLAYED: {played.error}"
        verdict = "" if played.passed is None else (" pass" if played.passed else " fail")
        progress.print(
            f"  {seed} {played.side.name.upper()}: {state}{verdict} ({played.wall_s:.1f} s)",
            highlight=False,
            markup=False,
        )

    plays = asyncio.run(
        play_all(plan.scenarios, sides, plan.seeds, plan.report_dir, plan.jobs, done)
    )
    by_spot = {(p.scenario, p.seed, p.side.name): p for p in plays}
    seeds = []
    for sc in plan.scenarios:
        spec = plan.spec.for_clock(scenarios.load(sc, plan.a_overrides).clock)
        for s in plan.seeds:
            a, b, a2 = by_spot[(sc, s, "a")], by_spot[(sc, s, "b")], by_spot.get((sc, s, "a2"))
            seeds.append(compare_seed(a, b, a2, spec))
    comparison = Comparison(
        str(plan.scenario), plan.a, plan.b, plan.spec, seeds, time.perf_counter() - started
    )
    reports.write_json(comparison, plan.report_dir)
    reports.write_junit_file(comparison, plan.report_dir)
    html.write(comparison, plan.report_dir)
    return comparison


def report(comparison: Comparison, console: Console) -> None:
    reports.render(comparison, console)
