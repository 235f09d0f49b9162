"""JUnit XML for the contract commands (verify, check, fuzz): suites of cases, each passed,
failed or skipped, so a CI job page shows every interaction or hostile case as a test."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Case:
    classname: str
    name: str
    failure: str | None = None  # the one-line message of a failed case
    text: str = ""  # a failure's details; a passing case's notes (``system-out``)
    skipped: str | None = None  # why it was not run
    seconds: float = 0.0


@dataclass
class Suite:
    name: str
    cases: list[Case] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)
    seconds: float | None = None

    def element(self) -> ET.Element:
        failures = sum(c.failure is not None for c in self.cases)
        skipped = sum(c.skipped is not None for c in self.cases)
        suite = ET.Element("testsuite", name=self.name, tests=str(len(self.cases)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        suite.set("skipped", str(skipped))
        if self.seconds is not None:
            suite.set("time", f"{self.seconds:.3f}")
        if self.properties:
            holder = ET.SubElement(suite, "properties")
            for key, value in self.properties.items():
                ET.SubElement(holder, "property", name=key, value=value)
        for case in self.cases:
            suite.append(_case(case))
        return suite


def _case(case: Case) -> ET.Element:
    element = ET.Element(
        "testcase", classname=case.classname, name=case.name, time=f"{case.seconds:.3f}"
    )
    if case.failure is not None:
        ET.SubElement(element, "failure", message=case.failure).text = case.text or case.failure
    elif case.skipped is not None:
        ET.SubElement(element, "skipped", message=case.skipped)
    elif case.text:
        ET.SubElement(element, "system-out").text = case.text
    return element


def document(name: str, suites: list[Suite]) -> ET.ElementTree:
    root = ET.Element("testsuites", name=name)
    root.set("tests", str(sum(len(s.cases) for s in suites)))
    root.set("failures", str(sum(c.failure is not None for s in suites for c in s.cases)))
    root.extend(suite.element() for suite in suites)
    ET.indent(root)
    return ET.ElementTree(root)


def write(path: Path, name: str, suites: list[Suite]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    document(name, suites).write(path, encoding="utf-8", xml_declaration=True)
    return path
