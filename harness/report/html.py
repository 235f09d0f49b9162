"""``report.html``: one self-contained file (inline CSS and SVG, no scripts, no network) to
put in front of a vendor or a cutover board: the verdict, the day over virtual time with the
faults as shaded windows, service levels, and a swimlane for each failing order.
"""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from typing import Any

from harness.oracles.base import MAX_FINDINGS, Finding
from harness.oracles.view import SystemsView
from harness.runner import RunOutcome
from harness.slos import MEASURES, STATISTICS, epoch_seconds, statistic

HOUR = 3600.0
LANES = ("erp", "wms", "tms", "carrier", "stack")
COLOURS = {"erp": "#3b6ea8", "wms": "#4c9a6a", "tms": "#c08a2d", "carrier": "#8a5aa8"}
MAX_SWIMLANES = 8
OPEN_COLOUR = "#d35400"  # orders still open: dashed, so the released line shows through

CSS = """
body{font:14px/1.45 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1d2330;
margin:0;background:#f4f6f9}main{max-width:1100px;margin:0 auto;padding:28px}
h1{font-size:22px;margin:0}h2{font-size:16px;margin:28px 0 10px}.sub{color:#5b6475}
.badge{display:inline-block;padding:3px 12px;border-radius:12px;color:#fff;font-weight:600}
.pass{background:#2e8b57}.fail{background:#c0392b}.card{background:#fff;border-radius:8px;
box-shadow:0 1px 3px rgba(0,0,0,.08);padding:16px 18px;margin-bottom:14px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:5px 8px;
border-bottom:1px solid #e6e9ef;vertical-align:top}th{color:#5b6475;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}.ok{color:#2e8b57}.bad{color:#c0392b;
font-weight:600}.kpis{display:flex;gap:14px}.kpi{flex:1}.kpi b{display:block;font-size:22px}
svg text{font:11px sans-serif;fill:#5b6475}.legend span{margin-right:14px}
"""


def render(outcome: RunOutcome) -> str:
    scenario = outcome.scenario
    verdict = "pass" if outcome.passed else "fail"
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>twinyard: {_e(scenario.name)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{_e(scenario.name)} <span class='badge {verdict}'>{verdict.upper()}</span></h1>",
        f"<p class=sub>{_e(scenario.description)} · seed {scenario.seed} · "
        f"{outcome.virtual_s / HOUR:.1f} virtual hours in {outcome.wall_s:.1f} s wall</p>",
        _kpis(outcome),
        "<h2>Oracles</h2>",
        _oracles(outcome),
        "<h2>The day over virtual time</h2>",
        _day_chart(outcome),
        _latency_chart(outcome),
        _traffic_chart(outcome),
        "<h2>Service levels (virtual seconds)</h2>",
        _service_levels(outcome),
    ]
    lanes = _failing_orders(outcome)
    if lanes:
        parts.append("<h2>Failing orders</h2>")
        parts += [_swimlane(order, finding) for order, finding in lanes]
    if outcome.notes:
        notes = "".join(f"<li>{_e(note)}</li>" for note in outcome.notes)
        parts.append(f"<h2>Notes</h2><div class=card><ul>{notes}</ul></div>")
    parts.append("</main></body></html>")
    return "".join(parts)


def write(outcome: RunOutcome, report_dir: Path) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "report.html"
    path.write_text(render(outcome), encoding="utf-8")
    return path


# -- sections ------------------------------------------------------------------------------
def _kpis(outcome: RunOutcome) -> str:
    counts = outcome.counts
    failing = sum(len(r.findings) for r in outcome.results)
    items = [
        ("orders released", counts.get("released", 0)),
        ("shipped", counts.get("shipped", 0)),
        ("delivered", counts.get("delivered", 0)),
        ("exchanges", counts.get("exchanges", 0)),
        ("faults applied", counts.get("faults_applied", 0)),
        ("failing findings", failing),
    ]
    cells = "".join(f"<div class='card kpi'><b>{v:,}</b>{_e(k)}</div>" for k, v in items)
    return f"<div class=kpis>{cells}</div>"


