"""The ``twinyard`` command.

Exit codes everywhere: 0 every oracle passed, 1 an oracle failed, 2 a usage or
configuration error (always one line on stderr, never a traceback).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
import uvloop
from rich.console import Console

from harness import hosting
from harness import scenario as scenarios
from harness.report import html, junit, progress, run_files, terminal, verdict_json
from harness.runner import ConfigError, RunConfig, run
from harness.stack import StackError

app = typer.Typer(
    name="twinyard",
    help="Simulated ERP, WMS, TMS and carrier to test a logistics integration stack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "happy_day.yaml"
DEFAULT_LIBRARY = DEFAULT_SCENARIO.parent / "incidents"
SYSTEM_PORTS = 7101  # erp 7101, wms 7102, tms 7103, carrier 7104 for `twinyard sims`


class Usage(Exception):
    """A usage or configuration error: one line, exit code 2."""


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


def _load(path: Path) -> scenarios.Scenario:
    try:
        return scenarios.load(path)
    except scenarios.ScenarioError as exc:
        raise Usage(exc.lines[0] if len(exc.lines) == 1 else "\n".join(exc.lines)) from None


@app.command("run")
def run_command(
    scenario: Annotated[Path | None, typer.Argument(help="scenario file")] = None,
    stack_url: Annotated[str | None, typer.Option(help="a running stack to test")] = None,
    stack_cmd: Annotated[str | None, typer.Option(help="command that starts the stack")] = None,
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    report_dir: Annotated[Path, typer.Option(help="where reports go")] = Path("reports/latest"),
    port_base: Annotated[
        int | None, typer.Option(help="simulator ports N..N+3 (default: any free ports)")
    ] = None,
    webhook_secret: Annotated[
        str | None, typer.Option(envvar="TWINYARD_WEBHOOK_SECRET", help="secret for webhooks")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live progress view")] = False,
    ready_timeout: Annotated[
        float, typer.Option(min=0.1, max=3600, help="seconds a launched stack has to be ready")
    ] = 30.0,
) -> None:
    """Play a scenario day against a stack and judge it."""
    path = scenario or DEFAULT_SCENARIO
    loaded = _load(path).with_seed(seed)
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
        ready_timeout_s=ready_timeout,
    )
    console = Console()
    try:
        if progress.wanted(console, quiet):
            with progress.ProgressView(console, loaded.demand.orders) as view:
                config.progress = view
                outcome = uvloop.run(run(config))
        else:
            outcome = uvloop.run(run(config))
    except (ConfigError, StackError) as exc:
        raise Usage(str(exc)) from None
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
) -> None:
    """Show one order's life across ERP, WMS, TMS and carrier from a finished run."""
    from harness import trace
    from harness.report import trace_view

    try:
        found = trace.load(run_dir, order_id)
    except trace.TraceError as exc:
        raise Usage(str(exc)) from None
    trace_view.render(found, Console())


