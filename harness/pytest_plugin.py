"""twinyard as a pytest plugin (registered through the ``pytest11`` entry point).

- ``pytest scenarios/`` collects every scenario file under a folder named ``scenarios`` (or
  given with ``--twinyard-scenarios``) and plays each once against the stack; each oracle and
  each service level with thresholds is a test item, so a red one says which rule broke, for
  which orders, with the evidence.
- Fixtures for a team's own tests: ``twinyard_sims`` (the four simulators running, with their
  URLs) and ``twinyard_run`` (play a scenario file or text and get its outcome).

Options: ``--twinyard-stack-url`` / ``--twinyard-stack-cmd`` (default: the bundled reference
stack), ``--twinyard-report-dir`` (default ``reports/pytest``; one folder per scenario).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from harness import scenario as scenarios
from harness.oracles.base import OracleResult
from harness.report import html, junit, run_files, verdict_json
from harness.runner import RunConfig, RunOutcome, run
from harness.slos import MEASURES, ServiceLevel

SCENARIO_SUFFIXES = (".yaml", ".yml")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("twinyard", "twinyard scenarios")
    group.addoption("--twinyard-stack-url", help="a running stack to test (default: start one)")
    group.addoption("--twinyard-stack-cmd", help="command that starts the stack under test")
    group.addoption(
        "--twinyard-report-dir", default="reports/pytest", help="where each scenario's reports go"
    )
    group.addoption(
        "--twinyard-scenarios",
        action="store_true",
        help="collect every YAML file given as a scenario, not only those under scenarios/",
    )


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix not in SCENARIO_SUFFIXES:
        return None
    if "scenarios" not in file_path.parts and not parent.config.getoption("--twinyard-scenarios"):
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


class ScenarioFile(pytest.File):
    """One scenario file: played once, when its first item runs."""

    outcome: RunOutcome | None = None

    @property
    def report_dir(self) -> Path:
        return Path(self.config.getoption("--twinyard-report-dir")) / self.path.stem

    def collect(self) -> Iterator[pytest.Item]:
        try:
            loaded = scenarios.load(self.path)
        except scenarios.ScenarioError as exc:
            yield BrokenScenario.from_parent(self, name="scenario", message="\n".join(exc.lines))
            return
        from harness import oracles

        for oracle in oracles.select(loaded.expect.oracles):
            yield OracleItem.from_parent(self, name=oracle.name, scenario=loaded)
        for measure in loaded.expect.slos:
            yield SloItem.from_parent(self, name=f"slo:{measure}", scenario=loaded)

    def played(self, scenario: scenarios.Scenario) -> RunOutcome:
        if self.outcome is None:
            config = self.config
            self.outcome = _play(
                RunConfig(
                    scenario=scenario,
                    scenario_path=str(self.path),
                    stack_url=config.getoption("--twinyard-stack-url"),
                    stack_cmd=config.getoption("--twinyard-stack-cmd"),
                    report_dir=self.report_dir,
                )
            )
            for report in (verdict_json, junit, run_files, html):
                report.write(self.outcome, self.report_dir)
        return self.outcome


class ScenarioFailure(Exception):
    """An oracle or service level failed: the message is the whole report for the item."""


class _ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: scenarios.Scenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario

    @property
    def file(self) -> ScenarioFile:
        assert isinstance(self.parent, ScenarioFile)
        return self.parent

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> str:  # type: ignore[no-untyped-def]
        if isinstance(excinfo.value, ScenarioFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.name} ({self.path.stem})"


class OracleItem(_ScenarioItem):
    def runtest(self) -> None:
        outcome = self.file.played(self.scenario)
        result = next(r for r in outcome.results if r.name == self.name)
        if not result.passed:
            raise ScenarioFailure(_oracle_report(result, outcome, self.file.report_dir))


class SloItem(_ScenarioItem):
    def runtest(self) -> None:
        outcome = self.file.played(self.scenario)
        name = self.name.removeprefix("slo:")
        level = next(s for s in outcome.service_levels if s.name == name)
        if not level.passed:
            raise ScenarioFailure(_slo_report(level))


class BrokenScenario(pytest.Item):
    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def runtest(self) -> None:
        raise ScenarioFailure(self.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> str:  # type: ignore[no-untyped-def]
        return str(excinfo.value)


def _oracle_report(result: OracleResult, outcome: RunOutcome, report_dir: Path) -> str:
    lines = [
        f"{result.name} failed for {len(result.findings)} of {result.checked} checked",
        f"  protects: {result.protects}",
    ]
    for finding in result.findings[:10]:
        lines.append(f"  {finding.entity}: {finding.message}")
    if len(result.findings) > 10:
        lines.append(f"  ... and {len(result.findings) - 10} more (verdict.json)")
    lines += [f"  note: {note}" for note in outcome.notes[:5]]
    lines.append(f"  reports: {report_dir} (twinyard trace ORDER_ID --run {report_dir})")
    return "\n".join(lines)


def _slo_report(level: ServiceLevel) -> str:
    breaches = ", ".join(f"{k} {v:g} s > {limit:g} s" for k, (v, limit) in level.breaches.items())
    return f"{level.name} ({MEASURES[level.name]}) over its threshold: {breaches}"


def _play(config: RunConfig) -> RunOutcome:
    """Run a scenario on a fresh event loop (pytest's own tests may hold one already)."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["outcome"] = uvloop.run(run(config))
        except BaseException as exc:  # re-raised in the test's thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="twinyard-run")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["outcome"]


# -- fixtures for a team's own tests -----------------------------------------------------------
@pytest.fixture
def twinyard_run(tmp_path: Path) -> Callable[..., RunOutcome]:
    """``twinyard_run("scenarios/x.yaml")`` or ``twinyard_run(text=...)``: play a scenario
    against the reference stack (or ``stack_url=`` / ``stack_cmd=``) and return its outcome."""

    def play(
        path: str | Path | None = None, *, text: str | None = None, **options: Any
    ) -> RunOutcome:
        if (path is None) == (text is None):
            raise ValueError("give a scenario file or its text, not both")
        loaded = scenarios.load(Path(path)) if path is not None else scenarios.parse(text or "")
        options.setdefault("report_dir", tmp_path / "twinyard")
        return _play(
            RunConfig(scenario=loaded, scenario_path=str(path) if path else None, **options)
        )

    return play


@pytest.fixture
def twinyard_sims() -> Iterator[dict[str, str]]:
    """The four simulators on free loopback ports, wall clock: ``{"erp": "http://..."}``.
    Talk to them as your stack would; ``/_sim/`` on each gives state, journal and faults."""
    import simulators
    from harness import hosting
    from harness.world.catalogue import Catalogue
    from simulators.common.clock import WallClock

    ready = threading.Event()
    stop: dict[str, Any] = {}
    urls: dict[str, str] = {}

    async def serve() -> None:
        clock = WallClock()
        stock = Catalogue.build(40, 500).stock()
        sims = [simulators.build(s, clock, stock=stock) for s in simulators.SYSTEMS]
        hosted = await hosting.serve(sims, [0] * len(sims))
        urls.update({h.sim.system: h.url for h in hosted})
        stop["event"] = asyncio.Event()
        stop["loop"] = asyncio.get_running_loop()
        ready.set()
        try:
            await stop["event"].wait()
        finally:
            await hosting.shutdown(hosted)

    thread = threading.Thread(target=lambda: asyncio.run(serve()), name="twinyard-sims")
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the simulators did not start within 30 s")
    try:
        yield dict(urls)
    finally:
        stop["loop"].call_soon_threadsafe(stop["event"].set)
        thread.join(30)
