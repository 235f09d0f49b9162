"""The strict-parsing defect: an answer with a field the stack does not know fails the call.

The defect is there with its flag and not without (as tests/test_refstack_defects.py does for
the others: the stack in process, aioresponses playing the vendors), the client refuses exactly
the unknown fields, and its table of known fields is the vendors' published contracts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reference_stack import defects
from reference_stack.clients import KNOWN_FIELDS, Outcome, Vendors, Verdict
from tests.support import MockVendors
from tests.test_refstack_defects import ON_OFF, order, stack_with
from tests.test_refstack_flow import (
    LABEL,
    PACKED,
    URLS,
    router,  # noqa: F401  (the fixture)
)

CORR = "corr-SO-000001-abcd1234"
SPECS = Path(__file__).resolve().parents[1] / "contracts" / "openapi"
# What the carrier's v2.3 adds to a label: a field and an object the stack never asked for.
DRIFTED_LABEL = LABEL | {"label_format": "ZPL", "customs": {"required": False}}


@ON_OFF
async def test_strict_parsing(defective: bool, tmp_path: Path, router: MockVendors) -> None:  # noqa: F811
    async with stack_with(defects.STRICT_PARSING, defective, tmp_path, router) as sut:
        sut.routes["label"].respond(201, json=DRIFTED_LABEL)
        await sut.deliver("wms", "order.packed", PACKED)
        probe = await sut.settle()
        known = await order(sut)
        assert len(sut.requests("label")) == 1  # the carrier sold the label either way
        assert probe["dead"] == (1 if defective else 0)
        assert known["order"]["label_id"] == (None if defective else "LB-000001")
        assert len(sut.requests("attach")) == (0 if defective else 1)
        if defective:
            [dead] = (await sut.client.get("/_stack/dead-letters")).json()["items"]
            assert "'customs', 'label_format'" in str(dead)


# -- the client ----------------------------------------------------------------------------
@pytest.fixture
async def strict() -> AsyncIterator[Vendors]:
    client = Vendors(URLS, timeout_s=1.0, defects=frozenset({defects.STRICT_PARSING}))
    yield client
    await client.aclose()


@pytest.fixture
async def tolerant() -> AsyncIterator[Vendors]:
    client = Vendors(URLS, timeout_s=1.0)
    yield client
    await client.aclose()


async def buy(vendors: Vendors) -> Any:
    return await vendors.buy_label({}, key="label-FO-000001", correlation_id=CORR)


async def test_an_unknown_field_is_refused_and_named(
    strict: Vendors,
    router: MockVendors,  # noqa: F811
) -> None:
    router.post("http://carrier.test/labels").respond(201, json=DRIFTED_LABEL)
    outcome = await buy(strict)
    assert (outcome.verdict, outcome.status) == (Verdict.REFUSED, 201)
    assert outcome.body == DRIFTED_LABEL  # kept for the dead letter
    assert outcome.error == (
        "POST /labels -> HTTP 201: cannot parse the label: unknown fields 'customs', 'label_format'"
    )


async def test_the_tolerant_reader_ignores_unknown_fields(
    tolerant: Vendors,
    router: MockVendors,  # noqa: F811
) -> None:
    router.post("http://carrier.test/labels").respond(201, json=DRIFTED_LABEL)
    outcome = await buy(tolerant)
    assert outcome.verdict is Verdict.OK and outcome.body == DRIFTED_LABEL


async def test_known_fields_new_values_and_missing_fields_pass_strict_parsing(
    strict: Vendors,
    router: MockVendors,  # noqa: F811
) -> None:
    full = dict.fromkeys(KNOWN_FIELDS["label"].fields, None) | LABEL | {"status": "new_status"}
    router.post("http://carrier.test/labels").respond(201, json=full)
    assert (await buy(strict)).verdict is Verdict.OK
    router.post("http://carrier.test/labels").respond(201, json={"id": "LB-000001"})
    assert (await buy(strict)).verdict is Verdict.OK  # strict about extra, not missing


async def test_list_items_are_parsed_strictly_too(
    strict: Vendors,
    router: MockVendors,  # noqa: F811
) -> None:
    fo = {"id": "FO-000001", "order_ref": "SO-000001", "status": "accepted"}
    route = router.get("http://wms.test/fulfilment-orders")
    route.respond(200, json={"items": [fo]})
    assert (await strict.find_fulfilment_orders("SO-000001", correlation_id=CORR)).succeeded
    route.respond(200, json={"items": [fo | {"wave_id": None}]})
    outcome = await strict.find_fulfilment_orders("SO-000001", correlation_id=CORR)
    assert outcome.verdict is Verdict.REFUSED and "'wave_id'" in (outcome.error or "")


async def test_only_2xx_answers_are_parsed_strictly(
    strict: Vendors,
    router: MockVendors,  # noqa: F811
) -> None:
    """Vendor errors and "already done" refusals are read as before, whatever they carry."""
    route = router.post("http://erp.test/orders/SO-000001/goods-issue")
    error = {"code": "already_issued", "message": "x", "details": {}, "trace_id": "t-1"}
    route.respond(409, json={"error": error, "request_id": "r-1"})
    done = await strict.goods_issue("SO-000001", {}, key="gi-FO-1", correlation_id=CORR)
    assert done.verdict is Verdict.DONE
    route.respond(503, json={"error": error, "request_id": "r-1"})
    retry = await strict.goods_issue("SO-000001", {}, key="gi-FO-1", correlation_id=CORR)
    assert retry.verdict is Verdict.RETRY


async def test_calls_without_a_known_answer_are_not_checked(
    strict: Vendors,
    router: MockVendors,  # noqa: F811
) -> None:
    """Subscribing to webhooks is the stack's own set-up, not a call the defect is about."""
    router.post("http://erp.test/webhooks").respond(201, json={"id": "WH-1", "extra": 1})
    outcome = await strict.request("erp", "POST", "/webhooks", body={}, correlation_id=CORR)
    assert outcome.verdict is Verdict.OK


