"""The coverage map on a terminal: one table per cell family, then the summary line."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.coverage.cells import FAMILIES, PACTS, Cell
from harness.coverage.mapping import CoverageMap

NONE = "-- none --"


def render(coverage: CoverageMap, console: Console) -> None:
    only_in_runs = False
    for family in FAMILIES:
        covered, total = coverage.family_counts(family.id)
        table = Table(
            title=f"{family.title}: {covered} of {total} covered",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
        )
        table.add_column(family.row_header, no_wrap=True)
        for column in family.columns:
            table.add_column(column, no_wrap=True)
        widths = [len(family.row_header), *map(len, family.columns)]
        for row, sources in coverage.universe.rows(family.id):
            mark = ""
            if sources and PACTS not in sources:
                mark, only_in_runs = " *", True
            names = [coverage.by_cell[Cell(family.id, row, c)] for c in family.columns]
            table.add_row(escape(row) + mark, *map(_cell, names))
            widths[0] = max(widths[0], len(row) + len(mark))
            for i, found in enumerate(names, 1):
                widths[i] = max(widths[i], len(NONE), *map(len, found))
        # a blank line between rows once a cell names several scenarios
        table.show_lines = any(
            len(names) > 1 for cell, names in coverage.by_cell.items() if cell.family == family.id
        )
        # As wide as it needs: scenario names cut short would name nothing.
        width = console.width
        wanted = max(sum(widths) + 3 * len(widths) + 2, len(str(table.title)) + 2)
        console.width = max(width, wanted)
        console.print(table)
        console.width = width
    if only_in_runs:
        console.print("* called or sent in the runs, not named by the pacts", highlight=False)
    _notes(coverage, console)
    console.print(f"{coverage.covered} of {coverage.total} cells covered", highlight=False)


def _cell(names: list[str]) -> str:
    if not names:
        return f"[bold red]{NONE}[/]"
    return "\n".join(escape(n) for n in names)


def _notes(coverage: CoverageMap, console: Console) -> None:
    for run in coverage.runs:
        if run.exit_code == 1:
            console.print(
                f"note: {run.name} failed its verdict on this stack; its exchanges still count "
                f"(reports: {run.folder})",
                markup=False,
                highlight=False,
            )
        elif run.exit_code not in (None, 0):
            console.print(
                f"note: {run.name} could not run: {run.error}", markup=False, highlight=False
            )
    for call in coverage.universe.ignored:
        console.print(f"note: pact call {call} is in no contract: not a row", markup=False)
    if coverage.undocumented:
        shown = ", ".join(coverage.undocumented[:5])
        more = len(coverage.undocumented) - 5
        extra = f" and {more} more" if more > 0 else ""
        console.print(
            f"note: calls no contract documents are not rows: {shown}{extra}",
            markup=False,
            highlight=False,
        )
