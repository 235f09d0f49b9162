"""Showing a pact check: a terminal table of what breaks and a JUnit file for CI job pages.

The table lists only interactions with something to say, breaking problems first, then
warnings; skipped interactions follow on a line per reason. The JUnit file has one test case
per interaction, so a CI page shows each consumer expectation as a test: broken ones fail with
every problem in their text, messages are skipped, warnings go to the case's ``system-out``.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.contracts.pact_check import CheckResult, InteractionResult
from harness.report import junit_xml


def render(result: CheckResult, console: Console, title: str) -> None:
    table = Table(title=title, title_justify="left")
    for name in ("", "interaction", "operation", "where", "problem"):
        table.add_column(name)
    for item in sorted(result.results, key=lambda r: r.outcome != "broken"):
        problems = sorted(item.problems, key=lambda p: not p.breaking)
        for i, problem in enumerate(problems):
            mark = "[bold red]BREAKING[/]" if problem.breaking else "[yellow]warning[/]"
            named = (item.description, item.operation) if i == 0 else ("", "")
            last = i == len(problems) - 1
            table.add_row(mark, *named, problem.where, problem.message, end_section=last)
    if table.row_count:
        console.print(table)
    else:
        console.print(title, highlight=False)
    skipped = [r for r in result.results if r.skipped is not None]
    for reason in dict.fromkeys(r.skipped for r in skipped):
        names = "; ".join(r.description for r in skipped if r.skipped == reason)
        console.print(f"[dim]skipped, {reason}: {names}[/]", highlight=False)
    console.print(result.summary(), highlight=False)


def suites(result: CheckResult) -> list[junit_xml.Suite]:
    """A suite per pact, a case per interaction: broken ones fail with every problem in their
    text, messages are skipped, warnings go to the case's ``system-out``."""
    found = []
    for pact in result.pacts:
        name = f"contracts.{pact.consumer}.{pact.provider}"
        cases = [_case(name, r) for r in result.results if r.pact == pact.source]
        found.append(junit_xml.Suite(name, cases, {"pact": pact.source}))
    return found


def _case(suite_name: str, item: InteractionResult) -> junit_xml.Case:
    lines = [
        f"{'BREAKING' if p.breaking else 'warning'}: {p.where}: {p.message}" for p in item.problems
    ]
    failure = None
    if item.skipped is None and item.breaking:
        first = item.breaking[0]
        failure = f"{item.operation}: {first.where}: {first.message}"
        if len(item.breaking) > 1:
            failure += f" and {len(item.breaking) - 1} more"
    return junit_xml.Case(
        suite_name, item.description, failure, "\n".join(lines), skipped=item.skipped
    )


def write_junit(result: CheckResult, path: Path) -> Path:
    return junit_xml.write(path, "twinyard.contracts", suites(result))
