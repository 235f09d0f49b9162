"""One wrk run and what it printed, shared by the benchmarks that drive wrk (Debian's ``wrk``),
so that two scripts comparing figures never read wrk's output two different ways.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SOCKET_ERRORS = ("connect", "read", "write", "timeout")
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass(frozen=True)
class WrkRun:
    """The figures of one run; latencies as wrk prints them (``812.00us``, ``13.80ms``)."""

    requests_per_s: float | None
    requests: int | None
    p50: str | None
    p99: str | None
    non_2xx: int  # wrk's "Non-2xx or 3xx responses"
    socket_errors: dict[str, int] = field(default_factory=dict)  # connect, read, write, timeout

    @property
    def socket_error_total(self) -> int:
        return sum(self.socket_errors.values())


def to_ms(latency: str | None) -> float | None:
    """A wrk latency (``812.00us``, ``1.02s``) in milliseconds: one unit for a table."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", latency or "")
    return float(found.group(1)) * UNIT_MS[found.group(2)] if found else None


def parse(out: str) -> WrkRun:
    """Read wrk's report (run with ``--latency``); a figure it did not print is None or 0."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in ", out, re.MULTILINE)
    p50 = re.search(r"^\s+50%\s+([\d.]+\w+)\s*$", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+([\d.]+\w+)\s*$", out, re.MULTILINE)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    return WrkRun(
        requests_per_s=float(rps.group(1)) if rps else None,
        requests=int(total.group(1)) if total else None,
        p50=p50.group(1) if p50 else None,
        p99=p99.group(1) if p99 else None,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(zip(SOCKET_ERRORS, map(int, sockets.groups()), strict=True))
        if sockets
        else {},
    )


def run(url: str, script: Path, seconds: int, connections: int, threads: int = 2) -> WrkRun:
    """``wrk -t.. -c.. -d..s --latency -s script url``; raises if wrk itself fails."""
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return parse(out)
