"""The runs a coverage map is judged from: report folders read back, or a library played.

Playing reuses ``twinyard selftest``'s cell runner: one ``twinyard run`` child process per
scenario, each with its own simulators, ports and report folder, side by side, against the
clean reference stack. Against a user's stack (``--stack-cmd``, ``--stack-url``) the same
child gets the option; with ``--stack-url`` the simulators sit on fixed ports, so those runs
go one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from harness import selftest
from harness.coverage.exercised import JOURNAL, Evidence, read
from harness.coverage.routes import Templates

VERDICT = "verdict.json"


class RunsError(Exception):
    """Runs that cannot be found or read: one line for the user."""


@dataclass(frozen=True)
class Run:
    name: str  # the scenario it played: what the map names
    folder: Path
    exit_code: int | None = None  # when played here: 0 pass, 1 an oracle failed, 2 error
    error: str = ""

    @property
    def readable(self) -> bool:
        return (self.folder / JOURNAL).is_file()


@dataclass(frozen=True)
class StackChoice:
    """The stack the library is played against (neither: the clean reference stack)."""

    url: str | None = None
    cmd: str | None = None

    def args(self) -> list[str]:
        if self.url:
            return ["--stack-url", self.url]
        if self.cmd:
            return ["--stack-cmd", self.cmd]
        return []


def find(folder: Path) -> list[Run]:
    """The report folders in ``folder``: itself, or each subfolder, that holds a journal."""
    if not folder.is_dir():
        raise RunsError(f"no run folder {folder}")
    candidates = [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]
    found = [Run(_scenario_name(f), f) for f in candidates if (f / JOURNAL).is_file()]
    if not found:
        raise RunsError(f"no runs in {folder}: no {JOURNAL} in it or in its subfolders")
    return found


def _scenario_name(folder: Path) -> str:
    """The scenario a report folder played (its verdict says), else the folder's name."""
    try:
        scenario = orjson.loads((folder / VERDICT).read_bytes()).get("scenario") or {}
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return folder.name
    if scenario.get("file"):
        return Path(str(scenario["file"])).stem
    return str(scenario.get("name") or folder.name)


def evidence(runs: Sequence[Run], templates: Templates) -> list[Evidence]:
    """What each readable run exercised (a run that could not play has no journal)."""
    found = []
    for run in runs:
        if not run.readable:
            continue
        try:
            found.append(read(run.folder, run.name, templates))
        except OSError as exc:
            raise RunsError(f"cannot read the run in {run.folder}: {exc.strerror}") from None
        except (orjson.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
            raise RunsError(f"{run.folder}: not a twinyard report folder ({exc})") from None
    return found


async def play(
    files: Sequence[Path],
    report_root: Path,
    jobs: int,
    stack: StackChoice,
    on_result: Callable[[selftest.Result], None] | None = None,
) -> list[Run]:
    """Play each scenario once on the stack; the runs, in the order of ``files``."""
    cells = [selftest.Cell(file, selftest.CLEAN) for file in files]
    results = await selftest.run_cells(cells, report_root, jobs, on_result, stack.args())
    return [
        Run(r.cell.scenario.stem, report_root / r.cell.name, r.exit_code, r.error) for r in results
    ]
