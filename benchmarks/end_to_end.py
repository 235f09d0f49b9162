"""End-to-end orders/s: a whole day through the reference stack over real HTTP, in lockstep.

    .venv/bin/python benchmarks/end_to_end.py [--orders 1000] [--seed 1] [--resolution 60]

Prints wall time, orders per wall second, lockstep steps and HTTP exchanges journalled.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import uvloop

from harness import scenario
from harness.runner import RunConfig, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--resolution", type=float, default=0.0, help="lockstep window, s")
    args = parser.parse_args()
    day = scenario.parse(
        f"name: bench_day\nseed: {args.seed}\ndemand: {{orders: {args.orders}}}\n"
        f"clock: {{resolution_s: {args.resolution}}}\n"
    )
    report_dir = Path(tempfile.mkdtemp(prefix="twinyard-e2e-"))
    started = time.perf_counter()
    outcome = uvloop.run(run(RunConfig(scenario=day, report_dir=report_dir)))
    wall = time.perf_counter() - started
    exchanges = outcome.counts.get("exchanges", 0)
    verdict = "PASS" if outcome.passed else "FAIL"
    print(f"{args.orders} orders, seed {args.seed}, resolution {args.resolution:g} s: {verdict}")
    print(f"wall {wall:.1f} s (run {outcome.wall_s:.1f} s incl. start-up and judging)")
    print(f"orders/s (wall): {args.orders / wall:.1f}")
    print(f"lockstep steps: {outcome.steps}; HTTP exchanges journalled: {exchanges}")
    print(f"virtual time played: {outcome.virtual_s / 3600:.1f} h")


if __name__ == "__main__":
    main()
