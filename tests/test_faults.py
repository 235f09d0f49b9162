"""Fault injection: each kind applied as declared, journalled, steerable live, from scenarios."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

import simulators
from harness import scenario as scenarios
from simulators.common.clock import ManualClock
from simulators.common.faults import Fault
from simulators.common.simulator import Simulator

NL = {
    "name": "Ada Lovelace",
    "street": "Keizersgracht 1",
    "city": "Amsterdam",
    "postal_code": "1015 CJ",
    "country": "NL",
}


def label(ref: str = "SH-000001") -> dict[str, Any]:
    return {
        "shipment_ref": ref,
        "service": "ground",
        "ship_to": NL,
        "packages": [{"weight_kg": 2.5, "contents": [{"sku": "A-100", "qty": 3}]}],
    }


def carrier(*faults: dict[str, Any], seed: int = 7) -> tuple[Simulator, ManualClock, TestClient]:
    clock = ManualClock()
    sim = simulators.build("carrier", clock)
    sim.faults.seed = seed
    for f in faults:
        sim.faults.add(Fault.model_validate({"system": "carrier", **f}))
    return sim, clock, TestClient(sim.app)


def faults_in_journal(sim: Simulator) -> list[str | None]:
    return [e.fault for e in sim.journal.entries]


# -- the model ---------------------------------------------------------------------------


def test_fault_fields_are_validated():
    assert Fault.model_validate({"system": "erp", "kind": "error", "at": "06:30"}).at == 23_400
    assert Fault.model_validate({"system": "erp", "kind": "outage", "for": 60}).until == 60
    bad = [
        {"system": "erp", "kind": "latency"},  # no ms
        {"system": "erp", "kind": "error", "ms": 10},  # ms is latency's
        {"system": "erp", "kind": "error", "status": 404},  # 4xx refusals: 400, 409, 422
        {"system": "erp", "kind": "error", "route": "/_sim/state"},
        {"system": "erp", "kind": "error", "route": "/webhooks"},
        {"system": "erp", "kind": "error", "route": "FETCH /orders"},
        {"system": "erp", "kind": "error", "rate": 1.5},
        {"system": "erp", "kind": "error", "at": "25:00"},
        {"system": "erp", "kind": "error", "colour": "red"},
        {"system": "mes", "kind": "error"},
        {"system": "erp", "kind": "rate_limit"},  # no per_second
        {"system": "erp", "kind": "latency", "ms": {"min_ms": 50, "max_ms": 10}},
        {"system": "erp", "kind": "error", "status": 504},  # a 504 is a lost answer
        {"system": "erp", "kind": "lost_response", "status": 409},  # work done: never a refusal
        {"system": "erp", "kind": "lost_response", "status": 503},
        {"system": "erp", "kind": "error", "status": 503, "remembered": True},  # no 5xx kept
        {"system": "erp", "kind": "error", "remembered": True},  # the default is a 503
        {"system": "erp", "kind": "lost_response", "remembered": True},
    ]
    for data in bad:
        with pytest.raises(ValidationError):
            Fault.model_validate(data)


def test_route_matches_by_prefix_and_method():
    f = Fault.model_validate({"system": "carrier", "kind": "error", "route": "post /labels"})
    assert f.route == "POST /labels"
    assert f.applies_to("POST", "/labels") and f.applies_to("POST", "/labels/LB-1/void")
    assert not f.applies_to("GET", "/labels/LB-1")
    assert not f.applies_to("POST", "/labelsx")
    every = Fault.model_validate({"system": "carrier", "kind": "error"})
    assert every.applies_to("GET", "/tracking/PC1")
    assert not every.applies_to("GET", "/_sim/state") and not every.applies_to("GET", "/webhooks")


# -- each kind ---------------------------------------------------------------------------


def test_error_answers_a_vendor_body_and_runs_nothing():
    sim, _, http = carrier({"kind": "error", "status": 502, "route": "POST /labels"})
    r = http.post("/labels", json=label())
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "bad_gateway"
    assert sim.model.snapshot()["labels"] == {}
    assert http.get("/tracking/PC000000001").status_code == 404  # other routes untouched
    assert faults_in_journal(sim) == ["error:502", None]
    assert http.get("/_sim/state").status_code == 200  # control plane never faulted


def test_a_refusal_fault_answers_the_4xx_a_vendor_would_and_keeps_refusing_the_same_key():
    sim, _, http = carrier({"kind": "error", "status": 422, "route": "POST /labels", "for": 60})
    key = {"idempotency-key": "label-SH-000001"}
    first = http.post("/labels", json=label(), headers=key)
    assert first.status_code == 422
    assert first.json()["error"]["code"] == "validation_failed"
    assert sim.model.snapshot()["labels"] == {}  # refused: nothing ran
    again = http.post("/labels", json=label(), headers=key)
    assert again.status_code == 422 and "idempotent-replayed" not in again.headers
    assert faults_in_journal(sim) == ["error:422", "error:422"]


def test_a_refusal_is_not_a_failure_on_the_coverage_map():
    from harness.coverage.exercised import response_kinds

    assert response_kinds("error:503") == {"error"}
    assert response_kinds("error:422") == set()
    assert response_kinds("latency:20ms+error:409") == set()
    assert response_kinds("latency:20ms+error:502") == {"error"}


def test_rate_half_hits_about_half_and_is_deterministic():
    def run() -> list[str | None]:
        sim, _, http = carrier({"kind": "error", "rate": 0.5})
        for i in range(200):
            http.post("/labels", json=label(f"SH-{i:06d}"))
        assert sum(sim.faults.applied) == sum(1 for f in faults_in_journal(sim) if f)
        return faults_in_journal(sim)

    first, second = run(), run()
    assert first == second
    hits = sum(1 for f in first if f == "error:503")
    assert 80 <= hits <= 120
    other_seed = carrier({"kind": "error", "rate": 0.5}, seed=8)
    sim, _, http = other_seed
    for i in range(200):
        http.post("/labels", json=label(f"SH-{i:06d}"))
    assert faults_in_journal(sim) != first


def test_a_retry_of_the_same_request_gets_a_fresh_draw():
    _, _, http = carrier({"kind": "error", "rate": 0.5})
    statuses = {http.post("/labels", json=label()).status_code for _ in range(30)}
    assert statuses == {201, 503}


def test_window_before_inside_after():
    _, clock, http = carrier({"kind": "error", "at": "06:00", "for": 600})
    clock.set(6 * 3600 - 1)
    assert http.get("/tracking/X").status_code == 404
    clock.set(6 * 3600)
    assert http.get("/tracking/X").status_code == 503
    clock.set(6 * 3600 + 599)
    assert http.get("/tracking/X").status_code == 503
    clock.set(6 * 3600 + 600)
    assert http.get("/tracking/X").status_code == 404


def test_match_filters_on_the_body():
    sim, _, http = carrier({"kind": "error", "match": "SH-000042"})
    assert http.post("/labels", json=label("SH-000001")).status_code == 201
    assert http.post("/labels", json=label("SH-000042")).status_code == 503
    assert faults_in_journal(sim) == [None, "error:503"]


def test_rate_limit_empties_its_bucket_then_recovers():
    sim, clock, http = carrier({"kind": "rate_limit", "per_second": 0.5, "burst": 2})
    assert [http.get("/tracking/X").status_code for _ in range(2)] == [404, 404]
    r = http.get("/tracking/X")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "2"
    assert r.json()["error"]["code"] == "rate_limited"
    clock.advance(1)
    assert http.get("/tracking/X").headers["retry-after"] == "1"
    clock.advance(1)
    assert http.get("/tracking/X").status_code == 404
    assert faults_in_journal(sim) == [None, None, "rate_limit", "rate_limit", None]


def test_retry_after_is_in_wall_seconds_at_the_lockstep_pace():
    """A stack's retry timer runs on the wall clock: 1,800 virtual s at pace 300 is 6 s."""
    from harness.clock import LockstepClock

    clock = LockstepClock(ManualClock().epoch, pace=300.0)
    sim = simulators.build("carrier", clock)
    sim.faults.add(Fault.model_validate({"system": "carrier", "kind": "outage", "for": 1800}))
    with TestClient(sim.app) as http:
        r = http.post("/labels", json=label())
    assert r.status_code == 503
    assert r.headers["retry-after"] == "6"
    assert r.json()["error"]["details"]["retry_after_s"] == 6
    entry = sim.journal.entries[-1]
    assert (entry.error, entry.retry_after) == ("service_unavailable", 6.0)


