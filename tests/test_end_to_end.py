"""A day through the reference stack, run as its own process, judged by every oracle."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import uvloop

from harness import oracles, scenario
from harness.cli import main
from harness.runner import RunConfig, run
from harness.world.integrator import play
from tests.support import four_free_ports

pytestmark = pytest.mark.e2e

SMALL_DAY = """
name: small_day
seed: 7
demand: {orders: 60}
warehouse: {short_pick_rate: 0.15}
"""


def _run(tmp_path, text=SMALL_DAY, **kwargs):
    config = RunConfig(scenario=scenario.parse(text), report_dir=tmp_path, **kwargs)
    return uvloop.run(run(config))


# Cancellations, forged and garbled ERP webhooks and a short WMS outage (answered with
# Retry-After) too, so that every oracle has something to judge.
EVERY_ORACLE_DAY = """
name: every_oracle_day
seed: 7
demand: {orders: 60, cancel_rate: 0.1}
catalogue: {skus: 12, initial_stock: 40}
warehouse: {short_pick_rate: 0.15}
stock: {damage_rate: 0.01, replenishment: {reorder_at: 0.5, lead_time_hours: 4}}
returns: {return_rate: 0.2, return_after: {min_minutes: 60, mean_minutes: 240, max_minutes: 720}}
master_data: {case_share: 0.2, new_items_per_day: 2, changes_per_day: 2}
sites: {others: [{name: DC2, share: 0.4, initial_stock: 0.2}]}
clock: {pace: 3000}
faults:
  - {system: erp, kind: forged, rate: 0.2}
  - {system: wms, kind: outage, at: "10:00", for: 1800}
  - {system: erp, kind: garbled, form: no_id, rate: 0.1}
"""


def test_a_day_through_the_reference_stack_passes_every_oracle(tmp_path):
    outcome = _run(tmp_path, EVERY_ORACLE_DAY)
    failed = {r.name: r.findings[:3] for r in outcome.results if not r.passed}
    assert not failed, f"{failed}\nnotes: {outcome.notes}\nstack log: {outcome.stack_log}"
    assert {r.name for r in outcome.results} == set(oracles.REGISTRY)
    assert [r.name for r in outcome.results if r.checked == 0] == []
    assert outcome.counts["released"] == 60 + 2 * 2  # and two orders behind each new SKU
    assert (
        outcome.counts["shipped"] > 40 and outcome.counts["delivered"] == outcome.counts["shipped"]
    )


def test_a_stack_stopped_mid_run_fails_and_the_verdict_names_the_oracle(tmp_path):
    def kill_stack_after_20_orders(world, process):
        if world.counts["released"] >= 20 and process.exited() is None:
            process.proc.kill()
            process.proc.wait()

    outcome = _run(tmp_path, on_step=kill_stack_after_20_orders)
    assert not outcome.passed
    failing = {r.name: r for r in outcome.results if not r.passed}
    assert "orders_terminal" in failing
    stuck = {f.entity for f in failing["orders_terminal"].findings}
    assert "SO-000060" in stuck  # released after the stack died: never fulfilled
    assert "the stack stopped answering during the run" in outcome.notes


def test_port_already_taken_is_one_line_exit_2(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["run", "--port-base", str(port), "--report-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"twinyard: error: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_unreachable_stack_url_is_one_line_exit_2(tmp_path, capsys):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    base = four_free_ports()
    code = main(
        [
            "run",
            "--stack-url",
            f"http://127.0.0.1:{port}",
            "--port-base",
            str(base),
            "--report-dir",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"the stack at http://127.0.0.1:{port} was not ready" in err


def _world_outcomes(view: oracles.SystemsView) -> dict[str, tuple]:
    """Per ERP order: how it ended, what was picked and short, when it shipped and arrived.

    A cancelled order is just "cancelled": whether its WMS order existed yet is the stack's
    timing, not the world's decision."""
    result = {}
    for order in view.erp_orders.values():
        if order["status"] == "cancelled":
            result[order["id"]] = ("cancelled",)
            continue
        fos = view.wms_by_ref.get(order["id"], [])
        fo = fos[0] if fos else None
        picks = (
            tuple((x["line"], x["picked_qty"], x["short_qty"]) for x in fo["lines"]) if fo else ()
        )
        shipped = [h["at"] for h in fo["status_history"] if h["status"] == "shipped"] if fo else []
        delivered = [
            h["occurred_at"] for h in order["tracking_history"] if h["status"] == "delivered"
        ]
        result[order["id"]] = (order["status"], picks, shipped[:1], delivered[:1])
    return result


# Ten-minute lockstep windows: many events per step, so the stack's own timing decides the
# order in which it creates orders in the WMS. Only keyed randomness keeps the world the same.
WINDOWED_DAY = SMALL_DAY + "clock: {resolution_s: 600}\n"


