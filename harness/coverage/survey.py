"""``twinyard coverage`` end to end: the universe, the runs (played or read), the map."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from harness import bundled, selftest
from harness.contracts.pacts import PactError
from harness.coverage import cells, mapping, runs
from harness.coverage.routes import Templates

DEFAULT_LIBRARY = bundled.INCIDENTS


class CoverageError(Exception):
    """A usage or input problem: one line for the user (exit code 2)."""


@dataclass(frozen=True)
class Request:
    scenarios_dir: Path | None = None  # play this library (default: the incident library) ...
    runs_dir: Path | None = None  # ... or read these report folders
    pacts: Path | None = None  # default: the reference stack's
    stack: runs.StackChoice = field(default_factory=runs.StackChoice)
    jobs: int = 4
    report_dir: Path = Path("reports/coverage")

    def check(self) -> None:
        if self.runs_dir is not None and (self.scenarios_dir is not None or self.stack.args()):
            raise CoverageError(
                "--runs reads finished runs: give no --scenarios, --stack-url or --stack-cmd"
            )
        if self.stack.url and self.stack.cmd:
            raise CoverageError("give --stack-url or --stack-cmd, not both")


def survey(
    request: Request, on_result: Callable[[selftest.Result], None] | None = None
) -> mapping.CoverageMap:
    request.check()
    templates = Templates.load()
    try:
        universe = cells.from_pacts(request.pacts or cells.DEFAULT_PACTS, templates)
        if request.runs_dir is not None:
            found = runs.find(request.runs_dir)
        else:
            found = _play(request, on_result)
        evidence = runs.evidence(found, templates)
    except (PactError, runs.RunsError) as exc:
        raise CoverageError(str(exc)) from None
    return mapping.build(universe, evidence, found)


def library(folder: Path) -> list[Path]:
    """The library's scenario files; each must load (a broken file is a usage error)."""
    try:
        return selftest.library(folder)
    except selftest.LibraryError as exc:
        raise CoverageError("; ".join(exc.lines)) from None


def _play(request: Request, on_result: Callable[[selftest.Result], None] | None) -> list[runs.Run]:
    files = library(request.scenarios_dir or DEFAULT_LIBRARY)
    # A stack started elsewhere meets the simulators on fixed ports: one run at a time.
    jobs = 1 if request.stack.url else request.jobs
    return uvloop.run(runs.play(files, request.report_dir, jobs, request.stack, on_result))
