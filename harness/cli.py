"""The ``twinyard`` command.

Exit codes everywhere: 0 every oracle passed, 1 an oracle failed, 2 a usage or
configuration error (always one line on stderr, never a traceback). Every option may also come
from a ``TWINYARD_<COMMAND>_<OPTION>`` variable or pyproject.toml (``harness.settings``);
``--format json`` puts the result on stdout and everything else on stderr (docs/cli.md).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import shlex
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit

import typer
import uvloop

from harness import bundled, hosting, settings
from harness import scenario as scenarios
from harness.report import html, junit, progress, run_files, terminal, verdict_json
from harness.runner import ConfigError, RunConfig, run
from harness.stack import HEALTH_PATH, REFERENCE_STACK_CMD, StackError
from simulators.common.guard import usable_token
from simulators.common.limits import Limits, LimitsError
from simulators.common.signing import read_secret_file

app = typer.Typer(
    name="twinyard",
    help="Simulated ERP, WMS, TMS and carrier to test a logistics integration stack.",
    epilog="Every option can also be set by a TWINYARD_<COMMAND>_<OPTION> variable or in "
    "pyproject.toml under [tool.twinyard.<command>] (docs/cli.md).",
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
DEFAULT_SCENARIO = bundled.HAPPY_DAY
DEFAULT_LIBRARY = bundled.INCIDENTS
SYSTEM_PORTS = 7101  # erp 7101, wms 7102, tms 7103, carrier 7104 for `twinyard sims`


class Usage(Exception):
    """A usage or configuration error: one line, exit code 2."""


class Format(StrEnum):
    """What a command prints on stdout: a table for people, or JSON for programs."""

    table = "table"
    json = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", help="table, or json on stdout (the rest on stderr)")
]


def _url(value: str | None) -> str | None:
    """A base URL the harness can call: http(s) and a host, checked before anything starts."""
    if value is None:
        return None
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 -- raises on a port that is not a number in range
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = value.strip() or repr(value)
        raise typer.BadParameter(f"{shown} is not an http(s) URL, e.g. http://localhost:8700")
    return value


def _command(value: str | None) -> str | None:
    """A stack command as it will be split into words (no shell), checked before the run."""
    if value is None:
        return None
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} cannot be split into words: {exc}") from None
    if not words:
        raise typer.BadParameter("give a command, e.g. 'python -m mystack'")
    return value


def _route(value: str) -> str:
    if not value.startswith("/"):
        raise typer.BadParameter(f"{value!r}: a path on the stack starts with /, e.g. /health")
    return value


SECRET_FILE_VAR = "TWINYARD_WEBHOOK_SECRET_FILE"
SECRET_NOTE = "deprecated on the command line, where ps shows it to every user"


def _webhook_secret(
    value: str | None, file: Path | None, names: tuple[str, str], flags: tuple[str, str]
) -> str | None:
    """The webhook secret: the option's value or its file's text, whichever was given in the
    higher-ranked place (command line, variable, pyproject.toml); both in the same place is a
    usage error. ``names`` are the two parameters' names, ``flags`` their options."""
    if file is None:
        return value
    if value is not None:
        from typer._click.core import ParameterSource
        from typer._click.globals import get_current_context

        ctx = get_current_context()
        rank = [ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT]
        value_from, file_from = (ctx.get_parameter_source(name) for name in names)
        value_rank = rank.index(value_from) if value_from in rank else len(rank)
        file_rank = rank.index(file_from) if file_from in rank else len(rank)
        if value_rank < file_rank:
            return value
        if value_rank == file_rank:
            raise Usage(f"{flags[0]} and {flags[1]} both give the webhook secret: give one")
    try:
        return read_secret_file(file)
    except ValueError as exc:
        raise Usage(f"{flags[1]}: {exc}") from None


def _where_not(path: Path, folder: bool) -> str | None:
    """Why ``path`` cannot be written as a folder (or a file); nothing is created here."""
    if path.exists():
        if folder and not path.is_dir():
            return f"{path} is a file, not a folder"
        if not folder and path.is_dir():
            return f"{path} is a folder, not a file"
        return None
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        return f"{above} is a file, not a folder"
    return None


def _out_folder(value: Path) -> Path:
    if (why := _where_not(value, folder=True)) is not None:
        raise typer.BadParameter(why)
    return value


def _out_file(value: Path | None) -> Path | None:
    if value is not None and (why := _where_not(value, folder=False)) is not None:
        raise typer.BadParameter(why)
    return value


def _make_folder(path: Path, flag: str) -> None:
    """Made before the work starts, so a folder that cannot be made is a usage error."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Usage(f"{flag} {path}: cannot make the folder: {exc.strerror}") from None


def _emit(data: Any) -> None:
    """The machine-readable result: JSON on stdout, alone."""
    print(json.dumps(data, indent=2))


PortBase = Annotated[
    int | None,
    typer.Option(min=1, max=65532, help="simulator ports N..N+3 (default: any free ports)"),
]
StackUrl = Annotated[str | None, typer.Option(callback=_url, help="a running stack to test")]
ScenarioSet = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="override a scenario field, KEY a dotted path, VALUE YAML "
        "(carrier.api_version=v2, demand.orders=500); repeatable",
    ),
]
StackCmd = Annotated[
    str | None, typer.Option(callback=_command, help="command that starts the stack")
]


def _image(value: str | None) -> str | None:
    """A container image name (checked for presence when the run starts)."""
    if value is not None and (not value.strip() or any(c.isspace() for c in value)):
        raise typer.BadParameter(f"{value!r} is not an image name, e.g. my-stack:1.4")
    return value


StackImage = Annotated[
    str | None,
    typer.Option(
        callback=_image,
        help="run the stack from this container image, on the host's network, through the "
        "Docker or podman API (DOCKER_HOST); removed afterwards (docs/containers.md)",
    ),
]


def _one_stack(stack_url: str | None, stack_cmd: str | None, stack_image: str | None) -> str | None:
    """The stack command to give the run: ``--stack-image`` travels as a ``StackImage``."""
    if sum(given is not None for given in (stack_url, stack_cmd, stack_image)) > 1:
        raise Usage("give one of --stack-url, --stack-cmd and --stack-image")
    if stack_image is None:
        return stack_cmd
    from harness.containers import StackImage as Image

    return Image(stack_image)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"twinyard {version('twinyard')}")
        raise typer.Exit(0)


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Simulated ERP, WMS, TMS and carrier to test a logistics integration stack."""


