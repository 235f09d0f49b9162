"""The schema_drift fault: a vendor's answers change shape while its business goes on as usual.

In process, as tests/test_faults.py: ``TestClient`` on the simulator app, a ``ManualClock``.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError
from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient

import simulators
from harness import scenario as scenarios
from simulators.common.clock import ManualClock
from simulators.common.fault_injection import FaultInjection, drift
from simulators.common.faults import Fault
from simulators.common.simulator import Simulator
from tests.test_faults import carrier, faults_in_journal, label
from tests.test_wms_api import ORDER as FO


def wms(*faults: dict[str, Any]) -> tuple[Simulator, TestClient]:
    sim = simulators.build("wms", ManualClock(), stock={"A-100": 10})
    for f in faults:
        sim.faults.add(Fault.model_validate({"system": "wms", **f}))
    return sim, TestClient(sim.app)


def drifted(**parameters: Any) -> dict[str, Any]:
    return {"kind": "schema_drift", "route": "/labels", **parameters}


def bought_as_sold(sim: Simulator) -> dict[str, Any]:
    """The label as the carrier committed it (the control plane is never faulted)."""
    return sim.model.snapshot()["labels"]["LB-000001"]


# -- each parameter, on an object answer ---------------------------------------------------


def test_add_fields_adds_new_fields_to_the_answer():
    sim, _, http = carrier(drifted(add_fields={"label_format": "ZPL", "customs": {"eori": None}}))
    r = http.post("/labels", json=label())
    assert r.status_code == 201
    answer = r.json()
    assert answer["label_format"] == "ZPL" and answer["customs"] == {"eori": None}
    assert {k: v for k, v in answer.items() if k not in ("label_format", "customs")} == (
        bought_as_sold(sim)
    )


def test_rename_fields_renames_in_place():
    sim, _, http = carrier(drifted(rename_fields={"tracking_number": "trackingNumber"}))
    answer = http.post("/labels", json=label()).json()
    assert "tracking_number" not in answer
    assert answer["trackingNumber"] == "PC000000001"
    assert list(answer)[1] == "trackingNumber"  # where tracking_number was
    assert bought_as_sold(sim)["tracking_number"] == "PC000000001"


def test_remove_fields_removes_them():
    sim, _, http = carrier(drifted(remove_fields=["cost", "events", "not_there"]))
    answer = http.post("/labels", json=label()).json()
    assert set(bought_as_sold(sim)) - set(answer) == {"cost", "events"}
    assert "cost" in bought_as_sold(sim)  # only the answer lost it


def test_set_values_replaces_values_where_present_only():
    sim, _, http = carrier(drifted(set_values={"status": "ready_to_ship", "not_there": 1}))
    answer = http.post("/labels", json=label()).json()
    assert answer["status"] == "ready_to_ship"
    assert "not_there" not in answer
    assert bought_as_sold(sim)["status"] == "created"


def test_the_content_length_fits_the_new_body():
    _, _, http = carrier(drifted(add_fields={"label_format": "ZPL"}, remove_fields=["events"]))
    r = http.post("/labels", json=label())
    assert int(r.headers["content-length"]) == len(r.content)
    assert orjson.loads(r.content)["label_format"] == "ZPL"


# -- on list answers -----------------------------------------------------------------------


def test_every_object_of_an_items_list_drifts_and_the_list_object_too():
    sim, http = wms(
        {
            "kind": "schema_drift",
            "route": "GET /fulfilment-orders",
            "add_fields": {"wave_id": None},
            "rename_fields": {"order_ref": "orderRef"},
            "remove_fields": ["status_history"],
            "set_values": {"service_level": "EXPRESS"},
        }
    )
    created = [http.post("/fulfilment-orders", json=FO).json() for _ in range(2)]
    assert [fo["order_ref"] for fo in created] == ["SO-000001"] * 2  # POST is not routed
    listed = http.get("/fulfilment-orders", params={"order_ref": "SO-000001"}).json()
    assert listed["wave_id"] is None
    assert [fo["id"] for fo in listed["items"]] == ["FO-000001", "FO-000002"]
    for fo, original in zip(listed["items"], created, strict=True):
        assert fo["orderRef"] == "SO-000001" and "order_ref" not in fo
        assert "status_history" not in fo
        assert (fo["service_level"], fo["wave_id"]) == ("EXPRESS", None)
        assert fo["lines"] == original["lines"]  # nested objects are not drifted
    assert faults_in_journal(sim) == [None, None, "schema_drift"]


def test_drift_renames_removes_sets_then_adds():
    fault = Fault.model_validate(
        {
            "system": "wms",
            "kind": "schema_drift",
            "rename_fields": {"a": "b", "b": "a", "c": "d"},
            "remove_fields": ["d"],
            "set_values": {"a": "new"},
            "add_fields": {"e": [1]},
        }
    )
    assert drift(fault, {"a": 1, "b": 2, "c": 3}) == {"b": 1, "a": "new", "e": [1]}
    onto = Fault.model_validate(
        {"system": "wms", "kind": "schema_drift", "rename_fields": {"x": "y"}}
    )
    assert drift(onto, {"y": 0, "x": 1}) == {"y": 1}  # the renamed field replaces the other
    assert drift(onto, {"y": 0}) == {"y": 0}  # nothing to rename: left alone
    listed = drift(onto, {"items": [{"x": 1}, "not an object"], "next": None})
    assert listed == {"items": [{"y": 1}, "not an object"], "next": None}


# -- only where and when it is declared; only 2xx JSON ---------------------------------------


def test_only_inside_the_window_and_on_the_route():
    sim, clock, http = carrier(drifted(add_fields={"label_format": "ZPL"}, at=100, **{"for": 50}))
    assert "label_format" not in http.post("/labels", json=label("SH-000001")).json()
    clock.set(100)
    assert http.post("/labels", json=label("SH-000002")).json()["label_format"] == "ZPL"
    tracking = http.get("/tracking/PC000000002")  # a 2xx JSON answer on another route
    assert tracking.status_code == 200 and "label_format" not in tracking.json()
    clock.set(150)
    assert "label_format" not in http.post("/labels", json=label("SH-000003")).json()
    assert faults_in_journal(sim) == [None, "schema_drift", None, None]


def test_an_error_answer_passes_untouched_and_is_not_counted():
    sim, _, http = carrier(
        drifted(add_fields={"label_format": "ZPL"}, rename_fields={"error": "problem"})
    )
    plain = TestClient(simulators.build("carrier", ManualClock()).app)
    r = http.get("/labels/LB-000404")
    assert r.status_code == 404
    assert r.content == plain.get("/labels/LB-000404").content
    bad = http.post("/labels", json={"shipment_ref": "SH-1"})
    assert bad.status_code == 422 and "error" in bad.json()
    assert faults_in_journal(sim) == [None, None]
    assert sim.faults.applied == [0] and sim.faults.by_label == {}


def test_a_non_json_answer_passes_untouched():
    sim = simulators.build("carrier", ManualClock())
    sim.faults.add(Fault.model_validate({"system": "carrier", **drifted(add_fields={"x": 1})}))
    app = FaultInjection(PlainTextResponse('{"id": "LB-1"}', status_code=201), sim)
    r = TestClient(app).post("/labels", json=label())
    assert (r.status_code, r.text) == (201, '{"id": "LB-1"}')
    assert r.headers["content-type"].startswith("text/plain")
    assert sim.faults.applied == [0]


# -- state, journal, counts ------------------------------------------------------------------


def test_state_is_committed_and_the_drift_is_journalled_and_counted():
    sim, _, http = carrier(drifted(add_fields={"label_format": "ZPL"}))
    headers = {"Idempotency-Key": "k-1", "X-Correlation-Id": "c-1"}
    first = http.post("/labels", json=label(), headers=headers)
    again = http.post("/labels", json=label(), headers=headers)  # replayed: drifted too
    assert again.headers["idempotent-replayed"] == "true"
    assert first.json() == again.json()
    assert first.json()["label_format"] == "ZPL"
    assert list(sim.model.snapshot()["labels"]) == ["LB-000001"]
    assert "label_format" not in bought_as_sold(sim)
    entry = sim.journal.entries[0]
    assert (entry.status, entry.fault, entry.correlation_id, entry.ref) == (
        201,
        "schema_drift",
        "c-1",
        "SH-000001",
    )
    assert faults_in_journal(sim) == ["schema_drift", "schema_drift"]
    assert sim.faults.applied == [2]
    assert sim.faults.by_label == {"schema_drift": 2}
    assert http.get("/_sim/faults").json()["applied"] == {"schema_drift": 2}


def test_latency_composes_with_a_drift():
    sim, _, http = carrier({"kind": "latency", "ms": 1}, drifted(add_fields={"x": 1}))
    assert http.post("/labels", json=label()).json()["x"] == 1
    assert faults_in_journal(sim) == ["latency:1ms+schema_drift"]


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"kind": "schema_drift"}, "a schema_drift fault needs at least one of add_fields"),
        ({"kind": "error", "add_fields": {"x": 1}}, "add_fields applies to kind schema_drift"),
        ({"kind": "latency", "ms": 1, "rename_fields": {"a": "b"}}, "rename_fields applies"),
        ({"kind": "outage", "remove_fields": ["a"]}, "remove_fields applies"),
        ({"kind": "lost_response", "set_values": {"a": 1}}, "set_values applies"),
        ({"kind": "schema_drift", "add_fields": {}}, "at least 1 item"),
        ({"kind": "schema_drift", "remove_fields": [""]}, "at least 1 character"),
        ({"kind": "schema_drift", "rename_fields": {"a": "c", "b": "c"}}, "same name"),
        ({"kind": "schema_drift", "remove_fields": "status"}, "valid list"),
    ],
)
def test_validation_refuses_misplaced_or_missing_parameters(fault: dict[str, Any], message: str):
    with pytest.raises(ValidationError, match=message):
        Fault.model_validate({"system": "carrier", **fault})


def test_the_control_plane_takes_a_drift_and_shows_its_parameters():
    _, _, http = carrier()
    body = {"kind": "schema_drift", "route": "/labels", "set_values": {"status": "new"}}
    r = http.post("/_sim/faults", json=body)
    assert r.status_code == 201
    assert r.json()["set_values"] == {"status": "new"}
    assert http.post("/labels", json=label()).json()["status"] == "new"
    refused = http.post("/_sim/faults", json={"kind": "schema_drift"})
    assert refused.status_code == 422
    assert "needs at least one of" in refused.text


def test_a_scenario_declares_a_drift_and_the_schema_names_the_kind():
    loaded = scenarios.parse(
        "faults:\n"
        "  - system: carrier\n"
        "    route: /labels\n"
        "    kind: schema_drift\n"
        "    add_fields: {label_format: ZPL, customs: {required: false}}\n"
        "    rename_fields: {cost: price}\n"
    )
    (fault,) = loaded.faults
    assert fault.add_fields == {"label_format": "ZPL", "customs": {"required": False}}
    assert fault.rename_fields == {"cost": "price"}
    schema = orjson.dumps(scenarios.Scenario.model_json_schema()).decode()
    assert '"schema_drift"' in schema and '"add_fields"' in schema


def test_answer_status_sends_a_created_label_with_another_2xx_and_the_same_body():
    """A release that answers a create 200 instead of 201: the body and the committed label
    are as ever, only the status differs (a client expecting exactly 201 takes it for a
    failure); journalled as sent."""
    plain_sim, _, plain_http = carrier()
    plain = plain_http.post("/labels", json=label())
    sim, _, http = carrier(drifted(answer_status=200))
    answer = http.post("/labels", json=label())
    assert (plain.status_code, answer.status_code) == (201, 200)
    assert answer.json() == plain.json()
    assert bought_as_sold(sim) == bought_as_sold(plain_sim)
    assert faults_in_journal(sim) == ["schema_drift"]
    assert [e.status for e in sim.journal.entries] == [200]


def test_answer_status_is_for_answers_and_a_2xx():
    with pytest.raises(ValidationError, match="not an event"):
        Fault.model_validate(
            {
                "system": "wms",
                "kind": "schema_drift",
                "event": "order.shipped",
                "answer_status": 200,
            }
        )
    with pytest.raises(ValidationError):
        Fault.model_validate({"system": "wms", **drifted(answer_status=204)})
    with pytest.raises(ValidationError, match="answer_status applies to kind schema_drift"):
        Fault.model_validate({"system": "wms", "kind": "error", "answer_status": 200})
