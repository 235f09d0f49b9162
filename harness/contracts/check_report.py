"""Showing a pact check: a terminal table of what breaks and a JUnit file for CI job pages.

The table lists only interactions with something to say, breaking problems first, then
warnings; skipped interactions follow on a line per reason. The JUnit file has one test case
per interaction, so a CI page shows each consumer expectation as a test: broken ones fail with
every problem in their text, messages are skipped, warnings go to the case's ``system-out``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.contracts.pact_check import CheckResult, InteractionResult


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


def document(result: CheckResult) -> ET.ElementTree:
    suites = ET.Element("testsuites", name="twinyard.contracts", tests=str(len(result.results)))
    suites.set("failures", str(result.count("broken")))
    for pact in result.pacts:
        cases = [r for r in result.results if r.pact == pact.source]
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"contracts.{pact.consumer}.{pact.provider}",
            tests=str(len(cases)),
            failures=str(sum(r.outcome == "broken" for r in cases)),
            errors="0",
            skipped=str(sum(r.outcome == "skipped" for r in cases)),
        )
        ET.SubElement(
            ET.SubElement(suite, "properties"), "property", name="pact", value=pact.source
        )
        for item in cases:
            suite.append(_case(suite.get("name", ""), item))
    ET.indent(suites)
    return ET.ElementTree(suites)


def _case(suite_name: str, item: InteractionResult) -> ET.Element:
    case = ET.Element("testcase", classname=suite_name, name=item.description, time="0")
    lines = [
        f"{'BREAKING' if p.breaking else 'warning'}: {p.where}: {p.message}" for p in item.problems
    ]
    if item.skipped is not None:
        ET.SubElement(case, "skipped", message=item.skipped)
    elif item.breaking:
        first = item.breaking[0]
        message = f"{item.operation}: {first.where}: {first.message}"
        if len(item.breaking) > 1:
            message += f" and {len(item.breaking) - 1} more"
        failure = ET.SubElement(case, "failure", message=message, type="ContractBroken")
        failure.text = "\n".join(lines)
    elif lines:
        ET.SubElement(case, "system-out").text = "\n".join(lines)
    return case


def write_junit(result: CheckResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    document(result).write(path, encoding="utf-8", xml_declaration=True)
    return path
