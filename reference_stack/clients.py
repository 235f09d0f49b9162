"""The vendor client: every call the stack makes to ERP, WMS, TMS and the carrier.

Calls go out on kept-alive connections through ``simulators.common.sender.Sender``, a lean
HTTP/1.1 client (httptools parses the answers, each request is one write). It replaced aiohttp,
which had replaced httpx: on the 10,000-order peak day the stack's CPU fell from 38.4 to 28.6 s
with it (``benchmarks/peak_day.py``, side by side); httpx had cost about four times aiohttp's
CPU per request (``benchmarks/http_clients.py``). A general client's machinery (cookies,
redirects, a URL object and a task per request, a pool queue) is what a stack that makes
100,000 calls a day spends most on. Each call carries ``X-Correlation-Id``; each write carries the
``Idempotency-Key`` its job derived from business identity, so a retry can never buy a second
label or post twice. The answer is read whole and classified once, here, into what the worker
should do with it (``classify``, a pure function of the ``Reply``).

The stack is a tolerant reader: a field it does not know in an answer is ignored, so a vendor
that adds one in a minor release breaks nothing. ``KNOWN_FIELDS`` lists the fields each answer
had when the stack was written, for the ``strict-parsing`` defect, which refuses the others.

The carrier's API version (``carrier_api``) changes only ``buy_label``: its request and its
answer go through ``carrier_versions``, so every caller sees a 1.0 label whatever is spoken.
"""

from __future__ import annotations

import asyncio
import codecs
import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote, urlencode

import orjson

from reference_stack import carrier_versions
from reference_stack.defects import DROP_CORRELATION, STRICT_PARSING
from simulators.common.sender import IDLE_REUSE_S, ConnectTimeout, Sender, SendFailed

TIMEOUT_S = 10.0  # the whole exchange: waiting for a connection, sending, reading the answer
# The vendors' gateways abandon a request not answered in 30 s (docs/choreography.md): an
# attempt our timeout cut off may still land until then, so it stays in doubt that long.
IN_DOUBT_S = 30.0
USER_AGENT = "twinyard-reference-stack/1"

