"""Why before what: the verdict says why a run went wrong in plain words before the oracles."""

from __future__ import annotations

import sys

from harness import oracles, scenario
from harness.diagnosis import exit_status, ignored_orders, refused_deliveries
from harness.report import digest, verdict_json
from harness.runner import RunConfig, run
from harness.world.integrator import play

DAY = """
name: refusing
seed: 4
demand: {orders: 4, open: "08:00", close: "09:00"}
horizon_days: 2
"""


def out(system, status, seq=1, error=None, fault=None, ref="SO-000001", event="order.released"):
    return {
        "system": system,
        "direction": "out",
        "status": status,
        "seq": seq,
        "wall_time": float(seq),
        "virtual_time": 100.0 * seq,
        "error": error,
        "fault": fault,
        "ref": ref,
        "event_type": event,
        "path": "http://stack/webhooks/erp",
    }


def test_refused_deliveries_are_counted_with_the_first_answer_and_probes_left_out():
    journals = {
        "erp": [
            out("erp", 501, 1, error='{"error": "not implemented"}'),
            out("erp", 501, 2),
            out("erp", 202, 3),
            out("erp", 401, 4, fault="forged"),
        ],
        "wms": [out("wms", 0, 5, error="ServerDisconnectedError")],
    }
    said = refused_deliveries(journals)
    assert said is not None
    assert "3 of 4 webhook deliveries" in said
    assert "501 x2" in said and "no answer x1" in said
    assert 'answered 501: \'{"error": "not implemented"}\'' in said
    assert refused_deliveries({"erp": [out("erp", 200)]}) is None


def test_deliveries_that_failed_while_the_harness_had_the_stack_down_are_not_held_against_it():
    """A scenario's restart takes the stack down on purpose: the vendors' webhooks fail then
    and are retried; only a delivery it refused while it was up is the stack's doing."""
    journals = {
        "wms": [
            out("wms", 0, 1, error="ClientConnectorError"),  # at 100 s, while down
            out("wms", 0, 2, error="ClientConnectorError"),  # at 200 s, while down
            out("wms", 202, 3),  # retried once it was up again
            out("wms", 0, 5),  # at 500 s: down again, and it never came back
        ],
    }
    assert refused_deliveries(journals, [(100.0, 300.0), (450.0, float("inf"))]) is None
    said = refused_deliveries(journals, [(150.0, 300.0)])
    assert said is not None and "2 of 4" in said and "answered nothing" in said


def test_a_killed_or_exited_stack_is_named_with_its_code_or_signal():
    assert exit_status(None) is None
    assert "code 3" in (exit_status(3) or "")
    assert "SIGKILL" in (exit_status(-9) or "")


def test_orders_acknowledged_and_never_acted_on_point_at_old_state():
    played = play(scenario.parse("seed: 2\ndemand: {orders: 5}"))
    snaps = {s: m.snapshot() for s, m in played.models.items()}
    view = oracles.SystemsView(snaps)
    released = [o["id"] for o in view.released_orders()]
    journals = {"erp": [out("erp", 202, i, ref=ref) for i, ref in enumerate(released)]}
    said = ignored_orders(view, journals)
    assert said is not None and f"{len(released)} released orders" in said
    assert "restart or clean it" in said
    journals["wms"] = [{"direction": "in", "ref": ref} for ref in released]
    assert ignored_orders(view, journals) is None


def test_the_outcome_digest_is_the_same_for_the_same_business_outcome():
    text = "seed: 9\ndemand: {orders: 20}\nwarehouse: {short_pick_rate: 0.2}"
    first, second = (play(scenario.parse(text)) for _ in range(2))
    views = [
        oracles.SystemsView({s: m.snapshot() for s, m in p.models.items()}) for p in (first, second)
    ]
    assert digest.outcome(views[0]) == digest.outcome(views[1])
    order = next(iter(views[1].erp_orders.values()))
    order["status"] = "released"
    assert digest.outcome(views[0]) != digest.outcome(views[1])


async def test_a_stack_refusing_every_webhook_is_diagnosed_in_the_verdict(tmp_path):
    refusing = tmp_path / "refusing.py"
    refusing.write_text(
        "import os, uvicorn\n"
        "from starlette.applications import Starlette\n"
        "from starlette.responses import JSONResponse\n"
        "from starlette.routing import Route\n"
        "async def no(request):\n"
        "    return JSONResponse({'error': 'no route for webhooks'}, status_code=501)\n"
        "async def health(request):\n"
        "    return JSONResponse({'ok': True})\n"
        "app = Starlette(routes=[Route('/_stack/health', health),\n"
        "                        Route('/webhooks/{system}', no, methods=['POST'])])\n"
        "uvicorn.run(app, port=int(os.environ['TWINYARD_STACK_PORT']), log_level='error')\n"
    )
    outcome = await run(
        RunConfig(
            scenario=scenario.parse(DAY),
            stack_cmd=f"{sys.executable} {refusing}",
            report_dir=tmp_path / "r",
        )
    )
    assert not outcome.passed
    (why,) = [d for d in outcome.diagnosis if "webhook deliveries" in d]
    assert "501" in why and "no route for webhooks" in why
    written = verdict_json.verdict(outcome)
    assert written["diagnosis"] == outcome.diagnosis
    assert written["run"]["stack"].endswith("refusing.py")
    assert len(written["run"]["outcome_digest"]) == 16
