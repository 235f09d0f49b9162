"""What a load run leaves behind: the reports of ``twinyard run`` (verdict.json, junit.xml,
report.html, journal.jsonl, state.json), with the load in them, and ``load.json``.

``report.html`` gains a Load section before the oracles: the plan, each flow as Locust saw it
(wall milliseconds) and as the scenario judges it (virtual seconds), and the backlog of each
flow over the day on the page's one time axis, so a backlog that grows through the peak and
never drains is seen at the hour it started. Locust's own CSV and HTML sit beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from harness.load.flows import FLOWS, ROW
from harness.load.session import LoadOutcome
from harness.report import html, html_charts, junit, run_files, terminal, verdict_json
from harness.report.html_svg import esc
from harness.slos import STATISTICS

LOAD_JSON = "load.json"
BACKLOG_COLOURS = {
    "release_latency": "#3b6ea8",
    "label_latency": "#c08a2d",
    "confirmation_latency": "#4c9a6a",
    "tracking_latency": "#8a5aa8",
    "accrual_latency": "#7f8c8d",
}
ANCHOR = "<h2>Oracles</h2>"


def write(outcome: LoadOutcome, report_dir: Path) -> Path:
    """Every report; returns verdict.json's path."""
    written = verdict_json.write(outcome.run, report_dir)
    junit.write(outcome.run, report_dir)
    run_files.write(outcome.run, report_dir)
    page = html.write(outcome.run, report_dir)
    text = page.read_text()
    page.write_text(text.replace(ANCHOR, section(outcome) + ANCHOR, 1))
    (report_dir / LOAD_JSON).write_bytes(orjson.dumps(facts(outcome), option=orjson.OPT_INDENT_2))
    return written


def facts(outcome: LoadOutcome) -> dict[str, Any]:
    """``load.json``: the plan, the flows, what Locust was told, the backlog, Locust's files."""
    curve = outcome.plan.curve
    return {
        "passed": outcome.passed,
        "plan": {
            "orders_per_day": curve.orders,
            "rate_multiplier": curve.multiplier,
            "factor": curve.factor,
            "window": [curve.open_s, curve.close_s],
            "peak_orders_per_virtual_hour": round(curve.peak_per_hour(), 3),
            "peak_orders_per_wall_second": round(curve.peak_per_hour() * curve.factor / 3600, 3),
            "orders_per_user_per_second": curve.per_user,
        },
        "orders_released": outcome.orders_sent,
        "flows": list(outcome.flows.values()),
        "judgement": outcome.judgement,
        "backlog": [{"virtual_time": t, **open_now} for t, open_now in outcome.backlog],
        "locust": {
            "exit_code": outcome.locust_exit,
            "log": str(outcome.locust_log),
            "csv": None if outcome.csv is None else str(outcome.csv),
            "html": None if outcome.html is None else str(outcome.html),
        },
    }


def section(outcome: LoadOutcome) -> str:
    """The Load card and the backlog chart of report.html."""
    curve = outcome.plan.curve
    levels = {level.name: level for level in outcome.run.service_levels}
    rows = []
    for measure, flow in outcome.flows.items():
        level = levels.get(measure)
        virtual = level.stats if level is not None else {}
        thresholds = level.thresholds if level is not None else {}
        limits = ", ".join(f"{k} &le; {v:g}" for k, v in thresholds.items())
        missed = level is not None and not level.passed
        never = flow["never"]
        cells = "".join(
            f"<td class=num>{_ms(flow[f'{name}_ms'])}</td>" for name in ("p50", "p95", "max")
        )
        rows.append(
            f"<tr><td>{esc(flow['row'])}<br><span class=sub>{esc(measure)}</span></td>"
            f"<td class=num>{flow['completed']}</td>"
            f"<td class='num{' bad' if never else ''}'>{never}</td>{cells}"
            f"<td class=num>{_seconds(virtual.get('p95'))}</td>"
            f"<td class={'bad' if missed else 'ok'}>{limits}</td></tr>"
        )
    head = (
        "<tr><th>flow</th><th>completed</th><th>never</th><th>p50 ms</th><th>p95 ms</th>"
        "<th>max ms</th><th>p95 virtual s</th><th>threshold (virtual s)</th></tr>"
    )
    locust = (
        "Locust exited 0"
        if outcome.locust_exit == 0
        else f"<span class=bad>Locust exit code {outcome.locust_exit}</span>"
    )
    intro = (
        f"{outcome.orders_sent} orders released by Locust at {curve.multiplier:g}x the "
        f"scenario's rate (peak {curve.peak_per_hour():,.0f} orders per virtual hour, "
        f"{curve.peak_per_hour() * curve.factor / 3600:,.1f} per wall second), virtual time "
        f"at {curve.factor:g}x wall. Flow times are wall milliseconds (what the stack took, "
        f"as Locust shows them); thresholds are virtual seconds (x {curve.factor:g}). {locust}."
    )
    table = f"<div class=card><p class=sub>{intro}</p><table>{head}{''.join(rows)}</table></div>"
    return f"<h2>Load</h2>{table}{backlog_chart(outcome)}"


def backlog_chart(outcome: LoadOutcome) -> str:
    """Open flows per stage over the day: what the stack still owes each next system."""
    if not outcome.backlog:
        return ""
    axis = html_charts.day_axis(outcome.run)
    series = []
    for measure, flow in FLOWS.items():
        points = [(t, float(open_now.get(measure, 0))) for t, open_now in outcome.backlog]
        series.append(html_charts.Series(flow, BACKLOG_COLOURS[measure], [_steps(points)]))
    return html_charts.chart(
        "backlog",
        "Backlog per stage: flows started and not yet completed",
        series,
        axis,
        outcome.run.scenario.faults,
        "A backlog that keeps growing through the peak and does not drain after it is a "
        "stack that cannot keep up at this rate.",
    )


