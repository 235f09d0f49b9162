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