def _oracles(outcome: RunOutcome) -> str:
    rows = []
    for r in outcome.results:
        first = r.findings[0] if r.findings else None
        result = "<span class=ok>pass</span>" if r.passed else "<span class=bad>FAIL</span>"
        evidence = f"{_e(first.entity)}: {_e(first.message)}" if first else ""
        rows.append(
            f"<tr><td><b>{_e(r.name)}</b><br><span class=sub>{_e(r.protects)}</span></td>"
            f"<td>{result}</td><td class=num>{r.checked}</td><td class=num>{len(r.findings)}</td>"
            f"<td>{evidence}{_all_findings(r.findings)}</td></tr>"
        )
    head = (
        "<tr><th>oracle</th><th>result</th><th>checked</th><th>failing</th>"
        "<th>first evidence</th></tr>"
    )
    return f"<div class=card><table>{head}{''.join(rows)}</table></div>"


def _all_findings(findings: list[Finding]) -> str:
    """Every reported finding of a failing oracle, folded away under the first."""
    if len(findings) < 2:
        return ""
    rows = "".join(
        f"<tr><td><a href='#{_e(f.entity.split(' ', 1)[0])}'>{_e(f.entity)}</a></td>"
        f"<td>{_e(f.message)}</td></tr>"
        for f in findings[:MAX_FINDINGS]
    )
    return f"<details><summary>all {len(findings)}</summary><table>{rows}</table></details>"


def _service_levels(outcome: RunOutcome) -> str:
    rows = []
    for level in outcome.service_levels:
        stats = level.stats
        cells = "".join(
            f"<td class=num>{'' if stats[s] is None else f'{stats[s]:g}'}</td>" for s in STATISTICS
        )
        limits = ", ".join(f"{k} ≤ {v:g}" for k, v in level.thresholds.items())
        result = ""
        if limits:
            result = "<span class=ok>pass</span>" if level.passed else "<span class=bad>FAIL</span>"
        rows.append(
            f"<tr><td>{_e(level.name)}<br><span class=sub>{_e(MEASURES[level.name])}</span></td>"
            f"<td class=num>{len(level.samples)}</td>{cells}<td>{_e(limits)}</td>"
            f"<td>{result}</td></tr>"
        )
    stat_heads = "".join(f"<th>{s}</th>" for s in STATISTICS)
    head = f"<tr><th>measure</th><th>n</th>{stat_heads}<th>threshold</th><th></th></tr>"
    return f"<div class=card><table>{head}{''.join(rows)}</table></div>"


