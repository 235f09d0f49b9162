"""A comparison's result: per seed, A's and B's plays and their differences, classified."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from harness.compare.diff import Difference, Noise, classify, differences
from harness.compare.outcome import CATEGORIES
from harness.compare.play import Played
from harness.compare.spec import CompareSpec


@dataclass
class SeedComparison:
    scenario: str  # the scenario file's stem
    seed: int | None
    a: Played
    b: Played
    a2: Played | None  # A played again: what differs A to A is noise
    differences: list[Difference]

    @property
    def error(self) -> str | None:
        """Why this seed could not be compared (a play without an outcome), if so."""
        for played in (self.a, self.b, self.a2):
            if played is not None and not played.usable:
                return f"{played.side.name.upper()}: {played.error}"
        return None

    @property
    def unexplained(self) -> list[Difference]:
        return [d for d in self.differences if d.verdict == "unexplained"]

    @property
    def orders(self) -> list[str]:
        """Every ERP order of the day (the world is the same on both sides)."""
        keys: set[str] = set()
        for played in (self.a, self.b):
            if played.outcome is not None:
                keys |= set(played.outcome["erp_order"])
        return sorted(keys)

    @property
    def differing_orders(self) -> dict[str, list[Difference]]:
        """Orders with an unexplained difference, and those differences."""
        by_order: dict[str, list[Difference]] = {}
        for d in self.unexplained:
            if d.order is not None:
                by_order.setdefault(d.order, []).append(d)
        return dict(sorted(by_order.items()))

    @property
    def passed(self) -> bool:
        return self.error is None and not self.unexplained


@dataclass
class Comparison:
    scenario: str  # the file or library folder given
    a: str
    b: str
    spec: CompareSpec
    seeds: list[SeedComparison]  # one per scenario and seed
    wall_s: float = 0.0

    @property
    def passed(self) -> bool:
        return all(s.passed for s in self.seeds)

    def by_category(self) -> dict[str, Counter[str]]:
        """category -> verdict -> how many differences, over every seed."""
        counted: dict[str, Counter[str]] = {name: Counter() for name in CATEGORIES}
        for seed in self.seeds:
            for d in seed.differences:
                counted[d.category][d.verdict] += 1
        return counted

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "passed": self.passed,
            "scenario": self.scenario,
            "a": self.a,
            "b": self.b,
            "wall_seconds": round(self.wall_s, 3),
            "compare_file": self.spec.model_dump(mode="json"),
            "categories": {
                name: {"describes": CATEGORIES[name], **dict(counts)}
                for name, counts in self.by_category().items()
            },
            "seeds": [_seed_dict(s) for s in self.seeds],
        }


def _seed_dict(seed: SeedComparison) -> dict[str, Any]:
    return {
        "scenario": seed.scenario,
        "seed": seed.seed,
        "passed": seed.passed,
        "error": seed.error,
        "orders": len(seed.orders),
        "orders_differing": list(seed.differing_orders),
        "plays": {
            p.side.name: {
                "target": p.side.target,
                "overrides": list(p.side.overrides),
                "report_dir": str(p.folder),
                "exit_code": p.exit_code,
                "passed": p.passed,
                "failing_oracles": p.failing_oracles,
                "wall_seconds": round(p.wall_s, 3),
            }
            for p in (seed.a, seed.b, seed.a2)
            if p is not None
        },
        "differences": [d.to_dict() for d in seed.differences],
    }


def compare_seed(a: Played, b: Played, a2: Played | None, spec: CompareSpec) -> SeedComparison:
    """A's and B's outcomes compared; with ``a2``, A's own differences are the noise."""
    if a.outcome is None or b.outcome is None or (a2 is not None and a2.outcome is None):
        return SeedComparison(a.scenario.stem, a.seed, a, b, a2, [])
    noise = Noise()
    if a2 is not None and a2.outcome is not None:
        noise = Noise.learnt(a.outcome, a2.outcome, spec)
    found = classify(differences(a.outcome, b.outcome, spec), spec, noise)
    return SeedComparison(a.scenario.stem, a.seed, a, b, a2, found)
