"""twinyard contracts check: which of our pact interactions a vendor's new OpenAPI breaks.

The pact is built here in the V4 shape pact-python 4.2 writes (bodies wrapped in
``content``/``contentType``/``encoded``, header and query values as lists, ``matchingRules``
inside request and response); the new specs are carrier.yaml mutated one change at a time.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import main
from harness.contracts.pact_check import CheckResult, check
from harness.contracts.pacts import PactError
from simulators.provider_states import DEFAULT_SHIP_TO

OPENAPI = Path(__file__).resolve().parent.parent / "contracts" / "openapi"
CARRIER = OPENAPI / "carrier.yaml"

SHIP_TO = DEFAULT_SHIP_TO  # the Amsterdam address every example uses
PACKAGES = [{"weight_kg": 2.5, "contents": [{"sku": "A-100", "qty": 3}]}]
BUY = "a label is bought for a planned shipment"
READ = "a label is read with its scans"
REFUSED = "a label for an address without a postal code is refused"
TYPE = {"combine": "AND", "matchers": [{"match": "type"}]}


def _body(content: Any) -> dict[str, Any]:
    return {"content": content, "contentType": "application/json", "encoded": False}


def _label(**changes: Any) -> dict[str, Any]:
    """The Label the consumer reads: carrier.yaml's example, every field of it."""
    label = {
        "id": "LB-000001",
        "tracking_number": "PC000000001",
        "shipment_ref": "SH-000001",
        "service": "ground",
        "ship_to": SHIP_TO,
        "packages": PACKAGES,
        "cost": {"amount": "5.40", "currency": "EUR"},
        "status": "created",
        "created_at": "2026-11-23T09:15:02Z",
        "events": [],
    }
    return {**label, **changes}


def _pact(provider: str = "carrier") -> dict[str, Any]:
    """What the reference stack sends and reads (reference_stack/steps.py ``buy_label``)."""
    json_header = {"Content-Type": ["application/json"]}
    buy_request = {
        "method": "POST",
        "path": "/labels",
        "headers": {
            **json_header,
            "Idempotency-Key": ["buy_label-FO-000001"],
            "X-Correlation-Id": ["corr-SO-000001"],
        },
        "body": _body(
            {
                "shipment_ref": "SH-000001",
                "service": "ground",
                "ship_to": SHIP_TO,
                "packages": PACKAGES,
            }
        ),
        "matchingRules": {"body": {"$.shipment_ref": TYPE}, "header": {"Idempotency-Key": TYPE}},
    }
    refused_request = copy.deepcopy(buy_request)
    refused_request["body"]["content"]["ship_to"]["postal_code"] = ""
    scan = {"status": "picked_up", "occurred_at": "2026-11-23T14:02:00Z", "sequence": 1}
    return {
        "consumer": {"name": "reference-stack"},
        "provider": {"name": provider},
        "interactions": [
            {
                "type": "Synchronous/HTTP",
                "description": BUY,
                "pending": False,
                "providerStates": [{"name": "no label for SH-000001"}],
                "request": buy_request,
                "response": {
                    "status": 201,
                    "headers": json_header,
                    "body": _body(_label()),
                    "matchingRules": {"body": {"$.id": TYPE, "$.tracking_number": TYPE}},
                },
            },
            {
                "type": "Synchronous/HTTP",
                "description": READ,
                "pending": False,
                "providerStates": [{"name": "a label LB-000001 exists", "params": {"id": "LB-1"}}],
                "request": {"method": "GET", "path": "/labels/LB-000001"},
                "response": {
                    "status": 200,
                    "headers": json_header,
                    "body": _body(_label(status="in_transit", events=[scan])),
                },
            },
            {
                "type": "Synchronous/HTTP",
                "description": REFUSED,
                "pending": False,
                "request": refused_request,
                "response": {
                    "status": 422,
                    "headers": json_header,
                    "body": _body({"error": {"code": "address_invalid", "message": "why"}}),
                },
            },
            {
                "type": "Asynchronous/Messages",
                "description": "a tracking.updated event",
                "pending": False,
                "contents": _body({"id": "EV-CARRIER-000001", "type": "tracking.updated"}),
                "metadata": {"contentType": "application/json"},
            },
        ],
        "metadata": {"pactSpecification": {"version": "4.0"}},
    }