def test_retry_after_may_be_an_http_date_and_the_journal_reads_its_wait():
    import email.utils
    import time

    sim, clock, http = carrier(
        {"kind": "outage", "at": 100, "for": 50, "retry_after_as": "http-date"}
    )
    clock.set(120)
    before = time.time()
    r = http.post("/labels", json=label())
    assert r.status_code == 503
    when = email.utils.parsedate_to_datetime(r.headers["retry-after"]).timestamp()
    assert before + 30 <= when <= time.time() + 31  # never asks for less than the window's rest
    entry = sim.journal.entries[-1]
    assert 29 <= entry.retry_after <= 31  # the wait the date asks for, as a client reads it
    with pytest.raises(ValueError, match="retry_after_as applies to kind rate_limit or outage"):
        Fault.model_validate({"system": "carrier", "kind": "error", "retry_after_as": "seconds"})


def test_outage_only_inside_its_window():
    sim, clock, http = carrier({"kind": "outage", "at": 100, "for": 50})
    assert http.post("/labels", json=label()).status_code == 201
    clock.set(120)
    r = http.post("/labels", json=label("SH-000002"))
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "service_unavailable"
    assert r.headers["retry-after"] == "30"
    clock.set(150)
    assert http.post("/labels", json=label("SH-000003")).status_code == 201
    assert len(sim.model.snapshot()["labels"]) == 2
    assert faults_in_journal(sim) == [None, "outage", None]


