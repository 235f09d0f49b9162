"""How fast the world model plays a day: the four simulator models, no HTTP stack.

    .venv/bin/python benchmarks/world_speed.py [--sizes 1000 10000 100000] [--repeat 3]
                                               [--gc tuned|default|off] [--scenario FILE]

The world runs against the simulator models with the in-process integrator
(``harness/world/integrator.py``, immediate mode) standing in for a stack: every event the
models emit is answered at once by calling the other models, as the reference stack would.
The base day is ``scenarios/peak_day.yaml``; for N orders the rota headcounts and the
starting stock are scaled by N / 10,000, so the floor keeps the same pace at every size and
the cost per order can be compared.

Each size runs in a fresh process (a clean heap for the memory figure), ``--repeat`` times;
the fastest run is reported (timeit's rule: slower runs measure the machine's other load);
100,000 orders run twice at most. Figures:

- orders/s and SimPy events/s: orders (or ``env`` events scheduled) over the wall time of
  building the world and running it to its natural end.
- gc s: of that, seconds spent in CPython's cyclic garbage collector (``gc.callbacks``).
- us/order: wall microseconds per order; flat cost means this stays put as N grows.
  no-gc us: the same without the collector's share. raw-ev: an order's cost in bare SimPy
  events timed in the same process, a figure that travels between machines (and survives a
  noisy neighbour better than wall time does).
- KiB/order: RSS growth over the run per order: the four models' state (every order,
  label, shipment, posting ... kept for the oracles) plus what the world keeps.
- raw SimPy: a trivial ``env.timeout`` loop on this machine in the same run, for scale.

GC runs as ``twinyard run`` configures it (``harness.hosting.tune_gc``) unless ``--gc`` says
otherwise. Every run is judged by all oracles afterwards (not timed); a FAIL means the figure
is not a valid day.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASE_ORDERS = 10_000


def _rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() // 1024


def raw_simpy(events: int = 1_000_000) -> float:
    """Events per second of a bare ``env.timeout`` loop: SimPy's own ceiling here."""
    import simpy

    env = simpy.Environment()

    def tick(env: simpy.Environment) -> Any:
        for _ in range(events):
            yield env.timeout(1)

    env.process(tick(env))
    started = time.perf_counter()
    env.run()
    return events / (time.perf_counter() - started)


def scaled(scenario: Any, orders: int) -> Any:
    """The base day with ``orders`` orders, its rota and stock scaled to match."""
    factor = orders / BASE_ORDERS
    wh = scenario.warehouse
    shifts = tuple(
        s.model_copy(
            update={
                "pickers": max(1, math.ceil(s.pickers * factor)) if s.pickers else 0,
                "packers": max(1, math.ceil(s.packers * factor)) if s.packers else 0,
            }
        )
        for s in wh.shifts
    )
    catalogue = scenario.catalogue.model_copy(
        update={"initial_stock": max(1, round(scenario.catalogue.initial_stock * factor))}
    )
    return scenario.model_copy(
        update={
            "demand": scenario.demand.model_copy(update={"orders": orders}),
            "warehouse": wh.model_copy(update={"shifts": shifts}),
            "catalogue": catalogue,
        }
    )


def one_run(scenario_path: str, orders: int, gc_mode: str) -> dict[str, Any]:
    """One day of ``orders`` orders in this process; returns its figures."""
    import simpy

    from harness import oracles, scenario
    from harness.world.integrator import Integrator, in_process_models
    from harness.world.people import people
    from harness.world.world import World

    day = scaled(scenario.load(scenario_path), orders)
    people(day.seed)  # Faker's pools: built once per seed and process, ~40 ms; not per order
    env = simpy.Environment()
    models = in_process_models(env, day)
    integrator = Integrator(env, models, immediate=True)
    if gc_mode == "tuned":
        from harness.hosting import tune_gc

        tune_gc()
    elif gc_mode == "off":
        gc.disable()
    collecting = [0.0, 0.0]  # start of the current collection, total seconds collecting

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collecting[0] = time.perf_counter()
        else:
            collecting[1] += time.perf_counter() - collecting[0]

    gc.callbacks.append(timed)
    rss_before = _rss_kib()
    wall, cpu = time.perf_counter(), time.process_time()
    world = World(day, env, models)
    env.run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    gc.callbacks.remove(timed)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    events = next(env._eid)  # SimPy numbers every event it schedules
    gc.enable()
    view = oracles.SystemsView({s: m.snapshot() for s, m in models.items()})
    failed = [r.name for r in oracles.judge(view) if not r.passed]
    return {
        "orders": orders,
        "wall_s": wall,
        "cpu_s": cpu,
        "gc_s": collecting[1],
        "events": events,
        "kib_per_order": max(0, peak_kib - rss_before) / orders,
        "shipped": world.counts["shipped"],
        "verdict": "FAIL " + ",".join(failed) if failed else "PASS",
        "problems": len(integrator.errors) + len(world.incidents),
        "raw_simpy": raw_simpy(),
    }


