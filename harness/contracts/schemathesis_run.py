"""Schemathesis' engine run on a configured schema: cases and failures per phase, and one
finding per distinct failure. ``twinyard contracts fuzz`` runs it on a stack's webhook
receiver; ``tests/test_conformance_phases.py`` on every simulator against its own spec.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from schemathesis.engine import events, from_schema

PHASES = ("examples", "coverage", "fuzzing", "stateful")
# What a receiver owes any request: no crash, and an answer its contract documents.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
EXCERPT = 200  # characters of a body kept in a finding


@dataclass(frozen=True)
class Finding:
    source: str  # "generated" or "hostile"
    case: str  # "fuzzing: POST /webhooks/{system}", "erp: unsigned"
    problem: str  # what was wrong with the answer
    request: str  # enough to send it again (a curl command for generated cases)
    status: int | None  # None: no answer
    body: str  # the start of the answer's body, or the transport error


@dataclass
class PhaseTally:
    phase: str
    cases: int = 0
    failures: int = 0  # cases with at least one failed check
    seconds: float = 0.0


@dataclass
class EngineRun:
    phases: dict[str, PhaseTally] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return sum(t.cases for t in self.phases.values())


def run_engine(schema: Any) -> EngineRun:
    """Run Schemathesis' engine on a configured schema; count cases and failures per phase and
    keep one finding per distinct failure (phase, operation, check, title)."""
    result = EngineRun()
    started: dict[str, float] = {}
    seen: set[tuple[str, str]] = set()
    for event in from_schema(schema).execute():
        if isinstance(event, events.PhaseStarted):
            started[str(event.phase.name)] = time.perf_counter()
        elif isinstance(event, events.PhaseFinished):
            name = str(event.phase.name)
            if name in PHASES and event.phase.is_enabled:
                tally = result.phases.setdefault(name, PhaseTally(name))
                tally.seconds += time.perf_counter() - started.get(name, time.perf_counter())
        elif isinstance(event, events.ScenarioFinished):
            tally = result.phases.setdefault(str(event.phase), PhaseTally(str(event.phase)))
            tally.cases += len(event.recorder.cases)
            for finding in _failures(str(event.phase), event.recorder):
                tally.failures += 1
                key = (finding.case, finding.problem)
                if key not in seen:
                    seen.add(key)
                    result.findings.append(finding)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            label = getattr(event, "label", "engine")
            phase = getattr(event, "phase", None)
            message = first_line(str(getattr(event, "value", None) or event.info))
            result.findings.append(
                Finding("generated", f"{phase or 'engine'}: {label}", message, "", None, "")
            )
    return result


def _failures(phase: str, recorder: Any) -> Iterator[Finding]:
    """One finding per case with a failed check (its first failure)."""
    for case_id, checks in recorder.checks.items():
        failed = [c for c in checks if c.failure_info is not None]
        if not failed:
            continue
        info = failed[0].failure_info
        interaction = recorder.interactions.get(case_id)
        response = interaction.response if interaction is not None else None
        yield Finding(
            "generated",
            f"{phase}: {recorder.label}",
            f"{failed[0].name}: {info.failure.title}",
            info.code_sample,
            response.status_code if response is not None else None,
            excerpt(response.content) if response is not None else "",
        )


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def excerpt(body: bytes | str) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text[:EXCERPT] + ("..." if len(text) > EXCERPT else "")
