"""The day in charts over one shared time axis: orders, latency (or why there is none) and
traffic, each with the scenario's fault windows as bands.

Latency in lockstep is a decision, not an accident. Lockstep advances virtual time only once
the stack is quiet, so a stack that keeps up carries every event within the same virtual
instant: 0 s. A latency above 0 there is time the stack made the world wait (its retries,
a Retry-After, an outage window), never its speed. So in lockstep the chart is drawn, with
that said beside it, only when some sample is above 0; when every sample is 0 the chart
would be a flat line that says nothing, and the report says so in its place. Realtime runs
always get the chart.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.oracles.view import SystemsView
from harness.report import run_files
from harness.report.html_svg import (
    COLOURS,
    DAY,
    FAIL_COLOUR,
    HOUR,
    LEFT,
    OPEN_COLOUR,
    RIGHT,
    WIDTH,
    TimeAxis,
    bands,
    describe,
    esc,
    nice_top,
)
from harness.runner import RunOutcome
from harness.slos import epoch_seconds, statistic
from simulators.common.faults import Fault

HEIGHT, TOP, BOTTOM = 200.0, 14.0, 160.0  # the plot spans TOP..BOTTOM; ticks and dates below
RELEASED_COLOUR, SHIPPED_COLOUR = "#3b6ea8", "#2e8b57"
LATENCY_COLOURS = {
    "release_latency": "#3b6ea8",
    "confirmation_latency": "#4c9a6a",
    "tracking_latency": "#8a5aa8",
    "label_latency": "#c08a2d",
    "accrual_latency": "#7f8c8d",
}
CLOSED_WMS = ("shipped", "short_closed", "cancelled")

LOCKSTEP_LATENCY = (
    "Lockstep: virtual time advances only once the stack is quiet, so a stack that keeps up "
    "carries each event within the same virtual instant (0 s). A latency above 0 here is time "
    "the stack made the world wait (retries, Retry-After, outage windows), not its speed."
)
HIDDEN_LATENCY = (
    "Latency over time is not drawn: this run played in lockstep, and all {n} latency samples "
    "are 0 virtual seconds, so the chart would be a flat line at 0 that says nothing about the "
    "stack's speed. (Lockstep advances virtual time only once the stack is quiet; a latency "
    "above 0 there is time the stack made the world wait: retries, Retry-After, outages.) To "
    "measure latency, play the scenario with <code>clock: {{mode: realtime}}</code>."
)


@dataclass
class Series:
    """One line on a chart: pieces of polyline (a gap between pieces is "no data")."""

    name: str
    colour: str
    pieces: list[list[tuple[float, float]]] = field(default_factory=list)
    dashed: bool = False


def day_axis(outcome: RunOutcome) -> TimeAxis:
    """The run's whole virtual clock, from 0 (midnight of the start day) to its last moment."""
    last = max(
        [outcome.virtual_s]
        + [_last_time(entries) for entries in outcome.journals.values() if entries]
    )
    return TimeAxis.spanning(outcome.scenario.epoch, 0.0, last)


def _last_time(entries: Sequence[dict[str, Any]]) -> float:
    """A journal's latest virtual time: its last entry's, when it is in time order (no pass
    over a finished day's journal, which is read from disk)."""
    if run_files.ordered(entries):
        return float(entries[-1]["virtual_time"])
    return max(e["virtual_time"] for e in entries)


def bin_seconds(axis: TimeAxis) -> float:
    """Width of a traffic or latency bin: a tick's width up to an hour, then a sixth of a
    tick, at most a day (about six bins per tick on long runs)."""
    if axis.step < HOUR:
        return axis.step
    return min(max(HOUR, axis.step / 6), DAY)


def bin_words(seconds: float) -> str:
    if seconds == HOUR:
        return "hour"
    if seconds == DAY:
        return "day"
    return f"{seconds / HOUR:g} h" if seconds >= HOUR else f"{seconds / 60:g} min"


