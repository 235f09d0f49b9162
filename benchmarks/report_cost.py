"""What the reports cost on a big day: the run, then each report, timed side by side.

    python benchmarks/report_cost.py [scenarios/peak_day.yaml]

Prints the run's wall time (simulators, stack, world, oracles) and, apart, what judging
extras and report writing add: service levels and evidence slices (recomputed on the
outcome, as the runner computes them), verdict.json, junit.xml, report.html, journal.jsonl
and state.json.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import uvloop

from harness import oracles, scenario, slos
from harness.oracles import evidence
from harness.report import html, junit, run_files, verdict_json
from harness.runner import RunConfig, run


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "scenarios/peak_day.yaml")
    day = scenario.load(path)
    report = Path(tempfile.mkdtemp(prefix="report-cost-"))
    started = time.perf_counter()
    outcome = uvloop.run(run(RunConfig(scenario=day, scenario_path=str(path), report_dir=report)))
    run_s = time.perf_counter() - started
    view = oracles.SystemsView(outcome.snapshots, outcome.journals)
    costs: dict[str, float] = {}
    t = time.perf_counter()
    slos.measure(view, dict(day.expect.slos))
    costs["service levels"] = time.perf_counter() - t
    t = time.perf_counter()
    evidence.attach(outcome.results, view)
    costs["evidence slices"] = time.perf_counter() - t
    for name, writer in (
        ("verdict.json", verdict_json),
        ("junit.xml", junit),
        ("report.html", html),
    ):
        t = time.perf_counter()
        writer.write(outcome, report)
        costs[name] = time.perf_counter() - t
    t = time.perf_counter()
    run_files.write(outcome, report)
    costs["journal.jsonl + state.json"] = time.perf_counter() - t
    exchanges = sum(len(e) for e in outcome.journals.values())
    print(f"{path}: {outcome.counts.get('released', 0)} orders, {exchanges} exchanges")
    print(f"  run (incl. oracles):          {run_s:8.2f} s")
    for name, seconds in costs.items():
        print(f"  {name:<29} {seconds:8.2f} s")
    extra = sum(costs.values())
    print(f"  reports and extras:           {extra:8.2f} s = {100 * extra / run_s:.1f}% of the run")
    size = sum(f.stat().st_size for f in report.iterdir()) / 1e6
    print(f"  report folder:                {size:8.1f} MB ({report})")


if __name__ == "__main__":
    main()