def _stack_config(path: Path | None) -> scenarios.Stack | None:
    if path is None:
        return None
    try:
        return scenarios.load_stack(path)
    except scenarios.ScenarioError as exc:
        raise Usage(exc.lines[0]) from None


def _load(path: Path, overrides: list[str] | None = None) -> scenarios.Scenario:
    try:
        return scenarios.load(path, tuple(overrides or ()))
    except scenarios.ScenarioError as exc:
        raise Usage(_first_of(exc.lines, f"twinyard validate {path} lists them")) from None


def _first_of(problems: list[str], more: str) -> str:
    """One line for many problems: the first, and how many more there are."""
    if len(problems) == 1:
        return problems[0]
    others = len(problems) - 1
    return f"{problems[0]} (+{others} more problem{'s' if others > 1 else ''}: {more})"


@app.command("run")
def run_command(
    scenario: Annotated[Path | None, typer.Argument(help="scenario file")] = None,
    stack_url: StackUrl = None,
    stack_cmd: StackCmd = None,
    stack_image: StackImage = None,
    seed: Annotated[
        int | None,
        typer.Option(min=0, max=scenarios.MAX_SEED, help="override the scenario's seed"),
    ] = None,
    report_dir: Annotated[Path, typer.Option(callback=_out_folder, help="where reports go")] = Path(
        "reports/latest"
    ),
    port_base: PortBase = None,
    webhook_secret: Annotated[
        str | None,
        typer.Option(
            envvar="TWINYARD_WEBHOOK_SECRET",
            help=f"secret for webhooks ({SECRET_NOTE}: set TWINYARD_WEBHOOK_SECRET or use "
            "--webhook-secret-file) [default: a new one per run]",
        ),
    ] = None,
    webhook_secret_file: Annotated[
        Path | None,
        typer.Option(
            envvar=SECRET_FILE_VAR,
            help="a file holding the webhook secret (its text, without trailing line breaks)",
        ),
    ] = None,
    control_token: Annotated[
        str | None,
        typer.Option(
            envvar="TWINYARD_CONTROL_TOKEN",
            help="token that /_sim/ writes need [default: a new one per run, given to a "
            "launched stack as TWINYARD_CONTROL_TOKEN]",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live progress view")] = False,
    ready_timeout: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            max=3600,
            help="seconds the stack has to answer its health route "
            "(default: 30 for a launched stack, 3 for --stack-url)",
        ),
    ] = None,
    health_path: Annotated[
        str, typer.Option(callback=_route, help="the stack's health route")
    ] = HEALTH_PATH,
    max_wall: Annotated[
        float | None,
        typer.Option(
            min=1,
            max=604_800,
            help="stop the run after this many wall seconds: the day is judged as it stood "
            "and the run fails (exit 1) [default: no limit]",
        ),
    ] = None,
    stack_config: Annotated[
        Path | None,
        typer.Option(
            help="how your stack runs (a scenario's stack: section in a file of its own: "
            "idle_path, settle_ms, schedule, poll_every), in place of the scenario's"
        ),
    ] = None,
    overrides: ScenarioSet = None,
) -> None:
    """Play a scenario day against a stack and judge it."""
    path = scenario or DEFAULT_SCENARIO
    stack_cmd = _one_stack(stack_url, stack_cmd, stack_image)
    if control_token is not None and not usable_token(control_token):
        raise Usage("--control-token must be visible ASCII characters, no spaces (not empty)")
    webhook_secret = _webhook_secret(
        webhook_secret,
        webhook_secret_file,
        ("webhook_secret", "webhook_secret_file"),
        ("--webhook-secret", "--webhook-secret-file"),
    )
    loaded = _load(path, overrides).with_seed(seed).with_stack(_stack_config(stack_config))
    _make_folder(report_dir, "--report-dir")
    if stack_url and port_base is None:
        port_base = SYSTEM_PORTS  # a stack started elsewhere knows the simulators' fixed ports
    config = RunConfig(
        scenario=loaded,
        scenario_path=str(path),
        stack_url=stack_url,
        stack_cmd=stack_cmd,
        report_dir=report_dir,
        port_base=port_base,
        webhook_secret=webhook_secret,
        control_token=control_token,
        ready_timeout_s=ready_timeout,
        health_path=health_path,
        max_wall_s=max_wall,
    )
    console = terminal.console()
    try:
        if progress.wanted(console, quiet):
            with progress.ProgressView(console, loaded.demand.orders + len(loaded.orders)) as view:
                config.progress = view
                outcome = uvloop.run(run(config))
        else:
            outcome = uvloop.run(run(config))
    except (ConfigError, StackError) as exc:
        raise Usage(str(exc)) from None
    with hosting.collector_paused():
        terminal.render(outcome, console)
        written = verdict_json.write(outcome, report_dir)
        junit.write(outcome, report_dir)
        run_files.write(outcome, report_dir)
        html.write(outcome, report_dir)
    console.print(f"report: {written}")
    raise typer.Exit(0 if outcome.passed else 1)


@app.command("trace")
def trace_command(
    order_id: Annotated[str, typer.Argument(help="an ERP order id, e.g. SO-000042")],
    run_dir: Annotated[Path, typer.Option("--run", help="the run's report folder")] = Path(
        "reports/latest"
    ),
    output: FormatOption = Format.table,
) -> None:
    """Show one order's life across ERP, WMS, TMS and carrier from a finished run."""
    from harness import trace
    from harness.report import trace_view

    try:
        found = trace.load(run_dir, order_id)
    except trace.TraceError as exc:
        raise Usage(str(exc)) from None
    except (ValueError, KeyError, TypeError) as exc:  # a report folder edited or cut short
        raise Usage(f"the run in {run_dir} cannot be read: {type(exc).__name__}: {exc}") from None
    if output == Format.json:
        _emit(_trace_json(found))
    else:
        trace_view.render(found, terminal.console())


