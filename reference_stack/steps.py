"""The jobs: how each is named and keyed, what it sends, and what it records when it succeeds.

A job's payload holds the exact request body, built once when the job is created, so every
retry sends the same body under the same Idempotency-Key. A step that finds its result already
recorded (or its order cancelled, for the steps that push an order forward) skips the call.
What a step records, and the jobs it starts next, are written in the same transaction that
marks it done (see ``worker.Worker``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from reference_stack.clients import Outcome, Vendors, Verdict
from reference_stack.defects import (
    BLIND_RETRY,
    CUT_OFF_FORGOTTEN,
    DEFAULT_SITE,
    DOUBLE_CREDIT,
    DOUBLE_GOODS_ISSUE,
    NO_DEDUP,
    NO_RETRY_WMS,
    NO_TENDER_FALLBACK,
    SERIAL_LABELS,
    STALE_EVENTS,
    TRANSFER_RECEIVED_TWICE,
    UNKNOWN_ITEM_NOT_RETRIED,
)
from reference_stack.store import DEAD, SUPERSEDED, Job, Order, Store

CREATE_FO = "create_fulfilment_order"
CANCEL_FO = "cancel_fulfilment_order"
CHANGE_ADDRESS = "change_fulfilment_address"
PLAN_SHIPMENT = "plan_shipment"
BUY_LABEL = "buy_label"
ATTACH_LABEL = "attach_label"
GOODS_ISSUE = "goods_issue"
POST_TRACKING = "post_tracking"
FREIGHT_ACCRUAL = "freight_accrual"
INVENTORY_ADJUSTMENT = "inventory_adjustment"
GOODS_RECEIPT = "goods_receipt"
RETURN_DISPOSITION = "return_disposition"
SYNC_ITEM = "sync_item"
# The WMS's refusals that mean master data still in flight: wait for the item, then retry.
ITEM_IN_FLIGHT = frozenset({"unknown_item", "inactive_item"})
CREATE_TRANSFER = "create_transfer"
TRANSFER_ISSUE = "transfer_issue"
TRANSFER_RECEIPT = "transfer_receipt"

# Idempotency keys name the business action: ``label-FO-000001`` is "the label of FO-000001",
# whichever event, retry or restart asks for it.
KEY_PREFIX = {
    CREATE_FO: "wms-create",
    CANCEL_FO: "wms-cancel",
    CHANGE_ADDRESS: "wms-address",
    PLAN_SHIPMENT: "shipment",
    BUY_LABEL: "label",
    ATTACH_LABEL: "wms-label",
    GOODS_ISSUE: "gi",
    POST_TRACKING: "tracking",
    FREIGHT_ACCRUAL: "accrual",
    INVENTORY_ADJUSTMENT: "adjustment",
    GOODS_RECEIPT: "receipt",
    RETURN_DISPOSITION: "disposition",
    SYNC_ITEM: "wms-item",
    CREATE_TRANSFER: "wms-transfer",
    TRANSFER_ISSUE: "transfer-issue",
    TRANSFER_RECEIPT: "transfer-receipt",
}

# Steps that push an order towards shipping: none of them runs once the order is cancelled.
FORWARD = frozenset({CREATE_FO, PLAN_SHIPMENT, BUY_LABEL, ATTACH_LABEL})

# What a step records on the order when it succeeds; a step that finds it recorded skips the
# call (a second job for the same action, however it came about, does nothing).
RECORDED = {
    CREATE_FO: ("fulfilment_order_id", "fulfilment order already created"),
    PLAN_SHIPMENT: ("shipment_id", "shipment already planned"),
    BUY_LABEL: ("label_id", "label already bought"),
    ATTACH_LABEL: ("label_attached", "label already attached"),
    GOODS_ISSUE: ("goods_issue_id", "goods issue already posted"),
}

# The defects that take away the once-only guarantee of one kind of job.
UNDEDUPLICATED = {
    NO_DEDUP: CREATE_FO,
    DOUBLE_GOODS_ISSUE: GOODS_ISSUE,
    DOUBLE_CREDIT: RETURN_DISPOSITION,
    TRANSFER_RECEIVED_TWICE: TRANSFER_RECEIPT,
}


def deduplicated(kind: str, defects: frozenset[str]) -> bool:
    """Whether a job of this kind is done once per business action (always, bar a defect):
    ``handlers.enqueue_once`` and ``Steps.run`` both ask here."""
    return all(UNDEDUPLICATED[name] != kind for name in defects if name in UNDEDUPLICATED)


def key(kind: str, identity: str) -> str:
    return f"{KEY_PREFIX[kind]}-{identity}"


class JobSpec(NamedTuple):
    """A job to create: its kind, the entity it is serialised on, its key and payload."""

    kind: str
    entity: str
    key: str
    payload: dict[str, Any]


# -- job constructors (used by the event handlers and by steps that start the next step) ----
def create_fulfilment_order(order: dict[str, Any], defects: frozenset[str]) -> JobSpec:
    """At the site the ERP assigned (an ERP with one site may name none: the default). The
    body keeps each ERP line's unit (``uoms``); cases become eaches when it is sent, once the
    item's case size is known (``Steps._in_eaches``)."""
    ref = order["id"]
    body = {
        "order_ref": ref,
        "ship_to": order["ship_to"],
        "service_level": order["service_level"],
        "lines": [{"line": x["line"], "sku": x["sku"], "qty": x["qty"]} for x in order["lines"]],
    }
    if order.get("site") and DEFAULT_SITE not in defects:
        body["site"] = order["site"]
    uoms = {str(x["line"]): x.get("uom", "EA") for x in order["lines"]}
    payload = {"order_ref": ref, "body": body, "uoms": uoms}
    return JobSpec(CREATE_FO, ref, key(CREATE_FO, ref), payload)


