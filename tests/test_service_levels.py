"""Service levels: latencies in virtual time from the simulators' state, judged by thresholds."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.cli import main
from harness.slos import ServiceLevel

LIBRARY = Path(__file__).resolve().parent.parent / "scenarios" / "incidents"


def test_percentiles_are_nearest_rank_and_thresholds_judge_them():
    level = ServiceLevel("release_latency", [float(s) for s in range(1, 101)], {"p95": 95})
    assert level.stats == {"p50": 50, "p95": 95, "p99": 99, "max": 100}
    assert level.passed
    tight = ServiceLevel("release_latency", level.samples, {"p95": 94, "max": 100})
    assert tight.breaches == {"p95": (95, 94)} and not tight.passed
    empty = ServiceLevel("tracking_latency", [], {"max": 1})
    assert empty.stats["max"] is None and empty.passed  # nothing measured, nothing breached


@pytest.mark.e2e
@pytest.mark.parametrize(("limit", "code"), [(60, 1), (7200, 0)])
def test_an_outage_shows_in_release_latency_and_a_threshold_fails_the_run(tmp_path, limit, code):
    text = (LIBRARY / "wms_outage_during_wave.yaml").read_text()
    text = text.replace("expect:\n", f"expect:\n  slos: {{release_latency: {{max: {limit}}}}}\n")
    scenario = tmp_path / "outage_with_slo.yaml"
    scenario.write_text(text)
    report = tmp_path / "report"
    assert main(["run", str(scenario), "--quiet", "--report-dir", str(report)]) == code
    verdict = json.loads((report / "verdict.json").read_text())
    assert all(o["passed"] for o in verdict["oracles"])  # only the service level decides
    [release] = [s for s in verdict["service_levels"] if s["name"] == "release_latency"]
    assert release["count"] == 60
    # orders released in the 45-minute window waited for it (and for the Retry-After rounding)
    assert 1800 <= release["max"] <= 7200
    assert release["p50"] == 0  # the rest went straight through
    assert release["passed"] is (code == 0)
    case = ET.parse(report / "junit.xml").getroot().find(".//testcase[@name='slo:release_latency']")
    assert case is not None and (case.find("failure") is not None) is (code == 1)
