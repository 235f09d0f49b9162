"""A stack the harness started never outlives the harness, however the harness dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="prctl(PR_SET_PDEATHSIG)")

LONG_DAY = "name: long\nseed: 3\ndemand: {orders: 2000}\n"


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(x) for x in text]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_killing_the_harness_stops_the_stack_it_started(tmp_path):
    day = tmp_path / "long.yaml"
    day.write_text(LONG_DAY)
    harness = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            str(day),
            "--quiet",
            "--report-dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        stacks: list[int] = []
        while not stacks:  # the stack is up once it has written to its log
            assert time.monotonic() < deadline, "the stack never started"
            assert harness.poll() is None, "the run ended before the test could kill it"
            if (tmp_path / "stack.log").exists():
                stacks = _children(harness.pid)
            time.sleep(0.05)
        os.kill(harness.pid, signal.SIGKILL)
        harness.wait()
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in stacks):
            assert time.monotonic() < deadline, f"stack {stacks} outlived its harness"
            time.sleep(0.05)
    finally:
        if harness.poll() is None:
            harness.kill()
