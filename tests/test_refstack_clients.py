"""The reference stack's vendor client: how each answer is classified, and what every call carries.

Hermetic: routes answer in place of the simulators (tests/support.py's ``MockVendors`` patches
the sender's ``request``), and a few raw loopback sockets fail as real vendors fail (the mock
never reaches the sender's connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import orjson
import pytest
from multidict import CIMultiDict

from reference_stack import steps
from reference_stack.clients import Outcome, Reply, Vendors, Verdict, classify
from simulators.common.sender import ConnectTimeout, SendFailed
from tests.support import MockVendors

URLS = {s: f"http://{s}.test" for s in ("erp", "wms", "tms", "carrier")}
CORR = "corr-SO-000001-abcd1234"


@pytest.fixture
async def vendors() -> AsyncIterator[Vendors]:
    client = Vendors(URLS, timeout_s=1.0)
    yield client
    await client.aclose()


@pytest.fixture
def mock() -> Iterator[MockVendors]:
    with MockVendors() as vendors:
        yield vendors


def vendor_error(code: str, **details: object) -> dict[str, object]:
    return {"error": {"code": code, "message": f"refused: {code}", "details": details}}


async def buy(vendors: Vendors) -> Outcome:
    body = {"shipment_ref": "SH-000001", "service": "ground", "ship_to": {}, "packages": []}
    return await vendors.buy_label(body, key="label-FO-000001", correlation_id=CORR)


@pytest.mark.parametrize(
    ("failure", "in_doubt"),
    [
        (TimeoutError(), True),  # the total timeout was up after the request went out
        (ConnectTimeout("no connection to carrier.test:80 in time"), False),  # nothing sent
        (SendFailed("cannot connect to carrier.test:80: Connection refused"), False),
        (SendFailed("the vendor closed the connection unanswered"), False),
        (SendFailed("the vendor closed the connection before the answer was whole"), False),
        (SendFailed("the vendor's answer is not HTTP/1.1: invalid constant string"), False),
    ],
)
async def test_timeouts_and_connection_errors_are_retryable(
    vendors: Vendors, mock: MockVendors, failure: Exception, in_doubt: bool
) -> None:
    """Every failure on the wire is retried; one our own timeout cut off after sending is
    also in doubt (the vendor may still do it until its gateway gives up: the worker holds
    the retry until then)."""
    mock.post("http://carrier.test/labels").side_effect = failure
    outcome = await buy(vendors)
    assert outcome.verdict is Verdict.RETRY
    assert outcome.status is None
    assert type(failure).__name__ in (outcome.error or "")
    assert outcome.in_doubt is in_doubt


async def test_429_is_retryable_after_the_delay_the_vendor_asks_for(
    vendors: Vendors, mock: MockVendors
) -> None:
    mock.post("http://carrier.test/labels").respond(
        429, json=vendor_error("rate_limited"), headers={"Retry-After": "7"}
    )
    outcome = await buy(vendors)
    assert (outcome.verdict, outcome.status, outcome.retry_after) == (Verdict.RETRY, 429, 7.0)


async def test_retry_after_may_be_an_http_date(vendors: Vendors, mock: MockVendors) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    mock.post("http://carrier.test/labels").respond(429, headers={"Retry-After": when})
    outcome = await buy(vendors)
    assert outcome.retry_after is not None and 25 < outcome.retry_after <= 30


async def test_503_is_retryable(vendors: Vendors, mock: MockVendors) -> None:
    mock.post("http://carrier.test/labels").respond(503, json=vendor_error("unavailable"))
    outcome = await buy(vendors)
    assert (outcome.verdict, outcome.status, outcome.retry_after) == (Verdict.RETRY, 503, None)


async def test_a_text_answer_is_read_in_the_charset_its_content_type_names(
    vendors: Vendors, mock: MockVendors
) -> None:
    page = "Passerelle indisponible, réessayez".encode("latin-1")
    mock.post("http://carrier.test/labels").respond(
        502, content=page, headers={"Content-Type": 'text/plain; charset="ISO-8859-1"'}
    )
    outcome = await buy(vendors)
    assert (outcome.verdict, outcome.body) == (Verdict.RETRY, "Passerelle indisponible, réessayez")


async def test_422_is_permanent_and_keeps_the_vendor_error(
    vendors: Vendors, mock: MockVendors
) -> None:
    refusal = vendor_error("address_invalid", field="ship_to.postal_code")
    mock.post("http://carrier.test/labels").respond(422, json=refusal)
    outcome = await buy(vendors)
    assert (outcome.verdict, outcome.status) == (Verdict.REFUSED, 422)
    assert outcome.body == refusal
    assert "address_invalid" in (outcome.error or "")


@pytest.mark.parametrize("content", [b'{"id": "', b"<html>Bad Gateway</html>", b"[]", b""])
async def test_a_2xx_whose_answer_does_not_read_is_retried_not_taken_for_done(
    vendors: Vendors, mock: MockVendors, content: bytes
) -> None:
    """A gateway that cuts an answer off after the status line: the work may not be done."""
    mock.post("http://carrier.test/labels").respond(201, content=content)
    outcome = await buy(vendors)
    assert (outcome.verdict, outcome.status) == (Verdict.RETRY, 201)
    assert "unreadable answer" in (outcome.error or "")


async def test_goods_issue_already_issued_counts_as_done(
    vendors: Vendors, mock: MockVendors
) -> None:
    route = mock.post("http://erp.test/orders/SO-000001/goods-issue")
    route.respond(409, json=vendor_error("already_issued", status="shipped"))
    outcome = await vendors.goods_issue(
        "SO-000001", {"lines": []}, key="gi-FO-1", correlation_id=CORR
    )
    assert outcome.verdict is Verdict.DONE and outcome.succeeded

    route.respond(409, json=vendor_error("invalid_transition", status="cancelled"))
    outcome = await vendors.goods_issue(
        "SO-000001", {"lines": []}, key="gi-FO-1", correlation_id=CORR
    )
    assert outcome.verdict is Verdict.REFUSED


@pytest.mark.parametrize(
    ("refusal", "verdict"),
    [
        (vendor_error("invalid_transition", status="shipped"), Verdict.DONE),
        (vendor_error("already_labelled", status="labelled", tracking_number="PC1"), Verdict.DONE),
        (vendor_error("already_labelled", status="labelled"), Verdict.DONE),
        # another parcel's label is on it: a real conflict, never "done"
        (vendor_error("label_mismatch", status="labelled", tracking_number="PC9"), Verdict.REFUSED),
        (vendor_error("invalid_transition", status="accepted"), Verdict.REFUSED),  # not packed
    ],
)
async def test_a_label_already_attached_counts_as_done(
    vendors: Vendors, mock: MockVendors, refusal: dict[str, object], verdict: Verdict
) -> None:
    mock.post("http://wms.test/fulfilment-orders/FO-000001/label").respond(409, json=refusal)
    body = {"tracking_number": "PC1", "carrier": "parcelco", "label_id": "LB-1"}
    outcome = await vendors.attach_label("FO-000001", body, key="k", correlation_id=CORR)
    assert outcome.verdict is verdict


@pytest.mark.parametrize(
    ("wms_status", "verdict"),
    [
        ("cancelled", Verdict.DONE),
        ("shipped", Verdict.REFUSED),  # too late to cancel: permanent, not retried
    ],
)
async def test_cancelling_a_fulfilment_order_that_is_already_cancelled_counts_as_done(
    vendors: Vendors, mock: MockVendors, wms_status: str, verdict: Verdict
) -> None:
    mock.post("http://wms.test/fulfilment-orders/FO-000001/cancel").respond(
        409, json=vendor_error("invalid_transition", status=wms_status)
    )
    outcome = await vendors.cancel_fulfilment_order("FO-000001", key="k", correlation_id=CORR)
    assert outcome.verdict is verdict


Write = Callable[[Vendors], Awaitable[Outcome]]
WRITES: dict[str, Write] = {
    "create fulfilment order": lambda v: v.create_fulfilment_order(
        {}, key="K", correlation_id=CORR
    ),
    "cancel fulfilment order": lambda v: v.cancel_fulfilment_order(
        "FO-1", key="K", correlation_id=CORR
    ),
    "attach label": lambda v: v.attach_label(
        "FO-1", {"tracking_number": "PC1"}, key="K", correlation_id=CORR
    ),
    "plan shipment": lambda v: v.plan_shipment({}, key="K", correlation_id=CORR),
    "buy label": lambda v: v.buy_label({}, key="K", correlation_id=CORR),
    "goods issue": lambda v: v.goods_issue("SO-1", {}, key="K", correlation_id=CORR),
    "tracking": lambda v: v.post_tracking("SO-1", {}, key="K", correlation_id=CORR),
    "freight accrual": lambda v: v.freight_accrual({}, key="K", correlation_id=CORR),
    "inventory adjustment": lambda v: v.inventory_adjustment({}, key="K", correlation_id=CORR),
    "goods receipt": lambda v: v.goods_receipt({}, key="K", correlation_id=CORR),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
async def test_every_write_carries_idempotency_key_and_correlation_id(
    vendors: Vendors, mock: MockVendors, write: Write
) -> None:
    for url in URLS.values():
        mock.post(re.compile(re.escape(url))).respond(201, json={"id": "X-1"})
    outcome = await write(vendors)
    assert outcome.verdict is Verdict.OK
    request = mock.calls[-1]
    assert request.headers["idempotency-key"] == "K"
    assert request.headers["x-correlation-id"] == CORR
    assert request.headers["content-type"] == "application/json"


async def test_reads_carry_the_correlation_id_too(vendors: Vendors, mock: MockVendors) -> None:
    mock.get("http://wms.test/fulfilment-orders").respond(200, json={"items": []})
    await vendors.find_fulfilment_orders("SO-000001", correlation_id=CORR)
    request = mock.calls[-1]
    assert request.headers["x-correlation-id"] == CORR
    assert request.url.query["order_ref"] == "SO-000001"
    assert "idempotency-key" not in request.headers


# -- what the mock cannot show: the sender on real loopback sockets --------------------------------
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_vendor(handle: Handler) -> AsyncIterator[str]:
    """A vendor on a loopback port that answers in raw bytes, as ``handle`` writes them."""
    connections: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handle(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.close()
        if connections:  # each ends once the client has closed its side
            await asyncio.wait(connections, timeout=2)


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    """One HTTP/1.1 request off the wire: its request line, headers (lower-cased) and body."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    line, *fields = head.split("\r\n")[:-2]
    headers = {k.strip().lower(): v.strip() for k, v in (f.split(":", 1) for f in fields)}
    return line, headers, await reader.readexactly(int(headers.get("content-length", 0)))