def _trace_json(found: Any) -> dict[str, Any]:
    """docs/cli.md: the order in each system, then its exchanges as the journal has them."""
    return {
        "order_id": found.order_id,
        "order": found.order,
        "fulfilment_orders": found.fulfilment_orders,
        "shipments": found.shipments,
        "labels": found.labels,
        "correlation_ids": found.correlation_ids,
        "exchanges": found.entries,
    }


@app.command("selftest")
def selftest_command(
    scenarios_dir: Annotated[
        Path, typer.Option("--scenarios", help="folder of scenario files")
    ] = DEFAULT_LIBRARY,
    only: Annotated[
        list[str] | None,
        typer.Option(help="only this scenario of the library, by file name (repeatable)"),
    ] = None,
    defect: Annotated[
        list[str] | None, typer.Option(help="only this defect (repeatable); default: all")
    ] = None,
    clean_only: Annotated[
        bool, typer.Option("--clean-only", help="only the clean stack (no false alarms)")
    ] = False,
    seeds: Annotated[
        int, typer.Option(min=0, help="clean runs on seeds 1..N too (0: the scenarios' own)")
    ] = 0,
    jobs: Annotated[int, typer.Option(min=1, help="runs side by side")] = 4,
    report_dir: Annotated[Path, typer.Option(callback=_out_folder, help="where reports go")] = Path(
        "reports/selftest"
    ),
    json_path: Annotated[
        Path | None,
        typer.Option("--json", callback=_out_file, help="also write the matrix as JSON"),
    ] = None,
    output: FormatOption = Format.table,
) -> None:
    """Run every reference-stack defect against a scenario library and print the matrix."""
    from harness import selftest
    from harness.report import matrix as matrix_view

    try:
        files = selftest.library(scenarios_dir)
    except selftest.LibraryError as exc:
        raise Usage(str(exc)) from None
    unknown = sorted(set(defect or ()) - set(selftest.DEFECTS))
    if unknown:
        raise Usage(f"unknown defect(s) {', '.join(unknown)}; known: {', '.join(selftest.DEFECTS)}")
    if only:
        files = _only(files, only)
    everything = selftest.DEFECTS if not only else _declared(selftest.declared_catches(files))
    defects = [] if clean_only else list(defect or everything)
    clean_seeds: list[int | None] = [None, *range(1, seeds + 1)]
    cells = selftest.plan(files, defects, clean_seeds)
    _make_folder(report_dir, "--report-dir")
    console = terminal.console(stderr=output == Format.json)
    console.print(f"{len(cells)} runs, {jobs} side by side ...")

    def progress_line(result: selftest.Result) -> None:
        verdict = {0: "pass", 1: "FAIL"}.get(result.exit_code, "ERROR")
        console.print(f"  {result.cell.name}: {verdict} ({result.wall_s:.1f} s)", highlight=False)

    started = time.perf_counter()
    with settings.not_for_children():  # each cell is exactly the run selftest means
        results = uvloop.run(selftest.run_cells(cells, report_dir, jobs, progress_line))
    matrix = selftest.Matrix(
        [f.stem for f in files], defects, results, selftest.declared_catches(files)
    )
    matrix.wall_s = time.perf_counter() - started
    if output == Format.json:
        _emit(matrix.to_dict())
    else:
        matrix_view.render(matrix, console)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(matrix.to_dict(), indent=2))
    raise typer.Exit(0 if matrix.ok else 1)


def _only(files: list[Path], names: list[str]) -> list[Path]:
    """The library's files named by ``--only`` (a stem, or a file name with .yaml)."""
    wanted = {Path(name).stem for name in names}
    missing = sorted(wanted - {f.stem for f in files})
    if missing:
        known = ", ".join(f.stem for f in files)
        raise Usage(f"--only {', '.join(missing)}: not in the library; known: {known}")
    return [f for f in files if f.stem in wanted]


def _declared(declared: dict[str, list[str]]) -> list[str]:
    """The defects the chosen scenarios declare they catch: a subset is judged on its own."""
    return sorted({d for catches in declared.values() for d in catches})


@app.command("coverage")
def coverage_command(
    scenarios_dir: Annotated[
        Path | None,
        typer.Option("--scenarios", help="scenario folder to play (default: scenarios/incidents)"),
    ] = None,
    runs_dir: Annotated[
        Path | None, typer.Option("--runs", help="read these report folders instead of playing")
    ] = None,
    pacts: Annotated[
        Path | None, typer.Option(help="the stack's consumer pacts (default: contracts/pacts)")
    ] = None,
    stack_url: Annotated[
        str | None, typer.Option(callback=_url, help="a running stack to play on")
    ] = None,
    stack_cmd: StackCmd = None,
    jobs: Annotated[int, typer.Option(min=1, help="runs side by side")] = 4,
    report_dir: Annotated[
        Path, typer.Option(callback=_out_folder, help="where played runs go")
    ] = Path("reports/coverage"),
    output: FormatOption = Format.table,
) -> None:
    """Map which fault x route, event and cancellation-stage cells a library exercises."""
    from harness import selftest
    from harness.coverage import render, runs, survey

    request = survey.Request(
        scenarios_dir, runs_dir, pacts, runs.StackChoice(stack_url, stack_cmd), jobs, report_dir
    )
    progress = terminal.console(stderr=output == Format.json)

    def progress_line(result: selftest.Result) -> None:
        verdict = {0: "pass", 1: "FAIL"}.get(result.exit_code, "ERROR")
        line = f"  {result.cell.scenario.stem}: {verdict} ({result.wall_s:.1f} s)"
        progress.print(line, highlight=False)

    try:
        with settings.not_for_children():  # the runs it plays get exactly its options
            coverage = survey.survey(request, progress_line)
    except survey.CoverageError as exc:
        raise Usage(str(exc)) from None
    if output == Format.json:
        _emit(coverage.to_dict())
    else:
        render.render(coverage, terminal.console())
    raise typer.Exit(0 if coverage.complete else 1)


def _side(value: str | None) -> str | None:
    """A side of a comparison: a stack's URL (http...), ``image:NAME`` (a container image) or
    the command that starts it."""
    if value is None:
        return None
    if value.startswith("image:"):
        _image(value.removeprefix("image:"))
        return value
    return _url(value) if value.startswith(("http://", "https://")) else _command(value)


SideSet = Annotated[
    list[str] | None,
    typer.Option(metavar="KEY=VALUE", help="override a scenario field for this side only"),
]


