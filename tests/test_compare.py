"""``twinyard compare``: outcomes by business key, differences beyond tolerances, noise and
expected differences told apart, and the command end to end against real stacks."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.compare import spec as specs
from harness.compare.diff import Noise, classify, differences
from harness.compare.outcome import business_outcome
from harness.oracles.view import SystemsView
from tests.support import snapshots_of

ROOT = Path(__file__).resolve().parent.parent
STACK = f"{sys.executable} -m reference_stack"
DAY = """
seed: 5
demand: {orders: 30, cancel_rate: 0.2}
warehouse: {short_pick_rate: 0.2}
carrier: {exception_rate: 0.3}
"""


@pytest.fixture(scope="module")
def clean() -> dict[str, dict[str, Any]]:
    return snapshots_of(DAY)


def outcome(snaps: dict[str, Any], dead: list[dict[str, Any]] | None = None) -> Any:
    return business_outcome(SystemsView(snaps, None, dead))


def renumbered(snaps: dict[str, Any]) -> dict[str, Any]:
    """The same business with every arrival-order id the simulators hand out changed."""
    text = json.dumps(snaps)
    for prefix in ("GI-", "FO-", "SH-", "LB-", "PC", "BO-", "FA-"):
        text = text.replace(f'"{prefix}0', f'"{prefix}9')
    return json.loads(text)


def test_ids_handed_out_in_arrival_order_are_no_difference(clean):
    spec = specs.CompareSpec()
    assert differences(outcome(clean), outcome(renumbered(clean)), spec) == []


def test_a_changed_goods_issue_qty_is_a_difference_naming_the_order(clean):
    changed = copy.deepcopy(clean)
    gi = changed["erp"]["goods_issues"][0]
    gi["lines"][0]["qty"] += 1
    [found] = differences(outcome(clean), outcome(changed), specs.CompareSpec())
    assert (found.category, found.key, found.field) == ("goods_issue", gi["order_id"], "lines")
    assert found.order == gi["order_id"] and found.verdict == "unexplained"


def test_a_missing_record_shows_on_the_side_that_has_it(clean):
    changed = copy.deepcopy(clean)
    gone = changed["erp"]["goods_issues"].pop()
    found = differences(outcome(clean), outcome(changed), specs.CompareSpec())
    assert [(d.category, d.key, d.field, d.a, d.b) for d in found] == [
        ("goods_issue", gone["order_id"], "present", True, False)
    ]


def _shift(iso: str, seconds: int) -> str:
    from datetime import datetime, timedelta

    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_instants_and_amounts_are_the_same_within_their_tolerances(clean):
    changed = copy.deepcopy(clean)
    tracked = next(o for o in changed["erp"]["orders"] if o.get("tracking_history"))
    scan = tracked["tracking_history"][0]
    scan["occurred_at"] = _shift(scan["occurred_at"], 120)
    scan["posted_at"] = _shift(scan["posted_at"], 3600)  # when the stack posted: not business
    accrual = changed["erp"]["accruals"][0]
    accrual["amount"]["amount"] = str(float(accrual["amount"]["amount"]) + 0.01)
    loose = specs.CompareSpec(tolerances=specs.Tolerances(time_s=300, amount=0.02))
    assert differences(outcome(clean), outcome(changed), loose) == []
    strict = specs.CompareSpec(tolerances=specs.Tolerances(time_s=60, amount=0))
    found = {(d.category, d.field) for d in differences(outcome(clean), outcome(changed), strict)}
    assert found == {("tracking", "occurred_at"), ("accrual", "amounts")}


def test_noise_and_expected_differences_are_told_apart_from_real_ones(clean):
    changed = copy.deepcopy(clean)
    shipments = sorted(changed["tms"]["shipments"].values(), key=lambda s: s["service"] == "ground")
    shipments[0]["service"], shipments[1]["carrier"] = "ground", "otherco"  # [0] was not ground
    changed["erp"]["goods_issues"][0]["lines"][0]["qty"] += 1
    spec = specs.CompareSpec(
        expected=(
            specs.Expected(category="tms_shipment", field="service", b="ground", reason="declined"),
        )
    )
    found = differences(outcome(clean), outcome(changed), spec)
    noise = Noise(frozenset({("tms_shipment", shipments[1]["order_ref"], "carrier")}))
    verdicts = {(d.category, d.field): (d.verdict, d.reason) for d in classify(found, spec, noise)}
    assert verdicts == {
        ("tms_shipment", "service"): ("expected", "declined"),
        ("tms_shipment", "carrier"): ("noise", "A differs from itself here too"),
        ("goods_issue", "lines"): ("unexplained", ""),
    }


def _drop_first_milestone(snaps: dict[str, Any], count: int) -> dict[str, Any]:
    """A copy whose first ``count`` tracked orders lost their first milestone in the ERP."""
    changed = copy.deepcopy(snaps)
    tracked = [o for o in changed["erp"]["orders"] if o.get("tracking_history")]
    for order in tracked[:count]:
        order["tracking_history"].pop(0)
    return changed


def test_a_field_a_differs_from_itself_in_explains_as_many_differences_as_it_shows(clean):
    spec = specs.CompareSpec()
    a = outcome(clean)
    # A's second play lost one milestone; B lost one on another order: noise in that field
    a2 = outcome(_drop_first_milestone(clean, 1))
    tracked = [o for o in clean["erp"]["orders"] if o.get("tracking_history")]
    other = copy.deepcopy(clean)
    next(o for o in other["erp"]["orders"] if o["id"] == tracked[5]["id"])["tracking_history"].pop(
        0
    )
    noise = Noise.learnt(a, a2, spec)
    classified = classify(differences(a, outcome(other), spec), spec, noise)
    assert {d.verdict for d in classified} == {"noise"}
    assert all("A differs from itself in tracking" in d.reason for d in classified)
    # ... but a B that loses milestones on many orders is more than A's unsteadiness
    many = classify(differences(a, outcome(_drop_first_milestone(clean, 8)), spec), spec, noise)
    assert {d.verdict for d in many} == {"unexplained", "noise"}
    assert sum(d.verdict == "unexplained" for d in many) > 0


def test_b_doing_what_a_did_in_its_second_play_is_noise(clean):
    spec = specs.CompareSpec()
    a, a2 = outcome(clean), outcome(_drop_first_milestone(clean, 1))
    # A2 and B did the same; the spot differs A to A2 as well, but the rule tried first is
    # the spot: a Noise that only knows A2's outcome still explains it
    noise = Noise(second=a2)
    [*classified] = classify(differences(a, a2, spec), spec, noise)
    assert classified and {d.reason for d in classified} == {"B does what A did in its second play"}


def test_ignored_fields_are_not_compared(clean):
    changed = copy.deepcopy(clean)
    next(iter(changed["carrier"]["labels"].values()))["cost"]["amount"] = "99.00"
    assert (
        differences(outcome(clean), outcome(changed), specs.CompareSpec(ignore=("label.cost",)))
        == []
    )
    assert (
        differences(outcome(clean), outcome(changed), specs.CompareSpec(ignore=("label.*",))) == []
    )


def test_dead_letters_are_compared_by_order_only_when_both_stacks_list_them(clean):
    order = clean["erp"]["orders"][0]["id"]
    letters = [{"id": 1, "entity": order}]
    [found] = differences(outcome(clean, []), outcome(clean, letters), specs.CompareSpec())
    assert (found.category, found.key, found.field) == ("dead_letter", order, "present")
    assert differences(outcome(clean, None), outcome(clean, letters), specs.CompareSpec()) == []


def test_a_compare_file_names_the_file_line_and_field_of_a_mistake(tmp_path):
    bad = tmp_path / "compare.yaml"
    bad.write_text("ignore: [label.cost]\nexpected:\n  - {category: parcels, reason: x}\n")
    with pytest.raises(specs.SpecError, match=r"compare.yaml:3: expected.0.category: .*parcels"):
        specs.load(bad)
    bad.write_text("tolerances: {time: 5}\n")
    with pytest.raises(specs.SpecError, match=r"compare.yaml:1: tolerances.time: unknown field"):
        specs.load(bad)
    good = tmp_path / "ok.yaml"
    good.write_text("ignore: ['service_level.*']\ntolerances: {time_s: 5}\n")
    assert specs.load(good).tolerances.time_s == 5


# -- the command, against real stacks --------------------------------------------------------
def compare(tmp_path: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "compare", *args, "--report-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    result = json.loads((tmp_path / "compare.json").read_text()) if done.returncode < 2 else {}
    return done.returncode, done.stdout + done.stderr, result


def test_a_stack_against_itself_is_the_same_and_a_to_a_noise_is_learnt(tmp_path):
    code, out, result = compare(
        tmp_path,
        "scenarios/incidents/label_response_lost.yaml",
        "--set",
        "demand.orders=20",
        "--a",
        STACK,
        "--b",
        STACK,
        "--noise",
    )
    assert code == 0, out
    assert "20 of 20 orders identical" in out and "verdict: SAME" in out
    [seed] = result["seeds"]
    assert set(seed["plays"]) == {"a", "b", "a2"} and seed["orders_differing"] == []
    junit = (tmp_path / "junit.xml").read_text()
    assert 'failures="0"' in junit and 'name="goods_issue"' in junit


def test_a_defect_shows_as_differences_on_the_orders_it_touched(tmp_path):
    code, out, result = compare(
        tmp_path,
        "scenarios/incidents/short_pick_backorder.yaml",
        "--a",
        STACK,
        "--b",
        f"env REFSTACK_DEFECTS=ordered-qty {STACK}",
    )
    assert code == 1, out
    [seed] = result["seeds"]
    differing = seed["orders_differing"]
    assert differing and "verdict: DIFFERENT" in out
    categories = {d["category"] for d in seed["differences"] if d["verdict"] == "unexplained"}
    assert {"goods_issue", "backorder"} <= categories
    # the defect posts the ordered qty: only orders picked short can differ
    state = json.loads((tmp_path / seed["plays"]["a"]["report_dir"] / "state.json").read_text())
    picked_short = {
        fo["order_ref"]
        for fo in state["wms"]["orders"].values()
        if fo["status"] == "shipped" and any(line["short_qty"] for line in fo["lines"])
    }
    issued = {d["key"] for d in seed["differences"] if d["category"] == "goods_issue"}
    assert issued and issued <= picked_short and issued <= set(differing)
    assert seed["plays"]["b"]["failing_oracles"]  # the oracles see it too
    junit = (tmp_path / "junit.xml").read_text()
    assert 'name="goods_issue"' in junit and "unexplained difference" in junit


def test_a_side_that_cannot_start_is_exit_2_with_its_reason(tmp_path):
    code, out, _ = compare(
        tmp_path,
        "scenarios/incidents/label_response_lost.yaml",
        "--set",
        "demand.orders=5",
        "--a",
        STACK,
        "--b",
        f"{sys.executable} -c 'raise SystemExit(3)'",
    )
    assert code == 2, out
    assert "B: " in out and "not compared" in out