def test_malformed_body_is_not_json_and_nothing_is_committed():
    sim, _, http = carrier({"kind": "malformed", "route": "/labels"})
    r = http.post("/labels", json=label())
    assert r.status_code == 201
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(r.content)
    assert sim.model.snapshot()["labels"] == {}
    assert faults_in_journal(sim) == ["malformed"]


def test_lost_response_commits_the_write_but_answers_504():
    sim, _, http = carrier({"kind": "lost_response", "route": "POST /labels", "rate": 1})
    headers = {"Idempotency-Key": "k-1", "X-Correlation-Id": "c-1"}
    r = http.post("/labels", json=label(), headers=headers)
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "gateway_timeout"
    assert "LB-000001" not in r.text
    assert list(sim.model.snapshot()["labels"]) == ["LB-000001"]  # the vendor committed it
    entry = sim.journal.entries[-1]
    assert (entry.status, entry.fault, entry.correlation_id) == (504, "lost_response", "c-1")
    assert entry.ref == "SH-000001"
    sim.faults.clear()  # the retry with the same key replays the committed answer
    again = http.post("/labels", json=label(), headers=headers)
    assert again.status_code == 201 and again.json()["id"] == "LB-000001"
    assert again.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize(("status", "code"), [(500, "internal_error"), (502, "bad_gateway")])
def test_a_lost_response_may_be_answered_as_a_crash_after_the_commit(status: int, code: str):
    """A backend that committed and then crashed answers 500, a proxy that lost it 502: the
    client must not read either as "not done" (its retry under the key gets the real answer)."""
    fault = {"kind": "lost_response", "route": "POST /labels", "status": status}
    sim, _, http = carrier(fault)
    headers = {"Idempotency-Key": "k-1"}
    r = http.post("/labels", json=label(), headers=headers)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code)
    assert list(sim.model.snapshot()["labels"]) == ["LB-000001"]  # the vendor committed it
    assert (sim.journal.entries[-1].status, sim.journal.entries[-1].fault) == (
        status,
        "lost_response",
    )
    sim.faults.clear()
    again = http.post("/labels", json=label(), headers=headers)
    assert again.status_code == 201 and again.json()["id"] == "LB-000001"