COMPONENTS = (
    ("simulators/", "simulator models (state machines, payload copies)"),
    ("harness/world/integrator.py", "integrator (the stack's stand-in)"),
    ("harness/world/", "world (demand, floor, shelves, road, keyed draws)"),
    ("simpy/", "SimPy (scheduler, events, processes)"),
)


def profile(scenario_path: str, orders: int) -> None:
    """Where the time goes: cProfile's own time per component (collector off)."""
    import cProfile
    import pstats

    import simpy

    from harness import scenario
    from harness.world.integrator import Integrator, in_process_models
    from harness.world.world import World

    day = scaled(scenario.load(scenario_path), orders)
    env = simpy.Environment()
    models = in_process_models(env, day)
    Integrator(env, models, immediate=True)
    gc.disable()
    profiler = cProfile.Profile()
    profiler.enable()
    World(day, env, models)
    env.run()
    profiler.disable()
    shares: dict[str, float] = {}
    top: list[tuple[float, str]] = []
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (file, line, name), (_, _, own, _, _) in stats.items():
        label = next((what for part, what in COMPONENTS if part in file), "C built-ins and other")
        shares[label] = shares.get(label, 0.0) + own
        top.append((own, f"{'/'.join(file.split('/')[-2:])}:{line} {name}"))
    total = sum(shares.values())
    print(f"\nwhere the time goes, {orders:,} orders (cProfile own time, collector off):")
    for label, own in sorted(shares.items(), key=lambda x: -x[1]):
        print(f"  {own / total:6.1%}  {label}")
    print("  heaviest functions:")
    for own, where in sorted(top, reverse=True)[:8]:
        print(f"  {own / total:6.1%}  {where}")


def measure(scenario_path: str, orders: int, gc_mode: str, repeat: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(orders), "--gc", gc_mode,
             "--scenario", scenario_path],
            check=True,
            capture_output=True,
            text=True,
        )  # fmt: skip
        runs.append(json.loads(out.stdout.splitlines()[-1]))
    return min(runs, key=lambda r: r["wall_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gc", choices=["tuned", "default", "off"], default="tuned")
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "peak_day.yaml"))
    parser.add_argument(
        "--profile", type=int, metavar="ORDERS", help="also profile one run of this size"
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.scenario, args.one, args.gc)))
        return

    print(f"world speed: {Path(args.scenario).name} scaled, gc {args.gc}, best of {args.repeat}")
    header = (
        f"{'orders':>8} {'wall s':>7} {'gc s':>5} {'orders/s':>9} {'us/order':>9} "
        f"{'no-gc us':>8} {'raw-ev':>6} {'events':>9} {'events/s':>9} {'ev/order':>8} "
        f"{'KiB/order':>9} {'verdict':>7}"
    )
    print(header)
    print("-" * len(header))
    results, raw = [], 0.0
    for orders in args.sizes:
        r = measure(args.scenario, orders, args.gc, args.repeat if orders < 100_000 else 2)
        results.append(r)
        raw = max(raw, r["raw_simpy"])
        print(
            f"{orders:>8,} {r['wall_s']:>7.2f} {r['gc_s']:>5.2f} {orders / r['wall_s']:>9,.0f} "
            f"{1e6 * r['wall_s'] / orders:>9.1f} {1e6 * (r['wall_s'] - r['gc_s']) / orders:>8.1f} "
            f"{r['wall_s'] / orders * r['raw_simpy']:>6.0f} {r['events']:>9,} "
            f"{r['events'] / r['wall_s']:>9,.0f} {r['events'] / orders:>8.1f} "
            f"{r['kib_per_order']:>9.2f} {r['verdict']:>7}",
            flush=True,
        )
    per_order = [r["wall_s"] / r["orders"] for r in results]
    spread = max(per_order) / min(per_order) - 1
    best_events = max(r["events"] / r["wall_s"] for r in results)
    print()
    print(f"raw SimPy (timeout loop, this machine): {raw:,.0f} events/s")
    print(f"world events/s vs raw SimPy: {best_events / raw:.1%} at best")
    print(f"cost per order, slowest vs fastest size: +{spread:.0%}")
    goals = [
        (">= 5,000 orders/s", min(r["orders"] / r["wall_s"] for r in results) >= 5_000),
        ("flat per-order cost (within 25%)", spread <= 0.25),
        (">= half of raw SimPy events/s", best_events >= raw / 2),
    ]
    for goal, met in goals:
        print(f"  {'met    ' if met else 'NOT met'}  {goal}")
    if args.profile:
        profile(args.scenario, args.profile)


if __name__ == "__main__":
    main()
