"""Failing orders in ``report.html``: a swimlane per order, up to ``MAX_SWIMLANES``, and a
plain count of how many failed in all, so a page of eight never passes for the whole story.

An order fails when any finding is about it (its entity, or the first word of it, names the
order or one of its WMS orders or TMS shipments). A lane needs the finding's journal slice,
which evidence attaches to each oracle's first ``MAX_FINDINGS`` findings; orders beyond
those still count. The ones not drawn are named, with where to read them: verdict.json and
``twinyard trace``.

The drawing itself (``lane_axis``, ``lane_svg``, ``exchange_rows``) takes only exchanges
(journal lines as ``harness.oracles.evidence`` shapes them: system, virtual_time, call,
status, error, fault), an epoch and faults, so ``twinyard compare`` draws an order's lanes
from a report folder's journal without a RunOutcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harness.oracles.base import Finding
from harness.oracles.view import SystemsView
from harness.report.html_svg import (
    COLOURS,
    FAIL_COLOUR,
    LEFT,
    RIGHT,
    WIDTH,
    TimeAxis,
    bands,
    esc,
    when,
)
from harness.runner import RunOutcome
from simulators.common.faults import Fault

MAX_SWIMLANES = 8
LANES = ("erp", "wms", "tms", "carrier", "stack")
LANE_H, LANE_TOP = 24.0, 12.0
MIN_LANE_S = 3600.0
LANE_EDGE = "#8e2a1f"  # the left edge of a failing order's card: only failing orders have it


@dataclass(frozen=True)
class FailingOrder:
    order: str
    finding: Finding  # the first finding about the order (the one with a journal, if any)


def failing_orders(outcome: RunOutcome, view: SystemsView) -> list[FailingOrder]:
    """Every order some finding is about, in report order (failing oracles first)."""
    found: dict[str, Finding] = {}
    for result in sorted(outcome.results, key=lambda r: r.passed):
        for finding in result.findings:
            order = view.order_of(finding.entity.split(" ", 1)[0])
            if order is None:
                continue
            if order not in found or (finding.journal and not found[order].journal):
                found[order] = finding
    return [FailingOrder(order, finding) for order, finding in found.items()]


def drawn(orders: list[FailingOrder]) -> list[FailingOrder]:
    """The orders that get a swimlane: the first ``MAX_SWIMLANES`` with a journal slice."""
    return [o for o in orders if o.finding.journal][:MAX_SWIMLANES]


def section(outcome: RunOutcome, view: SystemsView) -> str:
    """The failing-orders heading, the "N of M shown" line and the lanes; nothing on a day
    where no order failed."""
    orders = failing_orders(outcome, view)
    if not orders:
        return ""
    lanes = drawn(orders)
    parts = ["<h2>Failing orders</h2>", shown_line(orders, lanes)]
    parts += [swimlane(o, outcome) for o in lanes]
    return "".join(parts)


def shown_line(orders: list[FailingOrder], lanes: list[FailingOrder]) -> str:
    """How many of the failing orders have a lane, and where to read the rest."""
    if len(lanes) == len(orders):
        return f"<p class=shown>All {len(orders)} failing orders shown.</p>"
    drawn_ids = {o.order for o in lanes}
    rest = [o.order for o in orders if o.order not in drawn_ids]
    example = rest[0]
    return (
        f"<p class=shown><b>{len(lanes)} of {len(orders)} failing orders shown.</b> "
        f"The other {len(rest)} ({esc(', '.join(rest))}) are in verdict.json "
        f"(<code>oracles[].findings</code>, with each finding's journal slice), and "
        f"<code>twinyard trace {esc(example)} --run FOLDER</code> shows an order's whole life "
        f"from this report's folder.</p>"
    )


def swimlane(failing: FailingOrder, outcome: RunOutcome) -> str:
    """The order's card: its lanes on its own time axis, with the scenario's fault windows,
    and the exchanges as a table under them."""
    exchanges = failing.finding.journal
    scenario = outcome.scenario
    svg = lane_svg(exchanges, lane_axis(scenario.epoch, exchanges), scenario.faults)
    return (
        f"<div class='card failing-order' id='{esc(failing.order)}'><b>{esc(failing.order)}</b> "
        f"<span class=sub>{esc(failing.finding.message)}</span>{svg}"
        f"<details><summary>exchanges</summary><table>{exchange_rows(exchanges)}</table>"
        f"</details></div>"
    )


def lane_svg(exchanges: Sequence[dict[str, Any]], axis: TimeAxis, faults: Sequence[Fault]) -> str:
    """One lane per system and one for the stack; each exchange a line between the stack and
    the system at its virtual time, red when it failed or was faulted; the fault windows as
    bands on ``axis``."""
    lane_y = {lane: LANE_TOP + i * LANE_H for i, lane in enumerate(LANES)}
    bottom = lane_y[LANES[-1]] + 10
    under, labels = bands(faults, axis, 2.0, bottom)
    shapes = [under, axis.svg(2.0, bottom)]
    shapes += [
        f"<line x1={LEFT:g} x2={WIDTH - RIGHT:g} y1={y:g} y2={y:g} stroke='#d5d9e1'/>"
        f"<text x=4 y={y + 4:g}>{lane}</text>"
        for lane, y in lane_y.items()
    ]
    shapes += [_exchange(x, axis, lane_y) for x in exchanges]
    shapes.append(labels)
    height = bottom + 30
    return f"<svg class=lane viewBox='0 0 {WIDTH:g} {height:g}' width=100%>{''.join(shapes)}</svg>"


def lane_axis(epoch: datetime, exchanges: Sequence[dict[str, Any]]) -> TimeAxis:
    """The order's own time axis: its first to its last exchange, widened to at least
    ``MIN_LANE_S`` around them so the faults it ran into show where they began and ended."""
    times = [x["virtual_time"] for x in exchanges]
    first, last = min(times), max(times)
    pad = max(MIN_LANE_S - (last - first), 0.0) / 2
    return TimeAxis.spanning(epoch, max(first - pad, 0.0), last + pad)


def _exchange(exchange: dict[str, Any], axis: TimeAxis, lane_y: dict[str, float]) -> str:
    bad = exchange["status"] >= 400 or not exchange["status"] or exchange["fault"]
    colour = FAIL_COLOUR if bad else COLOURS.get(exchange["system"], "#888")
    px = axis.x(exchange["virtual_time"])
    label = esc(
        f"{when(exchange['virtual_time'])} {exchange['system']} {exchange['call']} -> "
        f"{exchange['status']} {exchange['error'] or ''} {exchange['fault'] or ''}"
    )
    y = lane_y[exchange["system"]]
    return (
        f"<line x1={px:.1f} x2={px:.1f} y1={lane_y['stack']:g} y2={y:g} stroke='{colour}' "
        f"stroke-width=1.5><title>{label}</title></line>"
        f"<circle cx={px:.1f} cy={y:g} r=4 fill='{colour}'><title>{label}</title></circle>"
    )


def exchange_rows(exchanges: Sequence[dict[str, Any]]) -> str:
    """The exchanges as table rows: when, system, call, status and error, fault."""
    return "".join(
        f"<tr><td>{when(x['virtual_time'])}</td><td>{esc(x['system'])}</td>"
        f"<td>{esc(x['call'])}</td><td>{x['status']} {esc(x['error'] or '')}</td>"
        f"<td>{esc(x['fault'] or '')}</td></tr>"
        for x in exchanges
    )
