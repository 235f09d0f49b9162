"""Playing one scenario against each side: every play is a ``twinyard run`` of its own, in its
own report folder, so two sides run side by side on the machine's cores (each with its own
four simulators on free ports) and each leaves the reports a run always leaves.

A side given as a URL is a stack someone else started, wired to the simulators' fixed ports:
two of those cannot play at once, so a comparison with one plays one run at a time.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from harness.compare.outcome import Outcome, business_outcome
from harness.oracles.view import SystemsView
from harness.report.run_files import DEAD_LETTERS, STATE


@dataclass(frozen=True)
class Side:
    name: str  # "a", "b", or "a2" (A played again, for noise)
    target: str  # a command that starts the stack, its URL, or image:NAME (a container image)
    overrides: tuple[str, ...] = ()  # --set KEY=VALUE for this side's scenario

    @property
    def is_url(self) -> bool:
        return self.target.startswith(("http://", "https://"))

    @property
    def image(self) -> str | None:
        """The container image of an ``image:NAME`` side (``run --stack-image``), else None."""
        return self.target.removeprefix("image:") if self.target.startswith("image:") else None


@dataclass
class Played:
    side: Side
    scenario: Path
    seed: int | None
    folder: Path
    exit_code: int
    wall_s: float
    outcome: Outcome | None = None
    passed: bool | None = None
    failing_oracles: list[str] = field(default_factory=list)
    # failing oracle -> the entities its findings name (the first MAX_FINDINGS of each)
    named: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None  # why there is no outcome: the run's last words

    @property
    def usable(self) -> bool:
        return self.outcome is not None


def command(scenario: Path, side: Side, seed: int | None, folder: Path) -> list[str]:
    cmd = [sys.executable, "-m", "harness", "run", str(scenario), "--quiet"]
    cmd += ["--report-dir", str(folder)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if side.image is not None:
        cmd += ["--stack-image", side.image]
    else:
        cmd += ["--stack-url" if side.is_url else "--stack-cmd", side.target]
    for override in side.overrides:
        cmd += ["--set", override]
    return cmd


async def play_all(
    scenarios: list[Path],
    sides: list[Side],
    seeds: list[int | None],
    report_dir: Path,
    jobs: int,
    on_done: Any = None,
) -> list[Played]:
    """Every side of every scenario on every seed, ``jobs`` at a time (one at a time with a
    URL side); each in ``report_dir/<scenario>/<seed>/<side>``."""
    if any(side.is_url for side in sides):
        jobs = 1
    gate = asyncio.Semaphore(jobs)

    async def one(scenario: Path, side: Side, seed: int | None) -> Played:
        folder = report_dir / scenario.stem / seed_folder(seed) / side.name
        async with gate:
            played = await play_one(scenario, side, seed, folder)
        if on_done is not None:
            on_done(played)
        return played

    return list(
        await asyncio.gather(
            *(one(sc, side, seed) for sc in scenarios for seed in seeds for side in sides)
        )
    )


def seed_folder(seed: int | None) -> str:
    return "own-seed" if seed is None else f"seed-{seed}"


async def play_one(scenario: Path, side: Side, seed: int | None, folder: Path) -> Played:
    """One ``twinyard run`` of ``scenario`` by ``side`` in ``folder``, and what it left."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with (folder / "run.out").open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *command(scenario, side, seed, folder),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
        code = await process.wait()
    played = Played(side, scenario, seed, folder, code, time.perf_counter() - started)
    if code not in (0, 1):
        played.error = _last_words(folder / "run.out") or f"twinyard run exited {code}"
        return played
    return read_run(folder, played)


def read_run(folder: Path, played: Played) -> Played:
    """A run's business outcome from the reports it left in ``folder``."""
    try:
        snapshots = orjson.loads((folder / STATE).read_bytes())
        verdict = orjson.loads((folder / "verdict.json").read_bytes())
        dead = folder / DEAD_LETTERS
        dead_letters = orjson.loads(dead.read_bytes()) if dead.exists() else None
    except (OSError, orjson.JSONDecodeError) as exc:
        played.error = f"no readable reports in {folder}: {exc}"
        return played
    view = SystemsView(snapshots, None, dead_letters)
    played.outcome = business_outcome(view, verdict["service_levels"], verdict["oracles"])
    played.passed = verdict["passed"]
    played.failing_oracles = [o["name"] for o in verdict["oracles"] if not o["passed"]]
    played.named = {
        o["name"]: sorted({f["entity"] for f in o.get("findings", [])})
        for o in verdict["oracles"]
        if not o["passed"]
    }
    return played


def _last_words(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    said = [line for line in lines if line]
    return said[-1][:300] if said else ""