@pytest.fixture
def v1() -> dict[str, Any]:
    return yaml.safe_load(CARRIER.read_text())


def _problems(result: CheckResult, breaking: bool = True) -> set[tuple[str, str, str]]:
    return {
        (r.description, p.where, p.message)
        for r in result.results
        for p in r.problems
        if p.breaking == breaking
    }


def test_the_spec_the_pact_was_made_against_breaks_nothing(v1):
    result = check([_pact()], v1, "carrier")
    assert [(r.description, r.outcome, r.problems) for r in result.results] == [
        (BUY, "ok", []),
        (READ, "ok", []),
        (REFUSED, "ok", []),
        ("a tracking.updated event", "skipped", []),
    ]
    assert result.results[1].operation == "GET /labels/{label_id}"  # a path template matched
    assert result.passed
    assert result.summary() == "0 broken, 3 hold, 1 skipped of 4 interactions"


def test_a_renamed_response_field_breaks_every_interaction_reading_it_with_a_hint(v1):
    label = v1["components"]["schemas"]["Label"]
    label["properties"]["trackingNumber"] = label["properties"].pop("tracking_number")
    label["required"] = [
        "trackingNumber" if f == "tracking_number" else f for f in label["required"]
    ]
    result = check([_pact()], v1, None)
    hint = "field not in the new spec (renamed to trackingNumber?)"
    assert _problems(result) == {
        (BUY, "response 201 body: tracking_number", hint),
        (READ, "response 200 body: tracking_number", hint),
    }
    assert not result.passed and result.count("broken") == 2


def test_a_rename_named_in_the_new_fields_description_is_hinted(v1):
    label = v1["components"]["schemas"]["Label"]
    label["properties"]["parcel_no"] = label["properties"].pop("tracking_number")
    label["properties"]["parcel_no"]["description"] = "1.x called it `tracking_number`"
    label["properties"]["label_url"] = {"type": "string"}  # two unread fields: no "only one" rule
    result = check([_pact()], v1, None)
    assert (
        BUY,
        "response 201 body: tracking_number",
        "field not in the new spec (renamed to parcel_no?)",
    ) in _problems(result)


def test_a_removed_response_field_breaks(v1):
    label = v1["components"]["schemas"]["Label"]
    del label["properties"]["cost"]
    label["required"].remove("cost")
    assert _problems(check([_pact()], v1, None)) == {
        (BUY, "response 201 body: cost", "field not in the new spec"),
        (READ, "response 200 body: cost", "field not in the new spec"),
    }


def test_a_field_allowed_only_by_additional_properties_is_not_promised(v1):
    label = v1["components"]["schemas"]["Label"]
    del label["properties"]["cost"]
    label["required"].remove("cost")
    label["additionalProperties"] = True
    message = "field not in the new spec (allowed by additionalProperties only: not promised)"
    assert (BUY, "response 201 body: cost", message) in _problems(check([_pact()], v1, None))


def test_a_new_required_request_field_breaks_at_any_depth(v1):
    schemas = v1["components"]["schemas"]
    schemas["BuyLabel"]["properties"]["incoterms"] = {"type": "string"}
    schemas["BuyLabel"]["required"].append("incoterms")
    schemas["Item"]["properties"]["hs_code"] = {"type": "string"}
    schemas["Item"]["required"].append("hs_code")
    sent_by = {BUY, REFUSED}
    assert _problems(check([_pact()], v1, None)) == {
        (d, "request body: incoterms", "required field not sent") for d in sent_by
    } | {
        (d, "request body: packages[].contents[].hs_code", "required field not sent")
        for d in sent_by
    }