def _day_chart(outcome: RunOutcome) -> str:
    """Orders released, shipped and open per hour of virtual time."""
    view, epoch = SystemsView(outcome.snapshots), _epoch(outcome)
    released = [epoch_seconds(o["released_at"]) - epoch for o in view.released_orders()]
    shipped = [
        epoch_seconds(h["at"]) - epoch
        for fo in view.shipped_fulfilment_orders()
        for h in fo["status_history"]
        if h["status"] == "shipped"
    ]
    hours = max(1, int(max(released + shipped + [0]) // HOUR) + 2)
    rel, shp = _cumulative(released, hours), _cumulative(shipped, hours)
    series = {
        "released": (rel, "#3b6ea8"),
        "shipped": (shp, "#2e8b57"),
        "open": ([r - s for r, s in zip(rel, shp, strict=True)], OPEN_COLOUR),
    }
    return _chart(
        "Orders over virtual time (cumulative released and shipped, open)", series, hours, outcome
    )


LATENCY_COLOURS = {
    "release_latency": "#3b6ea8",
    "confirmation_latency": "#4c9a6a",
    "tracking_latency": "#8a5aa8",
}


def _latency_chart(outcome: RunOutcome) -> str:
    """p95 of each latency per hour of the event it measures (virtual seconds)."""
    epoch = _epoch(outcome)
    per_hour: dict[str, dict[int, list[float]]] = {}
    last = 0
    for level in outcome.service_levels:
        hours: dict[int, list[float]] = {}
        for at, value in zip(level.times, level.samples, strict=True):
            hour = int((at - epoch) // HOUR)
            hours.setdefault(hour, []).append(value)
            last = max(last, hour)
        per_hour[level.name] = hours
    span = last + 2
    series = {
        f"{name} p95": (
            [statistic(sorted(hours.get(h, [])), "p95") or 0.0 for h in range(span)],
            LATENCY_COLOURS[name],
        )
        for name, hours in per_hour.items()
    }
    return _chart("Latency p95 per hour of virtual time (virtual seconds)", series, span, outcome)


def _traffic_chart(outcome: RunOutcome) -> str:
    """Requests to each simulator per hour, and the error answers among them."""
    per: dict[str, Counter[int]] = {s: Counter() for s in COLOURS}
    errors: Counter[int] = Counter()
    last = 0
    for system, entries in outcome.journals.items():
        for e in entries:
            if e["direction"] != "in":
                continue
            hour = int(e["virtual_time"] // HOUR)
            last = max(last, hour)
            per.setdefault(system, Counter())[hour] += 1
            if e["status"] >= 400 or not e["status"]:
                errors[hour] += 1
    hours = last + 2
    series = {
        system: ([float(per[system][h]) for h in range(hours)], COLOURS.get(system, "#888"))
        for system in per
    }
    series["errors"] = ([float(errors[h]) for h in range(hours)], "#c0392b")
    return _chart("Requests per hour to each system, and error answers", series, hours, outcome)


def _chart(
    title: str, series: dict[str, tuple[list[float], str]], hours: int, outcome: RunOutcome
) -> str:
    width, height, left, bottom = 1000, 220, 44, 24
    plot_w, plot_h = width - left - 10, height - bottom - 10
    top = max([max(values, default=0) for values, _ in series.values()] + [1])
    x = lambda h: left + plot_w * h / max(hours - 1, 1)  # noqa: E731
    y = lambda v: 10 + plot_h * (1 - v / top)  # noqa: E731
    shapes = []
    for fault in outcome.scenario.faults:  # faults as shaded windows
        start = fault.at / HOUR
        end = (fault.until if fault.until is not None else hours * HOUR) / HOUR
        shapes.append(
            f"<rect x={x(start):.1f} y=10 width={max(x(end) - x(start), 2):.1f} height={plot_h} "
            f"fill='#c0392b' opacity=.10><title>{_e(fault.system)} {_e(fault.kind)}</title></rect>"
        )
    for values, colour in series.values():
        points = " ".join(f"{x(h):.1f},{y(v):.1f}" for h, v in enumerate(values))
        dash = " stroke-dasharray='5 4'" if colour == OPEN_COLOUR else ""
        shapes.append(
            f"<polyline fill=none stroke='{colour}' stroke-width=2{dash} points='{points}'/>"
        )
    step = max(1, hours // 12)
    ticks = "".join(
        f"<text x={x(h):.1f} y={height - 6} text-anchor=middle>d{h // 24} {h % 24:02d}h</text>"
        for h in range(0, hours, step)
    )
    axis = f"<text x=4 y=16>{top:g}</text><text x=4 y={10 + plot_h}>0</text>"
    legend = "".join(
        f"<span style='color:{colour}'>■ {_e(name)}</span>" for name, (_, colour) in series.items()
    )
    if outcome.scenario.faults:
        legend += "<span style='color:#c0392b;opacity:.5'>■ fault windows</span>"
    svg = f"<svg viewBox='0 0 {width} {height}' width=100%>{''.join(shapes)}{ticks}{axis}</svg>"
    return f"<div class=card><b>{_e(title)}</b><div class=legend>{legend}</div>{svg}</div>"


def _failing_orders(outcome: RunOutcome) -> list[tuple[str, Finding]]:
    """The first failing finding of each order that has a journal slice, in report order."""
    seen: dict[str, Finding] = {}
    for result in outcome.results:
        for finding in result.findings:
            order = finding.entity.split(" ", 1)[0]
            if finding.journal and order not in seen:
                seen[order] = finding
    return list(seen.items())[:MAX_SWIMLANES]


def _swimlane(order: str, finding: Finding) -> str:
    """One lane per system and one for the stack; each exchange a line between the stack and
    the system at its virtual time, red when it failed or was faulted."""
    exchanges = finding.journal
    width, lane_h, left = 1000, 26, 70
    height = lane_h * len(LANES) + 26
    t0 = min(x["virtual_time"] for x in exchanges)
    t1 = max(x["virtual_time"] for x in exchanges)
    span = max(t1 - t0, 1.0)
    x = lambda t: left + (width - left - 20) * (t - t0) / span  # noqa: E731
    lane_y = {lane: 14 + i * lane_h for i, lane in enumerate(LANES)}
    shapes = [
        f"<line x1={left} x2={width - 10} y1={y} y2={y} stroke='#e6e9ef'/>"
        f"<text x=4 y={y + 4}>{lane}</text>"
        for lane, y in lane_y.items()
    ]
    for exchange in exchanges:
        bad = exchange["status"] >= 400 or not exchange["status"] or exchange["fault"]
        colour = "#c0392b" if bad else COLOURS.get(exchange["system"], "#888")
        px = x(exchange["virtual_time"])
        label = (
            f"{_clock(exchange['virtual_time'])} {exchange['system']} {exchange['call']} -> "
            f"{exchange['status']} {exchange['error'] or ''} {exchange['fault'] or ''}"
        )
        shapes.append(
            f"<line x1={px:.1f} x2={px:.1f} y1={lane_y['stack']} y2={lane_y[exchange['system']]} "
            f"stroke='{colour}' stroke-width=1.5><title>{_e(label)}</title></line>"
            f"<circle cx={px:.1f} cy={lane_y[exchange['system']]} r=4 fill='{colour}'>"
            f"<title>{_e(label)}</title></circle>"
        )
    shapes.append(f"<text x={left} y={height - 4}>{_clock(t0)}</text>")
    shapes.append(f"<text x={width - 10} y={height - 4} text-anchor=end>{_clock(t1)}</text>")
    svg = f"<svg viewBox='0 0 {width} {height}' width=100%>{''.join(shapes)}</svg>"
    rows = "".join(
        f"<tr><td>{_clock(x['virtual_time'])}</td><td>{_e(x['system'])}</td><td>{_e(x['call'])}</td>"
        f"<td>{x['status']} {_e(x['error'] or '')}</td><td>{_e(x['fault'] or '')}</td></tr>"
        for x in exchanges
    )
    return (
        f"<div class=card id='{_e(order)}'><b>{_e(order)}</b> "
        f"<span class=sub>{_e(finding.message)}</span>{svg}"
        f"<details><summary>exchanges</summary><table>{rows}</table></details></div>"
    )


# -- helpers ---------------------------------------------------------------------------------
def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _epoch(outcome: RunOutcome) -> float:
    return outcome.scenario.epoch.timestamp()


def _cumulative(times: list[float], hours: int) -> list[float]:
    per_hour = Counter(int(t // HOUR) for t in times)
    total, out = 0, []
    for hour in range(hours):
        total += per_hour[hour]
        out.append(float(total))
    return out


def _clock(seconds: float) -> str:
    day, rest = divmod(int(seconds), 86_400)
    return f"d{day} {rest // 3600:02d}:{rest % 3600 // 60:02d}"