# -- the table is the vendors' v1 contracts --------------------------------------------------
# Each answer the stack parses, and the 2xx answer of a route that gives it.
ANSWERS = {
    "fulfilment_order": ("wms", "/fulfilment-orders", "post"),
    "fulfilment_orders": ("wms", "/fulfilment-orders", "get"),
    "shipment": ("tms", "/shipments", "post"),
    "label": ("carrier", "/labels", "post"),
    "goods_issue": ("erp", "/orders/{order_id}/goods-issue", "post"),
    "sales_order": ("erp", "/orders/{order_id}/tracking", "post"),
    "freight_accrual": ("erp", "/freight-accruals", "post"),
    "inventory_adjustment": ("erp", "/inventory/adjustments", "post"),
    "goods_receipt": ("erp", "/goods-receipts", "post"),
    "credit_memo": ("erp", "/returns/{rma_id}/disposition", "post"),
    "item": ("erp", "/items/{sku}", "get"),
    "wms_item": ("wms", "/items/{sku}", "put"),
    "transfer": ("wms", "/transfers", "post"),
    "transfers": ("wms", "/transfers", "get"),
    "transfer_posting": ("erp", "/transfers/{transfer_id}/goods-issue", "post"),
}
# Answers more than one route gives: the other routes must document the same answer.
SAME_ANSWER = [
    ("transfer_posting", "erp", "/transfers/{transfer_id}/goods-receipt", "post"),
]


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def test_every_known_answer_is_checked_against_a_contract() -> None:
    assert set(ANSWERS) == set(KNOWN_FIELDS)


@pytest.mark.parametrize(("answer", "system", "path", "method"), SAME_ANSWER)
def test_a_route_sharing_an_answer_documents_the_same_fields(
    answer: str, system: str, path: str, method: str
) -> None:
    spec = yaml.safe_load((SPECS / f"{system}.yaml").read_text())
    responses = spec["paths"][path][method]["responses"]
    [ok] = [r for status, r in responses.items() if str(status).startswith("2")]
    schema = _resolve(spec, ok["content"]["application/json"]["schema"])
    assert KNOWN_FIELDS[answer].fields == set(schema["properties"])


@pytest.mark.parametrize("answer", sorted(ANSWERS))
def test_the_known_fields_are_those_of_the_published_contract(answer: str) -> None:
    system, path, method = ANSWERS[answer]
    spec = yaml.safe_load((SPECS / f"{system}.yaml").read_text())
    responses = spec["paths"][path][method]["responses"]
    ok, *others = [r for status, r in responses.items() if str(status).startswith("2")]
    assert all(r["content"] == ok["content"] for r in others)  # a PUT's 200 and 201 alike
    schema = _resolve(spec, ok["content"]["application/json"]["schema"])
    known = KNOWN_FIELDS[answer]
    assert known.fields == set(schema["properties"])
    if known.items is not None:
        items = _resolve(spec, schema["properties"]["items"]["items"])
        assert known.items.fields == set(items["properties"])


async def test_the_request_names_its_answer(tolerant: Vendors) -> None:
    """Each vendor call of the stack names the answer it parses (or strictness never bites)."""
    seen: list[str | None] = []

    async def request(*args: Any, answer: str | None = None, **kwargs: Any) -> Any:
        seen.append(answer)
        return Outcome(Verdict.OK, 201, {})  # some calls read the outcome they get back

    tolerant.request = request  # type: ignore[method-assign]
    await tolerant.create_fulfilment_order({}, key="K", correlation_id=CORR)
    await tolerant.find_fulfilment_orders("SO-1", correlation_id=CORR)
    await tolerant.cancel_fulfilment_order("FO-1", key="K", correlation_id=CORR)
    await tolerant.attach_label("FO-1", {"tracking_number": "PC1"}, key="K", correlation_id=CORR)
    await tolerant.plan_shipment({}, key="K", correlation_id=CORR)
    await buy(tolerant)
    await tolerant.goods_issue("SO-1", {}, key="K", correlation_id=CORR)
    await tolerant.post_tracking("SO-1", {}, key="K", correlation_id=CORR)
    await tolerant.freight_accrual({}, key="K", correlation_id=CORR)
    await tolerant.inventory_adjustment({}, key="K", correlation_id=CORR)
    await tolerant.goods_receipt({}, key="K", correlation_id=CORR)
    await tolerant.create_transfer({}, key="K", correlation_id=CORR)
    await tolerant.find_transfers("TO-1", correlation_id=CORR)
    await tolerant.transfer_issue("TO-1", {}, key="K", correlation_id=CORR)
    await tolerant.transfer_receipt("TO-1", {}, key="K", correlation_id=CORR)
    assert seen == [
        "fulfilment_order",
        "fulfilment_orders",
        "fulfilment_order",
        "fulfilment_order",
        "shipment",
        "label",
        "goods_issue",
        "sales_order",
        "freight_accrual",
        "inventory_adjustment",
        "goods_receipt",
        "transfer",
        "transfers",
        "transfer_posting",
        "transfer_posting",
    ]
