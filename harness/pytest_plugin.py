"""twinyard as a pytest plugin (registered through the ``pytest11`` entry point).

- ``pytest scenarios/`` collects every scenario file under a folder named ``scenarios`` (or
  given with ``--twinyard-scenarios``) and plays each once against the stack; each oracle and
  each service level with thresholds is a test item, so a red one says which rule broke, for
  which orders, with the evidence.
- Fixtures for a team's own tests: ``twinyard_sims`` (the four simulators running, with their
  URLs, and the control-plane token their ``/_sim/`` writes need as ``.token`` and ``.headers``),
  ``twinyard_run`` (play a scenario file or text and get its outcome) and ``twinyard_yard``
  (the simulators and a stack image running in containers, with their URLs).

Options: ``--twinyard-stack-url`` / ``--twinyard-stack-cmd`` / ``--twinyard-stack-image``
(default: the bundled reference stack), ``--twinyard-report-dir`` (default ``reports/pytest``
under the rootdir; one folder per scenario, and per xdist worker), ``--twinyard-max-wall``
(seconds: a run cut short there fails every item of its scenario), each also an ini option
(``twinyard_stack_url`` ...).

Under ``pytest -n N`` (xdist's default ``--dist load``) a scenario file's items are kept on one
worker, so each scenario is played once; other tests are still spread one by one.

Only files that are twinyard scenarios are collected: a YAML mapping most of whose top-level
keys are scenario fields (a Kubernetes manifest or a CI file under ``scenarios/`` is left
alone). A scenario that cannot be played (its stack unreachable, say) is played once: its first
item fails with the reason, the others are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
import yaml

from harness import scenario as scenarios
from harness.containers import ContainerError, StackImage, Yard, yard
from harness.oracles.base import OracleResult
from harness.report import html, junit, run_files, verdict_json
from harness.runner import ConfigError, RunConfig, RunOutcome, run
from harness.slos import MEASURES, ServiceLevel

SCENARIO_SUFFIXES = (".yaml", ".yml")


OPTIONS = {
    "stack_url": "a running stack to test (default: start one)",
    "stack_cmd": "command that starts the stack under test",
    "stack_image": "container image of the stack under test (the Docker or podman API at "
    "DOCKER_HOST runs it); also the twinyard_yard fixture's stack",
    "yard_image": "the twinyard image the twinyard_yard fixture runs the simulators from "
    "(default: twinyard:VERSION, as `make containers` builds it)",
    "report_dir": "where each scenario's reports go (default: reports/pytest under the rootdir)",
    "max_wall": "stop each scenario's run after this many wall seconds; its items then fail",
    "stack_config": "how the stack runs (a stack: section in a file: probe, schedule ...), "
    "in place of each scenario's",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("twinyard", "twinyard scenarios")
    for name, help_text in OPTIONS.items():
        group.addoption(f"--twinyard-{name.replace('_', '-')}", help=help_text)
        parser.addini(f"twinyard_{name}", help_text)
    group.addoption(
        "--twinyard-scenarios",
        action="store_true",
        help="collect every YAML file given as a scenario, not only those under scenarios/",
    )


def option(config: pytest.Config, name: str) -> str | None:
    """The command line first, then the ini file (pytest.ini, pyproject.toml, tox.ini)."""
    value = config.getoption(f"--twinyard-{name.replace('_', '-')}")
    return value or config.getini(f"twinyard_{name}") or None


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix not in SCENARIO_SUFFIXES:
        return None
    if "scenarios" not in file_path.parts and not parent.config.getoption("--twinyard-scenarios"):
        return None
    if not looks_like_a_scenario(file_path):
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


def looks_like_a_scenario(path: Path) -> bool:
    """A YAML mapping at least half of whose top-level keys are scenario fields. A broken
    scenario (a typo in one key) still is one, and fails with its line and field; a manifest
    of another tool is not. Read safely and cut short: this runs for every YAML file found."""
    try:
        with path.open("rb") as handle:
            text = handle.read(256 * 1024)
        keys = [
            node.value
            for node, _ in getattr(yaml.compose(text, Loader=yaml.SafeLoader), "value", [])
            if isinstance(getattr(node, "value", None), str)
        ]
    except (OSError, yaml.YAMLError, TypeError, ValueError, RecursionError):
        return False
    if not keys:
        return False
    known = set(scenarios.Scenario.model_fields)
    return sum(key in known for key in keys) * 2 >= len(keys)


def stack_config(config: pytest.Config) -> scenarios.Stack | None:
    """``--twinyard-stack-config`` (relative to the rootdir): one stack description for every
    scenario; a broken file fails each scenario's first item with its located line."""
    name = option(config, "stack_config")
    if name is None:
        return None
    path = Path(name) if Path(name).is_absolute() else config.rootpath / name
    return scenarios.load_stack(path)


