"""The detection matrix: every known reference-stack defect against the scenario library.

A scenario library is only worth what it catches. ``twinyard selftest`` plays each scenario
against the clean reference stack (it must pass: no false alarms) and against the stack with
each defect switched on (some scenario must fail, naming the oracle). Each cell is its own
``twinyard run`` process with its own simulators, ports and report folder, so cells run side
by side and one cannot disturb another.

This is the one place in the harness that knows the reference stack's defect list: it is the
proof of the harness itself, not part of testing a user's stack.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import scenario as scenarios
from reference_stack.defects import DESCRIPTIONS

DEFECTS: tuple[str, ...] = tuple(DESCRIPTIONS)
CLEAN = ""  # the defect column of the clean stack


@dataclass(frozen=True)
class Cell:
    scenario: Path
    defect: str  # CLEAN for the clean stack
    seed: int | None = None

    @property
    def name(self) -> str:
        stem = self.scenario.stem
        seed = "" if self.seed is None else f"-seed{self.seed}"
        return f"{stem}{seed}--{self.defect or 'clean'}"


@dataclass
class Result:
    cell: Cell
    exit_code: int
    wall_s: float
    failed: dict[str, list[str]] = field(default_factory=dict)  # oracle -> first entities
    error: str = ""  # the run's own complaint when it could not judge (exit 2, a crash)

    @property
    def judged(self) -> bool:
        """A verdict came back: exit 0 or 1 and no complaint (exit 1 with a traceback and no
        verdict is a crash, not a catch)."""
        return self.exit_code in (0, 1) and not self.error

    @property
    def passed(self) -> bool:
        return self.judged and self.exit_code == 0

    @property
    def caught(self) -> bool:
        return self.judged and self.exit_code == 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.cell.scenario.stem,
            "defect": self.cell.defect or None,
            "seed": self.cell.seed,
            "exit_code": self.exit_code,
            "wall_s": round(self.wall_s, 2),
            "failed": self.failed,
            "error": self.error,
        }


async def run_cell(cell: Cell, report_root: Path, extra_args: Sequence[str] = ()) -> Result:
    """One ``twinyard run`` in a child process; the verdict is read from its report.
    ``extra_args`` go on its command line (``--stack-url URL`` for a user's stack)."""
    report_dir = report_root / cell.name
    argv = [sys.executable, "-m", "harness", "run", str(cell.scenario), "--quiet"]
    argv += ["--report-dir", str(report_dir), *extra_args]
    if cell.seed is not None:
        argv += ["--seed", str(cell.seed)]
    env = {**os.environ, "REFSTACK_DEFECTS": cell.defect}
    started = time.perf_counter()
    child = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await child.communicate()
    result = Result(cell, child.returncode or 0, time.perf_counter() - started)
    lines = stderr.decode(errors="replace").strip().splitlines()
    written = report_dir / "verdict.json"
    if result.exit_code not in (0, 1) or not written.is_file():
        # exit 1 with no verdict is a crash (a traceback), not a failed oracle
        result.error = lines[-1] if lines else f"exit code {result.exit_code}, no verdict"
        return result
    verdict = json.loads(written.read_text())
    for item in verdict["oracles"]:
        if not item["passed"]:
            result.failed[item["name"]] = [f["entity"] for f in item["findings"][:3]]
    return result


async def run_cells(
    cells: Sequence[Cell],
    report_root: Path,
    jobs: int,
    on_result: Callable[[Result], None] | None = None,
    extra_args: Sequence[str] = (),
) -> list[Result]:
    gate = asyncio.Semaphore(jobs)

    async def one(cell: Cell) -> Result:
        async with gate:
            result = await run_cell(cell, report_root, extra_args)
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(c) for c in cells)))


class LibraryError(Exception):
    """A library that cannot be played: no folder, no scenario in it, or a broken file
    (``lines`` are the loader's, one per problem)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def library(folder: Path) -> list[Path]:
    """The scenario files of a folder, in name order; each must load."""
    if not folder.is_dir():
        raise LibraryError([f"no scenario folder {folder}"])
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise LibraryError([f"no scenario files (*.yaml) in {folder}"])
    try:
        for file in files:
            scenarios.load(file)  # a broken file stops the selftest before any run
    except scenarios.ScenarioError as exc:
        raise LibraryError(exc.lines) from None
    return files


def declared_catches(files: Sequence[Path]) -> dict[str, list[str]]:
    """Scenario stem -> the defects its ``expect.catches`` says it is built to catch."""
    return {f.stem: list(scenarios.load(f).expect.catches) for f in files}


@dataclass
class Matrix:
    scenarios: list[str]
    defects: list[str]
    results: list[Result]
    declared: dict[str, list[str]]
    wall_s: float = 0.0

    def cell(self, scenario: str, defect: str) -> Result | None:
        for r in self.results:
            if r.cell.scenario.stem == scenario and r.cell.defect == defect:
                return r
        return None

    def clean_failures(self) -> list[Result]:
        return [r for r in self.results if r.cell.defect == CLEAN and not r.passed]

    def errors(self) -> list[Result]:
        return [r for r in self.results if not r.judged]

    def missed_defects(self) -> list[str]:
        """Defects that no scenario caught."""
        return [
            d for d in self.defects if not any(r.caught for r in self.results if r.cell.defect == d)
        ]

    def missed_declared(self) -> list[tuple[str, str]]:
        """(scenario, defect) pairs a scenario says it catches and did not."""
        missed = []
        for scenario, defects in self.declared.items():
            for defect in defects:
                result = self.cell(scenario, defect)
                if result is not None and not result.caught:
                    missed.append((scenario, defect))
        return missed

    @property
    def ok(self) -> bool:
        return not (
            self.clean_failures()
            or self.errors()
            or self.missed_defects()
            or self.missed_declared()
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "wall_s": round(self.wall_s, 1),
            "scenarios": self.scenarios,
            "defects": self.defects,
            "declared": self.declared,
            "missed_defects": self.missed_defects(),
            "missed_declared": [list(p) for p in self.missed_declared()],
            "cells": [r.to_dict() for r in self.results],
        }


def plan(
    files: Sequence[Path], defects: Sequence[str], clean_seeds: Sequence[int | None] = (None,)
) -> list[Cell]:
    """The clean stack on every scenario and seed (the false-alarm check), then every defect
    x scenario on the scenario's own seed. ``None`` is the scenario's own seed."""
    cells = [Cell(f, CLEAN, s) for s in clean_seeds for f in files]
    cells += [Cell(f, d) for d in defects for f in files]
    return cells
