"""Pact both ways: the reference stack's consumer pacts, verified against the simulators.

Consumer side: each case runs the stack's real client (or webhook handler) against Pact's
mock, and the committed pacts in ``contracts/pacts`` must be what the cases generate today.
Provider side: ``twinyard contracts verify`` serves the simulators, sets provider states
through their control plane, and fails naming the interaction and field when a response
changes shape.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import simulators
from harness import hosting
from harness.cli import main
from harness.contracts import broker, verify
from reference_stack.clients import Vendors
from reference_stack.handlers import HANDLERS
from simulators.common.clock import ManualClock, WallClock
from simulators.common.faults import Fault
from tests.pacts import interactions
from tests.pacts.interactions import HTTP, MESSAGES
from tests.pacts.record import comparable, record_all, record_http, record_message
from tests.support import LoopThread

PACTS = Path(__file__).resolve().parent.parent / "contracts" / "pacts"


# -- consumer side ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", HTTP, ids=lambda c: f"{c.provider}: {c.description}")
def test_the_stack_reads_each_vendor_answer_as_the_pact_says(case, tmp_path):
    outcome = record_http(case, tmp_path)
    assert outcome.status == case.status
    assert (tmp_path / f"reference-stack-{case.provider}.json").exists()


@pytest.mark.parametrize("case", MESSAGES, ids=lambda c: c.description)
def test_the_stack_starts_the_right_job_for_each_event(case, tmp_path):
    assert record_message(case, tmp_path) == case.jobs


def test_every_event_the_stack_consumes_has_a_message_pact():
    assert {(m.provider, m.event_type) for m in MESSAGES} == set(HANDLERS)


def test_every_vendor_call_of_the_stack_has_an_interaction():
    calls = {
        name
        for name, member in inspect.getmembers(Vendors, inspect.iscoroutinefunction)
        if not name.startswith("_") and name not in ("request", "aclose")
    }
    source = inspect.getsource(interactions)
    assert sorted(c for c in calls if f"v.{c}(" not in source) == []


def test_the_committed_pacts_are_what_the_consumer_tests_generate(tmp_path):
    """Stale pacts would verify a stack that no longer exists: ``make pacts`` rewrites them."""
    written = record_all(tmp_path)
    committed = sorted(PACTS.glob("reference-stack-*.json"))
    assert [p.name for p in written] == [p.name for p in committed]
    for fresh, kept in zip(written, committed, strict=True):
        assert comparable(fresh) == comparable(kept), f"{kept} is stale: run `make pacts`"


# -- provider states on the simulators -------------------------------------------------------
def test_a_provider_state_sets_the_simulator_up_and_teardown_resets_it():
    sim = simulators.build("erp", ManualClock())
    http = TestClient(sim.app)
    r = http.post("/_sim/provider-states", json={"state": "order SO-77 is released"})
    assert r.status_code == 200
    assert http.get("/orders/SO-77").json()["status"] == "released"
    assert json.loads(sim.webhooks.latest["order.released"])["data"]["id"] == "SO-77"
    r = http.post(
        "/_sim/provider-states", json={"state": "order SO-77 is released", "action": "teardown"}
    )
    assert r.status_code == 200
    assert http.get("/orders/SO-77").status_code == 404


def test_state_params_override_the_sentence():
    sim = simulators.build("wms", ManualClock())
    http = TestClient(sim.app)
    state = {
        "state": "fulfilment order FO-9 for SO-9 is packed",
        "params": {"lines": [{"sku": "B-7", "qty": 2}]},
    }
    assert http.post("/_sim/provider-states", json=state).status_code == 200
    fo = http.get("/fulfilment-orders/FO-9").json()
    assert (fo["status"], fo["lines"][0]["sku"], fo["lines"][0]["qty"]) == ("packed", "B-7", 2)


def test_an_unknown_state_is_refused_with_the_known_ones():
    http = TestClient(simulators.build("tms", ManualClock()).app)
    r = http.post("/_sim/provider-states", json={"state": "the moon is full"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "unknown_provider_state"
    assert "express capacity is exhausted" in error["details"]["known"]
    listed = http.get("/_sim/provider-states").json()["items"]
    assert [s["state"] for s in listed] == error["details"]["known"]


def test_transfer_states_open_the_sites_they_name_on_both_sides():
    erp = TestClient(simulators.build("erp", ManualClock()).app)
    state = {"state": "transfer TO-7 from DC1 to DC3 is in transit", "params": {"qty": 4}}
    assert erp.post("/_sim/provider-states", json=state).status_code == 200
    transfer = erp.get("/transfers/TO-7").json()
    assert (transfer["status"], transfer["to_site"], transfer["lines"][0]["qty"]) == (
        "in_transit",
        "DC3",
        4,
    )
    assert erp.get("/inventory/A-100", params={"site": "DC3"}).json()["on_hand"] == 0
    wms = TestClient(simulators.build("wms", ManualClock()).app)
    state = {"state": "transfer WT-7 for TO-7 is received", "params": {"to_site": "DC3"}}
    assert wms.post("/_sim/provider-states", json=state).status_code == 200
    assert wms.get("/transfers/WT-7").json()["status"] == "received"
    assert wms.get("/inventory/A-100", params={"site": "DC3"}).json()["on_hand"] == 3
    bad = {"state": "site dc 4 exists"}
    r = wms.post("/_sim/provider-states", json=bad)
    assert r.status_code == 422 and "no site code" in r.json()["error"]["message"]


def test_a_state_the_model_refuses_names_the_state_and_why():
    http = TestClient(simulators.build("erp", ManualClock()).app)
    http.post("/_sim/provider-states", json={"state": "order SO-1 is shipped"})
    r = http.post("/_sim/provider-states", json={"state": "order SO-1 is cancelled"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "provider_state_failed"
    assert "order SO-1 is cancelled" in r.json()["error"]["message"]


# -- verifying against the simulators --------------------------------------------------------
def test_the_committed_pacts_verify_against_the_simulators(tmp_path):
    junit = tmp_path / "verify.xml"
    assert main(["contracts", "verify", "--pacts", str(PACTS), "--junit", str(junit)]) == 0
    total = sum(len(json.loads(p.read_text())["interactions"]) for p in PACTS.glob("*.json"))
    xml = junit.read_text()
    assert xml.count("<testcase ") == total
    assert "<failure" not in xml


def rename(field: str, to: str, route: str, system: str):
    def prepare(sim) -> None:
        if sim.system == system:
            drift = {"kind": "schema_drift", "route": route, "rename_fields": {field: to}}
            sim.faults.add(Fault.model_validate({"system": system, **drift}))

    return prepare


def test_a_renamed_response_field_fails_naming_the_interaction_and_field(tmp_path):
    prepare = rename("tracking_number", "trackingNumber", "POST /labels", "carrier")
    result = verify.verify_simulators(PACTS, "carrier", prepare=prepare)["carrier"]
    failed = {o.interaction.description: o.problems for o in result.outcomes if o.problems}
    assert list(failed) == ["a label is bought for a planned shipment"]
    assert "tracking_number" in failed["a label is bought for a planned shipment"][0]
    junit = ET.parse(verify.write_junit({"carrier": result}, tmp_path / "v.xml")).getroot()
    failures = [c for c in junit.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failures] == ["a label is bought for a planned shipment"]
    assert "tracking_number" in failures[0].find("failure").get("message")


def test_a_removed_field_in_a_list_answer_fails_too():
    def prepare(sim) -> None:
        if sim.system == "wms":
            drift = {"kind": "schema_drift", "route": "GET /fulfilment-orders"}
            sim.faults.add(
                Fault.model_validate({"system": "wms", **drift, "remove_fields": ["status"]})
            )

    result = verify.verify_simulators(PACTS, "wms", prepare=prepare)["wms"]
    failed = [o for o in result.outcomes if o.status == "failed"]
    assert [o.interaction.description for o in failed] == [
        "the fulfilment orders of a sales order are looked up before a create is retried"
    ]
    assert "status" in failed[0].problems[0]


def test_a_pact_with_an_unknown_state_fails_at_once_listing_the_known_ones(tmp_path, capsys):
    pact = json.loads((PACTS / "reference-stack-tms.json").read_text())
    pact["interactions"][0]["providerStates"] = [{"name": "a truck is waiting"}]
    (tmp_path / "tms.json").write_text(json.dumps(pact))
    assert main(["contracts", "verify", "--pacts", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "unknown provider state 'a truck is waiting'" in err
    assert "express capacity is exhausted" in err


def test_cli_misuse_is_one_line_and_exit_2(tmp_path, capsys):
    cases = [
        (["--pacts", str(tmp_path / "none")], "no such pact file"),
        (["--pacts", str(tmp_path)], "no pact files"),
        (["--pacts", str(PACTS), "--provider", "bank"], "no pact has the provider 'bank'"),
        (["--pacts", str(PACTS), "--provider-url", "http://x"], "give --provider NAME"),
        (["--pacts", str(PACTS), "--broker-url", "http://b"], "give --provider-url too"),
    ]
    for args, message in cases:
        assert main(["contracts", "verify", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


# -- against a vendor sandbox, and the broker ------------------------------------------------
@pytest.fixture
def sandbox():
    """The carrier simulator served on its own loop and thread: a stand-in vendor sandbox."""
    loop = LoopThread()
    hosted = loop.run(hosting.serve([simulators.build("carrier", WallClock())], [0]))
    yield f"http://{hosted[0].host}:{hosted[0].port}"
    loop.run(hosting.shutdown(hosted))
    loop.close()


def test_a_vendor_url_is_verified_and_its_messages_skipped(sandbox):
    result = verify.verify_url(
        PACTS, "carrier", sandbox, state_url=f"{sandbox}/_sim/provider-states"
    )
    statuses = {o.interaction.description: o.status for o in result.outcomes}
    assert statuses.pop("a tracking.updated event") == "skipped"
    assert set(statuses.values()) == {"passed"} and len(statuses) == 5


PUBLICATION = broker.Publication(
    broker_url="https://broker.example.com",
    pacts=PACTS,
    consumer="reference-stack",
    provider="carrier",
    provider_url="https://sandbox.parcelco.example:8443/api/v2",
    consumer_version="1.4.0",
    provider_version="2.0.0",
    branch="main",
    state_url="https://sandbox.parcelco.example:8443/pact-states",
)


def test_the_broker_command_lines():
    publish, verify_publish = broker.commands(PUBLICATION)
    assert publish == [
        "pact", "broker", "publish", str(PACTS),
        "--broker-base-url", "https://broker.example.com",
        "--consumer-app-version", "1.4.0", "--branch", "main",
    ]  # fmt: skip
    assert verify_publish == [
        "pact", "verifier", "--broker-url", "https://broker.example.com",
        "--provider-name", "carrier",
        "--transport", "https", "--hostname", "sandbox.parcelco.example", "--port", "8443",
        "--base-path", "/api/v2",
        "--state-change-url", "https://sandbox.parcelco.example:8443/pact-states",
        "--state-change-teardown",
        "--filter-consumer", "reference-stack",
        "--publish", "--provider-version", "2.0.0", "--provider-branch", "main",
    ]  # fmt: skip


def test_the_cli_runs_both_broker_steps_through_the_pact_cli(sandbox, tmp_path, monkeypatch):
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "bin" / "pact"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    args = ["contracts", "verify", "--pacts", str(PACTS), "--provider", "carrier"]
    args += ["--provider-url", sandbox, "--state-url", f"{sandbox}/_sim/provider-states"]
    args += ["--broker-url", "http://broker:9292", "--consumer-version", "1.4.0"]
    args += ["--provider-version", "2.0.0", "--junit", str(tmp_path / "j.xml")]
    assert main(args) == 0
    lines = calls.read_text().splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["broker", "publish"],
        ["verifier", "--broker-url"],
    ]


def test_without_the_pact_cli_the_broker_step_is_one_line_and_exit_2(
    sandbox, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("PATH", str(tmp_path))
    args = ["contracts", "verify", "--pacts", str(PACTS), "--provider", "carrier"]
    args += ["--provider-url", sandbox, "--state-url", f"{sandbox}/_sim/provider-states"]
    args += ["--broker-url", "http://broker:9292", "--consumer-version", "1"]
    args += ["--provider-version", "2", "--junit", str(tmp_path / "j.xml")]
    assert main(args) == 2
    assert "pip install pact-python-cli" in capsys.readouterr().err


def test_the_documented_vocabulary_is_the_simulators_vocabulary():
    from simulators.provider_states import VOCABULARY

    doc = (PACTS.parent.parent / "docs" / "contracts.md").read_text()
    rows = re.findall(r"^\| (\w+) \| `([^`]+)` \|", doc, flags=re.M)
    assert rows == [(system, s.template) for system, states in VOCABULARY.items() for s in states]


def test_a_subscription_state_names_its_id_and_a_second_is_refused():
    sim = simulators.build("wms", ManualClock())
    http = TestClient(sim.app)
    state = {"state": "webhook subscription WH-0042 exists"}
    assert http.post("/_sim/provider-states", json=state).status_code == 200
    assert [s["id"] for s in http.get("/webhooks").json()["items"]] == ["WH-0042"]
    again = http.post("/_sim/provider-states", json=state)
    assert again.status_code == 422
    assert "already exists" in again.json()["error"]["message"]
    assert http.delete("/webhooks/WH-0042").status_code == 204


def test_two_consumers_with_the_same_description_are_verified_apart(tmp_path):
    """One consumer's failure is not reported as the other's: each pact file is verified
    on its own, since descriptions are unique only within a pact."""
    pact = json.loads((PACTS / "reference-stack-tms.json").read_text())
    (tmp_path / "a.json").write_text(json.dumps(pact))
    broken = json.loads(json.dumps(pact))
    broken["consumer"]["name"] = "billing"
    planned = next(i for i in broken["interactions"] if i["description"].startswith("a shipment"))
    planned["response"]["body"]["content"]["invoice_ref"] = "INV-1"  # tms never sends it
    (tmp_path / "b.json").write_text(json.dumps(broken))
    result = verify.verify_simulators(tmp_path)["tms"]
    failed = [o for o in result.outcomes if o.status == "failed"]
    assert len(result.outcomes) == 2 * len(pact["interactions"])
    assert [o.interaction.description for o in failed] == [planned["description"]]
    assert "invoice_ref" in failed[0].problems[0]