def test_same_seed_same_world_however_the_stack_times_its_calls(tmp_path):
    steady = _run(tmp_path / "steady", WINDOWED_DAY)
    jittery = _run(
        tmp_path / "jittery",
        WINDOWED_DAY,
        stack_env={"REFSTACK_CALL_JITTER_MS": "15", "REFSTACK_WORKERS": "3"},
    )
    assert steady.passed and jittery.passed
    steady_world = _world_outcomes(oracles.SystemsView(steady.snapshots))
    assert steady_world == _world_outcomes(oracles.SystemsView(jittery.snapshots))
    assert any(
        len(outcome) > 1 and any(short for _, _, short in outcome[1])
        for outcome in steady_world.values()
    )  # short picks were exercised


def test_the_happy_day_over_http_is_the_day_the_in_process_integrator_plays(tmp_path):
    """The in-process integrator (benchmarks, world tests) stands in faithfully for a stack."""
    day = scenario.load(Path(__file__).resolve().parent.parent / "scenarios" / "happy_day.yaml")
    over_http = uvloop.run(run(RunConfig(scenario=day, report_dir=tmp_path)))
    in_process = play(day)
    assert over_http.passed and not in_process.failed_oracles()
    assert _world_outcomes(oracles.SystemsView(over_http.snapshots)) == _world_outcomes(
        in_process.view()
    )


def test_the_command_exits_1_when_an_oracle_fails_and_0_when_all_pass(tmp_path, monkeypatch):
    day = tmp_path / "day.yaml"
    day.write_text("name: tiny\nseed: 3\ndemand: {orders: 15}\n")
    assert main(["run", str(day), "--quiet", "--report-dir", str(tmp_path / "clean")]) == 0
    monkeypatch.setenv("REFSTACK_DEFECTS", "drop-correlation")  # the launched stack inherits it
    assert main(["run", str(day), "--quiet", "--report-dir", str(tmp_path / "broken")]) == 1


PROBED_DAY = """
name: probed_day
seed: 9
demand: {orders: 40, cancel_rate: 0.1}
warehouse: {short_pick_rate: 0.1}
stock: {damage_rate: 0.01, shrink_rate: 0.01, cycle_count: {share_per_day: 1.0}}
"""
# Forged copies and replays (an hour later, past the 300 s signature window) of half of every
# system's events: a security probe that a correct stack must answer without acting on.
PROBES = """
faults:
  - {system: erp, kind: forged, rate: 0.5}
  - {system: wms, kind: forged, rate: 0.5}
  - {system: tms, kind: replayed, delay_s: 3600, rate: 0.5}
  - {system: carrier, kind: replayed, delay_s: 3600, rate: 0.5}
  - {system: erp, kind: replayed, delay_s: 3600, rate: 0.5, at: 40000}
"""


def _business_state(view: oracles.SystemsView) -> dict[str, object]:
    """Everything a forged or replayed event could change: per order its outcome, WMS orders,
    goods issues, labels, accruals and tracking; stock in both books."""
    labels = view.labels_by_order()
    return {
        "orders": _world_outcomes(view),
        "wms_orders": {ref: len(fos) for ref, fos in view.wms_by_ref.items()},
        "goods_issues": {
            ref: [gi["lines"] for gi in issues]
            for ref, issues in view.goods_issues_by_order.items()
        },
        "labels": {ref: [label["ship_to"] for label in found] for ref, found in labels.items()},
        "accruals": {ref: len(found) for ref, found in view.accruals_by_shipment.items()},
        "tracking": {o["id"]: o["tracking_history"] for o in view.erp_orders.values()},
        "stock": (view.erp_stock, view.wms_stock),
    }


def test_forged_and_replayed_events_change_no_simulator_state_through_a_correct_stack(tmp_path):
    plain = _run(tmp_path / "plain", PROBED_DAY)
    probed = _run(tmp_path / "probed", PROBED_DAY + PROBES)
    assert plain.passed and probed.passed
    assert probed.counts["faults_applied"] > 20  # the probes were sent
    expected = _business_state(oracles.SystemsView(plain.snapshots))
    assert _business_state(oracles.SystemsView(probed.snapshots)) == expected
    # and the comparison can fail: a stack that skips the check ships to the attacker
    open_door = _run(
        tmp_path / "open", PROBED_DAY + PROBES, stack_env={"REFSTACK_DEFECTS": "skip-signature"}
    )
    changed = _business_state(oracles.SystemsView(open_door.snapshots))
    assert changed["labels"] != expected["labels"] and changed["stock"] != expected["stock"]


def test_version_and_a_ready_timeout_for_a_stack_that_never_answers(tmp_path, capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"twinyard {version('twinyard')}"
    silent = f"{sys.executable} -c 'import time; time.sleep(30)'"
    code = main(
        ["run", "--stack-cmd", silent, "--ready-timeout", "0.5", "--report-dir", str(tmp_path)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("twinyard: error: the stack at http://127.0.0.1:")
    assert "was not ready after 0 s" in err or "was not ready after 1 s" in err
    assert not (tmp_path / "verdict.json").exists()
