"""twinyard contracts diff: which changes between two vendor OpenAPI versions break a client."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.contracts.openapi_diff import Change, diff

CARRIER = Path(__file__).resolve().parent.parent / "contracts" / "openapi" / "carrier.yaml"


@pytest.fixture
def v1() -> dict:
    return yaml.safe_load(CARRIER.read_text())


def _breaking(changes: list[Change]) -> set[tuple[str, str, str]]:
    return {(c.operation, c.where, c.message) for c in changes if c.breaking}


def test_a_spec_against_itself_has_no_changes(v1):
    assert diff(v1, copy.deepcopy(v1)) == []


def test_each_kind_of_breaking_change_is_named_with_its_operation_and_field(v1):
    v2 = copy.deepcopy(v1)
    schemas = v2["components"]["schemas"]
    label = schemas["Label"]
    # renamed response field (snake_case -> camelCase in "v2")
    label["properties"]["trackingNumber"] = label["properties"].pop("tracking_number")
    label["required"] = [
        "trackingNumber" if f == "tracking_number" else f for f in label["required"]
    ]
    del label["properties"]["cost"]  # removed response field
    label["required"].remove("cost")
    schemas["BuyLabel"]["properties"]["incoterms"] = {"type": "string"}  # new required field
    schemas["BuyLabel"]["required"].append("incoterms")
    schemas["BuyLabel"]["properties"]["service"]["enum"] = ["ground"]  # narrowed request enum
    del v2["paths"]["/labels"]["post"]["responses"]["422"]  # removed status
    schemas["Parcel"]["properties"]["weight_kg"] = {"type": "string"}  # changed type
    breaking = _breaking(diff(v1, v2))
    assert (
        "POST /labels",
        "response 201: tracking_number",
        "field removed (renamed to trackingNumber?)",
    ) in breaking
    assert ("POST /labels", "response 201: cost", "field removed") in breaking
    assert ("POST /labels", "request body: incoterms", "required field added") in breaking
    assert ("POST /labels", "request body: service", "enum values removed: express") in breaking
    assert ("POST /labels", "response 422", "status removed") in breaking
    assert (
        "POST /labels",
        "request body: packages[].weight_kg",
        "type changed from number to string",
    ) in breaking
    # the same Label schema answers GET /labels/{id}: its removals break that call too
    assert ("GET /labels/{label_id}", "response 200: cost", "field removed") in breaking


def test_additions_a_tolerant_client_ignores_are_not_breaking(v1):
    v2 = copy.deepcopy(v1)
    schemas = v2["components"]["schemas"]
    schemas["Label"]["properties"]["label_format"] = {"type": "string"}  # new response field
    schemas["BuyLabel"]["properties"]["reference_2"] = {"type": "string"}  # optional request
    v2["paths"]["/labels"]["post"]["responses"]["409"] = {"description": "conflict"}
    v2["paths"]["/pickups"] = {"post": {"responses": {"201": {"description": "booked"}}}}
    schemas["BuyLabel"]["properties"]["service"]["enum"].append("economy")  # wider request enum
    changes = diff(v1, v2)
    assert changes and not any(c.breaking for c in changes)
    assert ("POST /pickups", "operation", "added") in {
        (c.operation, c.where, c.message) for c in changes
    }


def test_a_new_value_in_a_response_enum_breaks_a_client_that_switches_on_it(v1):
    v2 = copy.deepcopy(v1)
    v2["components"]["schemas"]["LabelStatus"]["enum"].append("returned")
    breaking = _breaking(diff(v1, v2))
    assert ("POST /labels", "response 201: status", "enum values added: returned") in breaking


def test_the_command_exits_1_on_breaking_changes_0_without_and_2_on_a_bad_file(
    v1, tmp_path, capsys
):
    v2 = copy.deepcopy(v1)
    del v2["paths"]["/labels/{label_id}/void"]
    new = tmp_path / "carrier-v2.yaml"
    new.write_text(yaml.safe_dump(v2))
    assert main(["contracts", "diff", str(CARRIER), str(new)]) == 1
    out = capsys.readouterr().out
    assert "POST /labels/{label_id}/void" in out and "1 breaking" in out
    assert main(["contracts", "diff", str(CARRIER), str(CARRIER)]) == 0
    assert main(["contracts", "diff", str(CARRIER), str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("twinyard: error: cannot read")


# -- parameters, nullability, enums dropped --------------------------------------------------


def test_a_new_required_parameter_breaks_and_an_optional_one_does_not(v1):
    v2 = copy.deepcopy(v1)
    read = v2["paths"]["/labels/{label_id}"]["get"]
    read["parameters"].append({"name": "account", "in": "query", "required": True})
    read["parameters"].append({"name": "fields", "in": "query", "schema": {"type": "string"}})
    changes = {(c.where, c.message, c.breaking) for c in diff(v1, v2)}
    assert ("query parameter: account", "required parameter added", True) in changes
    assert ("query parameter: fields", "optional parameter added", False) in changes


def test_a_header_becoming_required_breaks_the_operations_that_use_it(v1):
    v2 = copy.deepcopy(v1)
    v2["components"]["parameters"]["IdempotencyKey"]["required"] = True
    breaking = _breaking(diff(v1, v2))
    assert ("POST /labels", "header parameter: idempotency-key", "parameter now required") in (
        breaking
    )


def test_a_path_level_parameter_moved_onto_the_operation_is_no_change(v1):
    v2 = copy.deepcopy(v1)
    item = v2["paths"]["/labels/{label_id}"]
    shared = item.pop("parameters")
    for method in ("get",):
        item[method]["parameters"] = shared + item[method]["parameters"]
    assert [c for c in diff(v1, v2) if c.operation == "GET /labels/{label_id}"] == []


def test_a_parameter_type_change_breaks(v1):
    v2 = copy.deepcopy(v1)
    v2["components"]["parameters"]["CorrelationId"]["schema"] = {"type": "integer"}
    assert (
        "GET /labels/{label_id}",
        "header parameter: x-correlation-id",
        "type changed from string to integer",
    ) in _breaking(diff(v1, v2))


def test_a_response_field_that_may_now_be_null_breaks_a_reader(v1):
    v2 = copy.deepcopy(v1)
    v2["components"]["schemas"]["Label"]["properties"]["tracking_number"]["nullable"] = True
    assert (
        "POST /labels",
        "response 201: tracking_number",
        "may now be null",
    ) in _breaking(diff(v1, v2))


def test_a_request_field_no_longer_nullable_breaks_a_writer_and_the_reverse_does_not(v1):
    old, new = copy.deepcopy(v1), copy.deepcopy(v1)
    old["components"]["schemas"]["BuyLabel"]["properties"]["shipment_ref"]["nullable"] = True
    changes = {(c.where, c.message, c.breaking) for c in diff(old, new)}
    assert ("request body: shipment_ref", "no longer accepts null", True) in changes
    widened = {(c.where, c.message, c.breaking) for c in diff(new, old)}
    assert ("request body: shipment_ref", "may now be null", False) in widened


def test_an_enum_dropped_from_a_response_breaks_and_from_a_request_does_not(v1):
    v2 = copy.deepcopy(v1)
    del v2["components"]["schemas"]["LabelStatus"]["enum"]
    del v2["components"]["schemas"]["BuyLabel"]["properties"]["service"]["enum"]
    changes = {(c.operation, c.where, c.message, c.breaking) for c in diff(v1, v2)}
    assert ("POST /labels", "response 201: status", "enum removed (any value now)", True) in (
        changes
    )
    assert ("POST /labels", "request body: service", "enum removed (any value now)", False) in (
        changes
    )


# -- composition, security and the shipped upgrade (issue 14) -----------------------------------


def test_the_four_misses_measured_on_the_carrier_spec_are_found(v1):
    """A field made required inside allOf, a field removed inside a oneOf variant, a new
    required field in a $ref'd base, and a new security requirement."""
    old, new = copy.deepcopy(v1), v1
    for spec, extra in ((old, {}), (new, {"required": ["incoterms"]})):
        schemas = spec["components"]["schemas"]
        schemas["BuyLabelBase"] = schemas.pop("BuyLabel")
        part = {"type": "object", "properties": {"incoterms": {"type": "string"}}, **extra}
        schemas["BuyLabel"] = {"allOf": [{"$ref": "#/components/schemas/BuyLabelBase"}, part]}
        money = {"$ref": "#/components/schemas/Money"}
        schemas["Label"]["properties"]["cost"] = {"oneOf": [money, {"type": "string"}]}
    new_schemas = new["components"]["schemas"]
    del new_schemas["Money"]["properties"]["currency"]
    new_schemas["Money"]["required"].remove("currency")
    new_schemas["Address"]["properties"]["state"] = {"type": "string"}
    new_schemas["Address"]["required"].append("state")
    new["components"]["securitySchemes"] = {"key": {"type": "apiKey", "in": "header", "name": "K"}}
    new["security"] = [{"key": []}]
    breaking = _breaking(diff(old, new))
    assert {
        ("POST /labels", "request body: incoterms", "field now required"),
        ("POST /labels", "response 201: cost.oneOf[Money].currency", "field removed"),
        ("POST /labels", "request body: ship_to.state", "required field added"),
        ("POST /labels", "security", "authentication now required: key"),
        ("GET /labels/{label_id}", "security", "authentication now required: key"),
    } <= breaking