@app.command("compare")
def compare_command(
    scenario: Annotated[
        Path, typer.Argument(help="scenario file both stacks play, or a folder of them")
    ],
    a: Annotated[
        str,
        typer.Option(
            "--a", callback=_side, help="stack A (the legacy): a command, URL or image:NAME"
        ),
    ],
    b: Annotated[
        str,
        typer.Option("--b", callback=_side, help="stack B (the new): a command, URL or image:NAME"),
    ],
    overrides: ScenarioSet = None,
    a_set: SideSet = None,
    b_set: SideSet = None,
    seeds: Annotated[
        int, typer.Option(min=0, help="compare on seeds 1..N (0: the scenario's own seed)")
    ] = 0,
    noise: Annotated[
        bool, typer.Option("--noise", help="play A twice: what differs A to A is noise")
    ] = False,
    compare_file: Annotated[
        Path | None,
        typer.Option(help="fields to ignore, tolerances, expected differences (docs/compare.md)"),
    ] = None,
    jobs: Annotated[int, typer.Option(min=1, help="runs side by side")] = 2,
    report_dir: Annotated[
        Path, typer.Option(callback=_out_folder, help="where the runs and the comparison go")
    ] = Path("reports/compare"),
    output: FormatOption = Format.table,
) -> None:
    """Play one world against two stacks and compare what each did to the business."""
    from harness.compare import command as comparing
    from harness.compare import spec as specs

    files = sorted(scenario.glob("*.yaml")) if scenario.is_dir() else [scenario]
    if not files:
        raise Usage(f"{scenario}: no scenario files (*.yaml) in the folder")
    for file in files:  # a broken scenario or override: one line, before anything plays
        _load(file, [*(overrides or []), *(a_set or [])])
        _load(file, [*(overrides or []), *(b_set or [])])
    try:
        spec = specs.load(compare_file) if compare_file else specs.CompareSpec()
    except specs.SpecError as exc:
        raise Usage(str(exc)) from None
    _make_folder(report_dir, "--report-dir")
    plan = comparing.Plan(
        scenario=scenario,
        scenarios=files,
        a=a,
        b=b,
        a_overrides=(*(overrides or []), *(a_set or [])),
        b_overrides=(*(overrides or []), *(b_set or [])),
        seeds=list(range(1, seeds + 1)) if seeds else [None],
        noise=noise,
        spec=spec,
        jobs=jobs,
        report_dir=report_dir,
    )
    progress = terminal.console(stderr=output == Format.json)
    with settings.not_for_children():
        comparison = comparing.compare(plan, progress)
    if output == Format.json:
        _emit(comparison.to_dict())
    else:
        comparing.report(comparison, terminal.console())
    if any(seed.error for seed in comparison.seeds):
        raise typer.Exit(2)
    raise typer.Exit(0 if comparison.passed else 1)


@app.command("shrink")
def shrink_command(
    scenario: Annotated[Path, typer.Argument(help="a scenario file that fails")],
    stack_url: StackUrl = None,
    stack_cmd: StackCmd = None,
    oracle: Annotated[
        str | None,
        typer.Option(help="the oracle that must keep failing (default: the first that fails)"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="where the capsule goes (default: REPORT_DIR/<scenario>_shrunk.yaml)"),
    ] = None,
    report_dir: Annotated[
        Path, typer.Option(callback=_out_folder, help="where the trial runs go")
    ] = Path("reports/shrink"),
) -> None:
    """Shrink a failing day to the fewest orders and faults on which an oracle still fails."""
    from harness import oracles as known
    from harness.capsules import shrink as shrinking

    _load(scenario)
    if oracle is not None and oracle not in known.REGISTRY:
        raise Usage(f"--oracle {oracle}: no such oracle; known: {', '.join(known.REGISTRY)}")
    if stack_url and stack_cmd:
        raise Usage("give --stack-url or --stack-cmd, not both")
    _make_folder(report_dir, "--report-dir")
    stack = stack_url or stack_cmd or shlex.join(REFERENCE_STACK_CMD)
    path = out or report_dir / f"{scenario.stem}_shrunk.yaml"
    console = terminal.console()

    def said(trial: shrinking.Trial) -> None:
        verdict = "still fails" if trial.failed else "passes (not taken)"
        console.print(
            f"  {trial.what}: {verdict} ({trial.wall_s:.1f} s)", highlight=False, soft_wrap=True
        )

    try:
        with settings.not_for_children():
            shrunk = shrinking.shrink(scenario, stack, oracle, report_dir, path, said)
    except shrinking.ShrinkError as exc:
        raise Usage(str(exc)) from None
    console.print(
        f"shrunk {scenario.name} ({shrunk.oracle}): orders {shrunk.orders[0]} -> "
        f"{shrunk.orders[1]}, faults {shrunk.faults[0]} -> {shrunk.faults[1]}, horizon "
        f"{shrunk.horizon_days[0]:g} -> {shrunk.horizon_days[1]:g} days; "
        f"{len(shrunk.trials)} plays in {shrunk.wall_s:.0f} s",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"{shrunk.oracle} names: {', '.join(shrunk.entities[:10]) or '-'}", highlight=False
    )
    console.print(f"capsule: {path}", highlight=False, soft_wrap=True)


@app.command("import")
def import_command(
    evidence: Annotated[
        list[Path], typer.Argument(help="run folders, journal.jsonl, HAR files, event exports")
    ],
    out: Annotated[Path, typer.Option(help="where the capsule (a scenario file) goes")],
    name: Annotated[str | None, typer.Option(help="the capsule's scenario name")] = None,
    system: Annotated[
        list[str] | None, typer.Option(help="HOST=SYSTEM: whose traffic a HAR host is")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="run, journal, har or dlq (default: detect)")
    ] = None,
) -> None:
    """Turn what an incident left behind into a capsule: a scenario that replays it."""
    from harness.capsules import import_command as importing

    try:
        done = importing.run_import(evidence, out, name=name, systems=system, fmt=fmt)
    except importing.ImportProblem as exc:
        raise Usage(str(exc)) from None
    console = terminal.console()
    console.print(done.summary(), highlight=False, soft_wrap=True)
    console.print(f"capsule: {out}", highlight=False, soft_wrap=True)


