"""What ``twinyard compare`` writes: a terminal summary, ``compare.json`` and ``junit.xml``
(one case per category, failed when it holds an unexplained difference). The HTML report is
``harness.compare.html``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from harness.compare.diff import Difference
from harness.compare.outcome import CATEGORIES
from harness.compare.play import seed_folder
from harness.compare.result import Comparison, SeedComparison
from harness.report.junit_xml import Case, Suite
from harness.report.junit_xml import write as write_junit

SHOWN = 20  # unexplained differences printed per seed; compare.json holds them all


def render(comparison: Comparison, console: Console) -> None:
    console.print(f"compare {comparison.scenario}")
    console.print(f"  A: {comparison.a}")
    console.print(f"  B: {comparison.b}")
    for seed in comparison.seeds:
        name = "its own seed" if seed.seed is None else f"seed {seed.seed}"
        name = f"{seed.scenario}, {name}"
        if seed.error:
            console.print(f"[red]{name}: not compared[/red]: {seed.error}")
            continue
        orders, differing = len(seed.orders), len(seed.differing_orders)
        verdicts = {v: sum(d.verdict == v for d in seed.differences) for v in _VERDICTS}
        console.print(
            f"{name}: {orders - differing} of {orders} orders identical, {differing} differing; "
            f"differences: {verdicts['unexplained']} unexplained, {verdicts['expected']} "
            f"expected, {verdicts['noise']} noise"
            + _oracles_line(seed.a.failing_oracles, seed.b.failing_oracles),
            soft_wrap=True,
        )
        for d in seed.unexplained[:SHOWN]:
            console.print(f"  {describe(d)}", markup=False, highlight=False, soft_wrap=True)
        if len(seed.unexplained) > SHOWN:
            console.print(f"  ... and {len(seed.unexplained) - SHOWN} more (compare.json)")
    console.print(_category_table(comparison))
    differing = [_unit(s) for s in comparison.seeds if not s.passed]
    if len(comparison.seeds) > 1:
        console.print(
            f"differing: {', '.join(differing)}" if differing else "no scenario or seed differs"
        )
    verdict = "SAME" if comparison.passed else "DIFFERENT"
    colour = "green" if comparison.passed else "red"
    console.print(f"verdict: [bold {colour}]{verdict}[/bold {colour}]")


_VERDICTS = ("unexplained", "expected", "noise")


def _unit(seed: SeedComparison) -> str:
    return seed.scenario if seed.seed is None else f"{seed.scenario} seed {seed.seed}"


def describe(d: Difference) -> str:
    if d.field == "present":
        side = "A" if d.a else "B"
        return f"{d.category} {d.key}: only in {side}"
    return f"{d.category} {d.key} {d.field}: A {_short(d.a)} | B {_short(d.b)}"


def _short(value: Any, limit: int = 120) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _oracles_line(a: list[str], b: list[str]) -> str:
    if a == b:
        return "" if not a else f"; both fail {', '.join(a)}"
    return f"; oracles failing: A {', '.join(a) or 'none'}, B {', '.join(b) or 'none'}"


def _category_table(comparison: Comparison) -> Table:
    table = Table(title="differences by category")
    table.add_column("category")
    for verdict in _VERDICTS:
        table.add_column(verdict, justify="right")
    for name, counts in comparison.by_category().items():
        if sum(counts.values()):
            table.add_row(name, *(str(counts[v]) for v in _VERDICTS))
    if not table.rows:
        table.add_row("(none)", "0", "0", "0")
    return table


def write_json(comparison: Comparison, report_dir: Path) -> Path:
    path = report_dir / "compare.json"
    path.write_bytes(orjson.dumps(comparison.to_dict(), option=orjson.OPT_INDENT_2))
    return path


def write_junit_file(comparison: Comparison, report_dir: Path) -> Path:
    """One case per category: failed when any seed has an unexplained difference in it, with
    the differences (first ``SHOWN``) as its text; a category a seed could not compare fails
    every case of that seed's suite."""
    suites = []
    for seed in comparison.seeds:
        name = f"twinyard.compare.{seed.scenario}.{seed_folder(seed.seed)}"
        suite = Suite(name, properties={"a": comparison.a, "b": comparison.b})
        for category, describes in CATEGORIES.items():
            if seed.error:
                suite.cases.append(Case(name, category, failure=f"not compared: {seed.error}"))
                continue
            found = [d for d in seed.unexplained if d.category == category]
            if found:
                text = "\n".join(describe(d) for d in found[:SHOWN])
                failure = f"{len(found)} unexplained difference(s) in {describes}"
                suite.cases.append(Case(name, category, failure=failure, text=text))
            else:
                suite.cases.append(Case(name, category))
        suites.append(suite)
    return write_junit(report_dir / "junit.xml", "twinyard.compare", suites)