async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await reader.read()  # until the client gives up and closes


async def hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)  # raw_vendor closes the connection


async def cuts_the_body_off(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: 100\r\n\r\n" + b'{"id": ')
    await writer.drain()  # and raw_vendor closes the connection 93 bytes short


@pytest.mark.parametrize(
    ("vendor", "failure"),
    [
        (never_answers, "TimeoutError"),
        (hangs_up, "SendFailed: the vendor closed the connection unanswered"),
        (cuts_the_body_off, "SendFailed: the vendor closed the connection before the answer"),
    ],
)
async def test_a_vendor_failing_on_the_wire_is_retried(vendor: Handler, failure: str) -> None:
    async with raw_vendor(vendor) as url:
        client = Vendors({"carrier": url}, timeout_s=0.2)
        started = time.monotonic()
        try:
            outcome = await buy(client)
        finally:
            await client.aclose()
    assert (outcome.verdict, outcome.status) == (Verdict.RETRY, None)
    assert outcome.error is not None and "\n" not in outcome.error
    assert outcome.error.startswith(f"carrier POST /labels: {failure}")
    assert outcome.in_doubt is (failure == "TimeoutError")
    assert time.monotonic() - started < 2  # timeout_s bounds the whole exchange


async def test_as_many_calls_to_one_vendor_as_connections_go_out_at_once() -> None:
    """Every worker may call the same vendor at once (a truck leaves: hundreds of goods
    issues): none may queue for a connection (aiohttp's unfair pool queue, before the sender,
    let one wait out its whole timeout unsent and be retried as in doubt). The vendor answers
    only once all of them have arrived, so a pool smaller than the workers never gets its
    answers."""
    workers = 16
    arrived: list[str] = []
    all_here = asyncio.Event()

    async def vendor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, _, _ = await read_request(reader)
        arrived.append(line)
        if len(arrived) == workers:
            all_here.set()
        await all_here.wait()
        content = orjson.dumps({"id": f"GI-{len(arrived)}"})
        writer.write(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n")
        writer.write(b"content-length: %d\r\n\r\n" % len(content) + content)
        await writer.drain()

    async with raw_vendor(vendor) as url:
        client = Vendors({s: url for s in URLS}, timeout_s=5.0)
        try:
            outcomes = await asyncio.gather(
                *(
                    client.goods_issue(
                        f"SO-{n:06d}", {"lines": []}, key=f"gi-{n}", correlation_id=CORR
                    )
                    for n in range(workers)
                )
            )
        finally:
            await client.aclose()
    assert [o.verdict for o in outcomes] == [Verdict.OK] * workers
    assert len(arrived) == workers


async def test_a_refused_connection_is_retried() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Vendors({"carrier": f"http://127.0.0.1:{port}"}, timeout_s=1.0)
    try:
        outcome = await buy(client)
    finally:
        await client.aclose()
    assert (outcome.verdict, outcome.status) == (Verdict.RETRY, None)
    assert f"SendFailed: cannot connect to 127.0.0.1:{port}" in (outcome.error or "")
    assert not outcome.in_doubt


async def test_what_goes_on_the_wire_and_the_connection_is_kept() -> None:
    """The bytes a vendor receives (not only what the client handed its sender), a redirect
    taken as the vendor's answer rather than followed, and one kept-alive connection."""
    seen: list[tuple[str, dict[str, str], bytes]] = []
    connections = 0

    async def vendor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while not reader.at_eof():
            try:
                request = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            seen.append(request)
            if request[0].startswith("POST"):
                status, content = b"201 Created", orjson.dumps({"id": "FO-1"})
                extra = b"content-type: application/json\r\n"
            else:
                status, content, extra = b"302 Found", b"", b"location: /elsewhere\r\n"
            head = b"HTTP/1.1 " + status + b"\r\n" + extra
            writer.write(head + b"content-length: %d\r\n\r\n" % len(content) + content)
            await writer.drain()

    async with raw_vendor(vendor) as url:
        client = Vendors({"wms": url}, timeout_s=1.0)
        try:
            created = await client.create_fulfilment_order(
                {"order_ref": "SO-1"}, key="wms-create-SO-1", correlation_id=CORR
            )
            found = await client.find_fulfilment_orders("SO 1&2", correlation_id=CORR)
        finally:
            await client.aclose()
    assert (created.verdict, created.body) == (Verdict.OK, {"id": "FO-1"})
    assert (found.verdict, found.status) == (Verdict.REFUSED, 302)
    assert found.error == "GET /fulfilment-orders -> HTTP 302"
    (post_line, post, post_body), (get_line, get, get_body) = seen
    assert post_line == "POST /fulfilment-orders HTTP/1.1"
    assert post["accept"] == "application/json"
    assert post["x-correlation-id"] == CORR
    assert post["content-type"] == "application/json"
    assert post["idempotency-key"] == "wms-create-SO-1"
    assert post_body == orjson.dumps({"order_ref": "SO-1"})
    assert get_line == "GET /fulfilment-orders?order_ref=SO+1%262 HTTP/1.1"
    assert get["x-correlation-id"] == CORR
    assert "idempotency-key" not in get and "content-type" not in get and get_body == b""
    assert connections == 1  # kept alive between the two calls


def test_the_client_is_made_outside_the_loop_it_is_used_in() -> None:
    """As reference_stack/__main__.py makes it: before uvicorn runs the loop."""
    client = Vendors(URLS, timeout_s=1.0)

    async def use() -> Outcome:
        with MockVendors() as mock:
            mock.post("http://carrier.test/labels").respond(201, json={"id": "LB-1"})
            outcome = await buy(client)
        await client.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await buy(client)
        return outcome

    assert asyncio.run(use()).verdict is Verdict.OK


# -- classify: a pure function of the answer ----------------------------------------------------
def reply(status: int, content: bytes = b"", charset: str | None = None, **headers: str) -> Reply:
    return Reply("POST", "/labels", status, CIMultiDict(headers), content, charset)


def test_classify_reads_status_headers_and_body() -> None:
    error = orjson.dumps(vendor_error("unavailable"))
    outcome = classify(reply(503, error, **{"Retry-After": "2"}))
    assert (outcome.verdict, outcome.status, outcome.retry_after) == (Verdict.RETRY, 503, 2.0)
    assert outcome.body == vendor_error("unavailable")
    assert outcome.error == "POST /labels -> HTTP 503 unavailable: refused: unavailable"
    assert classify(reply(503, **{"Retry-After": "soon"})).retry_after is None
    assert classify(reply(201, b'{"id": "LB-1"}')) == Outcome(Verdict.OK, 201, {"id": "LB-1"})
    assert classify(reply(204)) == Outcome(Verdict.OK, 204, None)
    assert classify(reply(301)).verdict is Verdict.REFUSED


def test_an_answer_that_is_not_json_is_kept_as_text() -> None:
    assert classify(reply(502, "Mauvaise passerelle é".encode("latin-1"), "latin-1")).body == (
        "Mauvaise passerelle é"
    )
    assert classify(reply(502, b"bad \xff gateway", "no-such-charset")).body == "bad \ufffd gateway"
    assert classify(reply(502, b"x" * 3000)).body == "x" * 2000


def test_idempotency_keys_name_the_business_action() -> None:
    """The same action always gets the same key, whichever event or retry asks for it."""
    packed = {
        "order_ref": "SO-000001",
        "fulfilment_order_id": "FO-000001",
        "ship_to": {"country": "DE"},
        "service_level": "standard",
        "packages": [{"package_id": "P1", "weight_kg": 1.5, "contents": []}],
    }
    plan = steps.plan_shipment(packed)
    shipment = {"id": "SH-000001", "service": "ground", "carrier": "parcelco"}
    label = steps.buy_label("SO-000001", "FO-000001", shipment, plan.payload)
    assert plan.key == "shipment-FO-000001"
    assert label.key == steps.buy_label("SO-000001", "FO-000001", shipment, plan.payload).key
    assert label.key == "label-FO-000001"
    shipped_gi = steps.goods_issue("SO-000001", "FO-000001", {"lines": [{"line": 1, "qty": 2}]})
    assert shipped_gi.key == "gi-FO-000001"
    settled = {"order_ref": "SO-000001", "shipment_id": "SH-000001", "amount": {}}
    assert steps.freight_accrual(settled).key == "accrual-SH-000001"
