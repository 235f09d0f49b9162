"""The detection matrix on a terminal: defect x scenario, caught or missed, and by what."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from harness.selftest import CLEAN, Matrix

CAUGHT, CAUGHT_AS_DECLARED, MISSED, MISSED_DECLARED, ERROR = "o", "O", ".", "X", "!"


def render(matrix: Matrix, console: Console) -> None:
    columns = matrix.scenarios
    console.print("scenarios:")
    for i, name in enumerate(columns, 1):
        console.print(f"  {i:>2} {name}")
    table = Table(title="detection matrix", title_justify="left", box=box.SIMPLE, padding=(0, 1))
    names = [*matrix.defects, "(clean stack)"]
    table.add_column("defect", no_wrap=True, min_width=max(map(len, names)))
    for i in range(1, len(columns) + 1):
        table.add_column(str(i), justify="center", no_wrap=True)
    table.add_column("caught", justify="right", no_wrap=True)
    clean = [_clean_mark(matrix, s) for s in columns]
    table.add_row("(clean stack)", *clean, _clean_summary(matrix))
    for defect in matrix.defects:
        marks = [_mark(matrix, s, defect) for s in columns]
        caught = sum(r.caught for r in matrix.results if r.cell.defect == defect)
        table.add_row(defect, *marks, f"{caught}/{len(columns)}")
    # As wide as it needs: a matrix squeezed into 80 columns loses the columns it is about.
    wanted = max(map(len, names)) + 5 * len(columns) + 16
    width = console.width
    console.width = max(width, wanted)
    console.print(table)
    console.width = width
    for defect in matrix.defects:
        console.print(f"{defect}: {_caught_by(matrix, defect)}", highlight=False)
    console.print(
        f"{CAUGHT_AS_DECLARED} caught where the scenario says it should, {CAUGHT} caught, "
        f"{MISSED} not caught, {MISSED_DECLARED} missed a declared catch, {ERROR} run error",
        highlight=False,
    )
    _problems(matrix, console)
    runs = len(matrix.results)
    console.print(
        f"{runs} runs in {matrix.wall_s:.0f} s wall; verdict: {'PASS' if matrix.ok else 'FAIL'}"
    )


def _mark(matrix: Matrix, scenario: str, defect: str) -> str:
    result = matrix.cell(scenario, defect)
    if result is None:
        return ""
    declared = defect in matrix.declared.get(scenario, [])
    if not result.judged:
        return ERROR
    if result.caught:
        return CAUGHT_AS_DECLARED if declared else CAUGHT
    return MISSED_DECLARED if declared else MISSED


def _clean_mark(matrix: Matrix, scenario: str) -> str:
    runs = [
        r for r in matrix.results if r.cell.defect == CLEAN and r.cell.scenario.stem == scenario
    ]
    if not runs:
        return ""
    if any(not r.judged for r in runs):
        return ERROR
    return "ok" if all(r.passed for r in runs) else "FAIL"


def _clean_summary(matrix: Matrix) -> str:
    runs = [r for r in matrix.results if r.cell.defect == CLEAN]
    passed = sum(r.passed for r in runs)
    return f"{passed}/{len(runs)} ok"


def _caught_by(matrix: Matrix, defect: str) -> str:
    caught = [r for r in matrix.results if r.cell.defect == defect and r.caught]
    if not caught:
        return "NOT CAUGHT"
    declared = [r for r in caught if defect in matrix.declared.get(r.cell.scenario.stem, [])]
    first = (declared or caught)[0]
    entities = next(iter(first.failed.values()))
    return f"{first.cell.scenario.stem} -> {', '.join(first.failed)} ({', '.join(entities)})"


def _problems(matrix: Matrix, console: Console) -> None:
    for r in matrix.clean_failures():
        what = r.error or ", ".join(r.failed)
        seed = "" if r.cell.seed is None else f" seed {r.cell.seed}"
        console.print(f"false alarm: {r.cell.scenario.stem}{seed} on the clean stack: {what}")
    for r in matrix.errors():
        if r.cell.defect != CLEAN:
            console.print(f"run error: {r.cell.name}: {r.error}")
    for defect in matrix.missed_defects():
        console.print(f"not caught by any scenario: {defect}")
    for scenario, defect in matrix.missed_declared():
        console.print(f"declared but missed: {scenario} did not catch {defect}")