def test_a_remembered_refusal_is_kept_under_its_key_after_the_window():
    """The vendor's application refused (a rule it had for an hour): the same key gets the
    refusal back after the rule is lifted, only a new key is judged afresh; and a key that
    was answered before the window keeps its answer."""
    fault = {"kind": "error", "status": 422, "remembered": True, "route": "POST /labels"}
    sim, clock, http = carrier({**fault, "at": 100, "for": 60})
    before = http.post("/labels", json=label("SH-000001"), headers={"Idempotency-Key": "k-0"})
    assert before.status_code == 201
    clock.advance(100)
    refused = http.post("/labels", json=label("SH-000002"), headers={"Idempotency-Key": "k-1"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "validation_failed")
    again = http.post("/labels", json=label("SH-000001"), headers={"Idempotency-Key": "k-0"})
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    clock.advance(60)  # the rule is lifted
    same_key = http.post("/labels", json=label("SH-000002"), headers={"Idempotency-Key": "k-1"})
    assert same_key.status_code == 422 and same_key.headers["idempotent-replayed"] == "true"
    new_key = http.post("/labels", json=label("SH-000002"), headers={"Idempotency-Key": "k-2"})
    assert new_key.status_code == 201
    assert [e.fault for e in sim.journal.entries] == [None, "error:422", None, None, None]


def test_latency_delays_without_blocking_others():
    sim, _, http = carrier({"kind": "latency", "ms": {"min_ms": 100, "max_ms": 150}})
    started = time.perf_counter()
    assert http.get("/tracking/X").status_code == 404
    assert time.perf_counter() - started >= 0.1
    (fault,) = faults_in_journal(sim)
    assert fault is not None and fault.startswith("latency:") and fault.endswith("ms")
    assert 100 <= int(fault[len("latency:") : -2]) <= 150


async def test_latency_is_concurrent():
    import asyncio

    import httpx

    sim, _, _ = carrier({"kind": "latency", "ms": 300})
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        calls = asyncio.gather(*(http.get(f"/tracking/T{i}") for i in range(10)))
        peak = 0
        while not calls.done():  # all ten wait out their delay at the same time
            peak = max(peak, sim.inflight)
            await asyncio.sleep(0.01)
        answers = await calls
    assert [a.status_code for a in answers] == [404] * 10
    assert peak == 10


def test_latency_past_the_gateway_timeout_is_a_504_and_nothing_runs(monkeypatch):
    """The vendor's gateway abandons a request at 30 s (scaled down here): the client gets
    504 gateway_timeout at the bound, not at the fault's latency, and the write never runs,
    so a client that looks after the bound knows the attempt will not land later."""
    from simulators.common import fault_injection

    monkeypatch.setattr(fault_injection, "GATEWAY_TIMEOUT_MS", 100)
    sim, _, http = carrier({"kind": "latency", "ms": 60_000, "match": "SH-000001"})
    started = time.perf_counter()
    late = http.post("/labels", json=label("SH-000001"))
    assert time.perf_counter() - started < 30  # answered at the bound, not a minute later
    assert late.status_code == 504 and late.json()["error"]["code"] == "gateway_timeout"
    assert http.post("/labels", json=label("SH-000002")).json()["id"] == "LB-000001"
    assert faults_in_journal(sim)[0] == "latency:60000ms"
    below = carrier({"kind": "latency", "ms": 50})[2].post("/labels", json=label())
    assert below.status_code == 201  # under the bound: the answer, later


def test_latency_composes_with_an_error():
    sim, _, http = carrier({"kind": "latency", "ms": 5}, {"kind": "error", "status": 500})
    assert http.get("/tracking/X").status_code == 500
    assert faults_in_journal(sim) == ["latency:5ms+error:500"]
    assert sim.faults.public()["applied"] == {"latency": 1, "error:500": 1}


# -- the control plane -------------------------------------------------------------------


def test_control_plane_adds_lists_and_clears():
    _, _, http = carrier()
    assert http.get("/_sim/faults").json() == {"items": [], "applied": {}}
    r = http.post("/_sim/faults", json={"kind": "error", "route": "/tracking", "for": 60})
    assert r.status_code == 201
    assert r.json() == {
        "id": 0,
        "system": "carrier",
        "route": "/tracking",
        "kind": "error",
        "at": 0.0,
        "for": 60.0,
        "rate": 1.0,
        "applied": 0,
    }
    assert http.get("/tracking/X").status_code == 503
    listed = http.get("/_sim/faults").json()
    assert listed["items"][0]["applied"] == 1 and listed["applied"] == {"error:503": 1}
    assert http.delete("/_sim/faults").status_code == 204
    assert http.get("/tracking/X").status_code == 404
    assert http.get("/_sim/faults").json()["items"] == []


def test_control_plane_refuses_a_bad_fault_with_field_errors():
    sim, _, http = carrier()
    r = http.post("/_sim/faults", json={"kind": "error", "rate": 2, "colour": "red"})
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["error"]["details"]["errors"]}
    assert fields == {"rate", "colour"}
    r = http.post("/_sim/faults", json={"system": "erp", "kind": "error"})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["errors"][0]["field"] == "system"
    broken = http.post("/_sim/faults", content=b"[", headers={"content-type": "application/json"})
    assert broken.status_code == 400  # declared JSON, and not: undeclared is 415 (guard)
    assert sim.faults.faults == []