# -- the charts ------------------------------------------------------------------------------
def orders_chart(outcome: RunOutcome, view: SystemsView, axis: TimeAxis) -> str:
    """Orders released and shipped (cumulative) and open, exactly at the moment each changed."""
    epoch = outcome.scenario.epoch.timestamp()
    released = {o["id"]: epoch_seconds(o["released_at"]) - epoch for o in view.released_orders()}
    shipped = _first_times(view, ("shipped",), epoch)
    closed = _closed_times(view, epoch)
    opened = [(t, 1) for t in released.values()]
    opened += [(closed[o], -1) for o in released if o in closed]
    series = [
        Series("released", RELEASED_COLOUR, [_running(((t, 1) for t in released.values()), axis)]),
        Series("shipped", SHIPPED_COLOUR, [_running(((t, 1) for t in shipped.values()), axis)]),
        Series(
            "open (released, not yet shipped, short-closed or cancelled)",
            OPEN_COLOUR,
            [_running(opened, axis)],
            dashed=True,
        ),
    ]
    title = "Orders: released and shipped (cumulative), and open"
    return chart("orders", title, series, axis, outcome.scenario.faults)


def latency_section(outcome: RunOutcome, axis: TimeAxis) -> str:
    """The latency chart, with what lockstep means for it; or, where it would say nothing,
    why it is not drawn."""
    samples = [v for level in outcome.service_levels for v in level.samples]
    lockstep = outcome.scenario.clock.mode == "lockstep"
    if lockstep and not any(v > 0 for v in samples):
        text = HIDDEN_LATENCY.format(n=len(samples))
        return f"<div class='card latency-hidden'><b>Latency</b><p class=sub>{text}</p></div>"
    if lockstep:
        note = LOCKSTEP_LATENCY
    else:
        factor = outcome.scenario.clock.factor
        note = f"Realtime: virtual time ran at {factor:g} x wall time."
    width = bin_seconds(axis)
    title = f"Latency p95 per {bin_words(width)} of the event measured (virtual seconds)"
    return chart(
        "latency", title, _latency_series(outcome, axis, width), axis, outcome.scenario.faults, note
    )


def traffic_chart(outcome: RunOutcome, axis: TimeAxis) -> str:
    """Requests to each simulator per bin, and the error answers among them."""
    width = bin_seconds(axis)
    per: dict[str, Counter[int]] = defaultdict(Counter)
    errors: Counter[int] = Counter()
    for system, entries in outcome.journals.items():
        for e in entries:
            if e["direction"] != "in":
                continue
            b = _bin(e["virtual_time"], axis, width)
            per[system][b] += 1
            if e["status"] >= 400 or not e["status"]:
                errors[b] += 1
    series = [
        Series(system, COLOURS.get(system, "#888"), [_bins(counts, axis, width)])
        for system, counts in per.items()
    ]
    series.append(Series("error answers", FAIL_COLOUR, [_bins(errors, axis, width)]))
    title = f"Requests to each system per {bin_words(width)}, and error answers"
    return chart("traffic", title, series, axis, outcome.scenario.faults)


def fault_list(faults: Sequence[Fault]) -> str:
    """Every fault window in words, under the charts that shade them."""
    if not faults:
        return ""
    items = "".join(f"<li>{esc(describe(f))}</li>" for f in faults)
    return f"<div class=card><b>Fault windows</b><ul class=faults>{items}</ul></div>"


def chart(
    key: str,
    title: str,
    series: list[Series],
    axis: TimeAxis,
    faults: Sequence[Fault],
    note: str = "",
) -> str:
    """One chart on the shared axis: fault bands under the series, their labels over them."""
    top = nice_top(v for s in series for piece in s.pieces for _, v in piece)
    under, labels = bands(faults, axis, TOP, BOTTOM)
    body = [under, axis.svg(TOP, BOTTOM), _y_axis(top)]
    body += [_polyline(piece, s, axis, top) for s in series for piece in s.pieces if piece]
    body.append(labels)
    legend = "".join(f"<span style='color:{s.colour}'>■ {esc(s.name)}</span>" for s in series)
    if faults:
        legend += "<span><i class=bandkey></i> fault windows</span>"
    svg = (
        f"<svg class=chart data-chart={key} viewBox='0 0 {WIDTH:g} {HEIGHT:g}' width=100%>"
        f"{''.join(body)}</svg>"
    )
    said = f"<p class=sub>{note}</p>" if note else ""
    return f"<div class=card><b>{esc(title)}</b>{said}<div class=legend>{legend}</div>{svg}</div>"


