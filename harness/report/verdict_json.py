"""``verdict.json``: the run's outcome for machines.

Documented in docs/verdict.md; docs/verdict.schema.json is its JSON Schema, and a test
validates real output against it. Adding a field keeps ``schema_version``; renaming or
removing one bumps it."""

from __future__ import annotations

import platform
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson

from harness.runner import RunOutcome

SCHEMA_VERSION = 1


def verdict(outcome: RunOutcome) -> dict[str, Any]:
    scenario = outcome.scenario
    return {
        "schema_version": SCHEMA_VERSION,
        "passed": outcome.passed,
        "diagnosis": outcome.diagnosis,
        "run": {
            "started_at": outcome.started_at,
            "stack": outcome.stack,
            "scenario_digest": outcome.scenario_digest,
            "outcome_digest": outcome.outcome_digest or None,
        },
        "scenario": {"name": scenario.name, "file": outcome.scenario_path, "seed": scenario.seed},
        "oracles": [r.to_dict() for r in outcome.results],
        "service_levels": [level.to_dict() for level in outcome.service_levels],
        "counts": dict(sorted(outcome.counts.items())),
        "faults_applied": outcome.faults_applied,
        "timing": {
            "wall_seconds": round(outcome.wall_s, 3),
            "virtual_seconds": round(outcome.virtual_s, 3),
            "lockstep_steps": outcome.steps,
            "ready_seconds": round(outcome.ready_s, 3),
        },
        "notes": outcome.notes,
        "versions": {"twinyard": version("twinyard"), "python": platform.python_version()},
        "capsule": capsule(outcome),
    }


def capsule(outcome: RunOutcome) -> dict[str, Any] | None:
    """Where a scripted day came from and what of its recording it does not replay (null for
    a day not imported): a replay that skips things must say so in every verdict."""
    found = outcome.scenario.capsule
    if found is None:
        return None
    return {"source": found.source, "unmapped": list(found.unmapped)}


def write(outcome: RunOutcome, report_dir: Path) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "verdict.json"
    path.write_bytes(orjson.dumps(verdict(outcome), option=orjson.OPT_INDENT_2))
    return path
