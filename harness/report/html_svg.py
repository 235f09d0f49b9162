"""The drawing kit of ``report.html``: one time axis every chart shares, fault windows as bands
on it, and the palette.

Virtual second 0 is midnight of the scenario's start day (``Scenario.epoch``), so every
virtual time is a clock time. The axis puts its ticks on whole clock times (every 5, 10, 15
or 30 minutes, or 1, 2, 3, 6, 12, 24, 48 or 168 hours, the finest that keeps at most
``MAX_TICKS``), labels them HH:MM and writes the date under the first tick and under every
midnight. The day's charts all take the same axis, so one moment is one x on every chart:
an outage band, the dip in shipments and the burst of 503s line up.

A fault is a band over its own window ``[at, at + for)`` (to the end of the run when it has
no ``for``), labelled by system and kind; never a shade over the whole chart.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from simulators.common.faults import Fault

MINUTE, HOUR, DAY = 60.0, 3600.0, 86_400.0
STEPS = tuple(m * MINUTE for m in (5, 10, 15, 30)) + tuple(
    h * HOUR for h in (1, 2, 3, 6, 12, 24, 48, 168)
)
MAX_TICKS = 16
WIDTH, LEFT, RIGHT = 1000.0, 52.0, 14.0

COLOURS = {"erp": "#3b6ea8", "wms": "#4c9a6a", "tms": "#c08a2d", "carrier": "#8a5aa8"}
PASS_COLOUR = "#2e8b57"
FAIL_COLOUR = "#c0392b"
OPEN_COLOUR = "#d35400"  # orders still open: dashed, so the released line shows through
FAULT_FILL = "#f7d4ce"  # opaque, under the series: a screenshot shows this exact colour
FAULT_EDGE = "#d9867a"  # each window's edges, so a window inside a longer one stays visible
FAULT_TEXT = "#a23b2f"  # band labels
LABEL_CHAR_PX = 6.2  # rough width of one 11 px character, to keep band labels apart


def esc(text: Any) -> str:
    """Text as HTML (attribute-safe)."""
    return html.escape(str(text), quote=True)


@dataclass(frozen=True)
class TimeAxis:
    """Virtual seconds ``[start, end]`` across the plot's width, ticks every ``step``."""

    epoch: datetime
    start: float
    end: float
    step: float

    @classmethod
    def spanning(cls, epoch: datetime, first: float, last: float) -> TimeAxis:
        """The axis from ``first`` to ``last`` widened outwards to whole ticks."""
        span = max(last - first, 1.0)
        step = next((s for s in STEPS if span / s <= MAX_TICKS), STEPS[-1])
        start = math.floor(first / step) * step
        end = max(math.ceil(last / step) * step, start + step)
        return cls(epoch, start, end, step)

    def x(self, t: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * (t - self.start) / (self.end - self.start)

    def ticks(self) -> list[float]:
        count = round((self.end - self.start) / self.step)
        return [self.start + i * self.step for i in range(count + 1)]

    def clock(self, t: float) -> datetime:
        return self.epoch + timedelta(seconds=t)

    def hhmm(self, t: float) -> str:
        return self.clock(t).strftime("%H:%M")

    def svg(self, top: float, bottom: float) -> str:
        """Grid lines from ``top`` to ``bottom`` and the tick labels under them."""
        parts = []
        for i, t in enumerate(self.ticks()):
            x = self.x(t)
            parts.append(
                f"<line x1={x:.1f} x2={x:.1f} y1={top:.1f} y2={bottom:.1f} stroke='#e6e9ef'/>"
                f"<text class=tick data-t={t:g} x={x:.1f} y={bottom + 13:.1f} "
                f"text-anchor=middle>{self.hhmm(t)}</text>"
            )
            if i == 0 or self.clock(t).hour == self.clock(t).minute == 0:
                day = self.clock(t).strftime("%a %d %b")
                parts.append(
                    f"<text class=date x={x:.1f} y={bottom + 25:.1f} text-anchor=middle>"
                    f"{day}</text>"
                )
        return f"<g class=axis>{''.join(parts)}</g>"


def window(fault: Fault, axis: TimeAxis) -> tuple[float, float] | None:
    """The part of the fault's window ``[at, at + for)`` on the axis, or None if none is."""
    start = max(fault.at, axis.start)
    end = min(fault.until if fault.until is not None else axis.end, axis.end)
    return (start, end) if end > start else None


def describe(fault: Fault) -> str:
    """``wms outage d0 10:00-d0 10:45``, with its route or event and rate when it has them."""
    until = "end of run" if fault.until is None else when(fault.until)
    scope = fault.route or (f"event {fault.event}" if fault.event else "")
    rate = f" at rate {fault.rate:g}" if fault.rate < 1 else ""
    return f"{fault.system} {fault.kind} {when(fault.at)}-{until} {scope}{rate}".strip()


def bands(faults: Sequence[Fault], axis: TimeAxis, top: float, bottom: float) -> tuple[str, str]:
    """Each fault as a band over its own window, and its label (system and kind): the bands
    go under a chart's series, the labels over them.

    Longer windows are drawn first so a shorter one inside them stays visible; a label takes
    the first row where it does not run into the label before it."""
    placed = [(f, w) for f in faults if (w := window(f, axis)) is not None]
    placed.sort(key=lambda fw: fw[1][0] - fw[1][1])  # longest first
    rects, labels = [], []
    row_ends: list[float] = []
    for fault, (start, end) in placed:
        x0, x1 = axis.x(start), axis.x(end)
        rects.append(_band(fault, x0, x1, top, bottom))
    for fault, (start, _) in sorted(placed, key=lambda fw: fw[1][0]):
        x0, text = axis.x(start), f"{fault.system} {fault.kind}"
        row = _row(row_ends, x0, x0 + 4 + LABEL_CHAR_PX * len(text))
        labels.append(
            f"<text class=band-label x={x0 + 3:.1f} y={top + 11 + 12 * row:.1f}>{esc(text)}</text>"
        )
    return f"<g class=bands>{''.join(rects)}</g>", f"<g class=band-labels>{''.join(labels)}</g>"


def _band(fault: Fault, x0: float, x1: float, top: float, bottom: float) -> str:
    title = f"<title>{esc(describe(fault))}</title>"
    edges = "".join(
        f"<line x1={x:.1f} x2={x:.1f} y1={top:.1f} y2={bottom:.1f} stroke='{FAULT_EDGE}'/>"
        for x in (x0, x1)
    )
    return (
        f"<rect class=fault data-system={esc(fault.system)} data-kind={esc(fault.kind)} "
        f"x={x0:.1f} y={top:.1f} width={x1 - x0:.1f} height={bottom - top:.1f} "
        f"fill='{FAULT_FILL}'>{title}</rect>{edges}"
    )


def _row(row_ends: list[float], x0: float, x1: float) -> int:
    """The first label row free at ``x0`` (a new one if none is), now taken up to ``x1``."""
    for row, end in enumerate(row_ends):
        if end < x0:
            row_ends[row] = x1
            return row
    row_ends.append(x1)
    return len(row_ends) - 1


def when(t: float) -> str:
    """A virtual time as ``d1 07:55``: day number and clock time (virtual 0 is midnight)."""
    day, rest = divmod(int(t), int(DAY))
    return f"d{day} {rest // 3600:02d}:{rest % 3600 // 60:02d}"


def nice_top(values: Iterable[float]) -> float:
    """The y-axis top: the largest value rounded up to 1, 2 or 5 times a power of ten."""
    top = max(values, default=0.0)
    if top <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(top))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= top)
