"""The incident library as a user's CI runs it, ``pytest -n 2 scenarios/incidents``, on the
clean reference stack: every item passes, each xdist worker plays into folders of its own and
every scenario is played exactly once. This is also the suite's clean pass of the library on
each scenario's own seed (``test_selftest`` plays the other seeds and the defects)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness import bundled

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.long(190)
def test_the_incident_library_passes_clean_under_pytest_n_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TWINYARD_"))}
    reports = tmp_path / "reports"
    command = [sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*command, "--twinyard-report-dir", str(reports), str(bundled.INCIDENTS)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert "failed" not in summary and "error" not in summary, summary

    scenarios = sorted(p.stem for p in bundled.INCIDENTS.glob("*.yaml"))
    workers = sorted(p.name for p in reports.iterdir())
    assert workers == ["gw0", "gw1"]
    played = sorted(v.parent.name for v in reports.glob("gw*/*/verdict.json"))
    assert played == scenarios  # each once, by one worker or the other
    assert passed >= 10 * len(scenarios)  # an item per oracle, not one per file