@app.command("selftest")
def selftest_command(
    scenarios_dir: Annotated[
        Path, typer.Option("--scenarios", help="folder of scenario files")
    ] = DEFAULT_LIBRARY,
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
    report_dir: Annotated[Path, typer.Option(help="where reports go")] = Path("reports/selftest"),
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the matrix as JSON")
    ] = None,
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
    defects = [] if clean_only else list(defect or selftest.DEFECTS)
    clean_seeds: list[int | None] = [None, *range(1, seeds + 1)]
    cells = selftest.plan(files, defects, clean_seeds)
    console = Console()
    console.print(f"{len(cells)} runs, {jobs} side by side ...")

    def progress_line(result: selftest.Result) -> None:
        verdict = {0: "pass", 1: "FAIL"}.get(result.exit_code, "ERROR")
        console.print(f"  {result.cell.name}: {verdict} ({result.wall_s:.1f} s)", highlight=False)

    started = time.perf_counter()
    results = uvloop.run(selftest.run_cells(cells, report_dir, jobs, progress_line))
    matrix = selftest.Matrix(
        [f.stem for f in files], defects, results, selftest.declared_catches(files)
    )
    matrix.wall_s = time.perf_counter() - started
    matrix_view.render(matrix, console)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(matrix.to_dict(), indent=2))
    raise typer.Exit(0 if matrix.ok else 1)


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
    stack_url: Annotated[str | None, typer.Option(help="a running stack to play on")] = None,
    stack_cmd: Annotated[str | None, typer.Option(help="command that starts the stack")] = None,
    jobs: Annotated[int, typer.Option(min=1, help="runs side by side")] = 4,
    report_dir: Annotated[Path, typer.Option(help="where played runs go")] = Path(
        "reports/coverage"
    ),
    output: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Map which fault x route, event and cancellation-stage cells a library exercises."""
    from harness import selftest
    from harness.coverage import render, runs, survey

    if output not in ("table", "json"):
        raise Usage(f"--format {output!r}: give table or json")
    request = survey.Request(
        scenarios_dir, runs_dir, pacts, runs.StackChoice(stack_url, stack_cmd), jobs, report_dir
    )
    progress = Console(stderr=output == "json")

    def progress_line(result: selftest.Result) -> None:
        verdict = {0: "pass", 1: "FAIL"}.get(result.exit_code, "ERROR")
        line = f"  {result.cell.scenario.stem}: {verdict} ({result.wall_s:.1f} s)"
        progress.print(line, highlight=False)

    try:
        coverage = survey.survey(request, progress_line)
    except survey.CoverageError as exc:
        raise Usage(str(exc)) from None
    if output == "json":
        print(json.dumps(coverage.to_dict(), indent=2))
    else:
        render.render(coverage, Console())
    raise typer.Exit(0 if coverage.complete else 1)


contracts_app = typer.Typer(
    help="Vendor contracts: what changed between API versions.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(contracts_app, name="contracts")


@contracts_app.command("diff")
def contracts_diff_command(
    old: Annotated[Path, typer.Argument(help="the vendor's OpenAPI your stack was built on")],
    new: Annotated[Path, typer.Argument(help="the vendor's new OpenAPI")],
) -> None:
    """List breaking and non-breaking changes between two OpenAPI versions (exit 1: breaking)."""
    from rich.table import Table

    from harness.contracts import openapi_diff

    try:
        changes = openapi_diff.diff(openapi_diff.load(old), openapi_diff.load(new))
    except openapi_diff.SpecError as exc:
        raise Usage(str(exc)) from None
    console = Console()
    if changes:
        table = Table(title=f"{old} -> {new}", title_justify="left")
        for name in ("", "operation", "where", "change"):
            table.add_column(name)
        for change in changes:
            mark = "[bold red]BREAKING[/]" if change.breaking else "[green]ok[/]"
            table.add_row(mark, change.operation, change.where, change.message)
        console.print(table)
    breaking = sum(c.breaking for c in changes)
    console.print(f"{breaking} breaking, {len(changes) - breaking} non-breaking changes")
    raise typer.Exit(1 if breaking else 0)


@contracts_app.command("fuzz")
def contracts_fuzz_command(
    url: Annotated[str, typer.Option(help="the stack's base URL (the spec's paths go after it)")],
    openapi: Annotated[
        Path | None, typer.Option(help="the receiver's OpenAPI (default: stack-webhooks.yaml)")
    ] = None,
    secret: Annotated[
        str | None, typer.Option(envvar="TWINYARD_WEBHOOK_SECRET", help="secret for webhooks")
    ] = None,
    max_examples: Annotated[int, typer.Option(min=1, help="generated cases per phase")] = 100,
    junit_path: Annotated[Path | None, typer.Option("--junit", help="also write JUnit XML")] = None,
) -> None:
    """Send malformed and hostile events to a stack's webhook receiver (exit 1: findings)."""
    from rich.markup import escape
    from rich.table import Table

    from harness.contracts import fuzz

    if not secret:
        raise Usage(
            "a webhook secret is needed to sign events: --secret or TWINYARD_WEBHOOK_SECRET"
        )
    try:
        result = fuzz.run(url, secret, openapi or fuzz.DEFAULT_SPEC, max_examples=max_examples)
    except fuzz.FuzzError as exc:
        raise Usage(str(exc)) from None
    console = Console()
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
    openapi: Annotated[Path, typer.Option(help="the vendor's new OpenAPI")],
    provider: Annotated[str | None, typer.Option(help="only the pacts for this provider")] = None,
    junit_path: Annotated[
        Path | None, typer.Option("--junit", help="also write JUnit XML, a case per interaction")
    ] = None,
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
    check_report.render(result, Console(), f"{pacts} ({names}) -> {openapi}")
    if junit_path is not None:
        check_report.write_junit(result, junit_path)
    raise typer.Exit(0 if result.passed else 1)


