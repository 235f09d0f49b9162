"""``junit.xml``: one test case per oracle, so a CI job page shows each rule as a test.

A failing oracle is a ``<failure>`` whose message names the failing entities and whose text
holds the evidence (entity, message, expected, actual) of each finding, as in the terminal and
``verdict.json``. Notes that change how a run should be read (a horizon reached, a stack that
stopped answering, faults applied) go to ``<system-out>`` of the suite.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from harness.oracles.base import MAX_FINDINGS, OracleResult
from harness.runner import RunOutcome
from harness.slos import MEASURES, ServiceLevel


def document(outcome: RunOutcome) -> ET.ElementTree:
    scenario = outcome.scenario
    suite_name = f"twinyard.{scenario.name}"
    judged_levels = [level for level in outcome.service_levels if level.thresholds]
    tests = len(outcome.results) + len(judged_levels)
    failures = sum(not r.passed for r in outcome.results) + sum(
        not level.passed for level in judged_levels
    )
    suites = ET.Element("testsuites", name="twinyard", tests=str(tests))
    suites.set("failures", str(failures))
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=suite_name,
        tests=str(tests),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{outcome.wall_s:.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("scenario", scenario.name),
        ("scenario_file", outcome.scenario_path or ""),
        ("seed", str(scenario.seed)),
        ("virtual_seconds", f"{outcome.virtual_s:.0f}"),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    for result in outcome.results:
        suite.append(_case(suite_name, result))
    for level in outcome.service_levels:
        if level.thresholds:
            suite.append(_slo_case(suite_name, level))
    ET.SubElement(suite, "system-out").text = "\n".join(outcome.notes)
    ET.indent(suites)
    return ET.ElementTree(suites)


def _case(suite_name: str, result: OracleResult) -> ET.Element:
    case = ET.Element("testcase", classname=suite_name, name=result.name, time="0")
    if result.passed:
        return case
    entities = [f.entity for f in result.findings[:10]]
    more = len(result.findings) - len(entities)
    message = f"{len(result.findings)} failing: {', '.join(entities)}"
    if more:
        message += f" and {more} more"
    failure = ET.SubElement(case, "failure", message=message, type="OracleFailed")
    lines = [f"protects: {result.protects}", f"checked: {result.checked}", ""]
    for finding in result.findings[:MAX_FINDINGS]:
        lines.append(f"{finding.entity}: {finding.message}")
        if finding.expected is not None or finding.actual is not None:
            lines.append(f"  expected: {finding.expected!r}")
            lines.append(f"  actual:   {finding.actual!r}")
        for exchange in finding.journal:
            answer = f"{exchange['status']} {exchange['error'] or ''}".strip()
            fault = f" [{exchange['fault']}]" if exchange["fault"] else ""
            lines.append(
                f"    t={exchange['virtual_time']:.0f}s {exchange['system']} "
                f"{exchange['call']} -> {answer}{fault}"
            )
    if len(result.findings) > MAX_FINDINGS:
        more = len(result.findings) - MAX_FINDINGS
        lines.append(f"... and {more} more (evidence is kept for the first {MAX_FINDINGS})")
    failure.text = "\n".join(lines)
    return case


def _slo_case(suite_name: str, level: ServiceLevel) -> ET.Element:
    case = ET.Element("testcase", classname=suite_name, name=f"slo:{level.name}", time="0")
    if level.passed:
        return case
    breaches = [f"{k} {v:g} s > {limit:g} s" for k, (v, limit) in level.breaches.items()]
    failure = ET.SubElement(case, "failure", message="; ".join(breaches), type="SloFailed")
    failure.text = f"{level.name} ({MEASURES[level.name]}), {len(level.samples)} samples: " + (
        ", ".join(f"{k} {v:g} s" for k, v in level.stats.items() if v is not None)
    )
    return case


def write(outcome: RunOutcome, report_dir: Path) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "junit.xml"
    document(outcome).write(path, encoding="utf-8", xml_declaration=True)
    return path
