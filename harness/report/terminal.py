"""The verdict table an engineer reads in the terminal, or in a CI log."""

from __future__ import annotations

import os
from typing import IO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.runner import RunOutcome
from harness.slos import STATISTICS

# Not a terminal (a CI log, a pipe) and no COLUMNS: rich would assume 80 columns and cut names
# to ``one_wms_order_per_erp…``. A log has no width, so tables get this much before they fold.
LOG_WIDTH = 200


def console(*, stderr: bool = False, file: IO[str] | None = None) -> Console:
    """A console for the CLI: the terminal's width on a terminal, COLUMNS when it is set,
    else LOG_WIDTH, so that names in a CI log are whole."""
    found = Console(stderr=stderr, file=file)
    if found.is_terminal or os.environ.get("COLUMNS", "").isdigit():
        return found
    return Console(stderr=stderr, file=file, width=LOG_WIDTH)


def render(outcome: RunOutcome, console: Console) -> None:
    for why in outcome.diagnosis:  # why before what
        console.print(f"[bold yellow]why:[/] {why}")
    table = Table(title=f"twinyard verdict: {outcome.scenario.name} (seed {outcome.scenario.seed})")
    table.add_column("oracle", overflow="fold")  # a narrow terminal folds a name, never cuts it
    table.add_column("result")
    table.add_column("checked", justify="right")
    table.add_column("failing", justify="right")
    table.add_column("first evidence", overflow="fold")
    for result in sorted(outcome.results, key=lambda r: r.passed):  # failing oracles first
        first = result.findings[0] if result.findings else None
        table.add_row(
            result.name,
            "[green]pass[/]" if result.passed else "[bold red]FAIL[/]",
            str(result.checked),
            str(len(result.findings)),
            f"{first.entity}: {first.message}" if first else "",
        )
    console.print(table)
    if any(level.samples for level in outcome.service_levels):
        console.print(_service_levels(outcome))
    counts = outcome.counts
    console.print(
        f"{counts.get('released', 0)} orders released, {counts.get('shipped', 0)} shipped, "
        f"{counts.get('delivered', 0)} delivered; {outcome.virtual_s / 3600:.1f} virtual hours "
        f"in {outcome.wall_s:.1f} s wall ({outcome.steps} {outcome.scenario.clock.mode} steps)"
    )
    for note in outcome.notes[:10]:
        console.print(f"[yellow]note:[/] {note}")
    skipped = skipped_line(outcome)
    if skipped:
        console.print(f"[yellow]capsule:[/] {escape(skipped)}", highlight=False, soft_wrap=True)
    verdict = "[bold green]PASS[/]" if outcome.passed else "[bold red]FAIL[/]"
    console.print(f"verdict: {verdict}")


SKIPPED_SHOWN = 3  # unmapped things named in the line; verdict.json lists them all
SKIPPED_CLIP = 80  # characters of each one named


def skipped_line(outcome: RunOutcome) -> str | None:
    """One line for a replay whose recording held things it does not play (``capsule.
    unmapped``), so nobody mistakes a partial replay for the whole incident."""
    capsule = outcome.scenario.capsule
    if capsule is None or not capsule.unmapped:
        return None
    unmapped = capsule.unmapped
    shown = "; ".join(_clip(" ".join(thing.split())) for thing in unmapped[:SKIPPED_SHOWN])
    more = f" (+{len(unmapped) - SKIPPED_SHOWN} more)" if len(unmapped) > SKIPPED_SHOWN else ""
    things = "thing" if len(unmapped) == 1 else "things"
    return (
        f"this replay skips {len(unmapped)} {things} its recording held: {shown}{more}; "
        "see verdict.json (capsule.unmapped)"
    )


def _clip(text: str) -> str:
    return text if len(text) <= SKIPPED_CLIP else text[: SKIPPED_CLIP - 3] + "..."


def _service_levels(outcome: RunOutcome) -> Table:
    table = Table(title="service levels (virtual seconds)")
    table.add_column("measure", overflow="fold")
    table.add_column("n", justify="right")
    for name in STATISTICS:
        table.add_column(name, justify="right")
    table.add_column("threshold")
    table.add_column("result")
    for level in outcome.service_levels:
        stats = level.stats
        limits = ", ".join(f"{k} <= {v:g}" for k, v in level.thresholds.items())
        result = ("[green]pass[/]" if level.passed else "[bold red]FAIL[/]") if limits else ""
        table.add_row(
            level.name,
            str(len(level.samples)),
            *("" if stats[name] is None else f"{stats[name]:g}" for name in STATISTICS),
            limits,
            result,
        )
    return table
