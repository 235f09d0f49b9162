"""Carrier API 2.0 (and 1.1): one model, another HTTP face, chosen by ``api_version``.

The versions must differ only in words: a label bought through 2.0 is the same business
state as through 1.0, a 1.0 request is refused by 2.0 with a 422 naming each field, and
each face keeps to its own published contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvloop
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from starlette.testclient import TestClient

import simulators
from harness import scenario
from harness.cli import main
from harness.runner import RunConfig, run
from simulators.common.clock import ManualClock
from simulators.common.simulator import Simulator
from simulators.provider_states import DEFAULT_SHIP_TO

SPECS = Path(__file__).resolve().parent.parent / "contracts" / "openapi"

NL = DEFAULT_SHIP_TO  # the Amsterdam address every example uses
PARCELS = [{"weight_kg": 2.5, "contents": [{"sku": "A-100", "qty": 3}]}]
V1_LABEL = {"shipment_ref": "SH-000001", "service": "ground", "ship_to": NL, "packages": PARCELS}
V2_LABEL = {**V1_LABEL, "service": "standard", "label_format": "zpl", "reference": "SO-000001"}


def carrier(api_version: str) -> Simulator:
    return simulators.build("carrier", ManualClock(), api_version=api_version)


def error(response: Any) -> dict[str, Any]:
    """The vendor error in a response, after checking its envelope."""
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


# -- each face against its own contract --------------------------------------------------

CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "404", "409", "422"]}}}
)
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


def _examples_sim(api_version: str) -> Simulator:
    sim = carrier(api_version)
    sim.model.seed_examples()  # type: ignore[attr-defined]  # LB-000001, LB-000002 ...
    return sim


V2_SPEC = schemathesis.openapi.from_path(SPECS / "carrier.v2.yaml", config=CONFIG)
V1_1_SPEC = schemathesis.openapi.from_path(SPECS / "carrier.v1.1.yaml", config=CONFIG)
APPS = {"v2": _examples_sim("v2"), "v1.1": _examples_sim("v1.1")}


def _call(case: Any, api_version: str) -> None:
    sim = APPS[api_version]
    try:
        case.call_and_validate(app=sim.app)
    finally:
        sim.faults.clear()  # a fault the fuzzer added must not leak into later cases


@pytest.mark.conformance
@V2_SPEC.parametrize()
@FUZZ
def test_carrier_v2_conforms(case):
    _call(case, "v2")


@pytest.mark.conformance
@V1_1_SPEC.parametrize()
@FUZZ
def test_carrier_v1_1_conforms(case):
    _call(case, "v1.1")


# -- 1.0 clients meet 2.0 ----------------------------------------------------------------


def test_a_v1_label_request_is_refused_by_v2_naming_each_field():
    refused = TestClient(carrier("v2").app).post("/labels", json=V1_LABEL)
    assert refused.status_code == 422
    err = error(refused)
    assert err["code"] == "validation_failed"
    messages = {e["field"]: e["message"] for e in err["details"]["errors"]}
    assert messages == {
        "label_format": "required since API 2.0: pdf or zpl",
        "service": "ground is called standard since API 2.0",
    }


def test_a_v2_label_request_is_accepted_by_v1_1_but_not_by_v1():
    assert TestClient(carrier("v1.1").app).post("/labels", json=V2_LABEL).status_code == 201
    refused = TestClient(carrier("v1").app).post("/labels", json=V2_LABEL)
    assert refused.status_code == 422
    assert [e["field"] for e in error(refused)["details"]["errors"]] == ["service"]


@pytest.mark.parametrize(("api_version", "status"), [("v1", 400), ("v1.1", 400), ("v2", 422)])
def test_a_body_that_is_not_an_object_is_422_only_from_v2(api_version: str, status: int):
    answer = TestClient(carrier(api_version).app).post("/labels", content=b"[1, 2]")
    assert answer.status_code == status
    assert error(answer)["code"] == "malformed_json"


# -- 2.0 answers -------------------------------------------------------------------------


def test_a_v2_label_is_bought_then_read_in_v2_words():
    sim = carrier("v2")
    http = TestClient(sim.app)
    bought = http.post("/labels", json=V2_LABEL)
    assert bought.status_code == 201
    label = bought.json()
    assert label["tracking_id"] == "PC000000001"
    assert "tracking_number" not in label and "events" not in label
    assert label["service"] == "standard"
    assert label["cost"] == {"amount": 540, "currency": "EUR"}
    assert (label["label_format"], label["reference"]) == ("zpl", "SO-000001")
    assert label["label_url"] == "https://labels.parcelco.example/LB-000001.zpl"
    assert http.get(f"/labels/{label['id']}").json() == label
    assert http.get("/labels", params={"shipment_ref": "SH-000001"}).json() == {"items": [label]}
    sim.model.scan("PC000000001", "picked_up")  # type: ignore[attr-defined]
    tracking = http.get("/tracking/PC000000001").json()
    assert (tracking["tracking_id"], tracking["status"]) == ("PC000000001", "in_transit")
    assert [e["status"] for e in tracking["events"]] == ["picked_up"]
    voided = http.post("/labels/LB-000001/void")
    assert voided.status_code == 409 and error(voided)["details"] == {"status": "in_transit"}


def test_listing_labels_needs_a_shipment_ref_and_knows_unknown_ones_have_none():
    http = TestClient(carrier("v2").app)
    missing = http.get("/labels")
    assert missing.status_code == 422
    assert error(missing)["details"]["errors"][0]["field"] == "shipment_ref"
    assert http.get("/labels", params={"shipment_ref": "SH-404"}).json() == {"items": []}


def test_v1_has_no_label_listing():
    assert TestClient(carrier("v1").app).get("/labels?shipment_ref=SH-1").status_code == 405


def test_v2_replays_an_idempotent_purchase_and_journals_it():
    sim = carrier("v2")
    http = TestClient(sim.app)
    headers = {"Idempotency-Key": "label-FO-000001", "X-Correlation-Id": "corr-1"}
    first = http.post("/labels", json=V2_LABEL, headers=headers)
    again = http.post("/labels", json=V2_LABEL, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert len(sim.model.labels) == 1  # type: ignore[attr-defined]
    http.post("/labels", json=V1_LABEL, headers={"X-Correlation-Id": "corr-2"})
    entries = [(e.path, e.status, e.ref, e.correlation_id, e.error) for e in sim.journal.query()]
    assert entries == [
        ("/labels", 201, "SH-000001", "corr-1", None),
        ("/labels", 201, None, "corr-1", None),  # a replay never reaches the face (as in v1)
        ("/labels", 422, None, "corr-2", "validation_failed"),
    ]


# -- one business, whichever version -----------------------------------------------------


def test_the_same_label_through_v1_and_v2_is_the_same_business_state():
    through_v1, through_v2 = carrier("v1"), carrier("v2")
    assert TestClient(through_v1.app).post("/labels", json=V1_LABEL).status_code == 201
    as_v2 = {**V1_LABEL, "service": "standard", "label_format": "pdf"}
    assert TestClient(through_v2.app).post("/labels", json=as_v2).status_code == 201
    v1_state = through_v1.model.snapshot()
    assert v1_state == through_v2.model.snapshot()
    assert v1_state["labels"]["LB-000001"]["service"] == "ground"


@pytest.mark.parametrize("api_version", ["v1", "v1.1", "v2"])
def test_health_reports_the_api_version(api_version: str):
    health = TestClient(carrier(api_version).app).get("/_sim/health").json()
    assert (health["system"], health["api_version"]) == ("carrier", api_version)


def test_an_unknown_api_version_is_refused_when_building():
    with pytest.raises(ValueError) as refused:
        carrier("v3")
    assert str(refused.value) == "carrier has no API version 'v3'; known: v1, v1.1, v2"


# -- the scenario field ------------------------------------------------------------------


def test_a_bad_api_version_in_a_scenario_names_file_line_and_field(tmp_path, capsys):
    path = tmp_path / "upgrade.yaml"
    path.write_text("name: upgrade\ncarrier:\n  delivery_hour: 14\n  api_version: v3\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"twinyard: error: {path}:4: carrier.api_version: ")
    assert "'v1', 'v1.1' or 'v2'" in err


def test_the_shipped_upgrade_scenario_asks_for_v2():
    loaded = scenario.load(Path(__file__).parent.parent / "contracts/upgrades/carrier_v2.yaml")
    assert loaded.carrier.api_version == "v2"
    assert scenario.parse("name: plain\n").carrier.api_version == "v1"


@pytest.mark.e2e
def test_a_scenario_on_v2_puts_a_v1_stack_in_front_of_carrier_v2(tmp_path):
    day = "name: tiny_upgrade\nseed: 3\ndemand: {orders: 3}\ncarrier: {api_version: v2}\n"
    outcome = uvloop.run(run(RunConfig(scenario=scenario.parse(day), report_dir=tmp_path)))
    labels = [e for e in outcome.journals["carrier"] if e["path"] == "/labels"]
    assert labels and {(e["status"], e["error"]) for e in labels} == {(422, "validation_failed")}
    failed = {r.name for r in outcome.results if not r.passed}
    assert "orders_terminal" in failed
    assert "the carrier serves its API v2" in outcome.notes