@contracts_app.command("verify")
def contracts_verify_command(
    pacts: Annotated[Path, typer.Option(help="a pact file or a folder of them")] = Path(
        "contracts/pacts"
    ),
    provider: Annotated[str | None, typer.Option(help="verify only this provider")] = None,
    provider_url: Annotated[
        str | None, typer.Option(help="a vendor to verify instead of the simulators")
    ] = None,
    state_url: Annotated[
        str | None, typer.Option(help="the vendor's provider-state set-up URL")
    ] = None,
    junit: Annotated[Path, typer.Option(help="JUnit report")] = Path(
        "reports/contracts/verify.xml"
    ),
    broker_url: Annotated[
        str | None, typer.Option(help="publish pacts and results to this Pact Broker")
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
    console = Console()
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


@app.command("sims")
def sims_command(
    port_base: Annotated[
        int, typer.Option(help="ports N..N+3: erp, wms, tms, carrier")
    ] = SYSTEM_PORTS,
    env: Annotated[bool, typer.Option("--env", help="print URLs as environment variables")] = False,
    stock: Annotated[int, typer.Option(help="initial stock of each catalogue SKU")] = 500,
    skus: Annotated[int, typer.Option(help="catalogue size (SKU-00001 ...)")] = 40,
    carrier_api_version: Annotated[
        str, typer.Option(help="the carrier API served: v1, v1.1 or v2")
    ] = "v1",
) -> None:
    """Start only the four simulators (wall clock) and print their URLs; Ctrl-C stops them."""
    from simulators.carrier.api import API_VERSIONS

    if carrier_api_version not in API_VERSIONS:
        known = ", ".join(API_VERSIONS)
        raise Usage(f"--carrier-api-version {carrier_api_version!r}: known versions are {known}")
    try:
        uvloop.run(_serve_forever(port_base, env, stock, skus, carrier_api_version))
    except hosting.PortInUse as exc:
        raise Usage(str(exc)) from None
    except KeyboardInterrupt:
        pass


async def _serve_forever(
    port_base: int, as_env: bool, stock: int, skus: int, carrier_api_version: str
) -> None:
    import simulators
    from harness.world.catalogue import Catalogue
    from simulators.common.clock import WallClock

    clock = WallClock()
    initial = Catalogue.build(skus, stock).stock()
    versions = {"carrier": {"api_version": carrier_api_version}}
    sims = [
        simulators.build(s, clock, stock=initial, **versions.get(s, {})) for s in simulators.SYSTEMS
    ]
    hosted = await hosting.serve(sims, [port_base + i for i in range(len(sims))])
    for item in hosted:
        name = item.sim.system
        print(f"TWINYARD_{name.upper()}_URL={item.url}" if as_env else f"{name:8} {item.url}")
    sys.stdout.flush()
    try:
        await asyncio.Event().wait()
    finally:
        await hosting.shutdown(hosted)


@app.command("validate")
def validate_command(
    files: Annotated[list[Path], typer.Argument(help="scenario files")],
) -> None:
    """Check scenario files; every problem is printed as file:line: field: message."""
    problems: list[str] = []
    for file in files:
        try:
            scenarios.load(file)
        except scenarios.ScenarioError as exc:
            problems.extend(exc.lines)
        else:
            print(f"{file}: ok")
    if problems:
        raise Usage("\n".join(problems))


@app.command("schema")
def schema_command() -> None:
    """Print the scenario JSON Schema (for editor autocompletion)."""
    print(json.dumps(scenarios.Scenario.model_json_schema(), indent=2))


def main(argv: list[str] | None = None) -> int:
    command = typer.main.get_command(app)
    try:
        # Without standalone mode click *returns* the code of a typer.Exit instead of raising.
        code = command.main(args=argv, prog_name="twinyard", standalone_mode=False)
    except Usage as exc:
        print(f"twinyard: error: {exc}", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return 130
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.format_message(), file=sys.stderr)  # bare `twinyard`: the help text
            return 2
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        print(f"twinyard: error: {message}", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