def sync_item(item: dict[str, Any]) -> JobSpec:
    """Keyed by SKU and version: a duplicate event is one job; serialised on the SKU, so an
    older version's job runs after (and skips behind) a newer one that ran first."""
    sku, version = item["sku"], int(item["version"])
    body = {
        "description": item["description"],
        "weight_kg": item["weight_kg"],
        "active": item["active"],
        "each_per_case": item["each_per_case"],
    }
    payload = {"sku": sku, "version": version, "body": body}
    return JobSpec(SYNC_ITEM, f"item-{sku}", key(SYNC_ITEM, f"{sku}-v{version}"), payload)


def cancel_fulfilment_order(order_ref: str) -> JobSpec:
    """Keyed by order: the fulfilment order may not exist yet when the cancellation arrives."""
    return JobSpec(CANCEL_FO, order_ref, key(CANCEL_FO, order_ref), {"order_ref": order_ref})


def change_address(order_ref: str, ship_to: dict[str, Any], changed_at: str) -> JobSpec:
    """Keyed by order and the time of the change: each change of address is its own action."""
    payload = {"order_ref": order_ref, "body": {"ship_to": ship_to}}
    return JobSpec(
        CHANGE_ADDRESS, order_ref, key(CHANGE_ADDRESS, f"{order_ref}-{changed_at}"), payload
    )


def plan_shipment(packed: dict[str, Any]) -> JobSpec:
    ref, fo_id = packed["order_ref"], packed["fulfilment_order_id"]
    body = {
        "order_ref": ref,
        "fulfilment_order_id": fo_id,
        "ship_to": packed["ship_to"],
        "service_level": packed["service_level"],
        "packages": [{"weight_kg": p["weight_kg"]} for p in packed["packages"]],
    }
    label_packages = [
        {"weight_kg": p["weight_kg"], "contents": p.get("contents", [])} for p in packed["packages"]
    ]
    payload = {
        "order_ref": ref,
        "fulfilment_order_id": fo_id,
        "body": body,
        "label_packages": label_packages,
    }
    return JobSpec(PLAN_SHIPMENT, ref, key(PLAN_SHIPMENT, fo_id), payload)


