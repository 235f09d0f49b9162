"""The oracle frame: a small, named business rule judged from simulator state and journals.

Oracles never look inside the stack. Each says what it protects in business words and, on
failure, which entities broke it with the expected and actual figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.oracles.view import SystemsView

MAX_FINDINGS = 50  # per oracle in reports; the count is always complete


@dataclass(frozen=True)
class Finding:
    entity: str
    message: str
    expected: Any = None
    actual: Any = None
    journal: tuple[dict[str, Any], ...] = ()  # the exchanges about the entity (evidence.py)

    def to_dict(self) -> dict[str, Any]:
        found = {
            "entity": self.entity,
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
        }
        if self.journal:
            found["journal"] = list(self.journal)
        return found


@dataclass
class Judgement:
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)

    def fail(self, entity: str, message: str, expected: Any = None, actual: Any = None) -> None:
        self.findings.append(Finding(entity, message, expected, actual))


@dataclass(frozen=True)
class OracleResult:
    name: str
    protects: str
    checked: int
    findings: list[Finding]

    @property
    def passed(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "protects": self.protects,
            "passed": self.passed,
            "checked": self.checked,
            "failures": len(self.findings),
            "findings": [f.to_dict() for f in self.findings[:MAX_FINDINGS]],
        }


Rule = Callable[[SystemsView], Judgement]


@dataclass(frozen=True)
class Oracle:
    name: str
    protects: str
    rule: Rule
    needs_journals: bool = False  # judges from journals: an in-process day (no journals) passes it

    def judge(self, view: SystemsView) -> OracleResult:
        judgement = self.rule(view)
        return OracleResult(self.name, self.protects, judgement.checked, judgement.findings)


REGISTRY: dict[str, Oracle] = {}


def oracle(name: str, protects: str, *, needs_journals: bool = False) -> Callable[[Rule], Rule]:
    def register(rule: Rule) -> Rule:
        REGISTRY[name] = Oracle(name, protects, rule, needs_journals)
        return rule

    return register