@app.command("record")
def record_command(
    har: Annotated[Path, typer.Option(help="the HAR 1.2 file written (at least every second)")],
    upstream: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME=URL", help="a vendor to record, on its own port; repeatable"),
    ] = None,
    journal: Annotated[
        Path | None,
        typer.Option(help="journal lines (JSON Lines) [default: next to the HAR, *.journal.jsonl]"),
    ] = None,
    port_base: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="ports N, N+1, ... by --upstream [default: free]"),
    ] = None,
    keep_secrets: Annotated[
        bool, typer.Option("--keep-secrets", help="write credentials and signatures unredacted")
    ] = False,
) -> None:
    """Record what crosses between a stack and its vendors (HAR and journal); Ctrl-C stops."""
    from harness.capsules import record

    try:
        record.command(upstream or [], har, journal, port_base=port_base, keep_secrets=keep_secrets)
    except record.RecordError as exc:
        raise Usage(str(exc)) from None


contracts_app = typer.Typer(
    help="Vendor contracts: what changed between API versions.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(contracts_app, name="contracts")


@contracts_app.command("diff")
def contracts_diff_command(
    old: Annotated[str, typer.Argument(help="the OpenAPI your stack was built on (file or URL)")],
    new: Annotated[str, typer.Argument(help="the vendor's new OpenAPI (file or URL)")],
    output: FormatOption = Format.table,
) -> None:
    """List breaking and non-breaking changes between two OpenAPI versions (exit 1: breaking)."""
    from rich.table import Table

    from harness.contracts import openapi_diff

    try:
        changes = openapi_diff.diff(openapi_diff.load(old), openapi_diff.load(new))
    except openapi_diff.SpecError as exc:
        raise Usage(str(exc)) from None
    breaking = sum(c.breaking for c in changes)
    if output == Format.json:
        _emit(_diff_json(old, new, changes))
        raise typer.Exit(1 if breaking else 0)
    console = terminal.console()
    if changes:
        table = Table(title=f"{old} -> {new}", title_justify="left")
        for name in ("", "operation", "where", "change"):
            table.add_column(name)
        for change in changes:
            mark = "[bold red]BREAKING[/]" if change.breaking else "[green]ok[/]"
            table.add_row(mark, change.operation, change.where, change.message)
        console.print(table)
    console.print(f"{breaking} breaking, {len(changes) - breaking} non-breaking changes")
    raise typer.Exit(1 if breaking else 0)


def _diff_json(old: str, new: str, changes: list[Any]) -> dict[str, Any]:
    """docs/cli.md: both files, the counts, and every change, breaking ones first."""
    breaking = sum(c.breaking for c in changes)
    return {
        "old": str(old),
        "new": str(new),
        "breaking": breaking,
        "non_breaking": len(changes) - breaking,
        "changes": [
            {
                "breaking": c.breaking,
                "operation": c.operation,
                "where": c.where,
                "message": c.message,
            }
            for c in sorted(changes, key=lambda c: not c.breaking)
        ],
    }


class Signing(StrEnum):
    """The webhook signature scheme (simulators.common.signing.SCHEMES)."""

    twinyard = "twinyard"
    standard_webhooks = "standard-webhooks"


@contracts_app.command("fuzz")
def contracts_fuzz_command(
    url: Annotated[
        str,
        typer.Option(callback=_url, help="the stack's base URL (the spec's paths go after it)"),
    ],
    openapi: Annotated[
        Path | None, typer.Option(help="the receiver's OpenAPI (default: stack-webhooks.yaml)")
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option(
            envvar="TWINYARD_WEBHOOK_SECRET",
            help=f"secret for webhooks ({SECRET_NOTE}: set TWINYARD_WEBHOOK_SECRET or use "
            "--secret-file)",
        ),
    ] = None,
    secret_file: Annotated[
        Path | None,
        typer.Option(
            envvar=SECRET_FILE_VAR,
            help="a file holding the webhook secret (its text, without trailing line breaks)",
        ),
    ] = None,
    signing: Annotated[
        Signing,
        typer.Option(
            help="how the events are signed: as the stack subscribed (standard-webhooks: a "
            "whsec_ secret)"
        ),
    ] = Signing.twinyard,
    max_examples: Annotated[int, typer.Option(min=1, help="generated cases per phase")] = 100,
    junit_path: Annotated[
        Path | None, typer.Option("--junit", callback=_out_file, help="also write JUnit XML")
    ] = None,
) -> None:
    """Send malformed and hostile events to a stack's webhook receiver (exit 1: findings)."""
    from rich.markup import escape
    from rich.table import Table

    from harness.contracts import fuzz

    secret = _webhook_secret(
        secret, secret_file, ("secret", "secret_file"), ("--secret", "--secret-file")
    )
    if not secret:
        raise Usage(
            "a webhook secret is needed to sign events: TWINYARD_WEBHOOK_SECRET, "
            "--secret-file or --secret"
        )
    try:
        result = fuzz.run(
            url,
            secret,
            openapi or fuzz.DEFAULT_SPEC,
            max_examples=max_examples,
            signing=signing.value,
        )
    except fuzz.FuzzError as exc:
        raise Usage(str(exc)) from None
    console = terminal.console()
    console.print(f"{result.url} against {result.spec}", markup=False, highlight=False)
    table = Table()
    for name in ("part", "cases", "failed", "seconds"):
        table.add_column(name, justify="left" if name == "part" else "right")
    for tally in result.generated.phases.values():
        table.add_row(tally.phase, str(tally.cases), str(tally.failures), f"{tally.seconds:.1f}")
    failed = sum(not o.passed for o in result.hostile)
    table.add_row("hostile", str(len(result.hostile)), str(failed), f"{result.hostile_seconds:.1f}")
    console.print(table)
    for finding in result.findings:
        answer = "no answer" if finding.status is None else str(finding.status)
        console.print(f"[red]FINDING[/] {escape(finding.case)}: {escape(finding.problem)}")
        console.print(f"  answer: {answer} {finding.body}", markup=False, highlight=False)
        console.print(f"  request: {finding.request}", markup=False, highlight=False)
    if junit_path is not None:
        console.print(f"JUnit: {fuzz.write_junit(result, junit_path)}")
    found = len(result.findings)
    console.print(f"{result.cases} cases in {result.seconds:.1f} s: {found} findings")
    raise typer.Exit(1 if result.findings else 0)


@contracts_app.command("check")
def contracts_check_command(
    pacts: Annotated[Path, typer.Option(help="a folder of pact files (*.json) or one pact")],
    openapi: Annotated[str, typer.Option(help="the vendor's new OpenAPI (file or URL)")],
    provider: Annotated[str | None, typer.Option(help="only the pacts for this provider")] = None,
    junit_path: Annotated[
        Path | None,
        typer.Option(
            "--junit", callback=_out_file, help="also write JUnit XML, a case per interaction"
        ),
    ] = None,
    output: FormatOption = Format.table,
) -> None:
    """Check your pacts against a vendor's new OpenAPI: which interactions break (exit 1)."""
    from harness.contracts import check_report, openapi_diff, pact_check
    from harness.contracts import pacts as pact_files

    try:
        spec = openapi_diff.load(openapi)
        result = pact_check.check(pact_files.files(pacts), spec, provider)
    except (openapi_diff.SpecError, pact_files.PactError) as exc:
        raise Usage(str(exc)) from None
    names = ", ".join(sorted({p.provider for p in result.pacts}))
    if output == Format.json:
        _emit(_check_json(result, openapi))
    else:
        check_report.render(result, terminal.console(), f"{pacts} ({names}) -> {openapi}")
    if junit_path is not None:
        check_report.write_junit(result, junit_path)
    raise typer.Exit(0 if result.passed else 1)


def _check_json(result: Any, openapi: str) -> dict[str, Any]:
    """docs/cli.md: the verdict, the counts, the pacts read, and every interaction."""
    return {
        "openapi": str(openapi),
        "passed": result.passed,
        "counts": {
            "broken": result.count("broken"),
            "ok": result.count("ok"),
            "skipped": result.count("skipped"),
            "total": len(result.results),
        },
        "pacts": [
            {"file": p.source, "consumer": p.consumer, "provider": p.provider} for p in result.pacts
        ],
        "interactions": [
            {
                "pact": r.pact,
                "consumer": r.consumer,
                "provider": r.provider,
                "description": r.description,
                "operation": r.operation,
                "outcome": r.outcome,
                "skipped": r.skipped,
                "problems": [
                    {"breaking": p.breaking, "where": p.where, "message": p.message}
                    for p in r.problems
                ],
            }
            for r in result.results
        ],
    }


@contracts_app.command("verify")
def contracts_verify_command(
    pacts: Annotated[
        Path, typer.Option(help="a pact file or a folder of them (default: the reference stack's)")
    ] = bundled.PACTS,
    provider: Annotated[str | None, typer.Option(help="verify only this provider")] = None,
    provider_url: Annotated[
        str | None,
        typer.Option(callback=_url, help="a vendor to verify instead of the simulators"),
    ] = None,
    state_url: Annotated[
        str | None, typer.Option(callback=_url, help="the vendor's provider-state set-up URL")
    ] = None,
    junit: Annotated[Path, typer.Option(callback=_out_file, help="JUnit report")] = Path(
        "reports/contracts/verify.xml"
    ),
    broker_url: Annotated[
        str | None,
        typer.Option(callback=_url, help="publish pacts and results to this Pact Broker"),
    ] = None,
    consumer_version: Annotated[
        str | None, typer.Option(help="with --broker-url: the pacts' version")
    ] = None,
    provider_version: Annotated[
        str | None, typer.Option(help="with --broker-url: the vendor's version")
    ] = None,
    branch: Annotated[str | None, typer.Option(help="with --broker-url: the branch")] = None,
    verbose: Annotated[bool, typer.Option(help="show Pact's verifier report")] = False,
) -> None:
    """Verify pacts against the simulators, or a vendor (exit 1: an interaction fails)."""
    from harness.contracts import broker, verify

    if broker_url is not None:
        if provider_url is None or provider is None:
            raise Usage("--broker-url publishes a vendor's results: give --provider-url too")
        if not (consumer_version and provider_version):
            raise Usage("--broker-url needs --consumer-version and --provider-version")
    elif provider_url is not None and provider is None:
        raise Usage("--provider-url verifies one provider: give --provider NAME")
    try:
        if provider_url is None:
            results = verify.verify_simulators(pacts, provider, quiet=not verbose)
        else:
            assert provider is not None
            found = verify.verify_url(pacts, provider, provider_url, state_url, quiet=not verbose)
            results = {provider: found}
    except verify.UnknownStates as exc:
        print(f"twinyard: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    except verify.PactError as exc:
        raise Usage(str(exc)) from None
    console = terminal.console()
    for name, verification in results.items():
        console.print(
            f"{name}: {verification.count('passed')} passed, "
            f"{verification.count('failed')} failed, {verification.count('skipped')} skipped"
        )
        for outcome in verification.outcomes:
            if outcome.status == "failed":
                console.print(f"  [red]FAILED[/] {outcome.interaction.description}")
                for problem in outcome.problems:
                    console.print(f"         {problem}", markup=False)
    console.print(f"JUnit: {verify.write_junit(results, junit)}")
    ok = all(v.ok for v in results.values())
    if ok and broker_url is not None:
        assert provider and provider_url and consumer_version and provider_version
        publication = broker.Publication(
            broker_url=broker_url,
            pacts=pacts,
            consumer=verify.consumer_name(pacts),
            provider=provider,
            provider_url=provider_url,
            consumer_version=consumer_version,
            provider_version=provider_version,
            branch=branch,
            state_url=state_url,
        )
        try:
            broker.run(publication)
        except broker.BrokerError as exc:
            raise Usage(str(exc)) from None
        console.print(f"published to {broker_url}")
    raise typer.Exit(0 if ok else 1)


@app.command("load")
def load_command(
    scenario: Annotated[
        Path | None,
        typer.Argument(help="scenario whose demand curve Locust plays [default: Black Friday]"),
    ] = None,
    rate_multiplier: Annotated[
        float, typer.Option(min=0.001, max=10_000, help="orders at this multiple of the real rate")
    ] = 1.0,
    factor: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            max=100_000,
            help="virtual seconds per wall second [default: the scenario's clock.factor]",
        ),
    ] = None,
    orders_per_user: Annotated[
        float,
        typer.Option(min=0.01, max=1000, help="orders per wall second one Locust user sends"),
    ] = 2.0,
    processes: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Locust's --processes: a master and N workers"),
    ] = None,
    web: Annotated[
        bool, typer.Option("--web", help="Locust's web UI (started at once) instead of headless")
    ] = False,
    web_port: Annotated[int, typer.Option(min=1, max=65535, help="with --web: its port")] = 8089,
    csv: Annotated[
        Path | None,
        typer.Option(help="Locust's --csv prefix [default: REPORT_DIR/locust]"),
    ] = None,
    html_file: Annotated[
        Path | None,
        typer.Option("--html", help="Locust's --html report [default: REPORT_DIR/locust.html]"),
    ] = None,
    locustfile: Annotated[
        Path | None,
        typer.Option(help="a Locust file of yours [default: loadtests/peak_season.py's]"),
    ] = None,
    stack_url: StackUrl = None,
    stack_cmd: StackCmd = None,
    stack_image: StackImage = None,
    seed: Annotated[
        int | None,
        typer.Option(min=0, max=scenarios.MAX_SEED, help="override the scenario's seed"),
    ] = None,
    report_dir: Annotated[Path, typer.Option(callback=_out_folder, help="where reports go")] = Path(
        "reports/load"
    ),
    port_base: PortBase = None,
    control_token: Annotated[
        str | None,
        typer.Option(
            envvar="TWINYARD_CONTROL_TOKEN",
            help="token that /_sim/ writes need [default: a new one per run]",
        ),
    ] = None,
    ready_timeout: Annotated[
        float | None,
        typer.Option(min=0.1, max=3600, help="seconds the stack has to answer its health route"),
    ] = None,
    max_wall: Annotated[
        float | None,
        typer.Option(
            min=1, max=604_800, help="stop after this many wall seconds (the run then fails)"
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live progress view")] = False,
    find_knee: Annotated[
        bool,
        typer.Option(
            "--find-knee",
            help="step the rate up from --rate-multiplier (doubling, then bisecting) until a "
            "flow breaks; report the sustainable orders per hour (docs/load.md)",
        ),
    ] = False,
    knee_steps: Annotated[
        int, typer.Option(min=1, max=50, help="with --find-knee: at most this many steps")
    ] = 6,
    knee_step: Annotated[
        float,
        typer.Option(
            min=5, max=3600, help="with --find-knee: wall seconds of load per step (then a drain)"
        ),
    ] = 60.0,
) -> None:
    """Play a peak day with Locust releasing the orders; judge the flows and the day.

    With --find-knee: short steps at rising rates instead, to find the highest it sustains."""
    from harness.load import engine, session
    from harness.load import report as load_report

    path = scenario or bundled.SCENARIOS / "peak" / "black_friday.yaml"
    stack_cmd = _one_stack(stack_url, stack_cmd, stack_image)
    if control_token is not None and not usable_token(control_token):
        raise Usage("--control-token must be visible ASCII characters, no spaces (not empty)")
    if locustfile is not None and not locustfile.is_file():
        raise Usage(f"--locustfile {locustfile}: no such file")
    loaded = _load(path).with_seed(seed)
    _make_folder(report_dir, "--report-dir")
    if stack_url and port_base is None:
        port_base = SYSTEM_PORTS
    options = engine.EngineOptions(
        locustfile=(locustfile or engine.LOCUSTFILE).resolve(),
        processes=processes,
        web=web,
        web_port=web_port,
        csv=csv or report_dir / "locust",
        html=html_file or report_dir / "locust.html",
    )
    config = session.LoadConfig(
        scenario=loaded,
        scenario_path=str(path),
        multiplier=rate_multiplier,
        factor=factor,
        per_user=orders_per_user,
        engine=options,
        stack_url=stack_url,
        stack_cmd=stack_cmd,
        report_dir=report_dir,
        port_base=port_base,
        control_token=control_token,
        ready_timeout_s=ready_timeout,
        max_wall_s=max_wall,
    )
    console = terminal.console()
    if find_knee:
        _find_knee(config, console, knee_steps, knee_step, max_wall)
    try:
        if progress.wanted(console, quiet):
            orders = max(1, round(loaded.demand.orders * rate_multiplier))
            with progress.ProgressView(console, orders) as view:
                config.progress = view
                outcome = uvloop.run(session.play(config))
        else:
            outcome = uvloop.run(session.play(config))
    except (ConfigError, StackError) as exc:
        raise Usage(str(exc)) from None
    load_report.render(outcome, console)
    written = load_report.write(outcome, report_dir)
    console.print(f"report: {written}")
    said = "[bold green]PASS[/]" if outcome.passed else "[bold red]FAIL[/]"
    console.print(f"load verdict: {said} (the day's verdict and Locust's exit code)")
    raise typer.Exit(0 if outcome.passed else 1)


def _find_knee(
    config: Any, console: Any, steps: int, step_s: float, max_wall: float | None
) -> None:
    """``load --find-knee``: the steps, the table, knee.json and report.html; exit 0 when some
    rate was sustained."""
    import shutil

    from harness.load import knee
    from harness.load import report as load_report
    from harness.report import folder

    config.max_wall_s = None  # the search's budget, not one step's
    search = knee.KneeConfig(config, steps=steps, step_s=step_s, max_wall_s=max_wall)
    try:
        knee.check(search)
        with folder.claimed(config.report_dir):
            shutil.rmtree(config.report_dir / "knee", ignore_errors=True)
            (config.report_dir / load_report.KNEE_JSON).unlink(missing_ok=True)
            found = uvloop.run(
                knee.find(search, lambda step: load_report.render_step(step, console))
            )
    except folder.FolderInUse as exc:
        raise Usage(str(exc)) from None
    except (ConfigError, StackError) as exc:
        raise Usage(str(exc)) from None
    load_report.render_knee(found, console)
    written = load_report.write_knee(found, config.report_dir)
    console.print(f"report: {written} and {config.report_dir / 'report.html'}")
    raise typer.Exit(0 if found.passed else 1)


@app.command("sims")
def sims_command(
    scenario: Annotated[
        Path | None,
        typer.Option(help="set the simulators up as this scenario does; its faults count from now"),
    ] = None,
    host: Annotated[
        str, typer.Option(help="address to listen on; 0.0.0.0: all interfaces")
    ] = hosting.LOOPBACK,
    port_base: Annotated[
        int, typer.Option(min=1, max=65532, help="ports N..N+3: erp, wms, tms, carrier")
    ] = SYSTEM_PORTS,
    env: Annotated[bool, typer.Option("--env", help="print URLs as environment variables")] = False,
    stock: Annotated[
        int | None,
        typer.Option(
            min=0, max=10_000_000, help="initial stock of each SKU [default: the scenario's, 500]"
        ),
    ] = None,
    skus: Annotated[
        int | None,
        typer.Option(
            min=1, max=100_000, help="catalogue size, SKU-00001 ... [default: the scenario's, 40]"
        ),
    ] = None,
    carrier_api_version: Annotated[
        str | None,
        typer.Option(help="the carrier API served: v1, v1.1 or v2 [default: the scenario's, v1]"),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="keys the faults' draws [default: the scenario's, 1]")
    ] = None,
    control_token: Annotated[
        str | None,
        typer.Option(
            envvar="TWINYARD_CONTROL_TOKEN",
            help="token that /_sim/ writes need [default: a new one, printed]",
        ),
    ] = None,
    no_token: Annotated[
        bool,
        typer.Option("--no-token", help="no token on /_sim/ writes (loopback only)"),
    ] = False,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(help="a Host name the simulators answer to besides this machine's"),
    ] = None,
    webhook_allow: Annotated[
        list[str] | None,
        typer.Option(help="a host webhook subscriptions may call besides this machine"),
    ] = None,
) -> None:
    """Start only the four simulators (wall clock) and print their URLs; Ctrl-C stops them."""
    from harness import sims
    from simulators.carrier.api import API_VERSIONS

    if carrier_api_version is not None and carrier_api_version not in API_VERSIONS:
        known = ", ".join(API_VERSIONS)
        raise Usage(f"--carrier-api-version {carrier_api_version!r}: known versions are {known}")
    try:
        guard = sims.make_guard(
            host,
            token=control_token,
            no_token=no_token,
            allow_hosts=allow_host or (),
            webhook_allow=webhook_allow or (),
        )
    except sims.Misuse as exc:
        raise Usage(str(exc)) from None
    world = _load(scenario) if scenario is not None else scenarios.Scenario()
    world = sims.configure(
        world, skus=skus, stock=stock, carrier_api_version=carrier_api_version, seed=seed
    )
    try:
        sims.serve(world, host=host, port_base=port_base, as_env=env, guard=guard)
    except hosting.PortInUse as exc:
        raise Usage(str(exc)) from None


