"""A failing run's reports agree: the verdict, JUnit and the order's trace name the same orders."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import orjson
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


def test_trace_lists_exchanges_in_the_order_they_began_within_a_virtual_moment(tmp_path):
    """A webhook's delivery is journalled when the stack's answer is read, which can be after
    the call the stack made on receiving it has ended: the trace still lists the event first.
    journal.jsonl is in (virtual, end) order; the trace is in (virtual, began) order."""
    from harness import trace
    from harness.report.run_files import JOURNAL, STATE

    order = {"id": "SO-000001", "lines": [], "status": "shipped"}
    state = {"erp": {"orders": {"SO-000001": order}}, "wms": {}, "carrier": {}, "tms": {}}
    (tmp_path / STATE).write_bytes(orjson.dumps(state))
    common = {"correlation_id": "corr-1", "ref": "SO-000001", "virtual_time": 3600.0}
    shipped = {  # began at 100.000, its answer read at 100.009
        **common, "system": "wms", "seq": 7, "direction": "out", "method": "POST",
        "path": "/webhooks/wms", "status": 202, "wall_time": 100.009, "duration_ms": 9.0,
        "event_type": "order.shipped",
    }  # fmt: skip
    goods_issue = {  # began at 100.004 on receiving it, ended at 100.006
        **common, "system": "erp", "seq": 3, "direction": "in", "method": "POST",
        "path": "/orders/SO-000001/goods-issue", "status": 201, "wall_time": 100.006,
        "duration_ms": 2.0, "event_type": None,
    }  # fmt: skip
    (tmp_path / JOURNAL).write_bytes(orjson.dumps(goods_issue) + b"\n" + orjson.dumps(shipped))
    traced = trace.load(tmp_path, "SO-000001")
    assert [e["seq"] for e in traced.entries] == [7, 3]  # the event, then the call it caused
