"""``report.html`` of ``twinyard load --find-knee``: the knee, the steps, and two charts over the
rate (each flow's p95 against its threshold, on a log scale, and its largest backlog), with the
knee and the first failing rate marked, so the flow that bent first is seen where it bent.

Takes ``knee.json``'s facts (``harness.load.knee.facts``), so the page and the file agree.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.report.html import CSS
from harness.report.html_svg import FAIL_COLOUR, LEFT, PASS_COLOUR, RIGHT, WIDTH, esc, nice_top

HEIGHT, TOP, BOTTOM = 230.0, 14.0, 190.0
COLOURS = {
    "release_latency": "#3b6ea8",
    "label_latency": "#c08a2d",
    "confirmation_latency": "#4c9a6a",
    "tracking_latency": "#8a5aa8",
    "accrual_latency": "#7f8c8d",
}


def write(facts: dict[str, Any], report_dir: Path) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "report.html"
    path.write_text(render(facts), encoding="utf-8")
    return path


def render(facts: dict[str, Any]) -> str:
    found = facts["sustainable"] is not None
    badge = "pass" if found else "fail"
    said = "knee found" if facts["found"] else ("lower bound" if found else "no rate sustained")
    return "".join(
        [
            "<!doctype html><html lang=en><head><meta charset=utf-8>",
            f"<title>twinyard knee: {esc(facts['scenario'])}</title>",
            f"<style>{CSS}</style></head><body><main>",
            f"<h1>Knee of {esc(facts['scenario'])} <span class='badge {badge}'>{said}</span></h1>",
            f"<div class=card>{summary(facts)}</div>",
            "<h2>Flows against the rate</h2>",
            p95_chart(facts),
            backlog_chart(facts),
            "<h2>Steps</h2>",
            steps_table(facts),
            f"<div class=card><p class=sub>{rule(facts)}</p></div>",
            "</main></body></html>",
        ]
    )


def summary(facts: dict[str, Any]) -> str:
    good, first = facts["sustainable"], facts["first_broken"]
    if good is None:
        text = "<p class=bad>No rate tried was sustained.</p>"
    else:
        text = (
            f"<p><b>Sustainable: x{good['rate_multiplier']:g}</b> the scenario's rate: "
            f"{good['peak_orders_per_virtual_hour']:,.0f} orders per virtual hour at the peak "
            f"({good['peak_orders_per_wall_second']:,.1f} per wall second), "
            f"{good['orders_per_day']:,} orders a day.</p>"
        )
    if first is not None:
        also = ", ".join(first["also_broken"])
        text += (
            f"<p>First to break, at x{first['rate_multiplier']:g}: "
            f"<b class=bad>{esc(first['flow'])}</b> ({esc('; '.join(first['why']))})"
            + (f"; then {esc(also)}" if also else "")
            + ".</p>"
        )
    elif good is not None:
        text += "<p class=sub>Every rate tried passed: the knee is above the highest.</p>"
    return text + f"<p class=sub>Stopped: {esc(facts['stopped'])}.</p>"


def steps_table(facts: dict[str, Any]) -> str:
    measures = _measures(facts)
    head = "<tr><th>rate</th><th>orders/h (virtual)</th><th>orders/s (wall)</th>"
    head += "".join(f"<th>{esc(m)}<br>p95 s / max backlog</th>" for m in measures)
    head += "<th>verdict</th><th>load avg</th></tr>"
    rows = []
    for step in sorted(facts["steps"], key=lambda s: s["rate_multiplier"]):
        cells = []
        for m in measures:
            flow = step["flows"].get(m)
            if flow is None:
                cells.append("<td class=sub>not reached</td>")
                continue
            p95 = "" if flow["p95_s"] is None else f"{flow['p95_s']:,.1f}"
            cls = "num" if flow["passed"] else "num bad"
            cells.append(f"<td class='{cls}'>{p95} / {flow['max_backlog']}</td>")
        verdict = "pass" if step["passed"] else "broke: " + ", ".join(step["broken"])
        rows.append(
            f"<tr><td class=num>x{step['rate_multiplier']:g}</td>"
            f"<td class=num>{step['peak_orders_per_virtual_hour']:,.0f}</td>"
            f"<td class=num>{step['peak_orders_per_wall_second']:,.1f}</td>{''.join(cells)}"
            f"<td class={'ok' if step['passed'] else 'bad'}>{esc(verdict)}</td>"
            f"<td class=num>{step['load_average'][0]:.1f}</td></tr>"
        )
    return f"<div class=card><table>{head}{''.join(rows)}</table></div>"


def rule(facts: dict[str, Any]) -> str:
    r = facts["rule"]
    limits = ", ".join(
        f"{m} {', '.join(f'{k} {v:g} s' for k, v in t.items())} ({r['threshold_from'][m]})"
        for m, t in r["thresholds_virtual_s"].items()
    )
    return esc(
        f"Each step: {r['step_wall_s']:g} wall s of load at the day's busiest stretch, then "
        f"{r['drain_wall_s']:g} s with no new orders, on a fresh stack; virtual time at "
        f"{r['factor']:g}x wall. A step fails when a flow misses its threshold (flows still "
        f"open at its end count with their age) or its backlog grows without bound (the "
        f"window's last third above {r['backlog_growth']:g}x its first third and above "
        f"{r['min_backlog']} open). Thresholds (virtual seconds): {limits}."
    )


# -- charts over the rate --------------------------------------------------------------------
def p95_chart(facts: dict[str, Any]) -> str:
    values = [
        f["p95_s"]
        for s in facts["steps"]
        for f in s["flows"].values()
        if f["p95_s"] is not None and f["p95_s"] > 0
    ]
    limits = {m: t.get("p95") for m, t in facts["rule"]["thresholds_virtual_s"].items()}
    values += [v for m, v in limits.items() if v and m in _measures(facts)]
    if not values:
        return ""
    low = 10 ** math.floor(math.log10(min(values)))
    high = 10 ** math.ceil(math.log10(max(values)))
    high = max(high, low * 10)

    def y(v: float) -> float:
        v = min(max(v, low), high)
        return BOTTOM - (BOTTOM - TOP) * math.log10(v / low) / math.log10(high / low)

    grid = []
    decade = low
    while decade <= high * 1.0001:
        grid.append(_gridline(y(decade), f"{decade:g}"))
        decade *= 10
    lines = []
    for m in _measures(facts):
        points = _points(facts, m, "p95_s")
        if limits.get(m):
            lines.append(_hline(y(limits[m]), COLOURS[m], f"{m} p95 threshold"))
        lines.append(_line(points, y, facts, COLOURS[m], m))
    return _chart(
        "knee-p95",
        "Each flow's p95 (virtual seconds, log scale) against the rate; dashed: its threshold",
        facts,
        grid + lines,
    )


def backlog_chart(facts: dict[str, Any]) -> str:
    values = [float(f["max_backlog"]) for s in facts["steps"] for f in s["flows"].values()]
    if not values:
        return ""
    top = nice_top(values)

    def y(v: float) -> float:
        return BOTTOM - (BOTTOM - TOP) * v / top

    grid = [_gridline(y(v), f"{v:g}") for v in (0.0, top / 2, top)]
    lines = [
        _line(_points(facts, m, "max_backlog"), y, facts, COLOURS[m], m) for m in _measures(facts)
    ]
    minimum = facts["rule"]["min_backlog"]
    if minimum <= top:
        lines.append(_hline(y(minimum), "#999", "backlog floor of the growth rule"))
    return _chart(
        "knee-backlog",
        "Each flow's largest backlog (open flows) against the rate",
        facts,
        grid + lines,
    )


def _measures(facts: dict[str, Any]) -> list[str]:
    seen: list[str] = []
    for step in facts["steps"]:
        seen += [m for m in step["flows"] if m not in seen]
    return [m for m in COLOURS if m in seen]


def _points(facts: dict[str, Any], measure: str, key: str) -> list[tuple[float, float, bool]]:
    found = []
    for step in sorted(facts["steps"], key=lambda s: s["rate_multiplier"]):
        flow = step["flows"].get(measure)
        if flow is not None and flow[key] is not None:
            found.append((step["rate_multiplier"], float(flow[key]), flow["passed"]))
    return found


def _x(facts: dict[str, Any], rate: float) -> float:
    top = max((s["rate_multiplier"] for s in facts["steps"]), default=1.0) * 1.08
    return LEFT + (WIDTH - LEFT - RIGHT) * rate / top


def _line(points, y, facts, colour: str, name: str) -> str:  # type: ignore[no-untyped-def]
    if not points:
        return ""
    xy = " ".join(f"{_x(facts, r):.1f},{y(v):.1f}" for r, v, _ in points)
    dots = "".join(
        f"<circle cx={_x(facts, r):.1f} cy={y(v):.1f} r=3.5 "
        f"fill='{colour if ok else FAIL_COLOUR}'><title>{esc(name)} x{r:g}: {v:,.1f}"
        f"</title></circle>"
        for r, v, ok in points
    )
    return (
        f"<polyline fill=none stroke='{colour}' stroke-width=2 points='{xy}'>"
        f"<title>{esc(name)}</title></polyline>{dots}"
    )


def _hline(y: float, colour: str, name: str) -> str:
    return (
        f"<line x1={LEFT:g} x2={WIDTH - RIGHT:g} y1={y:.1f} y2={y:.1f} stroke='{colour}' "
        f"stroke-dasharray='5 4'><title>{esc(name)}</title></line>"
    )


def _gridline(y: float, label: str) -> str:
    return (
        f"<line x1={LEFT:g} x2={WIDTH - RIGHT:g} y1={y:.1f} y2={y:.1f} stroke='#eef0f4'/>"
        f"<text x={LEFT - 6:g} y={y + 4:.1f} text-anchor=end>{esc(label)}</text>"
    )


def _chart(key: str, title: str, facts: dict[str, Any], body: list[str]) -> str:
    rates = sorted({s["rate_multiplier"] for s in facts["steps"]})
    ticks = "".join(
        f"<line x1={_x(facts, r):.1f} x2={_x(facts, r):.1f} y1={TOP:g} y2={BOTTOM:g} "
        f"stroke='#e6e9ef'/><text x={_x(facts, r):.1f} y={BOTTOM + 14:g} "
        f"text-anchor=middle>x{r:g}</text>"
        for r in rates
    )
    marks = ""
    if facts["sustainable"] is not None:
        x = _x(facts, facts["sustainable"]["rate_multiplier"])
        marks += _vmark(x, PASS_COLOUR, "knee")
    if facts["first_broken"] is not None:
        x = _x(facts, facts["first_broken"]["rate_multiplier"])
        marks += _vmark(x, FAIL_COLOUR, "first failing rate")
    legend = "".join(
        f"<span style='color:{COLOURS[m]}'>■ {esc(m)}</span>" for m in _measures(facts)
    )
    legend += f"<span style='color:{FAIL_COLOUR}'>● a step where the flow broke</span>"
    svg = (
        f"<svg class=chart data-chart={key} viewBox='0 0 {WIDTH:g} {HEIGHT:g}' width=100%>"
        f"{ticks}{''.join(body)}{marks}"
        f"<text x={(WIDTH + LEFT) / 2:.1f} y={HEIGHT - 6:g} text-anchor=middle>"
        f"rate (x the scenario's)</text></svg>"
    )
    return f"<div class=card><b>{esc(title)}</b><div class=legend>{legend}</div>{svg}</div>"


def _vmark(x: float, colour: str, name: str) -> str:
    return (
        f"<line x1={x:.1f} x2={x:.1f} y1={TOP:g} y2={BOTTOM:g} stroke='{colour}' "
        f"stroke-width=2 stroke-dasharray='2 3'><title>{esc(name)}</title></line>"
        f"<text x={x + 4:.1f} y={TOP + 10:g} style='fill:{colour}'>{esc(name)}</text>"
    )


__all__ = ["render", "write"]