def buy_label(
    order_ref: str, fo_id: str, shipment: dict[str, Any], plan: dict[str, Any]
) -> JobSpec:
    body = {
        "shipment_ref": shipment["id"],
        "service": shipment["service"],
        "ship_to": plan["body"]["ship_to"],
        "packages": plan["label_packages"],
    }
    payload = {
        "order_ref": order_ref,
        "fulfilment_order_id": fo_id,
        "carrier": shipment["carrier"],
        "body": body,
    }
    return JobSpec(BUY_LABEL, order_ref, key(BUY_LABEL, fo_id), payload)


def attach_label(order_ref: str, fo_id: str, label: dict[str, Any], carrier: str) -> JobSpec:
    body = {
        "tracking_number": label["tracking_number"],
        "carrier": carrier,
        "label_id": label["id"],
    }
    payload = {"order_ref": order_ref, "fulfilment_order_id": fo_id, "body": body}
    return JobSpec(ATTACH_LABEL, order_ref, key(ATTACH_LABEL, fo_id), payload)


def goods_issue(order_ref: str, fo_id: str, body: dict[str, Any]) -> JobSpec:
    """Keyed by fulfilment order: ERP takes one goods issue per picking, never a second."""
    payload = {"order_ref": order_ref, "body": body}
    return JobSpec(GOODS_ISSUE, order_ref, key(GOODS_ISSUE, fo_id), payload)


def post_tracking(order_ref: str, scan: dict[str, Any]) -> JobSpec:
    tracking_number, sequence = scan["tracking_number"], scan["sequence"]
    body = {
        "tracking_number": tracking_number,
        "status": scan["status"],
        "occurred_at": scan["occurred_at"],
    }
    identity = f"{tracking_number}-{sequence}"
    return JobSpec(
        POST_TRACKING,
        order_ref,
        key(POST_TRACKING, identity),
        {"order_ref": order_ref, "body": body, "sequence": sequence},
    )


def freight_accrual(settled: dict[str, Any]) -> JobSpec:
    ref, shipment_id = settled["order_ref"], settled["shipment_id"]
    body = {"order_id": ref, "shipment_id": shipment_id, "amount": settled["amount"]}
    return JobSpec(FREIGHT_ACCRUAL, ref, key(FREIGHT_ACCRUAL, shipment_id), {"body": body})


def inventory_adjustment(adjusted: dict[str, Any]) -> JobSpec:
    adjustment_id, sku = adjusted["adjustment_id"], adjusted["sku"]
    body = {
        "sku": sku,
        "delta": adjusted["delta"],
        "reason": adjusted["reason"],
        "reference": adjustment_id,
    }
    if adjusted.get("site"):  # the site whose shelf it was: the ERP books it there
        body["site"] = adjusted["site"]
    return JobSpec(
        INVENTORY_ADJUSTMENT, sku, key(INVENTORY_ADJUSTMENT, adjustment_id), {"body": body}
    )


def goods_receipt(receipt: dict[str, Any]) -> JobSpec:
    """Serialised on the receipt: it spans several SKUs."""
    receipt_id = receipt["receipt_id"]
    body = {
        "reference": receipt_id,
        "lines": [{"sku": x["sku"], "qty": x["qty"]} for x in receipt["lines"]],
    }
    if receipt.get("site"):
        body["site"] = receipt["site"]
    return JobSpec(GOODS_RECEIPT, receipt_id, key(GOODS_RECEIPT, receipt_id), {"body": body})


def create_transfer(transfer: dict[str, Any]) -> JobSpec:
    """The ERP's transfer order as an outbound transfer at its shipping site; keyed by it."""
    ref = transfer["id"]
    body = {
        "transfer_ref": ref,
        "from_site": transfer["from_site"],
        "to_site": transfer["to_site"],
        "lines": [{"line": x["line"], "sku": x["sku"], "qty": x["qty"]} for x in transfer["lines"]],
    }
    return JobSpec(
        CREATE_TRANSFER, ref, key(CREATE_TRANSFER, ref), {"transfer_ref": ref, "body": body}
    )


