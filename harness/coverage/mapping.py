"""The coverage map: every cell of the universe with the scenarios that exercised it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.coverage.cells import FAMILIES, RUNS, Cell, Universe
from harness.coverage.exercised import Evidence
from harness.coverage.runs import Run


@dataclass
class CoverageMap:
    universe: Universe
    by_cell: dict[Cell, list[str]]  # every cell of the universe -> scenarios, sorted
    runs: list[Run] = field(default_factory=list)
    undocumented: list[str] = field(default_factory=list)  # write calls no contract knows

    @property
    def total(self) -> int:
        return len(self.by_cell)

    @property
    def covered(self) -> int:
        return sum(bool(names) for names in self.by_cell.values())

    @property
    def complete(self) -> bool:
        return self.covered == self.total

    def uncovered(self) -> list[Cell]:
        return [cell for cell, names in self.by_cell.items() if not names]

    def family_counts(self, family: str) -> tuple[int, int]:
        cells = [names for cell, names in self.by_cell.items() if cell.family == family]
        return sum(bool(n) for n in cells), len(cells)

    def to_dict(self) -> dict[str, Any]:
        families = {}
        for family in FAMILIES:
            covered, total = self.family_counts(family.id)
            rows = []
            for row, sources in self.universe.rows(family.id):
                cells = {c: self.by_cell[Cell(family.id, row, c)] for c in family.columns}
                rows.append({"row": row, "sources": sorted(sources), "cells": cells})
            families[family.id] = {
                "title": family.title,
                "columns": list(family.columns),
                "covered": covered,
                "cells": total,
                "rows": rows,
            }
        return {
            "complete": self.complete,
            "covered": self.covered,
            "cells": self.total,
            "families": families,
            "uncovered": [
                {"family": c.family, "row": c.row, "column": c.column} for c in self.uncovered()
            ],
            "runs": [
                {
                    "scenario": r.name,
                    "folder": str(r.folder),
                    "exit_code": r.exit_code,
                    "error": r.error or None,
                }
                for r in self.runs
            ],
            "ignored_pact_calls": sorted(self.universe.ignored),
            "undocumented_calls": self.undocumented,
        }


def build(
    universe: Universe, evidence: Sequence[Evidence], runs: Sequence[Run] = ()
) -> CoverageMap:
    """Add the rows the runs show to the universe, then name the scenarios of each cell."""
    for found in evidence:
        universe.add_routes(found.routes, RUNS)
        universe.add_events(found.events, RUNS)
    by_cell: dict[Cell, set[str]] = {cell: set() for cell in universe.cells()}
    for found in evidence:
        for cell in found.exercised:
            if cell in by_cell:
                by_cell[cell].add(found.name)
    undocumented = sorted(set().union(*(f.undocumented for f in evidence)))
    return CoverageMap(
        universe, {c: sorted(n) for c, n in by_cell.items()}, list(runs), undocumented
    )