# (HTTP status, the vendor's "error" object) -> the refusal means the work is already done.
AlreadyDone = Callable[[int, dict[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class Answer:
    """What a client generated from a vendor's v1 contract knows of one answer: its top-level
    fields, and for a list answer, those of its items."""

    name: str
    fields: frozenset[str]
    items: Answer | None = None


def _answer(name: str, fields: str, items: Answer | None = None) -> Answer:
    return Answer(name, frozenset(fields.split()), items)


# The answers to the calls the stack makes, field for field as the simulators give them
# (``to_dict`` of their models) and as contracts/openapi/*.yaml documents them. Only the
# strict-parsing defect reads this table; the stack itself ignores fields it does not know.
FULFILMENT_ORDER = _answer(
    "fulfilment order",
    "id order_ref ship_to service_level lines status packages label created_at status_history site",
)
TRANSFER = _answer(
    "transfer",
    "id transfer_ref from_site to_site lines status created_at shipped_at received_at "
    "status_history",
)
KNOWN_FIELDS: dict[str, Answer] = {
    "fulfilment_order": FULFILMENT_ORDER,
    "fulfilment_orders": _answer("fulfilment order list", "items", FULFILMENT_ORDER),
    "shipment": _answer(
        "shipment",
        "id order_ref fulfilment_order_id ship_to service_level packages carrier service rate "
        "status created_at settled_at",
    ),
    "label": _answer(
        "label",
        "id tracking_number shipment_ref service ship_to packages cost status created_at events",
    ),
    "goods_issue": _answer(
        "goods issue",
        "id order_id lines tracking_number carrier shipment_id backorder_id posted_at",
    ),
    "sales_order": _answer(
        "sales order",
        "id customer ship_to service_level lines status created_at released_at goods_issues "
        "backorders tracking_number tracking_status tracking_history status_history updated_at "
        "site",
    ),
    "transfer": TRANSFER,
    "transfers": _answer("transfer list", "items", TRANSFER),
    "transfer_posting": _answer(
        "transfer posting", "id transfer_id site reference lines posted_at"
    ),
    "freight_accrual": _answer("freight accrual", "id order_id shipment_id amount posted_at"),
    "inventory_adjustment": _answer(
        "inventory adjustment", "id sku delta reason reference on_hand posted_at"
    ),
    "goods_receipt": _answer("goods receipt", "id reference lines posted_at"),
    "item": _answer(
        "item",
        "sku description uom each_per_case weight_kg active version created_at updated_at",
    ),
    "wms_item": _answer("WMS item", "sku description weight_kg active each_per_case updated_at"),
    "credit_memo": _answer(
        "credit memo", "id rma_id order_id receipt_id resolution lines total posted_at"
    ),
}


def known_fields(carrier_api: str) -> dict[str, Answer]:
    """``KNOWN_FIELDS`` of a client generated from the contracts of the versions it speaks:
    on carrier 2.0, the label is 2.0's (a team that moves to 2.0 regenerates its client)."""
    if carrier_api != carrier_versions.V2:
        return KNOWN_FIELDS
    label = Answer("label", carrier_versions.LABEL_FIELDS_V2)
    return KNOWN_FIELDS | {"label": label}


class Verdict(StrEnum):
    OK = "ok"  # 2xx
    DONE = "done"  # refused because it already happened: as good as OK
    RETRY = "retry"  # 429, 5xx, timeout, connection error
    REFUSED = "refused"  # any other 4xx: retrying cannot help, the job is dead-lettered


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    status: int | None = None
    body: Any = None  # the vendor's JSON (or text) answer, kept for dead letters
    retry_after: float | None = None  # seconds the vendor asked us to wait
    error: str | None = None  # one line for logs and dead letters
    # A refusal that will pass later, which the vendor remembers under the Idempotency-Key
    # (the ERP replays every answer below 500 to a key it has seen): retry under a new key.
    fresh_key: bool = False
    # Cut off by our timeout after it was sent: the vendor may still do it (for IN_DOUBT_S).
    in_doubt: bool = False

    @property
    def succeeded(self) -> bool:
        return self.verdict in (Verdict.OK, Verdict.DONE)


class Vendors:
    def __init__(
        self,
        urls: Mapping[str, str],
        *,
        timeout_s: float = TIMEOUT_S,
        jitter_ms: float = 0.0,
        defects: frozenset[str] = frozenset(),
        carrier_api: str = carrier_versions.DEFAULT,
    ) -> None:
        self.urls = dict(urls)
        self.carrier_api = carrier_versions.check(carrier_api)
        self.known = known_fields(self.carrier_api)
        self.correlate = DROP_CORRELATION not in defects
        self.strict = STRICT_PARSING in defects
        self.jitter_s = jitter_ms / 1000
        # One connection per call in flight, kept alive per vendor (at most the stack's
        # workers at once): a call never queues for a connection. A kept connection is reused
        # for IDLE_REUSE_S at most, under the 5 s after which uvicorn, Node and gunicorn
        # close an idle one, so a call never goes out on a connection being closed.
        self._sender = Sender(
            timeout_s=timeout_s,
            idle_reuse_s=IDLE_REUSE_S,
            user_agent=USER_AGENT,
            accept="application/json",
            body_kept=None,  # an answer is read whole
            keep_headers=True,  # Retry-After, Content-Type
            peer="the vendor",
        )
        self._closed = False

    async def aclose(self) -> None:
        self._closed = True
        await self._sender.close()

    async def request(
        self,
        system: str,
        method: str,
        path: str,
        *,
        correlation_id: str,
        body: dict[str, Any] | None = None,
        key: str | None = None,
        params: dict[str, str] | None = None,
        already_done: AlreadyDone | None = None,
        answer: str | None = None,
    ) -> Outcome:
        """One call. ``answer`` names the answer expected (a key of ``KNOWN_FIELDS``): only the
        strict-parsing defect reads it."""
        if self._closed:
            raise RuntimeError("the vendor client is closed")
        headers: list[tuple[str, str]] = []
        if self.correlate:
            headers.append(("X-Correlation-Id", correlation_id))
        content = None
        if body is not None:
            headers.append(("Content-Type", "application/json"))
            content = orjson.dumps(body)
        if key is not None:
            headers.append(("Idempotency-Key", key))
        if self.jitter_s:  # a stack whose calls take unpredictably long (tests perturb timing)
            await asyncio.sleep(random.uniform(0, self.jitter_s))
        method = method.upper()
        url = self.urls[system] + path
        if params:
            url += "?" + urlencode(params)
        try:
            # A 3xx is the vendor's answer, as any other status: redirects are not followed.
            answered = await self._sender.request(method, url, content, headers)
        # timeouts, refused connections, a server that hung up, an answer cut off or not HTTP
        except (SendFailed, TimeoutError) as exc:
            # A timeout before a connection was made sent nothing; any other may have.
            in_doubt = isinstance(exc, TimeoutError) and not isinstance(exc, ConnectTimeout)
            error = f"{system} {method} {path}: {_describe(exc)}"
            return Outcome(Verdict.RETRY, error=error, in_doubt=in_doubt)
        reply = Reply(
            method,
            unquote(path),
            answered.status,
            answered.headers,
            answered.body,
            _charset(answered.headers.get("content-type")),
        )
        outcome = classify(reply, already_done)
        if (
            outcome.verdict is Verdict.OK
            and answer is not None
            and not isinstance(outcome.body, dict)
        ):
            # A 2xx cut off mid-body (a gateway, a proxy): whether the vendor did the work is
            # unknown, so it is a failure to retry, under the same key, looking first where
            # the vendor does not honour keys.
            error = f"{system} {method} {path}: HTTP {reply.status} with an unreadable answer"
            return Outcome(Verdict.RETRY, reply.status, outcome.body, error=error)
        if self.strict and answer is not None:
            return parse_strictly(outcome, self.known[answer], reply)
        return outcome

    # -- WMS -----------------------------------------------------------------------------
    async def create_fulfilment_order(
        self, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "wms",
            "POST",
            "/fulfilment-orders",
            body=body,
            key=key,
            correlation_id=correlation_id,
            answer="fulfilment_order",
        )

    async def put_item(
        self, sku: str, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        """Upsert an item into the WMS registry: idempotent by nature (PUT)."""
        return await self.request(
            "wms",
            "PUT",
            f"/items/{segment(sku)}",
            body=body,
            key=key,
            correlation_id=correlation_id,
            answer="wms_item",
        )

    async def find_fulfilment_orders(self, order_ref: str, *, correlation_id: str) -> Outcome:
        return await self.request(
            "wms",
            "GET",
            "/fulfilment-orders",
            params={"order_ref": order_ref},
            correlation_id=correlation_id,
            answer="fulfilment_orders",
        )

    async def create_transfer(
        self, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "wms",
            "POST",
            "/transfers",
            body=body,
            key=key,
            correlation_id=correlation_id,
            answer="transfer",
        )

    async def find_transfers(self, transfer_ref: str, *, correlation_id: str) -> Outcome:
        return await self.request(
            "wms",
            "GET",
            "/transfers",
            params={"transfer_ref": transfer_ref},
            correlation_id=correlation_id,
            answer="transfers",
        )

    async def cancel_fulfilment_order(
        self, fulfilment_order_id: str, *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "wms",
            "POST",
            f"/fulfilment-orders/{segment(fulfilment_order_id)}/cancel",
            body={},
            key=key,
            correlation_id=correlation_id,
            already_done=_status_is("cancelled"),
            answer="fulfilment_order",
        )

    async def change_ship_to(
        self, fulfilment_order_id: str, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "wms",
            "PATCH",
            f"/fulfilment-orders/{segment(fulfilment_order_id)}",
            body=body,
            key=key,
            correlation_id=correlation_id,
            answer="fulfilment_order",
        )

    async def attach_label(
        self, fulfilment_order_id: str, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "wms",
            "POST",
            f"/fulfilment-orders/{segment(fulfilment_order_id)}/label",
            body=body,
            key=key,
            correlation_id=correlation_id,
            already_done=_label_already_attached(body["tracking_number"]),
            answer="fulfilment_order",
        )

    # -- TMS and carrier -----------------------------------------------------------------
    async def plan_shipment(
        self, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "tms",
            "POST",
            "/shipments",
            body=body,
            key=key,
            correlation_id=correlation_id,
            answer="shipment",
        )

    async def buy_label(
        self, body: dict[str, Any], *, key: str | None, correlation_id: str
    ) -> Outcome:
        """Buy a label: ``body`` is a 1.0 request, and a bought label comes back in 1.0's
        words whatever version is spoken (errors are kept as the carrier wrote them)."""
        outcome = await self.request(
            "carrier",
            "POST",
            "/labels",
            body=carrier_versions.label_request(self.carrier_api, body),
            key=key,
            correlation_id=correlation_id,
            answer="label",
        )
        if self.carrier_api != carrier_versions.V2 or outcome.verdict is not Verdict.OK:
            return outcome  # 1.x as it always was; refusals as the carrier wrote them
        return replace(outcome, body=carrier_versions.label_answer(self.carrier_api, outcome.body))

    # -- ERP -----------------------------------------------------------------------------
    async def goods_issue(
        self, order_ref: str, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "erp",
            "POST",
            f"/orders/{segment(order_ref)}/goods-issue",
            body=body,
            key=key,
            correlation_id=correlation_id,
            already_done=_code_is("already_issued"),
            answer="goods_issue",
        )

    async def item(self, sku: str, *, correlation_id: str) -> Outcome:
        return await self.request(
            "erp", "GET", f"/items/{segment(sku)}", correlation_id=correlation_id, answer="item"
        )

    async def sales_order(self, order_ref: str, *, correlation_id: str) -> Outcome:
        return await self.request(
            "erp",
            "GET",
            f"/orders/{segment(order_ref)}",
            correlation_id=correlation_id,
            answer="sales_order",
        )

    async def post_tracking(
        self, order_ref: str, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "erp",
            "POST",
            f"/orders/{segment(order_ref)}/tracking",
            body=body,
            key=key,
            correlation_id=correlation_id,
            answer="sales_order",
        )

    async def freight_accrual(
        self, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "erp",
            "POST",
            "/freight-accruals",
            body=body,
            key=key,
            correlation_id=correlation_id,
            answer="freight_accrual",
        )

    async def inventory_adjustment(
        self, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "erp",
            "POST",
            "/inventory/adjustments",
            body=body,
            key=key,
            correlation_id=correlation_id,
            answer="inventory_adjustment",
        )

    async def goods_receipt(
        self, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "erp",
            "POST",
            "/goods-receipts",
            body=body,
            key=key,
            correlation_id=correlation_id,
            answer="goods_receipt",
        )

    async def return_disposition(
        self, rma_id: str, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        """One credit memo per return receipt; the ERP's 409 ``already_disposed`` says this
        receipt was disposed of before (a lost answer, a replay): done."""
        return await self.request(
            "erp",
            "POST",
            f"/returns/{segment(rma_id)}/disposition",
            body=body,
            key=key,
            correlation_id=correlation_id,
            already_done=_code_is("already_disposed"),
            answer="credit_memo",
        )

    async def transfer_issue(
        self, transfer_id: str, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        """One goods issue per transfer order: the ERP's 409 ``already_issued`` is done."""
        return await self.request(
            "erp",
            "POST",
            f"/transfers/{segment(transfer_id)}/goods-issue",
            body=body,
            key=key,
            correlation_id=correlation_id,
            already_done=_code_is("already_issued"),
            answer="transfer_posting",
        )

    async def transfer_receipt(
        self, transfer_id: str, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        """A 409 ``invalid_status`` while the transfer is still ``released`` means its goods
        issue has not been posted yet (the events crossed): retry, the issue is on its way,
        under a new key, since the ERP would replay this 409 to the same one."""
        outcome = await self.request(
            "erp",
            "POST",
            f"/transfers/{segment(transfer_id)}/goods-receipt",
            body=body,
            key=key,
            correlation_id=correlation_id,
            answer="transfer_posting",
        )
        if outcome.verdict is Verdict.REFUSED and outcome.status == 409:
            error = outcome.body.get("error", {}) if isinstance(outcome.body, dict) else {}
            if _details(error).get("status") == "released":
                return replace(outcome, verdict=Verdict.RETRY, fresh_key=True)
        return outcome


@dataclass(frozen=True, slots=True)
class Reply:
    """A vendor's answer, read whole: all that ``classify`` and ``parse_strictly`` look at."""

    method: str  # of the request
    path: str  # of the request's URL (without its query), as error summaries name the call
    status: int
    headers: Mapping[str, str]  # looked up in lower case: pass a case-insensitive mapping
    content: bytes = b""
    charset: str | None = None  # of the Content-Type, for reading an answer that is not JSON


def segment(value: str) -> str:
    """A value (a SKU such as ``TS-100/XL`` or ``BOLT #8``) as one URL path segment: every
    character that is not unreserved percent-encoded, ``/`` included."""
    return quote(value, safe="")


def classify(reply: Reply, already_done: AlreadyDone | None = None) -> Outcome:
    """2xx ok; 429 and 5xx retry (with Retry-After); "already done" 409s done; other 4xx refused."""
    status = reply.status
    body = _body(reply.content, reply.charset)
    if 200 <= status < 300:
        return Outcome(Verdict.OK, status, body)
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    summary = f"{reply.method} {reply.path} -> HTTP {status}"
    if error:
        summary += f" {error.get('code')}: {error.get('message')}"
    if status == 429 or status >= 500:
        wait = _retry_after(reply.headers.get("retry-after"))
        return Outcome(Verdict.RETRY, status, body, retry_after=wait, error=summary)
    if already_done is not None and already_done(status, error):
        return Outcome(Verdict.DONE, status, body)
    return Outcome(Verdict.REFUSED, status, body, error=summary)


def parse_strictly(outcome: Outcome, answer: Answer, reply: Reply) -> Outcome:
    """The strict-parsing defect: a 2xx answer with a field the v1 contract did not have fails
    to deserialise (Jackson's FAIL_ON_UNKNOWN_PROPERTIES, pydantic's ``extra="forbid"``), so
    the call is refused although the vendor did the work. Other outcomes are left alone."""
    if outcome.verdict is not Verdict.OK:
        return outcome
    unknown = unknown_fields(outcome.body, answer)
    if not unknown:
        return outcome
    error = (
        f"{reply.method} {reply.path} -> HTTP {outcome.status}: cannot parse the "
        f"{answer.name}: unknown field{'s' if len(unknown) > 1 else ''} "
        f"{', '.join(repr(name) for name in unknown)}"
    )
    return Outcome(Verdict.REFUSED, outcome.status, outcome.body, error=error)


def unknown_fields(body: Any, answer: Answer) -> list[str]:
    """The fields of a JSON object answer (and of its ``items``, for a list) that ``answer``
    does not know, sorted; none for a body that is not an object."""
    if not isinstance(body, dict):
        return []
    unknown = set(body) - answer.fields
    items = body.get("items")
    if answer.items is not None and isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                unknown |= set(item) - answer.items.fields
    return sorted(unknown)


def _code_is(code: str) -> AlreadyDone:
    """A 409 whose error code says the work was already done (ERP's ``already_issued``)."""
    return lambda status, error: status == 409 and error.get("code") == code


def _status_is(wanted: str) -> AlreadyDone:
    """A 409 whose ``details.status`` shows the entity already where we asked it to go."""
    return lambda status, error: status == 409 and _details(error).get("status") == wanted


def _label_already_attached(tracking_number: str) -> AlreadyDone:
    """A WMS label 409 when our label is on it: shipped, or labelled with our tracking number
    (or with one it does not name). Labelled with another parcel's label is a real conflict."""

    def check(status: int, error: dict[str, Any]) -> bool:
        details = _details(error)
        if status != 409:
            return False
        if details.get("status") == "shipped":
            return True
        attached = details.get("tracking_number", tracking_number)
        return details.get("status") == "labelled" and attached == tracking_number

    return check


def _details(error: dict[str, Any]) -> dict[str, Any]:
    details = error.get("details")
    return details if isinstance(details, dict) else {}


def _body(content: bytes, charset: str | None = None) -> Any:
    """The answer's JSON; else its first 2,000 characters as text (in the Content-Type's
    charset when Python knows it, else UTF-8; undecodable bytes replaced)."""
    if not content:
        return None
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return content.decode(_encoding(charset), errors="replace")[:2000]


@lru_cache(maxsize=64)
def _charset(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type (``text/plain; charset="latin-1"``)."""
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def _encoding(charset: str | None) -> str:
    if charset:
        try:
            return codecs.lookup(charset).name
        except LookupError:
            pass
    return "utf-8"


def _retry_after(value: str | None) -> float | None:
    """Retry-After as delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