def transfer_posting(kind: str, moved: dict[str, Any]) -> JobSpec:
    """A transfer goods issue or receipt, keyed by the WMS transfer it reports (one each per
    WMS document, whichever event or duplicate asks). Each kind has its own lane: a receipt
    that overtook its issue waits for it without holding it up."""
    transfer_id = moved["transfer_id"]
    payload = {
        "transfer_ref": moved["transfer_ref"],
        "body": {
            "reference": transfer_id,
            "lines": [{"line": x["line"], "qty": x["qty"]} for x in moved["lines"]],
        },
    }
    return JobSpec(kind, f"{transfer_id}:{KEY_PREFIX[kind]}", key(kind, transfer_id), payload)


def return_disposition(received: dict[str, Any], lines: list[dict[str, int]]) -> JobSpec:
    """Keyed by the WMS return receipt: one credit memo per receipt, whichever event (or
    duplicate of it) reports it. Serialised on the sales order it returns."""
    receipt_id, order_ref = received["receipt_id"], received["order_ref"]
    payload = {
        "order_ref": order_ref,
        "rma_id": received["rma_id"],
        "body": {"receipt_id": receipt_id, "lines": lines},
    }
    return JobSpec(RETURN_DISPOSITION, order_ref, key(RETURN_DISPOSITION, receipt_id), payload)


# -- running a job -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Completion:
    """A step's outcome and, when it succeeded, what to record (returns the jobs it started)."""

    outcome: Outcome
    record: Callable[[], list[Job]] | None = None


def skipped(reason: str) -> Completion:
    return Completion(Outcome(Verdict.DONE, body={"skipped": reason}))


def after_an_attempt(job: Job, defects: frozenset[str] = frozenset()) -> bool:
    """Whether an earlier attempt may have done the work: one that failed or got no answer,
    or one a crash cut off (its start is counted before the call; nothing after it was)."""
    if CUT_OFF_FORGOTTEN in defects:  # only a recorded failure counts
        return job.last_error is not None
    return job.attempts > 1 or job.last_error is not None


def still_in_doubt(looked: Outcome) -> Outcome:
    """A look that failed settles nothing: the earlier attempt may still have made the order.
    The job records no answer for this attempt (status None, as for a call cut off), so a
    cancellation that comes meanwhile still looks first (``may_have_landed``) instead of
    leaving the order the lost attempt made to be picked; the look's Retry-After is kept."""
    return replace(looked, status=None, error=f"looking for the order: {looked.error}")


def may_have_landed(job: Job) -> bool:
    """The job's last attempt got no answer (cut off, or a look that failed: ``still_in_doubt``)
    or a gateway's 504: the vendor may have done it all the same."""
    return job.attempts > 1 and job.last_status in (None, 504)


