"""``twinyard import`` on each known defect of the reference stack: the incident scenario built
to catch it (its ``expect.catches``) played against the stack with that defect switched on,
the run folder imported into a capsule, and the capsule replayed against the same stack.
Prints a table: defect, scenario, oracle, orders and faults in the capsule, the ids the oracle
failed on before and after, SAME or DIFFERENT, and whether the capsule passes against the
clean stack (``clean: pass``; a capsule that fails a stack without the defect would be a false
alarm).

    .venv/bin/python benchmarks/import_defects.py [--only DEFECT]... [--report-dir DIR]

Exit 1 when some capsule fails differently from its run, fails the clean stack, or could not
be made or played.
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


def _run(scenario: Path, folder: Path, defect: str | None) -> dict:
    stack = f"env REFSTACK_DEFECTS={defect} {STACK}" if defect else STACK
    command = [sys.executable, "-m", "harness", "run", str(scenario), "--quiet"]
    command += ["--report-dir", str(folder), "--stack-cmd", stack]
    subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    return json.loads((folder / "verdict.json").read_text())


def _failing(verdict: dict) -> dict[str, list[str]]:
    return {
        o["name"]: sorted({f["entity"] for f in o["findings"]})
        for o in verdict["oracles"]
        if not o["passed"]
    }


def _ids(entities: list[str]) -> str:
    shown = ", ".join(e.split(" ")[0] for e in entities[:4])
    return shown + (f" +{len(entities) - 4}" if len(entities) > 4 else "") or "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], metavar="DEFECT")
    parser.add_argument("--report-dir", type=Path, default=ROOT / "reports/import-defects")
    args = parser.parse_args()
    library = sorted((bundled.SCENARIOS / "incidents").glob("*.yaml"))
    catches = selftest.declared_catches(library)
    by_defect = {d: stem for stem, defects in sorted(catches.items()) for d in defects}
    unknown = [d for d in args.only if d not in by_defect]
    if unknown:
        print(f"unknown defect(s) {', '.join(unknown)}; known: {', '.join(sorted(by_defect))}")
        return 2
    head = f"{'defect':22} {'scenario':30} {'oracle':30} orders faults  {'before':28} "
    print(head + f"{'after':28} verdict   clean")
    bad = 0
    started = time.perf_counter()
    for defect in args.only or sorted(by_defect):
        stem = by_defect[defect]
        folder = args.report_dir / defect
        scenario = bundled.SCENARIOS / "incidents" / f"{stem}.yaml"
        before = _failing(_run(scenario, folder / "before", defect))
        if not before:
            print(f"{defect:22} {stem:30} the day does not fail: nothing to import", flush=True)
            bad += 1
            continue
        oracle = next(iter(before))
        capsule = folder / "capsule.yaml"
        command = [sys.executable, "-m", "harness", "import", str(folder / "before")]
        command += ["--out", str(capsule)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            said = (done.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{defect:22} {stem:30} NOT IMPORTED: {said}", flush=True)
            bad += 1
            continue
        summary = done.stdout.split(": ", 1)[-1]
        orders = summary.split("orders ", 1)[1].split(",")[0]
        faults = summary.split("faults ", 1)[1].split(",")[0]
        after = _failing(_run(capsule, folder / "after", defect))
        same = after.get(oracle) == before[oracle]
        clean = _run(capsule, folder / "clean", None)["passed"]
        bad += not same or not clean
        print(
            f"{defect:22} {stem:30} {oracle:30} {orders:>6} {faults:>6}  "
            f"{_ids(before[oracle]):28} {_ids(after.get(oracle, [])):28} "
            + ("SAME     " if same else "DIFFERENT")
            + (" pass" if clean else " FAIL"),
            flush=True,
        )
    print(f"wall {time.perf_counter() - started:.0f} s; different or failing clean: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