# -- scenarios ---------------------------------------------------------------------------


def test_scenario_declares_faults(tmp_path):
    file = tmp_path / "faults.yaml"
    file.write_text(
        "seed: 3\n"
        "faults:\n"
        "  - system: carrier\n"
        "    route: POST /labels\n"
        "    kind: error\n"
        "    status: 503\n"
        '    at: "09:00"\n'
        "    for: 1800\n"
        "    rate: 0.3\n"
    )
    loaded = scenarios.load(file)
    (fault,) = loaded.faults
    assert (fault.system, fault.at, fault.for_, fault.rate) == ("carrier", 32_400, 1800, 0.3)


def test_a_broken_fault_names_file_line_and_field(tmp_path):
    file = tmp_path / "broken.yaml"
    file.write_text(
        "faults:\n"
        "  - system: carrier\n"
        "    kind: error\n"
        "  - system: wms\n"
        "    kind: outage\n"
        "    rate: 3\n"
    )
    with pytest.raises(scenarios.ScenarioError) as caught:
        scenarios.load(file)
    (line,) = caught.value.lines
    assert line.startswith(f"{file}:6: faults.1.rate: ")
    assert "less than or equal to 1" in line


@pytest.mark.e2e
def test_a_run_applies_its_faults_and_counts_them(tmp_path):
    import uvloop

    from harness.runner import RunConfig, run

    text = (
        "seed: 5\ndemand: {orders: 20}\nhorizon_days: 2\n"
        "faults:\n"
        "  - {system: carrier, route: POST /labels, kind: error, status: 503, rate: 0.3}\n"
        "  - {system: erp, kind: latency, ms: 1, rate: 0.1}\n"
    )
    config = RunConfig(scenario=scenarios.parse(text), report_dir=tmp_path)
    outcome = uvloop.run(run(config))
    assert outcome.counts["faults_applied"] > 0
    (note,) = [n for n in outcome.notes if n.startswith("faults applied: ")]
    assert "carrier error:503 x" in note
    labels = outcome.snapshots["carrier"]["labels"]
    assert labels, "the stack retried past the carrier's 503s"


@pytest.mark.parametrize(
    "spec_name", ["erp", "wms", "tms", "carrier", "carrier.v1.1", "carrier.v2"]
)
def test_every_vendor_spec_documents_every_fault_kind_and_field(spec_name):
    """The control plane's `Fault` schema is what a user reads to write a fault: a kind or a
    field the simulators accept but the spec omits is undocumented (and never fuzzed)."""
    import yaml

    from harness.bundled import OPENAPI
    from simulators.common.faults import KINDS

    spec = yaml.safe_load((OPENAPI / f"{spec_name}.yaml").read_text())
    documented = spec["components"]["schemas"]["Fault"]["properties"]
    accepted = {info.alias or name for name, info in Fault.model_fields.items()}
    assert set(documented) == accepted
    assert set(documented["kind"]["enum"]) == set(KINDS)


def test_a_latency_fault_can_grow_with_the_requests_in_flight():
    from simulators.common.fault_injection import MAX_LATENCY_MS, FaultPlan

    plan = FaultPlan(seed=1)
    plan.add(
        Fault.model_validate({"system": "wms", "kind": "latency", "ms": 20, "per_inflight_ms": 5})
    )
    assert [plan.latency_ms("wms", 0, "k", others) for others in (0, 1, 10)] == [20, 25, 70]
    assert plan.latency_ms("wms", 0, "k", 10**9) == MAX_LATENCY_MS
    still = FaultPlan(seed=1)
    still.add(Fault.model_validate({"system": "wms", "kind": "latency", "ms": 20}))
    assert (
        still.latency_ms("wms", 0, "k", 50) == 20
    )  # without per_inflight_ms: load changes nothing
    with pytest.raises(ValueError, match="per_inflight_ms applies to kind latency"):
        Fault.model_validate({"system": "wms", "kind": "error", "per_inflight_ms": 5})
