"""Reading one page of a feed (docs/feeds.md): the events feed and the ERP's change list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .vendors import Later, Vendors


class Expired(Later):
    """410 cursor_expired: start again from the committed point (the feed without `after`)."""


@dataclass
class Record:
    """One item of a page: what it says, and how to resume right after it."""

    rid: str  # per-record idempotency: the event id, or order id @ updated_at
    kind: str  # the event type, or "erp.order"
    data: dict[str, Any]
    cursor: str | None = None  # events: resume after this item
    stamp: str | None = None  # change lists: the record's last change


@dataclass
class Page:
    records: list[Record]
    has_more: bool
    next: str | None  # events: next_cursor; lists: next_page_token


def checked(reply: Any, what: str) -> Any:
    """The body of a 2xx page; 410 is Expired, any other refusal a Later (it is logged)."""
    if reply.status == 410:
        raise Expired(f"{what}: cursor expired ({reply.details})")
    if not reply.ok or not isinstance(reply.body, dict):
        raise Later(f"{what}: {reply.status} {reply.code}")
    return reply.body


async def read_events(
    vendors: Vendors,
    system: str,
    after: str | None,
    limit: int,
    corr: str,
    types: tuple[str, ...] = (),
) -> Page:
    """`GET /events?after=CURSOR&limit=N` on one simulator (`types=`: only those events)."""
    params: dict[str, Any] = {"limit": limit}
    if after:
        params["after"] = after
    if types:
        params["types"] = ",".join(types)
    reply = await vendors.call(system, "GET", "/events", corr=corr, params=params)
    body = checked(reply, f"{system} /events")
    records = [
        Record(
            rid=item["event"]["id"],
            kind=item["event"]["type"],
            data=item["event"].get("data") or {},
            cursor=item["cursor"],
        )
        for item in body["items"]
    ]
    return Page(records, bool(body["has_more"]), body["next_cursor"])


async def own_clock(vendors: Vendors) -> str:
    """Our clock now, as the ERP's stamps are written (whole seconds, `Z`).

    In production this would be `datetime.now(UTC)`. Played by twinyard, our time is its virtual
    clock, which every simulator's `GET /_sim/clock` shows (README, "Virtual time"): in lockstep
    hours pass in wall seconds, so the machine's clock says nothing about the day."""
    reply = await vendors.call("erp", "GET", "/_sim/clock", corr="ps-clock")
    if not reply.ok or not isinstance(reply.body, dict) or "now" not in reply.body:
        raise Later(f"erp /_sim/clock: {reply.status} {reply.code}")
    moment = datetime.fromisoformat(str(reply.body["now"]).replace("Z", "+00:00"))
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def one_second_later(stamp: str) -> str:
    """`stamp` + 1 s: the `>` an ERP read with whole-second stamps must not do (a bug)."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(seconds=1)
    return moment.isoformat().replace("+00:00", "Z")


async def read_orders(
    vendors: Vendors, since: str | None, token: str | None, limit: int, corr: str
) -> Page:
    """`GET /orders?updated_since=W&limit=N` (or `page_token=T`) on the ERP."""
    params: dict[str, Any] = {"limit": limit}
    if token:
        params["page_token"] = token
    elif since:
        params["updated_since"] = since
    reply = await vendors.call("erp", "GET", "/orders", corr=corr, params=params)
    body = checked(reply, "erp /orders")
    records = [
        Record(rid=f"{o['id']}@{o['updated_at']}", kind="erp.order", data=o, stamp=o["updated_at"])
        for o in body["items"]
    ]
    more = bool(body["has_more"]) and bool(body.get("next_page_token"))
    return Page(records, more, body.get("next_page_token"))