def test_a_narrowed_enum_breaks_what_is_sent_and_what_is_read(v1):
    schemas = v1["components"]["schemas"]
    schemas["BuyLabel"]["properties"]["service"]["enum"] = ["express"]
    schemas["LabelStatus"]["enum"].remove("created")
    assert _problems(check([_pact()], v1, None)) == {
        (BUY, "request body: service", "ground not in the new spec's enum (express)"),
        (REFUSED, "request body: service", "ground not in the new spec's enum (express)"),
        (
            BUY,
            "response 201 body: status",
            "created not in the new spec's enum (voided, in_transit, delivered, exception)",
        ),
    }


def test_a_removed_status_breaks_the_interaction_expecting_it(v1):
    del v1["paths"]["/labels"]["post"]["responses"]["422"]
    assert _problems(check([_pact()], v1, None)) == {
        (REFUSED, "response 422", "status not documented (documented: 201, 400)")
    }


def test_a_status_covered_by_a_range_or_default_still_holds(v1):
    responses = v1["paths"]["/labels"]["post"]["responses"]
    responses["4XX"] = responses.pop("422")
    responses["default"] = responses.pop("201")
    assert check([_pact()], v1, None).passed


def test_a_changed_type_breaks_on_either_side(v1):
    schemas = v1["components"]["schemas"]
    schemas["Parcel"]["properties"]["weight_kg"] = {"type": "string"}  # sent
    schemas["Money"]["properties"]["amount"] = {"type": "integer"}  # read
    changed = "type changed: number in the pact, string in the new spec"
    read = "type changed: string in the pact, integer in the new spec"
    problems = _problems(check([_pact()], v1, None))
    assert (BUY, "request body: packages[].weight_kg", changed) in problems
    assert (BUY, "response 201 body: cost.amount", read) in problems
    assert (READ, "response 200 body: packages[].weight_kg", changed) in problems


def test_integer_and_number_are_one_type(v1):
    schemas = v1["components"]["schemas"]
    schemas["Item"]["properties"]["qty"]["type"] = "number"  # sent: 3
    schemas["Scan"]["properties"]["sequence"]["type"] = "number"  # read: 1
    assert check([_pact()], v1, None).passed


def test_a_removed_path_or_method_breaks(v1):
    del v1["paths"]["/labels/{label_id}"]
    del v1["paths"]["/labels"]["post"]
    assert _problems(check([_pact()], v1, None)) == {
        (BUY, "operation", "method POST not documented on /labels (documented: none)"),
        (REFUSED, "operation", "method POST not documented on /labels (documented: none)"),
        (READ, "operation", "no path matches /labels/LB-000001"),
    }


def test_required_parameters_not_sent_break(v1):
    parameters = v1["paths"]["/labels"]["post"]["parameters"]
    parameters.append({"name": "X-Api-Key", "in": "header", "required": True})
    parameters.append({"name": "dry_run", "in": "query", "required": True})
    v1["components"]["parameters"]["IdempotencyKey"]["required"] = True  # sent: holds
    problems = _problems(check([_pact()], v1, None))
    assert {p for p in problems if p[0] == BUY} == {
        (BUY, "request header: X-Api-Key", "required parameter not sent"),
        (BUY, "request query: dry_run", "required parameter not sent"),
    }


def test_what_a_tolerant_reader_ignores_breaks_nothing(v1):
    schemas = v1["components"]["schemas"]
    schemas["Label"]["properties"]["label_format"] = {"type": "string"}  # new response field
    schemas["Label"]["required"].append("label_format")
    schemas["BuyLabel"]["properties"]["reference"] = {"type": "string"}  # optional request field
    schemas["BuyLabel"]["properties"]["service"]["enum"].append("economy")  # wider enum
    v1["paths"]["/labels"]["post"]["responses"]["409"] = {"description": "conflict"}
    v1["paths"]["/pickups"] = {"post": {"responses": {"201": {"description": "booked"}}}}
    result = check([_pact()], v1, None)
    assert result.passed and _problems(result, breaking=False) == set()