def _steps(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    stepped: list[tuple[float, float]] = []
    for t, value in points:
        if stepped:
            stepped.append((t, stepped[-1][1]))
        stepped.append((t, value))
    return stepped


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}"


def render(outcome: LoadOutcome, console: Console) -> None:
    """The verdict as ``twinyard run`` prints it, then the flows as Locust saw them."""
    terminal.render(outcome.run, console)
    table = Table(title="business flows (wall milliseconds, as in Locust's statistics)")
    table.add_column("flow", overflow="fold")
    table.add_column("completed", justify="right")
    table.add_column("never", justify="right")
    for name in STATISTICS:
        table.add_column(f"{name} ms", justify="right")
    for flow in outcome.flows.values():
        never = flow["never"]
        table.add_row(
            flow["row"],
            str(flow["completed"]),
            f"[bold red]{never}[/]" if never else "0",
            *(_ms(flow[f"{name}_ms"]) for name in STATISTICS),
        )
    console.print(table)
    for line in outcome.judgement.get("breaches", []):
        console.print(f"[bold red]missed:[/] {line}", highlight=False)
    code = outcome.locust_exit
    said = "0" if code == 0 else f"[bold red]{code if code is not None else 'stopped'}[/]"
    console.print(f"locust: exit code {said}; its output: {outcome.locust_log}")
    if outcome.csv is not None:
        console.print(f"locust: {outcome.csv}_stats.csv", highlight=False)
    if outcome.html is not None:
        console.print(f"locust: {outcome.html}", highlight=False)


# -- --find-knee -----------------------------------------------------------------------------
KNEE_JSON = "knee.json"


def write_knee(knee: Any, report_dir: Path) -> Path:
    """``knee.json`` and ``report.html`` of a knee search; returns knee.json's path."""
    from harness.load.knee import facts as knee_facts
    from harness.report import html_knee

    found = knee_facts(knee)
    path = report_dir / KNEE_JSON
    path.write_bytes(orjson.dumps(found, option=orjson.OPT_INDENT_2))
    html_knee.write(found, report_dir)
    return path


def render_step(step: Any, console: Console) -> None:
    """One line per step as the search goes."""
    said = (
        "[green]pass[/]"
        if step.passed
        else "[bold red]broke[/]: "
        + ", ".join(f"{ROW}{FLOWS[f.measure]} ({'; '.join(f.breaches)})" for f in step.broken)
    )
    console.print(
        f"knee: step x{step.multiplier:g}: {step.orders} orders, "
        f"{step.peak_per_hour * step.factor / 3600:,.1f} per wall s at the peak: {said} "
        f"(load average {step.load_average[0]:.2f}, {step.wall_s:.0f} s)",
        highlight=False,
    )


def render_knee(knee: Any, console: Console) -> None:
    """The table of rate -> each flow's p95 and largest backlog, then the knee in words."""
    from harness.load.knee import facts as knee_facts

    found = knee_facts(knee)
    measures = [m for m in FLOWS if any(m in s.flows for s in knee.steps)]
    table = Table(title="knee: rate -> each flow's p95 (virtual s) / largest backlog")
    table.add_column("rate", justify="right")
    table.add_column("orders/h virtual", justify="right")
    table.add_column("orders/s wall", justify="right")
    for m in measures:
        table.add_column(FLOWS[m], justify="right", overflow="fold")
    table.add_column("verdict")
    table.add_column("load avg", justify="right")
    for step in sorted(knee.steps, key=lambda s: s.multiplier):
        cells = []
        for m in measures:
            flow = step.flows.get(m)
            if flow is None:
                cells.append("-")
                continue
            text = f"{_seconds(flow.p95_s)} / {flow.max_backlog}"
            cells.append(text if flow.passed else f"[bold red]{text}[/]")
        table.add_row(
            f"x{step.multiplier:g}",
            f"{step.peak_per_hour:,.0f}",
            f"{step.peak_per_hour * step.factor / 3600:,.1f}",
            *cells,
            "pass" if step.passed else "[bold red]broke[/]",
            f"{step.load_average[0]:.2f}",
        )
    console.print(table)
    good, first = found["sustainable"], found["first_broken"]
    if good is None:
        console.print("[bold red]knee: no rate tried was sustained[/]", highlight=False)
    else:
        bound = "" if found["found"] else " (a lower bound: every rate tried passed)"
        console.print(
            f"knee: sustainable x{good['rate_multiplier']:g}{bound}: "
            f"{good['peak_orders_per_virtual_hour']:,.0f} orders per virtual hour at the peak, "
            f"{good['peak_orders_per_wall_second']:,.1f} per wall second "
            f"({good['orders_per_day']:,} orders a day)",
            highlight=False,
        )
    if first is not None:
        also = f"; then {', '.join(first['also_broken'])}" if first["also_broken"] else ""
        console.print(
            f"knee: first to break at x{first['rate_multiplier']:g}: [bold red]{first['flow']}[/] "
            f"({'; '.join(first['why'])}){also}",
            highlight=False,
        )
    console.print(
        f"knee: stopped: {found['stopped']}; {len(knee.steps)} steps in {knee.wall_s:.0f} s"
    )


__all__ = ["facts", "render", "render_knee", "render_step", "section", "write", "write_knee"]
