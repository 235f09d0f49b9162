"""A load whose simulators' event loop fell behind is marked invalid, with the figures."""

from __future__ import annotations

import asyncio
import time

from harness.load import saturation


def test_a_loop_blocked_by_the_harness_shows_as_lag():
    async def day() -> dict[str, float | None]:
        lag = saturation.LoopLag()
        lag.start()
        await asyncio.sleep(0.25)  # a few quiet ticks
        time.sleep(0.4)  # the harness hogs its own loop: every answer waits this long
        await asyncio.sleep(0.15)
        await lag.stop()
        return lag.stats()

    stats = asyncio.run(day())
    assert stats["max"] is not None and stats["max"] >= 300
    assert stats["p50"] is not None and stats["p50"] < stats["max"]


def test_a_lagging_run_fails_simulators_kept_up_and_a_quiet_one_passes():
    lagging = saturation.judge({"p50": 20.0, "p95": 700.0, "p99": 800.0, "max": 900.0})
    assert not lagging.passed
    [finding] = lagging.findings
    assert "INVALID RUN" in finding.message and "700 ms" in finding.message
    # one long pause (a collector, a process starting) is not saturation
    assert saturation.judge({"p50": 1.0, "p95": 30.0, "p99": 600.0, "max": 600.0}).passed
    assert saturation.judge({"p50": None, "p95": None, "p99": None, "max": None}).checked == 0


def test_service_times_are_the_simulators_own_answer_times():
    journals = {
        "wms": [{"direction": "in", "duration_ms": float(ms)} for ms in range(1, 101)]
        + [{"direction": "out", "duration_ms": 5000.0}],  # a webhook it sent: not its service
        "erp": [],
    }
    times = saturation.service_times(journals)
    assert times == {"wms": {"p50": 50.0, "p99": 99.0}}
    line = saturation.note({"p50": 2.0, "p95": 5.0, "p99": 9.0, "max": 30.0}, times)
    assert (
        "lag p50 2 ms, p95 5 ms, p99 9 ms, max 30 ms" in line and "wms p50 50.0 / p99 99.0" in line
    )
