"""What ``twinyard compare`` says about each known defect of the reference stack: the clean
stack as A, the stack with one defect switched on as B, on the incident scenario built to catch
that defect (its ``expect.catches``). Prints a table: defect, scenario, orders differing of all,
the categories with unexplained differences, and the first few orders named.

    .venv/bin/python benchmarks/compare_defects.py [--defect NAME]... [--jobs 2]
        [--report-dir reports/compare-defects]

Exit 1 when some defect makes no unexplained difference (compare would not tell it apart).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from harness import bundled, selftest

ROOT = Path(__file__).resolve().parent.parent
STACK = f"{sys.executable} -m reference_stack"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--defect", action="append", default=[])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--report-dir", type=Path, default=ROOT / "reports/compare-defects")
    args = parser.parse_args()
    library = sorted((bundled.SCENARIOS / "incidents").glob("*.yaml"))
    catches = selftest.declared_catches(library)
    by_defect = {d: stem for stem, defects in sorted(catches.items()) for d in defects}
    chosen = args.defect or sorted(by_defect)
    print(f"{'defect':22} {'scenario':32} {'differing':>11}  categories; orders", flush=True)
    blind = 0
    started = time.perf_counter()
    for defect in chosen:
        stem = by_defect.get(defect)
        if stem is None:
            print(f"{defect:22} (no incident scenario declares it)")
            continue
        folder = args.report_dir / defect
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness",
                "compare",
                str(bundled.SCENARIOS / "incidents" / f"{stem}.yaml"),
                "--a",
                STACK,
                "--b",
                f"env REFSTACK_DEFECTS={defect} {STACK}",
                "--jobs",
                str(args.jobs),
                "--report-dir",
                str(folder),
                "--format",
                "json",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if done.returncode == 2:
            print(f"{defect:22} {stem:32} not compared: {done.stderr.strip().splitlines()[-1:]}")
            blind += 1
            continue
        [seed] = json.loads(done.stdout)["seeds"]
        unexplained = [d for d in seed["differences"] if d["verdict"] == "unexplained"]
        categories = sorted({d["category"] for d in unexplained})
        orders = seed["orders_differing"]
        blind += not unexplained
        shown = ", ".join(orders[:4]) + (f" +{len(orders) - 4}" if len(orders) > 4 else "")
        print(
            f"{defect:22} {stem:32} {len(orders):>4} of {seed['orders']:<4}  "
            f"{', '.join(categories) or 'NONE'}; {shown or '-'}",
            flush=True,
        )
    print(
        f"wall {time.perf_counter() - started:.0f} s; defects compare did not tell apart: {blind}"
    )
    return 1 if blind else 0


if __name__ == "__main__":
    raise SystemExit(main())