def test_the_shipped_upgrades_report_what_docs_api_versions_lists():
    specs = CARRIER.parent
    load = [yaml.safe_load((specs / f"carrier{n}.yaml").read_text()) for n in ("", ".v1.1", ".v2")]
    v1, v1_1, v2 = load
    assert not any(c.breaking for c in diff(v1, v1_1)) and len(diff(v1, v1_1)) == 13
    changes = diff(v1, v2)
    breaking = _breaking(changes)
    label_answers = {
        "POST /labels": "response 201",
        "GET /labels/{label_id}": "response 200",
        "POST /labels/{label_id}/void": "response 200",
    }
    for op, where in label_answers.items():
        assert (op, f"{where}: events", "field removed") in breaking
        assert (op, f"{where}: cost.amount", "type changed from string to integer") in breaking
    assert ("POST /labels", "request body: label_format", "required field added") in breaking
    assert ("POST /labels", "response 400", "status removed") in breaking
    assert (
        "GET /tracking/{tracking_number}",
        "response 200: tracking_number",
        "field removed (renamed to tracking_id?)",
    ) in breaking
    # The simulator's own state answer: its labels no longer carry the patterns (a widened
    # response), which the diff could not see before it compared a map's values.
    sim_state = {c for c in breaking if c[0] == "GET /_sim/state"}
    assert {c[2].split(" (")[0] for c in sim_state} == {"pattern removed"}
    assert (sum(c.breaking for c in changes), sum(not c.breaking for c in changes)) == (20, 20)