def test_a_read_field_the_new_spec_no_longer_requires_only_warns(v1):
    label = v1["components"]["schemas"]["Label"]
    label["required"].remove("created_at")
    label["properties"]["shipment_ref"]["nullable"] = True
    result = check([_pact()], v1, None)
    assert result.passed
    assert _problems(result, breaking=False) >= {
        (BUY, "response 201 body: created_at", "not required in the new spec: may be left out"),
        (BUY, "response 201 body: shipment_ref", "nullable in the new spec: may come as null"),
    }
    assert result.summary() == "0 broken, 3 hold (2 with warnings), 1 skipped of 4 interactions"


def test_messages_are_skipped_and_counted_and_a_v3_pact_reads_the_same(v1):
    v3 = _pact()
    v3["metadata"] = {"pactSpecification": {"version": "3.0.0"}}
    for interaction in v3["interactions"]:
        interaction.pop("type")
        for part in ("request", "response"):
            if "body" in interaction.get(part, {}):
                interaction[part]["body"] = interaction[part]["body"]["content"]
                interaction[part]["headers"] = {"Content-Type": "application/json"}
    v3["interactions"][0]["providerState"] = "no label for SH-000001"
    v1["components"]["schemas"]["Label"]["properties"]["cost"] = {"type": "string"}
    result = check([v3, _pact()], v1, "carrier")
    assert result.count("skipped") == 2 and result.count("broken") == 4
    assert {r.skipped for r in result.results if r.outcome == "skipped"} == {
        "asynchronous messages (events, not HTTP calls)"
    }
    assert "2 skipped of 8 interactions" in result.summary()


def test_pacts_for_other_providers_are_left_out_or_refused(v1):
    result = check([_pact(), _pact("wms")], v1, "carrier")
    assert {r.provider for r in result.results} == {"carrier"} and len(result.results) == 4
    with pytest.raises(PactError, match=r"pacts for 2 providers \(carrier, wms\)"):
        check([_pact(), _pact("wms")], v1, None)
    with pytest.raises(PactError, match="no pact for provider 'tms'"):
        check([_pact()], v1, "tms")


def test_the_servers_base_path_prefixes_the_pacts_paths(v1):
    v1["servers"] = [{"url": "https://api.parcelco.example/v1"}]
    pact = _pact()
    for interaction in pact["interactions"][:3]:
        interaction["request"]["path"] = "/v1" + interaction["request"]["path"]
    assert check([pact], v1, None).passed


# -- the vendor's shipped examples -----------------------------------------------------------


def test_the_shipped_v2_breaks_the_pact_on_every_change_it_reads():
    v2 = yaml.safe_load((OPENAPI / "carrier.v2.yaml").read_text())
    result = check([_pact()], v2, None)
    assert result.count("broken") == 3
    enum = "ground not in the new spec's enum (standard, express)"
    problems = _problems(result)
    for sender in (BUY, REFUSED):
        assert (sender, "request body: label_format", "required field not sent") in problems
        assert (sender, "request body: service", enum) in problems
    for reader, where in ((BUY, "response 201 body"), (READ, "response 200 body")):
        renamed = "field not in the new spec (renamed to tracking_id?)"
        assert (reader, f"{where}: tracking_number", renamed) in problems
        assert (reader, f"{where}: events", "field not in the new spec") in problems
        amount = "type changed: string in the pact, integer in the new spec"
        assert (reader, f"{where}: cost.amount", amount) in problems
        assert (reader, f"{where}: service", enum) in problems


def test_the_shipped_v1_1_breaks_nothing():
    v11 = yaml.safe_load((OPENAPI / "carrier.v1.1.yaml").read_text())
    result = check([_pact()], v11, None)
    assert result.passed and _problems(result) == set()
    assert result.count("ok") == 3


# -- the command -----------------------------------------------------------------------------


@pytest.fixture
def pact_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps at 80 columns when not in a terminal
    folder = tmp_path / "pacts"
    folder.mkdir()
    (folder / "reference-stack-carrier.json").write_text(json.dumps(_pact()))
    return folder


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("twinyard: error: "), err
    return err[0].removeprefix("twinyard: error: ")


