"""``report.html``: one self-contained file (inline CSS and SVG, no scripts, no network) to
put in front of a vendor or a cutover board, and it has to tell the truth:

- the header says what was run and when: the verdict, when the run started, the twinyard
  version, the stack, the scenario and its digest, the outcome digest, how the clock ran;
- why (the diagnosis) before what; failing oracles before passing ones;
- the cards count orders released, shipped, delivered, and cancelled and backordered as the
  ERP (the system of record) ends the day;
- the day's charts share one time axis of real clock times, with each fault as a band over
  its own window (``html_svg``); lockstep latency is explained or, when it carries no
  information, not drawn, and the page says which (``html_charts``);
- failing orders get swimlanes, and the page says how many of how many (``html_lanes``).

The facts the verdict already holds are read from ``verdict_json.verdict``, not recomputed,
so the page and verdict.json cannot disagree.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.oracles.base import MAX_FINDINGS, Finding, OracleResult
from harness.oracles.view import SystemsView
from harness.report import html_charts, html_lanes, verdict_json
from harness.report.html_lanes import LANE_EDGE
from harness.report.html_svg import (
    FAIL_COLOUR,
    FAULT_EDGE,
    FAULT_FILL,
    FAULT_TEXT,
    HOUR,
    PASS_COLOUR,
    esc,
)
from harness.runner import RunOutcome
from harness.slos import MEASURES, STATISTICS

CSS = f"""
body{{font:14px/1.45 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1d2330;
margin:0;background:#f4f6f9}}main{{max-width:1100px;margin:0 auto;padding:28px}}
h1{{font-size:22px;margin:0}}h2{{font-size:16px;margin:28px 0 10px}}.sub{{color:#5b6475}}
.badge{{display:inline-block;padding:3px 12px;border-radius:12px;color:#fff;font-weight:600}}
.pass{{background:{PASS_COLOUR}}}.fail{{background:{FAIL_COLOUR}}}.card{{background:#fff;
border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:16px 18px;margin-bottom:14px}}
table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:5px 8px;
border-bottom:1px solid #e6e9ef;vertical-align:top}}th{{color:#5b6475;font-weight:600}}
td.num{{text-align:right;font-variant-numeric:tabular-nums}}.ok{{color:{PASS_COLOUR}}}
.bad{{color:{FAIL_COLOUR};font-weight:600}}.kpis{{display:grid;gap:12px;
grid-template-columns:repeat(auto-fit,minmax(108px,1fr))}}.kpi{{margin:0;padding:12px 14px}}
.kpi b{{display:block;font-size:22px}}
dl.facts{{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:12px 0 0}}
dl.facts dt{{color:#5b6475}}dl.facts dd{{margin:0;font-family:ui-monospace,monospace;
font-size:13px;word-break:break-all}}.why{{border-left:4px solid #d68910}}
svg text{{font:11px sans-serif;fill:#5b6475}}svg text.band-label{{fill:{FAULT_TEXT}}}
.legend span{{margin-right:14px}}
.bandkey{{display:inline-block;width:12px;height:10px;background:{FAULT_FILL};
border:1px solid {FAULT_EDGE};vertical-align:-1px}}
.failing-order{{border-left:4px solid {LANE_EDGE}}}code{{font-size:12px}}
"""


def render(outcome: RunOutcome) -> str:
    """The whole page."""
    facts = verdict_json.verdict(outcome)
    view = SystemsView(outcome.snapshots)
    axis = html_charts.day_axis(outcome)
    faults = outcome.scenario.faults
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>twinyard: {esc(outcome.scenario.name)} {_verdict(outcome).upper()}</title>",
        f"<style>{CSS}</style></head><body><main>",
        _header(outcome, facts),
        _diagnosis(outcome.diagnosis),
        _kpis(facts["counts"], view, outcome.results),
        "<h2>Oracles</h2>",
        _oracles(outcome.results, view),
        "<h2>The day over virtual time</h2>",
        html_charts.orders_chart(outcome, view, axis),
        html_charts.latency_section(outcome, axis),
        html_charts.traffic_chart(outcome, axis),
        html_charts.fault_list(faults),
        "<h2>Service levels (virtual seconds)</h2>",
        _service_levels(outcome),
        html_lanes.section(outcome, view),
        _notes(outcome.notes),
        "</main></body></html>",
    ]
    return "".join(parts)


def write(outcome: RunOutcome, report_dir: Path) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "report.html"
    path.write_text(render(outcome), encoding="utf-8")
    return path


# -- the header ------------------------------------------------------------------------------
def _verdict(outcome: RunOutcome) -> str:
    return "pass" if outcome.passed else "fail"


def _header(outcome: RunOutcome, facts: dict[str, Any]) -> str:
    """Name, verdict badge, and what was run when: enough to tell two reports apart."""
    scenario, run, timing = outcome.scenario, facts["run"], facts["timing"]
    verdict = _verdict(outcome)
    clock = scenario.clock
    mode = "lockstep" if clock.mode == "lockstep" else f"realtime at {clock.factor:g} x wall"
    rows = [
        ("started", _started(run["started_at"])),
        ("twinyard", f"{facts['versions']['twinyard']} (Python {facts['versions']['python']})"),
        ("stack", run["stack"] or "unknown"),
        ("scenario", f"{scenario.name} · {outcome.scenario_path or 'not from a file'}"),
        ("scenario digest", run["scenario_digest"] or "none"),
        ("outcome digest", run["outcome_digest"] or "none"),
        ("seed", str(scenario.seed)),
        (
            "clock",
            f"{mode}: {timing['virtual_seconds'] / HOUR:.1f} virtual hours in "
            f"{timing['wall_seconds']:.1f} s wall, {timing['lockstep_steps']} steps",
        ),
    ]
    facts_html = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
    return (
        f"<header class=card><h1>{esc(scenario.name)} "
        f"<span class='badge {verdict}'>{verdict.upper()}</span></h1>"
        f"<p class=sub>{esc(scenario.description)}</p><dl class=facts>{facts_html}</dl></header>"
    )


def _started(iso: str) -> str:
    """The run's wall-clock start, ISO-8601 UTC, as people read it."""
    if not iso:
        return "unknown"
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def _diagnosis(said: list[str]) -> str:
    if not said:
        return ""
    items = "".join(f"<li>{esc(why)}</li>" for why in said)
    return f"<div class='card why'><b>Why</b><ul>{items}</ul></div>"


# -- cards and tables ------------------------------------------------------------------------
def erp_order_counts(view: SystemsView) -> dict[str, int]:
    """Orders the ERP ends the day with cancelled, and with at least one backorder (whether
    or not part of the order shipped)."""
    statuses = Counter(order["status"] for order in view.erp_orders.values())
    backordered = sum(1 for bos in view.backorders_by_order.values() if bos)
    return {"cancelled": statuses["cancelled"], "backordered": backordered}


def _kpis(counts: dict[str, int], view: SystemsView, results: list[OracleResult]) -> str:
    erp = erp_order_counts(view)
    items = [
        ("released", counts.get("released", 0), "orders released"),
        ("shipped", counts.get("shipped", 0), "shipped"),
        ("delivered", counts.get("delivered", 0), "delivered"),
        ("cancelled", erp["cancelled"], "cancelled (ERP)"),
        ("backordered", erp["backordered"], "backordered (ERP)"),
        ("exchanges", counts.get("exchanges", 0), "exchanges"),
        ("faults_applied", counts.get("faults_applied", 0), "faults applied"),
        ("failing_findings", sum(len(r.findings) for r in results), "failing findings"),
    ]
    cells = "".join(
        f"<div class='card kpi' data-kpi={key}><b>{value:,}</b>{esc(label)}</div>"
        for key, value, label in items
    )
    return f"<div class=kpis>{cells}</div>"


def _oracles(results: list[OracleResult], view: SystemsView) -> str:
    """One row per oracle, failing ones first (in judging order within each group)."""
    rows = []
    for r in sorted(results, key=lambda r: r.passed):
        first = r.findings[0] if r.findings else None
        result = "<span class=ok>pass</span>" if r.passed else "<span class=bad>FAIL</span>"
        evidence = f"{esc(first.entity)}: {esc(first.message)}" if first else ""
        rows.append(
            f"<tr class={'pass' if r.passed else 'fail'}-row data-oracle={esc(r.name)}>"
            f"<td><b>{esc(r.name)}</b><br><span class=sub>{esc(r.protects)}</span></td>"
            f"<td>{result}</td><td class=num>{r.checked}</td><td class=num>{len(r.findings)}</td>"
            f"<td>{evidence}{_all_findings(r.findings, view)}</td></tr>"
        )
    head = (
        "<tr><th>oracle</th><th>result</th><th>checked</th><th>failing</th>"
        "<th>first evidence</th></tr>"
    )
    return f"<div class=card><table>{head}{''.join(rows)}</table></div>"


def _all_findings(findings: list[Finding], view: SystemsView) -> str:
    """Every reported finding of a failing oracle, folded away under the first; each links
    to its order's swimlane."""
    if len(findings) < 2:
        return ""
    rows = "".join(
        f"<tr><td>{_order_link(f.entity, view)}</td><td>{esc(f.message)}</td></tr>"
        for f in findings[:MAX_FINDINGS]
    )
    more = len(findings) - MAX_FINDINGS
    tail = f"<p class=sub>and {more} more (counted, not listed)</p>" if more > 0 else ""
    return f"<details><summary>all {len(findings)}</summary><table>{rows}</table>{tail}</details>"


def _order_link(entity: str, view: SystemsView) -> str:
    """The entity, linked to its order's swimlane when it concerns an order."""
    order = view.order_of(entity.split(" ", 1)[0])
    return f"<a href='#{esc(order)}'>{esc(entity)}</a>" if order else esc(entity)


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
            f"<tr><td>{esc(level.name)}<br><span class=sub>{esc(MEASURES[level.name])}</span></td>"
            f"<td class=num>{len(level.samples)}</td>{cells}<td>{esc(limits)}</td>"
            f"<td>{result}</td></tr>"
        )
    stat_heads = "".join(f"<th>{s}</th>" for s in STATISTICS)
    head = f"<tr><th>measure</th><th>n</th>{stat_heads}<th>threshold</th><th></th></tr>"
    note = ""
    if outcome.scenario.clock.mode == "lockstep":
        note = f"<p class=sub>{html_charts.LOCKSTEP_LATENCY}</p>"
    return f"<div class=card>{note}<table>{head}{''.join(rows)}</table></div>"


def _notes(notes: list[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{esc(note)}</li>" for note in notes)
    return f"<h2>Notes</h2><div class=card><ul>{items}</ul></div>"
