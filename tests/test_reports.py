"""A failing run's reports agree: the verdict, JUnit and the order's trace name the same orders."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.cli import main

pytestmark = pytest.mark.e2e

LIBRARY = Path(__file__).resolve().parent.parent / "scenarios" / "incidents"


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory) -> Path:
    """The short-pick incident against a stack that posts ordered instead of picked qty."""
    report = tmp_path_factory.mktemp("failing")
    mp = pytest.MonkeyPatch()
    mp.setenv("REFSTACK_DEFECTS", "ordered-qty")
    try:
        scenario = str(LIBRARY / "short_pick_backorder.yaml")
        assert main(["run", scenario, "--quiet", "--report-dir", str(report)]) == 1
    finally:
        mp.undo()
    return report


def test_junit_has_a_case_per_oracle_and_failures_carry_the_evidence(failing_run):
    verdict = json.loads((failing_run / "verdict.json").read_text())
    suite = ET.parse(failing_run / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {o["name"] for o in verdict["oracles"]}
    failed = {o["name"]: o for o in verdict["oracles"] if not o["passed"]}
    assert "short_becomes_backorder" in failed
    assert int(suite.get("failures") or 0) == len(failed)
    for name, oracle in failed.items():
        failure = cases[name].find("failure")
        assert failure is not None and failure.text
        for finding in oracle["findings"]:
            assert finding["entity"] in failure.text  # the same ids in both reports
    assert all(cases[name].find("failure") is None for name in set(cases) - set(failed))


def test_a_failing_orders_evidence_carries_the_journal_slice_that_shows_it(failing_run):
    verdict = json.loads((failing_run / "verdict.json").read_text())
    [gi] = [o for o in verdict["oracles"] if o["name"] == "goods_issue_matches_shipment"]
    finding = gi["findings"][0]
    order = finding["entity"]
    calls = [x["call"] for x in finding["journal"]]
    assert f"POST /orders/{order}/goods-issue" in calls  # the posting that was wrong
    assert "order.shipped" in calls  # and the event it came from
    times = [x["virtual_time"] for x in finding["journal"]]
    assert times == sorted(times)
    failures = ET.parse(failing_run / "junit.xml").getroot().iter("failure")
    assert any(f"erp POST /orders/{order}/goods-issue -> 201" in (f.text or "") for f in failures)


def test_the_html_report_is_self_contained_and_names_the_same_failing_orders(failing_run):
    page = (failing_run / "report.html").read_text()
    verdict = json.loads((failing_run / "verdict.json").read_text())
    junit_text = "".join(
        f.text or "" for f in ET.parse(failing_run / "junit.xml").getroot().iter("failure")
    )
    failing = {f["entity"].split(" ", 1)[0] for o in verdict["oracles"] for f in o["findings"]}
    assert failing
    for order in failing:  # the same ids in all three reports
        assert order in page and order in junit_text
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert page.count("<svg") >= 2 + 1  # two charts over the day, and swimlanes
    assert "<polyline" in page and "FAIL" in page
    swimlanes = [order for order in failing if f"id='{order}'" in page]
    assert swimlanes  # a swimlane per failing order (up to eight)


def test_trace_shows_a_failing_orders_life_in_virtual_time_order(failing_run, capsys):
    verdict = json.loads((failing_run / "verdict.json").read_text())
    [short] = [o for o in verdict["oracles"] if o["name"] == "goods_issue_matches_shipment"]
    order_id = short["findings"][0]["entity"]
    capsys.readouterr()
    assert main(["trace", order_id, "--run", str(failing_run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{order_id}: ERP ")
    calls = ["order.released", "POST /fulfilment-orders", "order.picked", "order.packed"]
    calls += ["POST /shipments", "POST /labels", "order.shipped", f"/orders/{order_id}/goods-issue"]
    positions = [out.index(call) for call in calls]
    assert positions == sorted(positions)  # in the order they happened
    assert "correlation id: corr-" in out


def test_trace_misuse_is_one_line_and_exit_2(failing_run, tmp_path, capsys):
    assert main(["trace", "SO-999999", "--run", str(failing_run)]) == 2
    assert main(["trace", "SO-000001", "--run", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert err[0].startswith("twinyard: error: no order SO-999999 in the run")
    assert "no run in" in err[1]


def test_verdict_json_of_a_real_run_matches_its_documented_schema(failing_run):
    import jsonschema_rs

    schema = json.loads(
        (Path(__file__).resolve().parent.parent / "docs" / "verdict.schema.json").read_text()
    )
    verdict = json.loads((failing_run / "verdict.json").read_text())
    jsonschema_rs.validator_for(schema).validate(verdict)
    broken = {**verdict, "oracles": [{**verdict["oracles"][0], "passed": "yes"}]}
    assert not jsonschema_rs.validator_for(schema).is_valid(broken)  # the check can fail


def test_faults_applied_are_reported_per_system_and_label(tmp_path):
    import jsonschema_rs

    scenario = str(LIBRARY / "forged_and_replayed_webhooks.yaml")
    assert main(["run", scenario, "--quiet", "--report-dir", str(tmp_path)]) == 0
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    schema = json.loads(
        (Path(__file__).resolve().parent.parent / "docs" / "verdict.schema.json").read_text()
    )
    jsonschema_rs.validator_for(schema).validate(verdict)
    applied = verdict["faults_applied"]
    assert set(applied) == {"erp", "wms", "carrier"}
    assert applied["erp"]["forged"] > 0 and applied["carrier"]["replayed:3600s"] > 0
    total = sum(n for labels in applied.values() for n in labels.values())
    assert total == verdict["counts"]["faults_applied"]


def test_the_html_report_renders_in_headless_chromium_with_charts_and_swimlanes(
    failing_run, tmp_path
):
    """A real browser draws it: the series colours of both charts and the swimlane dots are
    on the screenshot, not just in the markup."""
    import shutil
    import subprocess

    from PIL import Image

    from harness.report.html import COLOURS, OPEN_COLOUR

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "make test installs Debian's chromium; run `make chromium`"
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,5000",
            f"--screenshot={shot}",
            (failing_run / "report.html").as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 5000)
    counts = {rgb: n for n, rgb in image.getcolors(maxcolors=1 << 20) or []}

    def seen(hex_colour: str) -> int:
        rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        return counts.get(rgb, 0)

    assert seen(OPEN_COLOUR) > 100  # the orders chart
    assert seen(COLOURS["wms"]) > 100 and seen(COLOURS["erp"]) > 100  # traffic and swimlanes
    assert seen("#c0392b") > 50  # the FAIL badge, failing results, error series