@app.command("validate")
def validate_command(
    files: Annotated[list[Path], typer.Argument(help="scenario files")],
    output: FormatOption = Format.table,
) -> None:
    """Check scenario files; every problem is printed as file:line: field: message."""
    checked: list[tuple[Path, list[str]]] = []
    for file in files:
        try:
            scenarios.load(file)
        except scenarios.ScenarioError as exc:
            checked.append((file, exc.lines))
        else:
            checked.append((file, []))
    problems = [line for _, lines in checked for line in lines]
    if output == Format.json:
        _emit(_validate_json(checked))
    else:
        for file, lines in checked:
            if not lines:
                print(f"{file}: ok")
            elif len(problems) > 1:  # one problem alone is the error line itself
                print("\n".join(lines))
    if problems:
        raise Usage(_first_of(problems, "listed on stdout"))


def _validate_json(checked: list[tuple[Path, list[str]]]) -> dict[str, Any]:
    """docs/cli.md: each file, whether it is a valid scenario, and its problems."""
    return {
        "ok": not any(lines for _, lines in checked),
        "files": [
            {"path": str(file), "ok": not lines, "problems": lines} for file, lines in checked
        ],
    }


@app.command("schema")
def schema_command() -> None:
    """Print the scenario JSON Schema (for editor autocompletion)."""
    print(json.dumps(scenarios.Scenario.model_json_schema(), indent=2))


