"""The vendor client: every call the stack makes to ERP, WMS, TMS and the carrier.

One keep-alive ``httpx.AsyncClient`` for all four. Each call carries ``X-Correlation-Id``;
each write carries the ``Idempotency-Key`` its job derived from business identity, so a retry
can never buy a second label or post twice. The answer is classified once, here, into what
the worker should do with it (``classify``).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx
import orjson

from reference_stack.defects import DROP_CORRELATION

TIMEOUT_S = 10.0

# (HTTP status, the vendor's "error" object) -> the refusal means the work is already done.
AlreadyDone = Callable[[int, dict[str, Any]], bool]


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

    @property
    def succeeded(self) -> bool:
        return self.verdict in (Verdict.OK, Verdict.DONE)


class Vendors:
    def __init__(
        self,
        urls: Mapping[str, str],
        *,
        connections: int = 32,
        timeout_s: float = TIMEOUT_S,
        jitter_ms: float = 0.0,
        defects: frozenset[str] = frozenset(),
    ) -> None:
        self.urls = dict(urls)
        self.correlate = DROP_CORRELATION not in defects
        self.jitter_s = jitter_ms / 1000
        per_vendor = max(2, connections // max(len(self.urls), 1))
        limits = httpx.Limits(
            max_connections=per_vendor, max_keepalive_connections=per_vendor, keepalive_expiry=30
        )
        # One small pool per vendor: httpcore scans every pooled connection on each request
        # (and polls each socket), so four pools of a quarter the size cost a quarter as much.
        self._http = {
            system: httpx.AsyncClient(timeout=timeout_s, limits=limits) for system in self.urls
        }

    async def aclose(self) -> None:
        for client in self._http.values():
            await client.aclose()

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
    ) -> Outcome:
        headers = {"accept": "application/json"}
        if self.correlate:
            headers["x-correlation-id"] = correlation_id
        content = None
        if body is not None:
            headers["content-type"] = "application/json"
            content = orjson.dumps(body)
        if key is not None:
            headers["idempotency-key"] = key
        if self.jitter_s:  # a stack whose calls take unpredictably long (tests perturb timing)
            await asyncio.sleep(random.uniform(0, self.jitter_s))
        try:
            response = await self._http[system].request(
                method, self.urls[system] + path, content=content, headers=headers, params=params
            )
        except httpx.TransportError as exc:  # timeouts, refused connections, broken streams
            return Outcome(Verdict.RETRY, error=f"{system} {method} {path}: {_describe(exc)}")
        return classify(response, already_done)

    # -- WMS -----------------------------------------------------------------------------
    async def create_fulfilment_order(
        self, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "wms", "POST", "/fulfilment-orders", body=body, key=key, correlation_id=correlation_id
        )

    async def find_fulfilment_orders(self, order_ref: str, *, correlation_id: str) -> Outcome:
        return await self.request(
            "wms",
            "GET",
            "/fulfilment-orders",
            params={"order_ref": order_ref},
            correlation_id=correlation_id,
        )

    async def cancel_fulfilment_order(
        self, fulfilment_order_id: str, *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "wms",
            "POST",
            f"/fulfilment-orders/{fulfilment_order_id}/cancel",
            body={},
            key=key,
            correlation_id=correlation_id,
            already_done=_status_is("cancelled"),
        )

    async def attach_label(
        self, fulfilment_order_id: str, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "wms",
            "POST",
            f"/fulfilment-orders/{fulfilment_order_id}/label",
            body=body,
            key=key,
            correlation_id=correlation_id,
            already_done=_label_already_attached(body["tracking_number"]),
        )

    # -- TMS and carrier -----------------------------------------------------------------
    async def plan_shipment(
        self, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "tms", "POST", "/shipments", body=body, key=key, correlation_id=correlation_id
        )

    async def buy_label(
        self, body: dict[str, Any], *, key: str | None, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "carrier", "POST", "/labels", body=body, key=key, correlation_id=correlation_id
        )

    # -- ERP -----------------------------------------------------------------------------
    async def goods_issue(
        self, order_ref: str, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "erp",
            "POST",
            f"/orders/{order_ref}/goods-issue",
            body=body,
            key=key,
            correlation_id=correlation_id,
            already_done=_code_is("already_issued"),
        )

    async def post_tracking(
        self, order_ref: str, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "erp",
            "POST",
            f"/orders/{order_ref}/tracking",
            body=body,
            key=key,
            correlation_id=correlation_id,
        )

    async def freight_accrual(
        self, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "erp", "POST", "/freight-accruals", body=body, key=key, correlation_id=correlation_id
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
        )

    async def goods_receipt(
        self, body: dict[str, Any], *, key: str, correlation_id: str
    ) -> Outcome:
        return await self.request(
            "erp", "POST", "/goods-receipts", body=body, key=key, correlation_id=correlation_id
        )


def classify(response: httpx.Response, already_done: AlreadyDone | None = None) -> Outcome:
    """2xx ok; 429 and 5xx retry (with Retry-After); "already done" 409s done; other 4xx refused."""
    status = response.status_code
    body = _body(response)
    if 200 <= status < 300:
        return Outcome(Verdict.OK, status, body)
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    request = response.request
    summary = f"{request.method} {request.url.path} -> HTTP {status}"
    if error:
        summary += f" {error.get('code')}: {error.get('message')}"
    if status == 429 or status >= 500:
        wait = _retry_after(response.headers.get("retry-after"))
        return Outcome(Verdict.RETRY, status, body, retry_after=wait, error=summary)
    if already_done is not None and already_done(status, error):
        return Outcome(Verdict.DONE, status, body)
    return Outcome(Verdict.REFUSED, status, body, error=summary)


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


def _body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:2000]


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