class Steps:
    def __init__(self, store: Store, vendors: Vendors, defects: frozenset[str] = frozenset()):
        self.store = store
        self.vendors = vendors
        self.defects = defects
        self._one_label_at_a_time: asyncio.Lock | contextlib.nullcontext[None] = (
            contextlib.nullcontext()
        )
        if SERIAL_LABELS in defects:  # one carrier session for the whole stack, behind a lock
            self._one_label_at_a_time = asyncio.Lock()
        self._runners: dict[str, Callable[[Job], Awaitable[Completion]]] = {
            CREATE_FO: self._create_fulfilment_order,
            CANCEL_FO: self._cancel_fulfilment_order,
            CHANGE_ADDRESS: self._change_address,
            PLAN_SHIPMENT: self._plan_shipment,
            BUY_LABEL: self._buy_label,
            ATTACH_LABEL: self._attach_label,
            GOODS_ISSUE: self._goods_issue,
            POST_TRACKING: self._post_tracking,
            FREIGHT_ACCRUAL: self._freight_accrual,
            INVENTORY_ADJUSTMENT: self._inventory_adjustment,
            GOODS_RECEIPT: self._goods_receipt,
            RETURN_DISPOSITION: self._return_disposition,
            SYNC_ITEM: self._sync_item,
            CREATE_TRANSFER: self._create_transfer,
            TRANSFER_ISSUE: self._transfer_posting,
            TRANSFER_RECEIPT: self._transfer_posting,
        }

    async def run(self, job: Job) -> Completion:
        if job.kind in FORWARD and self._order(job).cancelled:
            if job.kind == CREATE_FO and may_have_landed(job):
                return await self._adopt_for_cancel(job)
            return skipped("order cancelled")
        recorded = RECORDED.get(job.kind)
        if recorded is not None and deduplicated(job.kind, self.defects):
            field, reason = recorded
            if getattr(self._order(job), field):
                return skipped(reason)
        return await self._runners[job.kind](job)

    def _order(self, job: Job) -> Order:
        return self.store.ensure_order(job.payload["order_ref"], job.correlation_id)

    def _add(self, spec: JobSpec, job: Job) -> Job:
        """A follow-up job, carrying on the correlation id of the job that started it."""
        return self.store.add_job(*spec, correlation_id=job.correlation_id)

    # -- WMS -----------------------------------------------------------------------------
    async def _create_fulfilment_order(self, job: Job) -> Completion:
        ref = job.payload["order_ref"]
        # After any earlier attempt (failed, cut off, or dead and replayed), look first for the
        # order that attempt may have created.
        retrying = after_an_attempt(job, self.defects)
        found = await self._existing_fulfilment_order(job) if retrying else None
        if found is not None and (not found.succeeded or found.body is not None):
            outcome = found if found.succeeded else still_in_doubt(found)
        else:
            body = await self._in_eaches(job)
            if isinstance(body, Outcome):
                return Completion(body)  # the item's case size could not be read: retry
            outcome = await self.vendors.create_fulfilment_order(
                body, key=job.send_key, correlation_id=job.correlation_id
            )
            outcome = self._item_in_flight(outcome)
        if NO_RETRY_WMS in self.defects and outcome.verdict is Verdict.RETRY:
            # fire and forget: the failure is logged with the job and the order is dropped
            return Completion(Outcome(Verdict.DONE, outcome.status, {"dropped": outcome.error}))

        def record() -> list[Job]:
            self.store.update_order(ref, fulfilment_order_id=outcome.body["id"])
            return []

        return Completion(outcome, record)

    async def _adopt_for_cancel(self, job: Job) -> Completion:
        """A create whose order was cancelled while an earlier attempt was in doubt: that
        attempt may have made a WMS order after all. Look, and record it, so that the cancel
        queued behind this job (same order, same lane) cancels it."""
        found = await self._existing_fulfilment_order(job)
        if not found.succeeded:
            return Completion(still_in_doubt(found))
        if found.body is None:
            return skipped("order cancelled; no earlier attempt created it")
        fo_id = found.body["id"]

        def record() -> list[Job]:
            self.store.update_order(job.payload["order_ref"], fulfilment_order_id=fo_id)
            return []

        return Completion(Outcome(Verdict.DONE, found.status, found.body), record)

    async def _in_eaches(self, job: Job) -> dict[str, Any] | Outcome:
        """The WMS order's body with case lines in eaches (the WMS picks eaches only): the
        case size from the item events kept, else read from the ERP's item master."""
        body = job.payload["body"]
        uoms = job.payload.get("uoms") or {}
        lines = []
        for line in body["lines"]:
            qty = line["qty"]
            if uoms.get(str(line["line"])) == "CS":
                per_case = self.store.each_per_case(line["sku"])
                if per_case is None:
                    read = await self.vendors.item(line["sku"], correlation_id=job.correlation_id)
                    if not read.succeeded:
                        return replace(read, verdict=Verdict.RETRY)
                    per_case = int(read.body["each_per_case"])
                qty *= per_case
            lines.append({**line, "qty": qty})
        return {**body, "lines": lines}

    def _item_in_flight(self, outcome: Outcome) -> Outcome:
        """A 422 for an item the WMS does not hold (yet): master data in flight, so wait and
        retry (the worker gives it a longer budget), unless the defect takes it as final."""
        if outcome.status != 422 or UNKNOWN_ITEM_NOT_RETRIED in self.defects:
            return outcome
        error = outcome.body.get("error") if isinstance(outcome.body, dict) else None
        if isinstance(error, dict) and error.get("code") in ITEM_IN_FLIGHT:
            return replace(outcome, verdict=Verdict.RETRY)
        return outcome

    async def _sync_item(self, job: Job) -> Completion:
        sku, version = job.payload["sku"], job.payload["version"]
        if self.store.synced_version(sku) >= version:
            return skipped(f"the WMS holds {sku} at a version not older than {version}")
        outcome = await self.vendors.put_item(
            sku, job.payload["body"], key=job.send_key, correlation_id=job.correlation_id
        )

        def record() -> list[Job]:
            self.store.item_synced(sku, version)
            for dead in self.store.jobs_for(job.entity):
                # an older version that died is work made obsolete: nobody should be paged
                if (
                    dead.kind == SYNC_ITEM
                    and dead.status == DEAD
                    and dead.payload["version"] <= version
                ):
                    self.store.settle_job(
                        dead,
                        SUPERSEDED,
                        error=f"superseded: the WMS holds {sku} at v{version} (job {job.id})",
                        http_status=dead.last_status,
                        response=dead.last_response,
                    )
            return []

        return Completion(outcome, record)

    async def _existing_fulfilment_order(self, job: Job) -> Outcome:
        """Look before retrying a create: WMSs mostly ignore Idempotency-Key, and an attempt
        that timed out may have created the order. The outcome's body is the live fulfilment
        order of this sales order, or None."""
        found = await self.vendors.find_fulfilment_orders(
            job.payload["order_ref"], correlation_id=job.correlation_id
        )
        if not found.succeeded:
            return found
        items = found.body.get("items", []) if isinstance(found.body, dict) else []
        live = [fo for fo in items if fo.get("status") != "cancelled"]
        return Outcome(Verdict.OK, found.status, live[0] if live else None)

    async def _cancel_fulfilment_order(self, job: Job) -> Completion:
        fo_id = self._order(job).fulfilment_order_id
        if fo_id is None:
            return skipped("no fulfilment order to cancel")
        outcome = await self.vendors.cancel_fulfilment_order(
            fo_id, key=job.send_key, correlation_id=job.correlation_id
        )
        return Completion(outcome)

    async def _change_address(self, job: Job) -> Completion:
        """Carry the ERP's new ship-to to the WMS order; if the carrier had refused the old
        address (a dead label job), buy the label again for the new one."""
        order = self._order(job)
        if order.cancelled:
            return skipped("order cancelled")
        fo_id = order.fulfilment_order_id
        if fo_id is None:
            return skipped("no fulfilment order yet")
        body = job.payload["body"]
        outcome = await self.vendors.change_ship_to(
            fo_id, body, key=job.send_key, correlation_id=job.correlation_id
        )

        def record() -> list[Job]:
            labels = [j for j in self.store.jobs_for(order.order_ref) if j.kind == BUY_LABEL]
            refused = labels[-1] if labels else None
            if order.label_id is not None or refused is None or refused.status != DEAD:
                return []
            if refused.last_status != 422:
                return []  # dead for another reason: the on-call's to replay, not ours
            payload = {**refused.payload, "body": {**refused.payload["body"], **body}}
            spec = JobSpec(BUY_LABEL, refused.entity, f"{key(BUY_LABEL, fo_id)}-{job.id}", payload)
            self.store.settle_job(
                refused,
                SUPERSEDED,
                error=f"superseded by the label for the address of job {job.id}",
                http_status=refused.last_status,
                response=refused.last_response,
            )
            return [self._add(spec, job)]

        return Completion(outcome, record)

    async def _attach_label(self, job: Job) -> Completion:
        ref = job.payload["order_ref"]
        outcome = await self.vendors.attach_label(
            job.payload["fulfilment_order_id"],
            job.payload["body"],
            key=job.send_key,
            correlation_id=job.correlation_id,
        )

        def record() -> list[Job]:
            self.store.update_order(ref, label_attached=True)
            return []

        return Completion(outcome, record)

    # -- TMS and carrier -----------------------------------------------------------------
    async def _plan_shipment(self, job: Job) -> Completion:
        ref, fo_id = job.payload["order_ref"], job.payload["fulfilment_order_id"]
        body = job.payload["body"]
        if (newest := self._newest_ship_to(ref)) is not None:
            body = {**body, "ship_to": newest}
        outcome = await self.vendors.plan_shipment(
            body, key=job.send_key, correlation_id=job.correlation_id
        )
        if _express_declined(outcome) and NO_TENDER_FALLBACK not in self.defects:
            return self._plan_ground_instead(job, outcome)

        def record() -> list[Job]:
            shipment = outcome.body
            self.store.update_order(
                ref,
                shipment_id=shipment["id"],
                service=shipment["service"],
                carrier=shipment["carrier"],
            )
            planned = {**job.payload, "body": body}  # the address the shipment was planned to
            return [self._add(buy_label(ref, fo_id, shipment, planned), job)]

        return Completion(outcome, record)

    def _newest_ship_to(self, ref: str) -> dict[str, Any] | None:
        """The customer's newest address, from the ERP's latest order.updated: the order.packed
        a plan is made from carries the WMS's address, which is the old one while the change
        is still being retried (the label would be bought for where the customer no longer is)."""
        changes = [j for j in self.store.jobs_for(ref) if j.kind == CHANGE_ADDRESS]
        return changes[-1].payload["body"]["ship_to"] if changes else None

    def _plan_ground_instead(self, job: Job, declined: Outcome) -> Completion:
        """The business rule when the carrier's express capacity is taken: ship today by
        ground rather than hold the parcel (a late parcel costs more than a slower one)."""
        payload = {**job.payload, "body": {**job.payload["body"], "service_level": "standard"}}
        fallback = JobSpec(PLAN_SHIPMENT, job.entity, f"{job.idempotency_key}-ground", payload)

        def record() -> list[Job]:
            return [self._add(fallback, job)]

        done = Outcome(Verdict.DONE, declined.status, declined.body, error=declined.error)
        return Completion(done, record)

    async def _buy_label(self, job: Job) -> Completion:
        ref, fo_id = job.payload["order_ref"], job.payload["fulfilment_order_id"]
        carrier = job.payload["carrier"]
        blind = BLIND_RETRY in self.defects  # no key: a retry is a new purchase to the carrier
        async with self._one_label_at_a_time:
            outcome = await self.vendors.buy_label(
                job.payload["body"],
                key=None if blind else job.send_key,
                correlation_id=job.correlation_id,
            )

        def record() -> list[Job]:
            label = outcome.body
            tracking_number = label["tracking_number"]
            self.store.update_order(
                ref, label_id=label["id"], tracking_number=tracking_number, carrier=carrier
            )
            self.store.index_tracking(tracking_number, ref)
            return [self._add(attach_label(ref, fo_id, label, carrier), job)]

        return Completion(outcome, record)

    # -- ERP -----------------------------------------------------------------------------
    async def _goods_issue(self, job: Job) -> Completion:
        ref = job.payload["order_ref"]
        if after_an_attempt(job, self.defects):
            # After an attempt whose answer never came, and above all on a replay a day later
            # (when the ERP has forgotten the idempotency key and would book it again), look
            # first: the ERP may hold this goods issue already.
            looked = await self._existing_goods_issue(job)
            if looked is not None:
                return looked
        outcome = await self.vendors.goods_issue(
            ref, job.payload["body"], key=job.send_key, correlation_id=job.correlation_id
        )

        def record() -> list[Job]:
            if outcome.verdict is Verdict.OK:
                issued = outcome.body["id"]
            else:  # 409 already_issued names the goods issue that was posted before
                issued = outcome.body["error"]["details"].get("goods_issue_id")
            self.store.update_order(ref, goods_issue_id=issued)
            return []

        return Completion(outcome, record)

    async def _existing_goods_issue(self, job: Job) -> Completion | None:
        """The completion of a goods issue the ERP already holds (or of a failed look, to be
        retried); None when the ERP holds none and it must be posted."""
        ref = job.payload["order_ref"]
        looked = await self.vendors.sales_order(ref, correlation_id=job.correlation_id)
        if not looked.succeeded:
            return Completion(looked)
        issued = looked.body.get("goods_issues") if isinstance(looked.body, dict) else None
        if not issued:
            return None

        def record() -> list[Job]:
            self.store.update_order(ref, goods_issue_id=issued[0])
            return []

        return Completion(Outcome(Verdict.DONE, looked.status, looked.body), record)

    async def _post_tracking(self, job: Job) -> Completion:
        order, sequence = self._order(job), job.payload.get("sequence")
        posted = order.posted_tracking_seq
        stale = sequence is not None and posted is not None and sequence <= posted
        if stale and STALE_EVENTS not in self.defects:
            # A replayed dead letter (or a slow retry) must not undo a newer scan.
            return skipped(f"scan {sequence} is older than scan {posted}, already posted")
        outcome = await self.vendors.post_tracking(
            job.payload["order_ref"],
            job.payload["body"],
            key=job.send_key,
            correlation_id=job.correlation_id,
        )

        def record() -> list[Job]:
            if sequence is not None and (posted is None or sequence > posted):
                self.store.update_order(order.order_ref, posted_tracking_seq=sequence)
            return []

        return Completion(outcome, record)

    async def _freight_accrual(self, job: Job) -> Completion:
        return Completion(
            await self.vendors.freight_accrual(
                job.payload["body"], key=job.send_key, correlation_id=job.correlation_id
            )
        )

    async def _inventory_adjustment(self, job: Job) -> Completion:
        return Completion(
            await self.vendors.inventory_adjustment(
                job.payload["body"], key=job.send_key, correlation_id=job.correlation_id
            )
        )

    async def _goods_receipt(self, job: Job) -> Completion:
        return Completion(
            await self.vendors.goods_receipt(
                job.payload["body"], key=job.send_key, correlation_id=job.correlation_id
            )
        )

    async def _create_transfer(self, job: Job) -> Completion:
        """Like a fulfilment order: after an earlier attempt, look for the transfer it may
        have created before creating one (the WMS ignores Idempotency-Key)."""
        if after_an_attempt(job, self.defects):
            found = await self.vendors.find_transfers(
                job.payload["transfer_ref"], correlation_id=job.correlation_id
            )
            if not found.succeeded:
                return Completion(found)
            items = found.body.get("items", []) if isinstance(found.body, dict) else []
            if items:
                return Completion(Outcome(Verdict.DONE, found.status, items[0]))
        return Completion(
            await self.vendors.create_transfer(
                job.payload["body"], key=job.send_key, correlation_id=job.correlation_id
            )
        )

    async def _transfer_posting(self, job: Job) -> Completion:
        post = (
            self.vendors.transfer_issue
            if job.kind == TRANSFER_ISSUE
            else self.vendors.transfer_receipt
        )
        return Completion(
            await post(
                job.payload["transfer_ref"],
                job.payload["body"],
                key=job.send_key,
                correlation_id=job.correlation_id,
            )
        )

    async def _return_disposition(self, job: Job) -> Completion:
        return Completion(
            await self.vendors.return_disposition(
                job.payload["rma_id"],
                job.payload["body"],
                key=job.send_key,
                correlation_id=job.correlation_id,
            )
        )


def _express_declined(outcome: Outcome) -> bool:
    """The TMS declined an express tender for capacity and offers ground."""
    if outcome.verdict is not Verdict.REFUSED or not isinstance(outcome.body, dict):
        return False
    error = outcome.body.get("error") or {}
    details = error.get("details") or {}
    return (
        error.get("code") == "tender_rejected"
        and details.get("reason") == "capacity_exhausted"
        and "ground" in details.get("available", [])
    )