def report_root(config: pytest.Config) -> Path:
    """Relative paths are the rootdir's, not the current folder's; each xdist worker has a
    folder of its own, so two workers never write into one run's folder."""
    root = Path(option(config, "report_dir") or "reports/pytest")
    if not root.is_absolute():
        root = config.rootpath / root
    worker = getattr(config, "workerinput", {}).get("workerid")
    return root / worker if worker else root


class ScenarioFile(pytest.File):
    """One scenario file: played once, when its first item runs."""

    outcome: RunOutcome | None = None
    failure: str | None = None  # why it could not be played, said by its first item only

    @property
    def report_dir(self) -> Path:
        return report_root(self.config) / self.path.stem

    def collect(self) -> Iterator[pytest.Item]:
        try:
            loaded = scenarios.load(self.path).with_stack(stack_config(self.config))
        except scenarios.ScenarioError as exc:
            yield BrokenScenario.from_parent(self, name="scenario", message="\n".join(exc.lines))
            return
        from harness import oracles

        items: list[_ScenarioItem] = [
            OracleItem.from_parent(self, name=oracle.name, scenario=loaded)
            for oracle in oracles.select(loaded.expect.oracles)
        ]
        items += [
            SloItem.from_parent(self, name=f"slo:{measure}", scenario=loaded)
            for measure in loaded.expect.slos
        ]
        yield from items

    def played(self, scenario: scenarios.Scenario) -> RunOutcome:
        if self.failure is not None:
            pytest.skip(f"not played: {self.failure}")
        if self.outcome is None:
            config = self.config
            try:
                self.outcome = _play(
                    RunConfig(
                        scenario=scenario,
                        scenario_path=str(self.path),
                        stack_url=option(config, "stack_url"),
                        stack_cmd=stack_command(config),
                        report_dir=self.report_dir,
                        max_wall_s=_seconds(option(config, "max_wall")),
                    )
                )
            except (ConfigError, OSError) as exc:
                self.failure = str(exc)
                raise ScenarioFailure(f"{self.path.name} could not be played: {exc}") from None
            for report in (verdict_json, junit, run_files, html):
                report.write(self.outcome, self.report_dir)
        if self.outcome.cut_short:  # a day not finished cannot pass, whatever was judged
            raise ScenarioFailure(f"{self.path.name}: {self.outcome.notes[0]}")
        return self.outcome


def stack_command(config: pytest.Config) -> str | None:
    """``--twinyard-stack-cmd``, or ``--twinyard-stack-image`` as the runner takes an image."""
    image = option(config, "stack_image")
    if image is None:
        return option(config, "stack_cmd")
    if option(config, "stack_cmd") is not None:
        raise ConfigError("give --twinyard-stack-cmd or --twinyard-stack-image, not both")
    return StackImage(image)