# -- series ----------------------------------------------------------------------------------
def _first_times(view: SystemsView, statuses: tuple[str, ...], epoch: float) -> dict[str, float]:
    """Per ERP order, when its first WMS order first reached one of ``statuses``."""
    first: dict[str, float] = {}
    for fo in view.wms_orders.values():
        for h in fo["status_history"]:
            if h["status"] in statuses:
                t = epoch_seconds(h["at"]) - epoch
                ref = fo["order_ref"]
                first[ref] = min(t, first.get(ref, t))
    return first


def _closed_times(view: SystemsView, epoch: float) -> dict[str, float]:
    """Per ERP order, when it stopped being open: shipped, short-closed or cancelled in the
    WMS, or cancelled in the ERP, whichever came first."""
    closed = _first_times(view, CLOSED_WMS, epoch)
    for order in view.erp_orders.values():
        for h in order.get("status_history", []):
            if h["status"] == "cancelled":
                t = epoch_seconds(h["at"]) - epoch
                closed[order["id"]] = min(t, closed.get(order["id"], t))
    return closed


def _running(deltas: Iterable[tuple[float, int]], axis: TimeAxis) -> list[tuple[float, float]]:
    """A step line of the running total of ``(time, change)``, from the axis start to its end."""
    total, points = 0, [(axis.start, 0.0)]
    for t, change in sorted(deltas):
        points.append((t, float(total)))
        total += change
        points.append((t, float(total)))
    points.append((axis.end, float(total)))
    return points


def _bin(t: float, axis: TimeAxis, width: float) -> int:
    """The bin a virtual time falls in; the axis end belongs to the last bin."""
    last = round((axis.end - axis.start) / width) - 1
    return min(max(int((t - axis.start) // width), 0), last)


def _bins(counts: Counter[int], axis: TimeAxis, width: float) -> list[tuple[float, float]]:
    """A step line of a count per bin, flat across each bin."""
    points = []
    for b in range(round((axis.end - axis.start) / width)):
        start = axis.start + b * width
        points += [(start, float(counts[b])), (start + width, float(counts[b]))]
    return points


def _latency_series(outcome: RunOutcome, axis: TimeAxis, width: float) -> list[Series]:
    """p95 per bin of each measure, as a flat piece over each bin that has samples."""
    epoch = outcome.scenario.epoch.timestamp()
    series = []
    for level in outcome.service_levels:
        per_bin: dict[int, list[float]] = defaultdict(list)
        for at, value in zip(level.times, level.samples, strict=True):
            per_bin[_bin(at - epoch, axis, width)].append(value)
        pieces = []
        for b, values in sorted(per_bin.items()):
            p95 = statistic(sorted(values), "p95") or 0.0
            start = axis.start + b * width
            pieces.append([(start, p95), (start + width, p95)])
        series.append(Series(f"{level.name} p95", LATENCY_COLOURS[level.name], pieces))
    return series


# -- drawing ---------------------------------------------------------------------------------
def _y(value: float, top: float) -> float:
    return BOTTOM - (BOTTOM - TOP) * value / top


def _y_axis(top: float) -> str:
    """Grid lines and labels at 0, half and the top of the value range."""
    parts = []
    for value in (0.0, top / 2, top):
        y = _y(value, top)
        parts.append(
            f"<line x1={LEFT:g} x2={WIDTH - RIGHT:g} y1={y:.1f} y2={y:.1f} stroke='#eef0f4'/>"
            f"<text x={LEFT - 6:g} y={y + 4:.1f} text-anchor=end>{value:g}</text>"
        )
    return "".join(parts)


def _polyline(piece: list[tuple[float, float]], series: Series, axis: TimeAxis, top: float) -> str:
    dash = " stroke-dasharray='5 4'" if series.dashed else ""
    points = " ".join(f"{x:.1f},{_y(v, top):.1f}" for x, v in _compact(piece, axis))
    return (
        f"<polyline fill=none stroke='{series.colour}' stroke-width=2{dash} points='{points}'>"
        f"<title>{esc(series.name)}</title></polyline>"
    )


def _compact(piece: list[tuple[float, float]], axis: TimeAxis) -> list[tuple[float, float]]:
    """Points as x pixels, keeping only the first and last value within each half pixel (a
    day of a million orders stays a few thousand points)."""
    out: list[tuple[float, float]] = []
    for t, v in piece:
        x = round(axis.x(t) * 2) / 2
        if len(out) >= 2 and out[-1][0] == x and out[-2][0] == x:
            out[-1] = (x, v)
        else:
            out.append((x, v))
    return out
