"""``twinyard shrink`` on each known defect of the reference stack: the incident scenario built
to catch it (its ``expect.catches``), shrunk against the stack with that defect switched on.
Prints a table: defect, scenario, the oracle kept failing, orders / faults / days before and
after, plays and wall time, and the orders the capsule's oracle names.

    .venv/bin/python benchmarks/shrink_defects.py [--defect NAME]... [--report-dir DIR]

Exit 1 when some capsule has more than 5 orders or 2 faults, or some shrink failed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

from harness import bundled, selftest

ROOT = Path(__file__).resolve().parent.parent
STACK = f"{sys.executable} -m reference_stack"
SUMMARY = re.compile(
    r"shrunk \S+ \((?P<oracle>\w+)\): orders (?P<o0>\d+) -> (?P<o1>\d+), faults (?P<f0>\d+) -> "
    r"(?P<f1>\d+), horizon (?P<h0>[\d.]+) -> (?P<h1>[\d.]+) days; (?P<plays>\d+) plays in "
    r"(?P<wall>\d+) s"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--defect", action="append", default=[])
    parser.add_argument("--report-dir", type=Path, default=ROOT / "reports/shrink-defects")
    args = parser.parse_args()
    library = sorted((bundled.SCENARIOS / "incidents").glob("*.yaml"))
    catches = selftest.declared_catches(library)
    by_defect = {d: stem for stem, defects in sorted(catches.items()) for d in defects}
    print(f"{'defect':22} {'scenario':32} {'oracle':34} orders  faults  days    plays   names")
    bad = 0
    started = time.perf_counter()
    for defect in args.defect or sorted(by_defect):
        stem = by_defect[defect]
        folder = args.report_dir / defect
        done = subprocess.run(
            [sys.executable, "-m", "harness", "shrink",
             str(bundled.SCENARIOS / "incidents" / f"{stem}.yaml"),
             "--stack-cmd", f"env REFSTACK_DEFECTS={defect} {STACK}",
             "--report-dir", str(folder)],
            cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        found = SUMMARY.search(done.stdout)
        if done.returncode != 0 or found is None:
            said = (done.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{defect:22} {stem:32} NOT SHRUNK: {said}", flush=True)
            bad += 1
            continue
        g = found.groupdict()
        names = re.search(r"names: (.*)", done.stdout)
        small = int(g["o1"]) <= 5 and int(g["f1"]) <= 2
        bad += not small
        print(
            f"{defect:22} {stem:32} {g['oracle']:34} {g['o0']:>3}->{g['o1']:<3} "
            f"{g['f0']:>2}->{g['f1']:<2}  {g['h0']}->{g['h1']:<4} {g['plays']:>3} "
            f"{g['wall']:>4} s  {(names.group(1) if names else '')[:60]}"
            + ("" if small else "  (more than 5 orders or 2 faults)"),
            flush=True,
        )
    print(f"wall {time.perf_counter() - started:.0f} s; not shrunk small enough: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
