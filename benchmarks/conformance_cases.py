"""How many cases Schemathesis generates per simulator and phase, and what they cost.

The same run as ``tests/test_conformance_phases.py`` (every phase, every check, each simulator
over HTTP on an ephemeral port), printed as a table. Exit code 1 when anything was found.

    .venv/bin/python benchmarks/conformance_cases.py [--max-examples 40] [--system erp ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.test_conformance_phases import MAX_EXAMPLES, TARGETS, run_system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=MAX_EXAMPLES)
    parser.add_argument("--system", action="append", choices=TARGETS)
    args = parser.parse_args()
    rows: list[tuple[str, str, int, int, float]] = []
    findings = []
    for system in args.system or TARGETS:
        started = time.perf_counter()
        run = run_system(system, args.max_examples)
        wall = time.perf_counter() - started
        rows += [(system, p, t.cases, t.failures, t.seconds) for p, t in run.phases.items()]
        failures = sum(t.failures for t in run.phases.values())
        rows.append((system, "total", run.cases, failures, wall))
        findings += [(system, f) for f in run.findings]
    print(f"max-examples {args.max_examples}")
    print(f"{'system':8} {'phase':9} {'cases':>6} {'failures':>8} {'seconds':>8}")
    for system, phase, cases, failures, seconds in rows:
        print(f"{system:8} {phase:9} {cases:6d} {failures:8d} {seconds:8.1f}")
    for system, finding in findings:
        print(f"\n{system} {finding.case}: {finding.problem} -> {finding.status} {finding.body}")
        print(f"  {finding.request}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