def test_the_command_exits_0_when_every_interaction_holds(pact_dir, capsys):
    argv = ["contracts", "check", "--pacts", str(pact_dir), "--openapi", str(CARRIER)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "0 broken, 3 hold, 1 skipped of 4 interactions" in out
    assert (
        "skipped, asynchronous messages (events, not HTTP calls): a tracking.updated event" in out
    )


def test_the_command_exits_1_and_writes_junit_when_something_breaks(pact_dir, tmp_path, v1, capsys):
    del v1["paths"]["/labels"]["post"]["responses"]["422"]
    new = tmp_path / "carrier-v2.yaml"
    new.write_text(yaml.safe_dump(v1))
    junit = tmp_path / "out" / "contracts.xml"
    argv = ["contracts", "check", "--pacts", str(pact_dir / "reference-stack-carrier.json")]
    assert main([*argv, "--openapi", str(new), "--provider", "carrier", "--junit", str(junit)]) == 1
    out = capsys.readouterr().out
    assert "BREAKING" in out and "status not documented" in out
    assert "1 broken, 2 hold, 1 skipped of 4 interactions" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert len(cases) == 4 and suite.get("failures") == "1" and suite.get("skipped") == "1"
    failure = cases[REFUSED].find("failure")
    assert failure is not None and "response 422: status not documented" in (failure.text or "")
    assert cases[BUY].find("failure") is None
    assert cases["a tracking.updated event"].find("skipped") is not None


def test_the_command_exits_2_with_one_line_on_misuse(pact_dir, tmp_path, capsys):
    def run(pacts: Path, openapi: Path = CARRIER, *extra: str) -> str:
        argv = ["contracts", "check", "--pacts", str(pacts), "--openapi", str(openapi), *extra]
        assert main(argv) == 2
        return _one_error_line(capsys)

    assert run(tmp_path / "missing") == f"no such pact file or folder: {tmp_path / 'missing'}"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(empty) == f"no pact files (*.json) in {empty}"
    assert run(pact_dir, tmp_path / "nope.yaml").startswith("cannot read")
    assert run(pact_dir, CARRIER, "--provider", "tms") == (
        "no pact for provider 'tms' (pacts found for: carrier)"
    )
    (pact_dir / "notes.json").write_text(json.dumps({"hello": "world"}))
    assert run(pact_dir) == f"{pact_dir / 'notes.json'}: not a pact (no interactions)"
    (pact_dir / "notes.json").write_text("{not json")
    assert run(pact_dir) == f"{pact_dir / 'notes.json'}: not JSON (JSONDecodeError)"
    assert main(["contracts", "check", "--pacts", str(pact_dir)]) == 2
    assert "--openapi" in _one_error_line(capsys)


# -- the reference stack's committed pacts ---------------------------------------------------
COMMITTED = OPENAPI.parent / "pacts"


@pytest.mark.parametrize("system", ["erp", "wms", "tms", "carrier"])
def test_the_committed_pacts_hold_against_each_vendors_own_spec(system):
    spec = yaml.safe_load((OPENAPI / f"{system}.yaml").read_text())
    result = check([COMMITTED / f"reference-stack-{system}.json"], spec, None)
    assert result.count("broken") == 0, _problems(result)
    assert result.count("ok") > 0


def test_carrier_v2_breaks_the_stacks_label_purchases_and_nothing_else():
    v2 = yaml.safe_load((OPENAPI / "carrier.v2.yaml").read_text())
    result = check([COMMITTED / "reference-stack-carrier.json"], v2, None)
    broken = sorted(r.description for r in result.results if r.outcome == "broken")
    assert broken == [
        "a label for an address without a postal code is refused",
        "a label is bought for a planned shipment",
    ]
    problems = _problems(result)
    assert (BUY, "request body: label_format", "required field not sent") in problems
    renamed = "field not in the new spec (renamed to tracking_id?)"
    assert (BUY, "response 201 body: tracking_number", renamed) in problems


# -- composition: the same reading of a schema as contracts diff --------------------------------


def test_a_field_now_required_through_allof_and_a_refd_base_breaks_the_request(v1):
    schemas = v1["components"]["schemas"]
    schemas["BuyLabelBase"] = schemas.pop("BuyLabel")
    schemas["BuyLabel"] = {
        "allOf": [
            {"$ref": "#/components/schemas/BuyLabelBase"},
            {"type": "object", "required": ["incoterms"], "properties": {"incoterms": {}}},
        ]
    }
    schemas["Place"] = {"type": "object", "required": ["state"], "properties": {"state": {}}}
    schemas["Address"] = {"allOf": [schemas["Address"], {"$ref": "#/components/schemas/Place"}]}
    problems = {p for p in _problems(check([_pact()], v1, None)) if p[0] == BUY}
    assert problems == {
        (BUY, "request body: incoterms", "required field not sent"),
        (BUY, "request body: ship_to.state", "required field not sent"),
    }


def test_read_only_fields_are_not_asked_of_a_request_and_write_only_ones_never_answered(v1):
    schemas = v1["components"]["schemas"]
    schemas["BuyLabel"]["properties"]["label_id"] = {"type": "string", "readOnly": True}
    schemas["BuyLabel"]["required"].append("label_id")  # the provider fills it
    schemas["BuyLabel"]["properties"]["service"]["readOnly"] = True  # sent, now ignored
    schemas["Label"]["properties"]["cost"] = {
        "allOf": [{"$ref": "#/components/schemas/Money"}],
        "writeOnly": True,
    }
    result = check([_pact()], v1, None)
    assert _problems(result) == {
        (BUY, "response 201 body: cost", "write-only in the new spec: never answered"),
        (READ, "response 200 body: cost", "write-only in the new spec: never answered"),
    }
    ignored = (BUY, "request body: service", "read-only in the new spec: the provider ignores it")
    assert ignored in _problems(result, breaking=False)


def test_a_discriminator_picks_the_variant_a_value_is_checked_against(v1):
    schemas = v1["components"]["schemas"]
    ground = {"type": "object", "properties": {"service": {"type": "string"}}}
    schemas["Ground"] = {**ground, "required": ["service", "ship_to"]}
    schemas["Express"] = {**ground, "required": ["service", "deliver_by"]}
    choice = {
        "oneOf": [
            {"$ref": "#/components/schemas/Ground"},
            {"$ref": "#/components/schemas/Express"},
        ],
        "discriminator": {"propertyName": "service", "mapping": {"ground": "Ground"}},
    }
    v1["components"]["schemas"]["BuyLabel"] = {"allOf": [schemas["BuyLabel"], choice]}
    assert check([_pact()], v1, None).passed  # service: ground -> Ground, which holds
    choice["discriminator"]["mapping"] = {"standard": "Ground", "next_day": "Express"}
    schemas["Express"]["required"] = ["service"]  # would hold without the discriminator
    message = "ground names no variant in the new spec (Express, Ground, next_day, standard)"
    assert (BUY, "request body: service", message) in _problems(check([_pact()], v1, None))


def test_a_null_wrapped_ref_reads_as_nullable_and_a_parameter_by_content_is_checked(v1):
    label = v1["components"]["schemas"]["Label"]
    label["properties"]["ship_to"] = {
        "oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Address"}]
    }
    read = v1["paths"]["/labels/{label_id}"]
    read["parameters"][0] = {
        "name": "label_id",
        "in": "path",
        "required": True,
        "content": {"text/plain": {"schema": {"type": "string", "enum": ["LB-000009"]}}},
    }
    result = check([_pact()], v1, None)
    assert _problems(result) == {
        (READ, "request path: label_id", "LB-000001 not in the new spec's enum (LB-000009)")
    }
    warning = (BUY, "response 201 body: ship_to", "nullable in the new spec: may come as null")
    assert warning in _problems(result, breaking=False)
