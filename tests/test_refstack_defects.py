"""REFSTACK_DEFECTS: each known defect, driven in process, is there with its flag and not without.

Same set-up as tests/test_refstack_flow.py (ASGI app, mocked vendors, signed webhooks); every
test runs twice, once on the correct stack and once with the one defect switched on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from reference_stack import defects
from reference_stack.config import Config, ConfigError
from tests.support import MockVendors, Sent, VendorAnswer, answer
from tests.test_refstack_flow import (
    ITEM_DATA,
    LABEL,
    ORDER,
    PACKED,
    SHIPMENT,
    SHIPPED,
    TRANSFER_RECEIVED,
    URLS,
    Sut,
    body,
    make_config,
    router,  # noqa: F401  (the fixture)
    vendor_error,
    vendor_routes,
)
from tests.test_refstack_flow import running as flow_stack

ON_OFF = pytest.mark.parametrize("defective", [False, True], ids=["correct", "defective"])


@asynccontextmanager
async def running(path: Path, mock: MockVendors, *names: str) -> AsyncIterator[Sut]:
    config = dataclasses.replace(make_config(path / "stack.db"), defects=frozenset(names))
    async with flow_stack(path / "stack.db", mock, vendor_routes(mock), config) as sut:
        yield sut


def stack_with(defect: str, defective: bool, tmp_path: Path, mock: MockVendors):
    return running(tmp_path, mock, *([defect] if defective else []))


async def order(sut: Sut) -> dict:
    return (await sut.client.get("/_stack/orders/SO-000001")).json()


# -- configuration ----------------------------------------------------------------------------
BASE_ENV = {f"TWINYARD_{s.upper()}_URL": url for s, url in URLS.items()} | {
    "TWINYARD_WEBHOOK_SECRET": "x"
}


def test_defects_are_read_from_the_environment() -> None:
    assert Config.from_env(BASE_ENV).defects == frozenset()
    env = BASE_ENV | {"REFSTACK_DEFECTS": " no-dedup, skip-signature ,,"}
    assert Config.from_env(env).defects == {"no-dedup", "skip-signature"}
    assert Config.from_env(BASE_ENV | {"REFSTACK_DEFECTS": ""}).defects == frozenset()


def test_an_unknown_defect_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"REFSTACK_DEFECTS: unknown defect.*no-such-bug"):
        Config.from_env(BASE_ENV | {"REFSTACK_DEFECTS": "no-dedup,no-such-bug"})


def test_every_defect_is_documented() -> None:
    text = (Path(__file__).parents[1] / "docs" / "defects.md").read_text()
    for name in defects.NAMES:
        assert f"## `{name}`" in text


# -- the defects ------------------------------------------------------------------------------
@ON_OFF
async def test_no_dedup(defective: bool, tmp_path: Path, router: MockVendors) -> None:  # noqa: F811
    async with stack_with(defects.NO_DEDUP, defective, tmp_path, router) as sut:
        await sut.deliver("erp", "order.released", ORDER)
        await sut.deliver("erp", "order.released", ORDER)  # released again (a new event id)
        await sut.settle()
        await sut.deliver("erp", "order.released", ORDER)  # and again, once it was created
        await sut.settle()
        assert len(sut.requests("create")) == (3 if defective else 1)


@ON_OFF
async def test_blind_retry(defective: bool, tmp_path: Path, router: MockVendors) -> None:  # noqa: F811
    async with stack_with(defects.BLIND_RETRY, defective, tmp_path, router) as sut:
        bought: dict[str | None, dict] = {}
        serial = itertools.count(1)

        def carrier(request: Sent) -> VendorAnswer:
            """A carrier honouring Idempotency-Key; the first answer is lost on the way back."""
            key = request.headers.get("idempotency-key")
            if key is None or key not in bought:
                label = LABEL | {"id": f"LB-{next(serial):06d}"}
                bought[key or f"anonymous-{len(bought)}"] = label
                if len(bought) == 1:
                    raise TimeoutError("the response was lost")
            return answer(201, json=bought.get(key, label))

        sut.routes["label"].side_effect = carrier
        await sut.deliver("wms", "order.packed", PACKED)
        await sut.settle()
        assert len(sut.requests("label")) == 2
        assert len(bought) == (2 if defective else 1)  # labels the carrier charged for


@ON_OFF
async def test_no_retry_wms(defective: bool, tmp_path: Path, router: MockVendors) -> None:  # noqa: F811
    async with stack_with(defects.NO_RETRY_WMS, defective, tmp_path, router) as sut:
        sut.routes["create"].side_effect = [
            vendor_error(503, "unavailable"),
            answer(201, json={"id": "FO-000001"}),
        ]
        await sut.deliver("erp", "order.released", ORDER)
        probe = await sut.settle()
        known = await order(sut)
        assert probe["dead"] == 0  # not even a dead letter: the order is silently lost
        assert len(sut.requests("create")) == (1 if defective else 2)
        created = known["order"]["fulfilment_order_id"]
        assert created == (None if defective else "FO-000001")
        assert [job["status"] for job in known["jobs"]] == ["done"]


@ON_OFF
async def test_stale_events(defective: bool, tmp_path: Path, router: MockVendors) -> None:  # noqa: F811
    async with stack_with(defects.STALE_EVENTS, defective, tmp_path, router) as sut:
        await sut.deliver("wms", "order.packed", PACKED)  # buys the label PC000000001
        await sut.settle()
        scan = {"tracking_number": "PC000000001", "occurred_at": "2026-11-24T10:00:00Z"}
        await sut.deliver(
            "carrier", "tracking.updated", scan | {"sequence": 2, "status": "delivered"}
        )
        await sut.deliver(
            "carrier", "tracking.updated", scan | {"sequence": 1, "status": "in_transit"}
        )
        await sut.settle()
        statuses = [body(r)["status"] for r in sut.requests("tracking")]
        assert statuses == (["delivered", "in_transit"] if defective else ["delivered"])


@ON_OFF
async def test_stale_events_replayed_from_dead_letters(
    defective: bool,
    tmp_path: Path,
    router: MockVendors,  # noqa: F811
) -> None:
    """A scan that died (ERP down) and is replayed after a newer scan was posted is dropped."""
    async with stack_with(defects.STALE_EVENTS, defective, tmp_path, router) as sut:
        await sut.deliver("wms", "order.packed", PACKED)
        await sut.settle()
        scan = {"tracking_number": "PC000000001", "occurred_at": "2026-11-24T10:00:00Z"}
        sut.routes["tracking"].side_effect = [
            vendor_error(422, "validation_failed"),
            answer(200, json={}),
            answer(200, json={}),
        ]
        await sut.deliver(
            "carrier", "tracking.updated", scan | {"sequence": 1, "status": "picked_up"}
        )
        await sut.settle()
        await sut.deliver(
            "carrier", "tracking.updated", scan | {"sequence": 2, "status": "in_transit"}
        )
        await sut.settle()
        [dead] = (await sut.client.get("/_stack/dead-letters")).json()["items"]
        assert (
            await sut.client.post(f"/_stack/dead-letters/{dead['id']}/replay")
        ).status_code == 200
        await sut.settle()
        statuses = [body(r)["status"] for r in sut.requests("tracking")]
        expected = ["picked_up", "in_transit"] + (["picked_up"] if defective else [])
        assert statuses == expected


@ON_OFF
async def test_ordered_qty(defective: bool, tmp_path: Path, router: MockVendors) -> None:  # noqa: F811
    async with stack_with(defects.ORDERED_QTY, defective, tmp_path, router) as sut:
        await sut.ship_order()  # line 1: 3 ordered, 2 picked (1 short)
        [issue] = sut.requests("issue")
        qty = [line["qty"] for line in body(issue)["lines"]]
        assert qty == ([3, 1] if defective else [2, 1])


@ON_OFF
async def test_ignore_adjustments(
    defective: bool,
    tmp_path: Path,
    router: MockVendors,  # noqa: F811
) -> None:
    async with stack_with(defects.IGNORE_ADJUSTMENTS, defective, tmp_path, router) as sut:
        adjusted = {"adjustment_id": "ADJ-000001", "sku": "A-100", "delta": -2, "reason": "damage"}
        response = await sut.deliver("wms", "inventory.adjusted", adjusted)
        assert response.status_code == 202  # acknowledged either way
        await sut.settle()
        assert len(sut.requests("adjust")) == (0 if defective else 1)


@ON_OFF
async def test_no_wms_cancel(defective: bool, tmp_path: Path, router: MockVendors) -> None:  # noqa: F811
    async with stack_with(defects.NO_WMS_CANCEL, defective, tmp_path, router) as sut:
        await sut.deliver("erp", "order.released", ORDER)
        await sut.settle()
        await sut.deliver("erp", "order.cancelled", {"order_id": "SO-000001", "cancelled_at": "x"})
        await sut.settle()
        assert len(sut.requests("cancel")) == (0 if defective else 1)


@ON_OFF
async def test_double_goods_issue(
    defective: bool,
    tmp_path: Path,
    router: MockVendors,  # noqa: F811
) -> None:
    async with stack_with(defects.DOUBLE_GOODS_ISSUE, defective, tmp_path, router) as sut:
        await sut.ship_order()
        await sut.deliver("wms", "order.shipped", SHIPPED)  # redelivered under a new event id
        await sut.settle()
        issues = sut.requests("issue")
        assert len(issues) == (2 if defective else 1)
        keys = {r.headers["idempotency-key"] for r in issues}
        assert len(keys) == len(issues)  # a fresh key each time, so the ERP cannot tell
        assert all(key.startswith("gi-FO-000001") for key in keys)


# A return of SO-000001 graded at the bench: line 1 split by condition, line 2 all good.
RETURNED = {
    "receipt_id": "RR-000001",
    "rma_id": "RMA-000001",
    "order_ref": "SO-000001",
    "lines": [
        {"line": 1, "sku": "A-100", "qty": 1, "condition": "restock"},
        {"line": 1, "sku": "A-100", "qty": 1, "condition": "damaged"},
        {"line": 2, "sku": "B-200", "qty": 1, "condition": "scrap"},
    ],
    "received_at": "2026-11-25T10:00:00Z",
}


@ON_OFF
async def test_double_credit(
    defective: bool,
    tmp_path: Path,
    router: MockVendors,  # noqa: F811
) -> None:
    async with stack_with(defects.DOUBLE_CREDIT, defective, tmp_path, router) as sut:
        await sut.deliver("wms", "return.received", RETURNED)
        await sut.settle()
        await sut.deliver("wms", "return.received", RETURNED)  # re-sent under a new event id
        await sut.settle()
        posted = sut.requests("dispose")
        assert len(posted) == (2 if defective else 1)
        keys = {r.headers["idempotency-key"] for r in posted}
        assert len(keys) == len(posted)  # a fresh key each time, so the ERP cannot tell
        assert all(key.startswith("disposition-RR-000001") for key in keys)


@ON_OFF
async def test_restock_damaged(
    defective: bool,
    tmp_path: Path,
    router: MockVendors,  # noqa: F811
) -> None:
    async with stack_with(defects.RESTOCK_DAMAGED, defective, tmp_path, router) as sut:
        await sut.deliver("wms", "return.received", RETURNED)
        await sut.settle()
        [posted] = sut.requests("dispose")
        restocked = [(x["line"], x["qty"], x["restock_qty"]) for x in body(posted)["lines"]]
        assert restocked == ([(1, 2, 2), (2, 1, 1)] if defective else [(1, 2, 1), (2, 1, 0)])
        assert body(posted)["receipt_id"] == "RR-000001"


@ON_OFF
async def test_default_site(defective: bool, tmp_path: Path, router: MockVendors) -> None:  # noqa: F811
    async with stack_with(defects.DEFAULT_SITE, defective, tmp_path, router) as sut:
        await sut.deliver("erp", "order.released", ORDER | {"site": "DC2"})
        await sut.settle()
        [created] = sut.requests("create")
        assert body(created)["order_ref"] == "SO-000001"
        assert body(created).get("site") == (None if defective else "DC2")


@ON_OFF
async def test_transfer_received_twice(
    defective: bool,
    tmp_path: Path,
    router: MockVendors,  # noqa: F811
) -> None:
    async with stack_with(defects.TRANSFER_RECEIVED_TWICE, defective, tmp_path, router) as sut:
        await sut.deliver("wms", "transfer.received", TRANSFER_RECEIVED)
        await sut.settle()
        await sut.deliver("wms", "transfer.received", TRANSFER_RECEIVED)  # under a new event id
        await sut.settle()
        posted = sut.requests("transfer_receipt")
        assert len(posted) == (2 if defective else 1)
        keys = {r.headers["idempotency-key"] for r in posted}
        assert len(keys) == len(posted)  # a fresh key each time, so the ERP cannot tell
        assert all(key.startswith("transfer-receipt-WT-000001") for key in keys)
        assert {body(r)["reference"] for r in posted} == {"WT-000001"}


@ON_OFF
async def test_ignore_retry_after(
    defective: bool,
    tmp_path: Path,
    router: MockVendors,  # noqa: F811
) -> None:
    async with stack_with(defects.IGNORE_RETRY_AFTER, defective, tmp_path, router) as sut:
        sut.routes["create"].side_effect = [
            answer(429, headers={"Retry-After": "30"}),
            answer(201, json={"id": "FO-000001"}),
        ]
        await sut.deliver("erp", "order.released", ORDER)
        if defective:
            await sut.settle()  # retried at once
            assert len(sut.requests("create")) == 2
        else:
            await sut.wait_until_scheduled(1)
            await asyncio.sleep(0.02)
            assert len(sut.requests("create")) == 1  # waiting the 30 s it was asked to


@ON_OFF
async def test_skip_signature(defective: bool, tmp_path: Path, router: MockVendors) -> None:  # noqa: F811
    async with stack_with(defects.SKIP_SIGNATURE, defective, tmp_path, router) as sut:
        forged = await sut.deliver("erp", "order.released", ORDER, secret="guess")
        assert forged.status_code == (202 if defective else 401)
        await sut.settle()
        assert len(sut.requests("create")) == (1 if defective else 0)


@ON_OFF
async def test_drop_correlation(defective: bool, tmp_path: Path, router: MockVendors) -> None:  # noqa: F811
    async with stack_with(defects.DROP_CORRELATION, defective, tmp_path, router) as sut:
        await sut.deliver("erp", "order.released", ORDER, correlation_id="corr-world-1")
        await sut.settle()
        [create] = sut.requests("create")
        assert create.headers.get("x-correlation-id") == (None if defective else "corr-world-1")


@ON_OFF
async def test_drop_freight(defective: bool, tmp_path: Path, router: MockVendors) -> None:  # noqa: F811
    async with stack_with(defects.DROP_FREIGHT, defective, tmp_path, router) as sut:
        settled = {
            "shipment_id": "SH-000001",
            "order_ref": "SO-000001",
            "amount": {"amount": "7.40", "currency": "EUR"},
            "settled_at": "2026-11-23T22:00:00Z",
        }
        await sut.deliver("tms", "freight.settled", settled)
        await sut.settle()
        assert len(sut.requests("accrual")) == (0 if defective else 1)


@ON_OFF
async def test_dead_letter_no_replay(
    defective: bool,
    tmp_path: Path,
    router: MockVendors,  # noqa: F811
) -> None:
    async with stack_with(defects.DEAD_LETTER_NO_REPLAY, defective, tmp_path, router) as sut:
        sut.routes["create"].side_effect = [
            vendor_error(422, "validation_failed"),
            answer(201, json={"id": "FO-000001"}),
        ]
        await sut.deliver("erp", "order.released", ORDER)
        await sut.settle()
        [dead] = (await sut.client.get("/_stack/dead-letters")).json()["items"]
        replayed = await sut.client.post(f"/_stack/dead-letters/{dead['id']}/replay")
        probe = await sut.settle()
        assert replayed.status_code == (409 if defective else 200)
        assert len(sut.requests("create")) == (1 if defective else 2)
        assert probe["dead"] == (1 if defective else 0)


@ON_OFF
async def test_ignore_order_updates(
    defective: bool,
    tmp_path: Path,
    router: MockVendors,  # noqa: F811
) -> None:
    moved = {**ORDER["ship_to"], "street": "Neue Strasse 9"}
    async with stack_with(defects.IGNORE_ORDER_UPDATES, defective, tmp_path, router) as sut:
        await sut.deliver("erp", "order.released", ORDER)
        await sut.settle()
        changed = {"ship_to": moved, "changed": ["ship_to"], "updated_at": "T1"}
        await sut.deliver("erp", "order.updated", {"order_id": "SO-000001", **changed})
        await sut.settle()
        patches = sut.requests("readdress")
        assert len(patches) == (0 if defective else 1)
        if not defective:
            assert body(patches[0]) == {"ship_to": moved}


@ON_OFF
async def test_no_tender_fallback(
    defective: bool,
    tmp_path: Path,
    router: MockVendors,  # noqa: F811
) -> None:
    declined = {
        "error": {
            "code": "tender_rejected",
            "message": "the carrier's express capacity for 2026-11-23 (8 parcels) is taken",
            "details": {
                "reason": "capacity_exhausted",
                "service": "express",
                "available": ["ground"],
            },
        }
    }
    express = {**PACKED, "service_level": "express"}
    async with stack_with(defects.NO_TENDER_FALLBACK, defective, tmp_path, router) as sut:
        sut.routes["plan"].side_effect = [
            answer(422, json=declined),
            answer(201, json=SHIPMENT),
        ]
        await sut.deliver("wms", "order.packed", express)
        probe = await sut.settle()
        plans = [body(r) for r in sut.requests("plan")]
        if defective:
            assert len(plans) == 1 and probe["dead"] == 1
        else:
            assert [p["service_level"] for p in plans] == ["express", "standard"]
            assert probe["dead"] == 0 and len(sut.requests("label")) == 1


@ON_OFF
async def test_serial_labels(defective: bool) -> None:
    """Two parcels packed at once: the correct stack buys both labels side by side; with the
    defect the second purchase waits for the first (one call to the carrier at a time)."""
    from types import SimpleNamespace

    from reference_stack.clients import Outcome, Verdict
    from reference_stack.steps import Steps

    calls = {"now": 0, "most": 0}

    class Carrier:
        async def buy_label(self, body: dict, *, key: str | None, correlation_id: str) -> Outcome:
            calls["now"] += 1
            calls["most"] = max(calls["most"], calls["now"])
            await asyncio.sleep(0.01)
            calls["now"] -= 1
            return Outcome(Verdict.OK, 201, LABEL)

    names = frozenset([defects.SERIAL_LABELS] if defective else [])
    steps = Steps(store=None, vendors=Carrier(), defects=names)  # type: ignore[arg-type]
    jobs = [
        SimpleNamespace(
            payload={
                "order_ref": f"SO-{n}",
                "fulfilment_order_id": f"FO-{n}",
                "carrier": "X",
                "body": {},
            },
            send_key=f"label-FO-{n}",
            correlation_id=f"SO-{n}",
        )
        for n in (1, 2)
    ]
    done = await asyncio.gather(*(steps._buy_label(job) for job in jobs))  # type: ignore[arg-type]
    assert all(c.outcome.succeeded for c in done)  # both labels bought either way
    assert calls["most"] == (1 if defective else 2)


def test_every_defect_has_a_test() -> None:
    from tests import test_refstack_strict_parsing as strict_parsing

    tested = {
        name.removeprefix("test_").replace("_", "-")
        for name in [*globals(), *vars(strict_parsing)]
        if name.startswith("test_")
    }
    assert tested >= defects.NAMES


# An order for a new item sold in cases of 6: 2 cases, 12 eaches.
CASE_ORDER = {**ORDER, "lines": [{"line": 1, "sku": "N-1", "qty": 2, "uom": "CS"}]}
CASE_SHIPPED = {**SHIPPED, "lines": [{"line": 1, "sku": "N-1", "qty": 12}]}


@ON_OFF
async def test_eaches_as_cases(
    defective: bool,
    tmp_path: Path,
    router: MockVendors,  # noqa: F811
) -> None:
    async with stack_with(defects.EACHES_AS_CASES, defective, tmp_path, router) as sut:
        await sut.deliver("erp", "item.created", {"sku": "N-1", **ITEM_DATA})
        await sut.deliver("erp", "order.released", CASE_ORDER)
        await sut.settle()
        [created] = sut.requests("create")
        assert body(created)["lines"] == [{"line": 1, "sku": "N-1", "qty": 12}]  # eaches
        await sut.deliver("wms", "order.shipped", CASE_SHIPPED)
        await sut.settle()
        [posted] = sut.requests("issue")
        uom = "CS" if defective else "EA"
        assert body(posted)["lines"] == [{"line": 1, "qty": 12, "uom": uom}]


@ON_OFF
async def test_unknown_item_not_retried(
    defective: bool,
    tmp_path: Path,
    router: MockVendors,  # noqa: F811
) -> None:
    async with stack_with(defects.UNKNOWN_ITEM_NOT_RETRIED, defective, tmp_path, router) as sut:
        fo = {"id": "FO-000001", "order_ref": "SO-000001", "status": "accepted"}
        sut.routes["create"].side_effect = [
            vendor_error(422, "unknown_item"),
            vendor_error(422, "unknown_item"),
            answer(201, json=fo),
        ]
        await sut.deliver("erp", "order.released", CASE_ORDER)  # before its item.created
        await sut.settle()
        assert len(sut.requests("create")) == (1 if defective else 3)
        known = (await order(sut))["order"]
        assert known["fulfilment_order_id"] == (None if defective else "FO-000001")
        letters = (await sut.client.get("/_stack/dead-letters")).json()["items"]
        assert len(letters) == (1 if defective else 0)


@ON_OFF
async def test_cut_off_forgotten(
    defective: bool,
    tmp_path: Path,
    router: MockVendors,  # noqa: F811
) -> None:
    """Stopped while the WMS creates its order (the answer never came back): started again on
    the same database, the correct stack looks for the order that call made, and finds it."""
    routes = vendor_routes(router)
    db = tmp_path / "stack.db"
    names = frozenset([defects.CUT_OFF_FORGOTTEN] if defective else [])
    config = dataclasses.replace(make_config(db), defects=names)
    sent = asyncio.Event()

    async def never_answered(request: Sent) -> VendorAnswer:
        sent.set()
        await asyncio.Event().wait()  # the stack goes down first
        raise AssertionError("unreachable")

    routes["create"].side_effect = never_answered
    async with flow_stack(db, router, routes, config) as sut:
        await sut.deliver("erp", "order.released", ORDER)
        await asyncio.wait_for(sent.wait(), 5)
    made = {"id": "FO-000001", "order_ref": "SO-000001", "status": "accepted"}
    routes["find"].respond(200, json={"items": [made]})
    routes["create"].respond(201, json=made)
    async with flow_stack(db, router, routes, config) as sut:
        await sut.settle()
        assert (await order(sut))["order"]["fulfilment_order_id"] == "FO-000001"
    assert len(routes["create"].calls) == (2 if defective else 1)
    assert len(routes["find"].calls) == (0 if defective else 1)
