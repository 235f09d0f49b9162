"""The reference stack on carrier API 2.0 (``REFSTACK_CARRIER_API=v2``).

The stack keeps 1.0's words inside and translates at the carrier boundary only
(``reference_stack.carrier_versions``), so what it posts to the ERP, WMS and TMS must be
exactly what it posts on 1.0. Unit tests of the translation (also against the simulator's own
faces), the client (aioresponses), the stack in process (as tests/test_refstack_flow.py drives it),
its configuration, and one whole morning played on each version.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvloop
import yaml
from starlette.testclient import TestClient

import simulators
from harness import scenario
from harness.runner import RunConfig, run
from reference_stack import carrier_versions, defects
from reference_stack.carrier_versions import decimal_amount, label_answer, label_request
from reference_stack.clients import KNOWN_FIELDS, Vendors, Verdict, known_fields
from reference_stack.config import CARRIER_API_VAR, Config, ConfigError
from simulators.common.clock import ManualClock
from simulators.provider_states import DEFAULT_SHIP_TO
from tests.support import MockVendors, Sent, VendorAnswer, answer
from tests.test_refstack_flow import (
    CARRIER,
    CONTENTS,
    LABEL,
    ORDER,
    PACKED,
    URLS,
    Sut,
    body,
    make_config,
    retried_label_purchase_is_the_same,
    router,  # noqa: F401  (the fixture)
    running,
    vendor_error,
    vendor_routes,
)
from tests.test_refstack_process import GOOD_ENV, clean_env, run_stack

REPO = Path(__file__).resolve().parent.parent
UPGRADE_MORNING = REPO / "contracts" / "upgrades" / "carrier_v2.yaml"
CORR = "corr-SO-000001-abcd1234"

# The job's request, in the stack's own (1.0) words, as steps.buy_label builds it.
V1_REQUEST = {
    "shipment_ref": "SH-000001",
    "service": "ground",
    "ship_to": DEFAULT_SHIP_TO,
    "packages": [{"weight_kg": 2.5, "contents": CONTENTS}],
}
# LABEL (tests/test_refstack_flow.py) as carrier 2.0 answers it.
V2_LABEL = {
    "id": "LB-000001",
    "tracking_id": "PC000000001",
    "shipment_ref": "SH-000001",
    "service": "standard",
    "label_format": "pdf",
    "label_url": "https://labels.parcelco.example/LB-000001.pdf",
    "reference": None,
    "cost": {"amount": 540, "currency": "EUR"},
    "status": "created",
}


# -- the translation -------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["v1", "v1.1"])
def test_1x_sends_the_request_it_always_sent(version: str) -> None:
    assert label_request(version, V1_REQUEST) is V1_REQUEST


@pytest.mark.parametrize(("ours", "theirs"), [("ground", "standard"), ("express", "express")])
def test_2_0_requests_say_standard_and_ask_for_a_pdf(ours: str, theirs: str) -> None:
    job = {**V1_REQUEST, "service": ours}
    sent = label_request("v2", job)
    assert sent == {**V1_REQUEST, "service": theirs, "label_format": "pdf"}
    assert job["service"] == ours and "label_format" not in job  # the job keeps its words


def test_a_2_0_label_reads_in_1_0_words() -> None:
    assert label_answer("v2", V2_LABEL) == {
        "id": "LB-000001",
        "tracking_number": "PC000000001",
        "shipment_ref": "SH-000001",
        "service": "ground",
        "label_format": "pdf",  # what 1.0 did not have is kept: a tolerant reader ignores it
        "label_url": "https://labels.parcelco.example/LB-000001.pdf",
        "reference": None,
        "cost": {"amount": "5.40", "currency": "EUR"},
        "status": "created",
    }


@pytest.mark.parametrize(
    ("minor", "decimal"),
    [(540, "5.40"), (5, "0.05"), (0, "0.00"), (123456, "1234.56"), ("5.40", "5.40")],
)
def test_minor_units_become_the_decimal_string_of_1_0(minor: Any, decimal: str) -> None:
    assert decimal_amount(minor) == decimal


@pytest.mark.parametrize("odd", [None, True, 5.4, {"amount": 1}])
def test_an_amount_that_is_no_integer_is_left_as_it_came(odd: Any) -> None:
    assert decimal_amount(odd) is odd


@pytest.mark.parametrize(
    ("version", "answer"),
    [("v1", LABEL), ("v1.1", LABEL), ("v2", "<html>bad gateway</html>"), ("v2", None)],
)
def test_other_answers_pass_unchanged(version: str, answer: Any) -> None:
    assert label_answer(version, answer) is answer


def test_a_2_0_label_missing_its_number_stays_without_one() -> None:
    """As a 1.0 label without ``tracking_number`` would: nothing is made up."""
    thin = label_answer("v2", {"id": "LB-000001", "service": "express"})
    assert thin == {"id": "LB-000001", "service": "express"}


@pytest.mark.parametrize("service", ["ground", "express"])
def test_the_simulators_2_0_label_is_its_1_0_label_in_1_0_words(service: str) -> None:
    """The same purchase through the carrier simulator's two faces: translated, the 2.0
    answer is the 1.0 one, bar the embedded events 2.0 dropped and the fields it added."""
    job = {**V1_REQUEST, "service": service}
    on_v1 = TestClient(simulators.build("carrier", ManualClock()).app)
    on_v2 = TestClient(simulators.build("carrier", ManualClock(), api_version="v2").app)
    bought_v1 = on_v1.post("/labels", json=label_request("v1", job))
    bought_v2 = on_v2.post("/labels", json=label_request("v2", job))
    assert (bought_v1.status_code, bought_v2.status_code) == (201, 201)
    v1, read = bought_v1.json(), label_answer("v2", bought_v2.json())
    added = {"label_format", "label_url", "reference"}
    assert {k: v for k, v in read.items() if k not in added} == {
        k: v for k, v in v1.items() if k != "events"
    }
    assert read["tracking_number"] == v1["tracking_number"] == "PC000000001"
    assert read["cost"] == v1["cost"]  # "5.40"-style decimal strings again


def test_the_2_0_label_fields_are_those_of_the_published_contract() -> None:
    spec = yaml.safe_load((REPO / "contracts" / "openapi" / "carrier.v2.yaml").read_text())
    created = spec["paths"]["/labels"]["post"]["responses"]["201"]
    ref = created["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert set(schema["properties"]) == carrier_versions.LABEL_FIELDS_V2


def test_only_the_label_answer_changes_in_the_known_fields_of_2_0() -> None:
    assert known_fields("v1") is KNOWN_FIELDS and known_fields("v1.1") is KNOWN_FIELDS
    on_v2 = known_fields("v2")
    assert on_v2["label"].fields == carrier_versions.LABEL_FIELDS_V2
    assert {k: v for k, v in on_v2.items() if k != "label"} == {
        k: v for k, v in KNOWN_FIELDS.items() if k != "label"
    }


def test_an_unknown_version_cannot_be_spoken() -> None:
    with pytest.raises(ValueError, match="unknown carrier API version 'v3'"):
        carrier_versions.check("v3")
    with pytest.raises(ValueError, match="'v3'"):
        Vendors(URLS, carrier_api="v3")


# -- the client ------------------------------------------------------------------------------
@asynccontextmanager
async def client_on(version: str, *defect: str) -> AsyncIterator[Vendors]:
    vendors = Vendors(URLS, timeout_s=1.0, carrier_api=version, defects=frozenset(defect))
    try:
        yield vendors
    finally:
        await vendors.aclose()


async def buy(vendors: Vendors) -> Any:
    return await vendors.buy_label(V1_REQUEST, key="label-FO-000001", correlation_id=CORR)


async def test_a_2_0_purchase_is_sent_in_2_0_words_and_read_in_1_0_words(
    router: MockVendors,  # noqa: F811
) -> None:
    route = router.post(f"{CARRIER}/labels").respond(201, json=V2_LABEL)
    async with client_on("v2") as vendors:
        outcome = await buy(vendors)
    [sent] = route.calls
    assert body(sent) == {**V1_REQUEST, "service": "standard", "label_format": "pdf"}
    assert sent.headers["idempotency-key"] == "label-FO-000001"
    assert outcome.verdict is Verdict.OK
    assert outcome.body == label_answer("v2", V2_LABEL)


async def test_v1_1_is_spoken_as_1_0(router: MockVendors) -> None:  # noqa: F811
    route = router.post(f"{CARRIER}/labels").respond(201, json=LABEL)
    async with client_on("v1.1") as vendors:
        outcome = await buy(vendors)
    assert body(route.calls[-1]) == V1_REQUEST
    assert outcome.body == LABEL


@pytest.mark.parametrize(
    ("status", "verdict"), [(422, Verdict.REFUSED), (503, Verdict.RETRY), (409, Verdict.REFUSED)]
)
async def test_a_2_0_refusal_is_kept_as_the_carrier_wrote_it(
    status: int,
    verdict: Verdict,
    router: MockVendors,  # noqa: F811
) -> None:
    refusal = vendor_error(status, "validation_failed")
    router.post(f"{CARRIER}/labels").side_effect = refusal
    async with client_on("v2") as vendors:
        outcome = await buy(vendors)
    assert (outcome.verdict, outcome.status) == (verdict, status)
    assert outcome.body == refusal.payload


async def test_strict_parsing_on_2_0_knows_the_2_0_label(
    router: MockVendors,  # noqa: F811
) -> None:
    """A strict client generated from the 2.0 contract takes 2.0's labels and refuses a
    field beyond them, keeping the label as the carrier wrote it for the dead letter."""
    route = router.post(f"{CARRIER}/labels")
    async with client_on("v2", defects.STRICT_PARSING) as vendors:
        route.respond(201, json=V2_LABEL | {"created_at": "2026-11-23T09:00:00Z"})
        assert (await buy(vendors)).verdict is Verdict.OK
        drifted = V2_LABEL | {"customs": {"required": False}}
        route.respond(201, json=drifted)
        outcome = await buy(vendors)
    assert outcome.verdict is Verdict.REFUSED and outcome.body == drifted
    assert "unknown field 'customs'" in (outcome.error or "")


# -- the stack in process --------------------------------------------------------------------
@asynccontextmanager
async def stack_on(version: str, db: Path, mock: MockVendors) -> AsyncIterator[Sut]:
    """The stack of tests/test_refstack_flow.py, speaking carrier ``version``."""
    config = dataclasses.replace(make_config(db), carrier_api=version)
    async with running(db, mock, vendor_routes(mock), config) as sut:
        yield sut


@pytest.fixture
async def sut(tmp_path: Path, router: MockVendors) -> AsyncIterator[Sut]:  # noqa: F811
    async with stack_on("v2", tmp_path / "stack.db", router) as on_v2:
        on_v2.routes["label"].respond(201, json=V2_LABEL)
        yield on_v2


async def test_on_2_0_the_label_is_bought_in_2_0_words_and_its_tracking_id_attached(
    sut: Sut,
) -> None:
    await sut.deliver("erp", "order.released", ORDER)
    await sut.settle()
    await sut.deliver("wms", "order.packed", PACKED)
    await sut.settle()
    [label], [attach] = sut.requests("label"), sut.requests("attach")
    assert body(label) == {
        "shipment_ref": "SH-000001",
        "service": "standard",
        "ship_to": PACKED["ship_to"],
        "packages": [{"weight_kg": 2.5, "contents": CONTENTS}],
        "label_format": "pdf",
    }
    # exactly what the 1.0 stack attaches (test_packed_plans_buys_and_attaches_in_that_order)
    assert body(attach) == {
        "tracking_number": "PC000000001",
        "carrier": "parcelco",
        "label_id": "LB-000001",
    }
    known = (await sut.client.get("/_stack/orders/SO-000001")).json()["order"]
    assert (known["label_id"], known["tracking_number"]) == ("LB-000001", "PC000000001")


async def test_on_2_0_a_retried_purchase_sends_the_same_bytes_under_the_same_key(
    sut: Sut,
) -> None:
    await retried_label_purchase_is_the_same(sut, V2_LABEL)


async def test_on_2_0_the_tracking_id_leads_the_carriers_scans_to_the_erp(sut: Sut) -> None:
    """The stack finds an order by the number it read off the label: a 2.0 label misread
    would leave every scan of the parcel unposted ("a parcel this stack did not label")."""
    await sut.ship_order()
    scan = {
        "tracking_number": "PC000000001",  # the webhook still says tracking_number in 2.0
        "status": "in_transit",
        "occurred_at": "2026-11-24T02:00:00Z",
        "sequence": 2,
    }
    await sut.deliver("carrier", "tracking.updated", scan)
    await sut.settle()
    [tracking] = sut.requests("tracking")
    assert body(tracking) == {
        "tracking_number": "PC000000001",
        "status": "in_transit",
        "occurred_at": "2026-11-24T02:00:00Z",
    }
    [issue] = sut.requests("issue")
    assert body(issue)["tracking_number"] == "PC000000001"


def _forward_to(carrier: Any) -> Any:
    """A route's side effect handing the request to a carrier simulator's ASGI app."""
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=carrier.app), base_url="http://127.0.0.1"
    )
    forwarded = ("content-type", "idempotency-key", "x-correlation-id")

    async def forward(request: Sent) -> VendorAnswer:
        headers = {k: v for k, v in request.headers.items() if k in forwarded}
        answered = await http.post("/labels", content=request.content, headers=headers)
        return answer(
            answered.status_code, content=answered.content, headers=dict(answered.headers)
        )

    return forward


async def _business_calls(version: str, tmp_path: Path) -> tuple[list[Any], list[Any]]:
    """Ship SO-000001 and scan its parcel, with the carrier a simulator speaking ``version``
    and the stack configured to speak it: the calls to ERP, WMS and TMS (each write's host,
    path, key and body), and the label requests the carrier received."""
    carrier = simulators.build("carrier", ManualClock(), api_version=version)
    with MockVendors() as mock:
        async with stack_on(version, tmp_path / f"{version}.db", mock) as on:
            on.routes["label"].side_effect = _forward_to(carrier)
            await on.ship_order()
            scan = {
                "tracking_number": "PC000000001",
                "status": "delivered",
                "occurred_at": "2026-11-24T12:00:00Z",
                "sequence": 4,
            }
            await on.deliver("carrier", "tracking.updated", scan)
            await on.settle()
            calls = [
                (r.url.host, r.method, r.url.path, r.headers.get("idempotency-key"), r.content)
                for r in mock.calls
                if r.url.path != "/webhooks" and r.url.host != "carrier.test"
            ]
            labels = [body(r) for r in on.requests("label")]
    assert carrier.model.snapshot()["labels"]["LB-000001"]["tracking_number"] == "PC000000001"
    return calls, labels


@pytest.mark.parametrize("version", ["v1.1", "v2"])
async def test_erp_wms_and_tms_see_the_same_calls_whichever_version_the_carrier_speaks(
    version: str, tmp_path: Path
) -> None:
    on_v1, labels_v1 = await _business_calls("v1", tmp_path)
    on_other, labels_other = await _business_calls(version, tmp_path)
    assert on_other == on_v1
    assert [(host, path) for host, _, path, _, _ in on_v1] == [
        ("wms.test", "/fulfilment-orders"),
        ("tms.test", "/shipments"),
        ("wms.test", "/fulfilment-orders/FO-000001/label"),
        ("erp.test", "/orders/SO-000001/goods-issue"),
        ("erp.test", "/orders/SO-000001/tracking"),
    ]
    assert labels_v1 == [V1_REQUEST | {"ship_to": PACKED["ship_to"]}]
    expected = labels_v1 if version == "v1.1" else [label_request("v2", labels_v1[0])]
    assert labels_other == expected


# -- configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "version"),
    [(None, "v1"), ("", "v1"), ("v1", "v1"), ("v1.1", "v1.1"), ("v2", "v2"), (" v2 ", "v2")],
)
def test_the_carrier_api_is_read_from_the_environment(value: str | None, version: str) -> None:
    env = GOOD_ENV if value is None else GOOD_ENV | {CARRIER_API_VAR: value}
    assert Config.from_env(env).carrier_api == version


@pytest.mark.parametrize("value", ["v3", "V2", "2", "v2.0"])
def test_another_carrier_api_is_a_config_error_naming_the_allowed_ones(value: str) -> None:
    message = f"REFSTACK_CARRIER_API must be one of v1, v1.1, v2, got {value!r}"
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        Config.from_env(GOOD_ENV | {CARRIER_API_VAR: value})


def test_a_bad_carrier_api_is_one_line_and_exit_2() -> None:
    result = run_stack(clean_env(**GOOD_ENV, REFSTACK_CARRIER_API="v3"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "reference_stack: REFSTACK_CARRIER_API must be one of v1, v1.1, v2, got 'v3'"
    ]


# -- a whole morning -------------------------------------------------------------------------
@pytest.mark.e2e
def test_the_upgrade_morning_on_2_0_has_the_business_outcome_of_1_0(tmp_path: Path) -> None:
    """contracts/upgrades/carrier_v2.yaml, the upgrade's acceptance test (docs/api-versions.md):
    the stack on 2.0 passes it, and ends the day as the stack on 1.0 ends it on 1.0 (about
    4 s a run)."""

    def play(version: str) -> Any:
        day = scenario.load(UPGRADE_MORNING, (f"carrier.api_version={version}",))
        config = RunConfig(
            scenario=day,
            report_dir=tmp_path / version,
            stack_env={CARRIER_API_VAR: version},
        )
        return uvloop.run(run(config))

    on_v1, on_v2 = play("v1"), play("v2")
    assert on_v1.passed and on_v2.passed, [r.name for r in on_v2.results if not r.passed]
    assert "the carrier serves its API v2" in on_v2.notes
    assert on_v2.counts == on_v1.counts and on_v2.counts["shipped"] == 30
    assert on_v2.outcome_digest == on_v1.outcome_digest
