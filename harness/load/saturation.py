"""Whether a load measured the stack or twinyard: the simulators' own service time and the
lag of the event loop they answer on.

In a load the simulators, the world and the feed share one event loop in the harness's
process. When that loop falls behind (a timer due now runs 300 ms late), every answer the
stack gets is late by as much, and the flow times measure the harness, not the stack. A run
whose loop lagged beyond ``LAG_LIMIT_MS`` at the 95th percentile (sustained, not one pause
of a collector or a process starting) is marked invalid: the oracle ``simulators_kept_up``
fails, with the figures, so the run cannot pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.oracles.base import Finding, OracleResult
from harness.oracles.view import Journals

TICK_S = 0.1  # how often the loop is asked to wake: its lateness is the lag
LAG_LIMIT_MS = 500.0  # p95 beyond this: the answers were late because of the harness
MAX_SAMPLES = 200_000  # 5.5 hours of ticks; beyond, every other sample is kept


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest rank of ``q`` (0..1) in an ascending list."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class LoopLag:
    """Samples the event loop's lateness every ``TICK_S`` while it runs."""

    samples_ms: list[float] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(TICK_S)
            self.samples_ms.append(max(0.0, (loop.time() - before - TICK_S) * 1000))
            if len(self.samples_ms) > MAX_SAMPLES:
                del self.samples_ms[::2]

    def stats(self) -> dict[str, float | None]:
        ordered = sorted(self.samples_ms)
        return {
            "p50": percentile(ordered, 0.5),
            "p95": percentile(ordered, 0.95),
            "p99": percentile(ordered, 0.99),
            "max": ordered[-1] if ordered else None,
        }


def service_times(journals: Journals) -> dict[str, dict[str, float]]:
    """Per simulator, the p50 and p99 of the time it took to answer the stack (ms), from the
    journal's ``duration_ms`` of requests it received (fault latencies included)."""
    times: dict[str, dict[str, float]] = {}
    for system, entries in journals.items():
        ordered = sorted(_durations(e for e in entries if e["direction"] == "in"))
        if ordered:
            times[system] = {
                "p50": percentile(ordered, 0.5) or 0.0,
                "p99": percentile(ordered, 0.99) or 0.0,
            }
    return times


def _durations(entries: Iterable[dict[str, Any]]) -> Iterable[float]:
    for entry in entries:
        if entry.get("duration_ms") is not None:
            yield float(entry["duration_ms"])


def note(lag: dict[str, float | None], service: dict[str, dict[str, float]]) -> str:
    shown = ", ".join(f"{s} p50 {t['p50']:.1f} / p99 {t['p99']:.1f}" for s, t in service.items())
    return (
        f"simulators: event-loop lag p50 {_ms(lag['p50'])}, p95 {_ms(lag.get('p95'))}, "
        f"p99 {_ms(lag['p99'])}, "
        f"max {_ms(lag['max'])}; service time ms {shown or 'none'}"
    )


def judge(lag: dict[str, float | None]) -> OracleResult:
    """``simulators_kept_up``: fails when the loop's p95 lag passed ``LAG_LIMIT_MS``."""
    p95 = lag.get("p95")
    findings = []
    if p95 is not None and p95 > LAG_LIMIT_MS:
        findings.append(
            Finding(
                "simulators",
                f"INVALID RUN: the simulators' event loop lagged {p95:.0f} ms at p95 (limit "
                f"{LAG_LIMIT_MS:.0f} ms): answers were late because twinyard was saturated, "
                "so the flow times measure the harness, not the stack; give the load more "
                "cores, a lower --rate-multiplier, or Locust workers on another host",
                expected=f"<= {LAG_LIMIT_MS:.0f} ms",
                actual=round(p95, 1),
            )
        )
    return OracleResult(
        "simulators_kept_up",
        "The load measured the stack, not twinyard: the event loop the simulators answer on "
        f"was late by at most {LAG_LIMIT_MS:.0f} ms at the 95th percentile",
        0 if p95 is None else 1,
        findings,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"