def _seconds(value: str | None) -> float | None:
    """``--twinyard-max-wall`` / ``twinyard_max_wall``: positive seconds, or None."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ConfigError(f"twinyard max-wall {value!r}: give a number of seconds above 0")
    return seconds


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "twinyard_sims(skus=40, stock=500, carrier_api_version='v1'): options of the "
        "twinyard_sims fixture for one test",
    )
    config.addinivalue_line(
        "markers",
        "twinyard_yard(stack_image=None, stack_env=None, sims_image=None): options of the "
        "twinyard_yard fixture for one test",
    )


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``pytest -n N`` (xdist's ``load``) a scenario file's items go to one worker, or
    each worker that gets some of them plays the whole day again; other tests stay spread
    one by one, as ``load`` spreads them."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ScenarioFilesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return file if file.endswith(SCENARIO_SUFFIXES) else nodeid

    return ScenarioFilesTogether(config, log)


class SimUrls(dict[str, str]):
    """``{"erp": "http://127.0.0.1:PORT", ...}``, with the control-plane token: ``headers``
    to send on ``/_sim/`` writes (``httpx.post(f"{url}/_sim/reset", headers=sims.headers)``)."""

    def __init__(self, urls: dict[str, str], token: str) -> None:
        super().__init__(urls)
        self.token = token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextlib.contextmanager
def serving_sims(
    skus: int = 40,
    stock: int = 500,
    carrier_api_version: str = "v1",
    control_token: str | None = None,
) -> Iterator[SimUrls]:
    """The four simulators on free loopback ports in a thread of their own, wall clock; their
    control plane closed by ``control_token`` (a new one when None), webhooks to this machine
    or the hosts in ``TWINYARD_WEBHOOK_ALLOW``."""
    import simulators
    from harness import hosting
    from harness.world.catalogue import Catalogue
    from simulators.common.clock import WallClock
    from simulators.common.guard import Guard, new_token, webhook_allow_from_env

    ready = threading.Event()
    stop: dict[str, Any] = {}
    urls: dict[str, str] = {}
    versions = {"carrier": {"api_version": carrier_api_version}}
    guard = Guard(token=control_token or new_token(), webhook_hosts=webhook_allow_from_env())

    async def serve() -> None:
        clock = WallClock()
        shelves = Catalogue.build(skus, stock).stock()
        sims = [
            simulators.build(s, clock, stock=shelves, guard=guard, **versions.get(s, {}))
            for s in simulators.SYSTEMS
        ]
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
        yield SimUrls(urls, guard.token or "")
    finally:
        stop["loop"].call_soon_threadsafe(stop["event"].set)
        thread.join(30)


@pytest.fixture
def twinyard_sims(request: pytest.FixtureRequest) -> Iterator[SimUrls]:
    """The four simulators on free loopback ports, wall clock: ``{"erp": "http://..."}``.
    Talk to them as your stack would; ``/_sim/`` on each gives state, journal and faults
    (writes need ``headers=twinyard_sims.headers``: the token of their closed control plane).
    ``@pytest.mark.twinyard_sims(skus=5, stock=10, carrier_api_version="v2")`` sets them up
    differently for one test."""
    marker = request.node.get_closest_marker("twinyard_sims")
    with serving_sims(**(marker.kwargs if marker else {})) as urls:
        yield urls


@pytest.fixture(scope="session")
def twinyard_sims_session() -> Iterator[SimUrls]:
    """The same simulators once for the whole session (reset one with ``POST /_sim/reset``,
    ``headers=twinyard_sims_session.headers``, between tests when they must not see each
    other's state)."""
    with serving_sims() as urls:
        yield urls


@pytest.fixture
def twinyard_yard(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Yard]:
    """The yard in containers: the four simulators (wall clock) in one, the stack in another,
    on free ports of this machine with host networking; ``{"erp": "http://...", ..., "stack":
    "http://..."}``, with ``.headers`` (the control-plane token) and ``.secret`` (the webhook
    secret). The stack is ``--twinyard-stack-image`` (default: the twinyard image, whose default
    command is the reference stack); ``@pytest.mark.twinyard_yard(stack_image=..., stack_env=
    {...}, sims_image=...)`` changes it for one test. Both are removed afterwards; their logs
    are in the test's ``tmp_path / "yard"``. Needs a Docker or podman API (DOCKER_HOST)."""
    marker = request.node.get_closest_marker("twinyard_yard")
    options = dict(marker.kwargs) if marker else {}
    options.setdefault("stack_image", option(request.config, "stack_image"))
    options.setdefault("sims_image", option(request.config, "yard_image"))
    try:
        with yard(log_dir=tmp_path / "yard", **options) as urls:
            yield urls
    except ContainerError as exc:  # one line: no engine, no image, a yard that never answered
        raise pytest.fail.Exception(f"twinyard_yard: {exc}", pytrace=False) from None
