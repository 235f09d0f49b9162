"""``twinyard load --find-knee``: the search as a unit (which rates are tried, which is reported,
which flow broke first, the backlog rule) on made-up steps, and one short real search of two
tiny steps whose threshold no stack can meet, so it reports the first broken flow.

No timing is asserted: rates, names, shapes and exit codes only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.load import knee
from harness.load.flows import FLOWS, ROW
from harness.report import html_knee
from harness.report.html_svg import esc

# -- the search ------------------------------------------------------------------------------


def search(start: float, breaks_at: float, steps: int = 10) -> list[float]:
    """The rates the search tries against a stack that fails at ``breaks_at`` and above."""
    tried: list[tuple[float, bool]] = []
    while len(tried) < steps and (m := knee.next_multiplier(tried, start)) is not None:
        tried.append((m, m < breaks_at))
    return [m for m, _ in tried]


def test_the_rate_doubles_until_a_step_fails_then_bisects_to_within_ten_percent():
    assert search(1, breaks_at=5) == [1, 2, 4, 8, 6, 5, 4.5, 4.75]
    good, bad = knee.bracket([(m, m < 5) for m in search(1, breaks_at=5)])
    assert (good, bad) == (4.75, 5)
    assert search(1, breaks_at=5, steps=knee.STEPS) == [1, 2, 4, 8, 6, 5]  # the default budget


def test_a_first_step_that_fails_halves_the_rate_until_one_passes():
    assert search(4, breaks_at=1.2)[:4] == [4, 2, 1, 1.5]


def test_the_search_stops_after_its_steps_with_the_knee_as_a_lower_bound():
    assert search(1, breaks_at=100, steps=3) == [1, 2, 4]
    assert knee.bracket([(1, True), (2, True), (4, True)]) == (4, None)


def test_the_knee_is_below_the_lowest_failing_rate_even_if_a_higher_one_passed_by_luck():
    assert knee.bracket([(1, True), (2, True), (4, False), (3, False), (3.5, True)]) == (2, 3)
    assert knee.next_multiplier([(1, True), (2, True), (4, False), (3, False)], 1) == 2.5


# -- judging a step --------------------------------------------------------------------------
WINDOW = (0.0, 300.0)


def flat(n: int) -> list[tuple[float, int]]:
    return [(t, n) for t in range(0, 301, 10)]


def test_a_backlog_grows_without_bound_when_its_last_third_doubles_its_first_and_is_large():
    climbing = [(float(t), t // 2) for t in range(0, 301, 10)]  # 0 .. 150 open
    assert knee.growing(climbing, WINDOW, min_backlog=50) is not None
    assert knee.growing(flat(400), WINDOW, min_backlog=50) is None  # large but steady
    small = [(float(t), t // 10) for t in range(0, 301, 10)]  # doubles, but 30 at most
    assert knee.growing(small, WINDOW, min_backlog=50) is None
    # it broke when it first passed the floor, not when the last third began
    assert knee.growing(climbing, WINDOW, min_backlog=50) == 110.0


def test_a_flow_breaks_on_its_threshold_counting_open_flows_at_their_age():
    done = [(float(t), 10.0, True) for t in range(100)]
    fine = knee.judge_flow("release_latency", done, flat(0), WINDOW, {"p95": 300})
    assert fine.passed and fine.p95_s == 10.0 and fine.count == 100
    stuck = done + [(float(50 + t), 900.0, False) for t in range(10)]  # open, 900 s old
    late = knee.judge_flow("release_latency", stuck, flat(0), WINDOW, {"p95": 300})
    assert not late.passed and late.open == 10 and late.broke_at == 50.0
    assert late.breaches == ["p95 900.0 s > 300 s"]


def test_the_first_flow_to_break_is_the_one_whose_breach_began_earliest():
    times = {
        "release_latency": [(200.0, 999.0, True)] * 20,  # breached at 200
        "label_latency": [(120.0, 999.0, False)] * 20,  # breached at 120: first
        "confirmation_latency": [(10.0, 1.0, True)] * 20,
    }
    flows = {
        m: knee.judge_flow(m, t, flat(0), WINDOW, knee.thresholds_of({})[m])
        for m, t in times.items()
    }
    step = knee.Step(3.0, flows)
    assert not step.passed
    assert [f.measure for f in step.broken] == ["label_latency", "release_latency"]


def test_thresholds_come_from_the_scenario_and_default_to_a_p95_per_flow():
    found = knee.thresholds_of({"release_latency": {"p50": 5, "max": 60}})
    assert found["release_latency"] == {"p50": 5, "max": 60}
    assert found["label_latency"] == {"p95": knee.DEFAULT_P95["label_latency"]}
    assert set(found) == set(FLOWS)


def test_the_report_draws_both_charts_and_names_the_first_broken_flow():
    facts = made_up_facts()
    page = html_knee.render(facts)
    assert "data-chart=knee-p95" in page and "data-chart=knee-backlog" in page
    assert "Sustainable: x2" in page and esc(f"{ROW}{FLOWS['label_latency']}") in page


def made_up_facts() -> dict:
    def step(m: float, p95: float, passed: bool) -> dict:
        flow = {"p95_s": p95, "max_backlog": int(p95), "passed": passed}
        return {
            "rate_multiplier": m,
            "peak_orders_per_virtual_hour": 200 * m,
            "peak_orders_per_wall_second": 6.7 * m,
            "passed": passed,
            "broken": [] if passed else [f"{ROW}{FLOWS['label_latency']}"],
            "flows": {"label_latency": flow},
            "load_average": [1.0, 1.0, 1.0],
        }

    return {
        "scenario": "made-up",
        "found": True,
        "stopped": "converged",
        "sustainable": {
            "rate_multiplier": 2,
            "orders_per_day": 3200,
            "peak_orders_per_virtual_hour": 400,
            "peak_orders_per_wall_second": 13.3,
        },
        "first_broken": {
            "rate_multiplier": 4,
            "flow": f"{ROW}{FLOWS['label_latency']}",
            "measure": "label_latency",
            "why": ["p95 900.0 s > 600 s"],
            "broke_at": 30000.0,
            "also_broken": [],
        },
        "steps": [step(1, 20, True), step(2, 60, True), step(4, 900, False)],
        "rule": {
            "factor": 120,
            "step_wall_s": 60,
            "drain_wall_s": 15,
            "window": [25200, 32400],
            "thresholds_virtual_s": {"label_latency": {"p95": 600}},
            "threshold_from": {"label_latency": "default"},
            "backlog_growth": 2,
            "min_backlog": 50,
            "precision": 1.1,
        },
        "wall_s": 300,
    }


# -- one short real search ---------------------------------------------------------------------
# tests/test_load.py's short day (30 orders in half an hour at 900x), with a release threshold
# no stack can meet: every step breaks on it, and the search halves the rate once.


@pytest.mark.e2e
@pytest.mark.long(24)
def test_a_short_real_search_writes_knee_json_and_names_the_first_broken_flow(tmp_path, capsys):
    from tests.test_load import IMPOSSIBLE
    from tests.test_load import SHORT_DAY as DAY

    scenario = tmp_path / "day.yaml"
    scenario.write_text(DAY + IMPOSSIBLE)
    reports = tmp_path / "reports"
    argv = ["load", str(scenario), "--find-knee", "--knee-steps", "2", "--knee-step", "5"]
    code = main([*argv, "--rate-multiplier", "2", "--report-dir", str(reports), "--quiet"])
    out = capsys.readouterr().out
    assert code == 1, out[-3000:]  # no rate was sustained
    facts = json.loads((reports / "knee.json").read_text())
    assert [s["rate_multiplier"] for s in facts["steps"]] == [2, 1]
    assert facts["sustainable"] is None and not facts["found"]
    assert facts["stopped"] == "--knee-steps"
    first = facts["first_broken"]
    assert first["flow"] == f"{ROW}{FLOWS['release_latency']}" and first["rate_multiplier"] == 1
    assert first["why"][0].startswith("p50 ")
    for step in facts["steps"]:
        assert not step["passed"] and step["orders_released"] > 0
        release = step["flows"]["release_latency"]
        assert release["count"] > 0 and release["p95_s"] is not None
        assert {"max_backlog", "breaches", "open_at_end"} <= set(release)
        assert Path(step["report_dir"], "locust.log").is_file()
    assert facts["rule"]["threshold_from"]["release_latency"] == "expect.slos"
    assert facts["rule"]["threshold_from"]["label_latency"] == "default"
    assert f"first to break at x1: {ROW}{FLOWS['release_latency']}" in out
    page = (reports / "report.html").read_text()
    assert "data-chart=knee-p95" in page and "data-chart=knee-backlog" in page


# -- a defect that loses work under load --------------------------------------------------------
WMS_503 = (
    "faults:\n"
    "  - {system: wms, route: POST /fulfilment-orders, kind: error, status: 503, rate: 0.3}\n"
)


@pytest.mark.e2e
@pytest.mark.long(24)
def test_a_defect_that_loses_work_under_load_fails_the_oracles(tmp_path, capsys, monkeypatch):
    """no-retry-wms drops a WMS create that failed: under load, with the WMS answering some
    creates 503, orders are lost, and the day's oracles say which."""
    from tests.test_load import SHORT_DAY as DAY

    monkeypatch.setenv("REFSTACK_DEFECTS", "no-retry-wms")
    scenario = tmp_path / "day.yaml"
    scenario.write_text(DAY + WMS_503)
    reports = tmp_path / "reports"
    code = main(["load", str(scenario), "--report-dir", str(reports), "--quiet"])
    out = capsys.readouterr().out
    assert code == 1, out[-3000:]
    verdict = json.loads((reports / "verdict.json").read_text())
    failed = {o["name"] for o in verdict["oracles"] if not o["passed"]}
    assert {"orders_terminal", "flows_completed"} <= failed, failed
    facts = json.loads((reports / "load.json").read_text())
    release = next(f for f in facts["flows"] if f["row"] == ROW + FLOWS["release_latency"])
    assert release["never"] > 0  # the lost orders never reached the WMS