@functools.cache
def _click_command() -> Any:
    """Built once: typer reads every signature to build it (~50 ms), and click commands are
    made to be invoked again and again; each call gets its own context and settings."""
    return typer.main.get_command(app)


def main(argv: list[str] | None = None) -> int:
    """The command with its settings (variables, pyproject.toml) under the command line;
    every usage or configuration error becomes one line on stderr and exit code 2."""
    command = _click_command()
    try:
        found = settings.load(command)
        Limits.from_env()  # a bad TWINYARD_LIMIT_* is a configuration error, said before any work
    except (settings.SettingsError, LimitsError) as exc:
        return _error(str(exc))
    try:
        # Without standalone mode click *returns* the code of a typer.Exit instead of raising.
        code = command.main(
            args=argv,
            prog_name="twinyard",
            standalone_mode=False,
            default_map=found.default_map,
        )
    except Usage as exc:
        return _error(str(exc))
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return 130
    except SystemExit as exc:  # shell completion answers and exits this way
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except typer.BadParameter as exc:
        name = exc.param.name if exc.param is not None else None
        origin = found.origin(exc.ctx, name)
        if origin is None:
            return _error(exc.format_message())
        flag = f" ({exc.param.opts[0]})" if exc.param is not None and exc.param.opts else ""
        return _error(f"{origin}{flag}: {exc.message}")
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.format_message(), file=sys.stderr)  # bare `twinyard`: the help text
            return 2
        return _error(exc.format_message() if hasattr(exc, "format_message") else str(exc))
    return code if isinstance(code, int) else 0


def _error(message: str) -> int:
    """One line on stderr, whatever the message held, and exit code 2."""
    line = "; ".join(part.strip() for part in message.splitlines() if part.strip())
    line = line.replace("Value error, ", "")  # pydantic's prefix, as typer passes it on
    print(f"twinyard: error: {line}", file=sys.stderr)
    return 2


def entry() -> NoReturn:
    """The ``twinyard`` command as a process: ``main``, then out without tearing the heap
    down. A large day leaves hundreds of MB of objects that CPython would free one by one at
    exit (py-spy: about a second after the 10,000-order day's last report was written).
    What a normal exit does that matters still happens: atexit handlers (logging's flush,
    weakref finalizers) run and standard output and error are flushed."""
    code = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
