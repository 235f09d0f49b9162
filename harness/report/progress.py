"""The live view during a run: virtual time, orders released / shipped / open, exchanges/s.

Quiet under ``--quiet``, in CI (``CI`` set) and when output is not a terminal, so logs and
CI pages get the verdict and nothing else.
"""

from __future__ import annotations

import os
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

REFRESH_S = 0.25


def wanted(console: Console, quiet: bool) -> bool:
    return not quiet and console.is_terminal and not os.environ.get("CI")


class ProgressView:
    def __init__(self, console: Console, total_orders: int) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.fields[clock]}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} released"),
            TextColumn("{task.fields[shipped]} shipped, {task.fields[open]} open"),
            TextColumn("{task.fields[rate]} exchanges/s"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task = self._progress.add_task(
            "run", total=total_orders, clock="", shipped=0, open=0, rate=0
        )
        self._last = 0.0
        self._last_exchanges = 0

    def __enter__(self) -> ProgressView:
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    def update(self, now_iso: str, counts: dict[str, int], exchanges: int) -> None:
        wall = time.monotonic()
        if wall - self._last < REFRESH_S:
            return
        rate = (exchanges - self._last_exchanges) / (wall - self._last) if self._last else 0
        self._last, self._last_exchanges = wall, exchanges
        released = counts.get("released", 0)
        done = counts.get("shipped", 0) + counts.get("cancelled", 0) + counts.get("short_closed", 0)
        self._progress.update(
            self._task,
            completed=released,
            clock=now_iso,
            shipped=counts.get("shipped", 0),
            open=max(released - done, 0),
            rate=f"{rate:,.0f}",
        )
