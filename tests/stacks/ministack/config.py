"""Configuration from the environment, as a production deployment would give it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

SYSTEMS = ("erp", "wms", "tms", "carrier")

# Planted bugs (MINISTACK_BUGS=a,b): each is switched in exactly one place (grep "BUG ").
BUGS = {
    "ordered-qty": "the goods issue posts the ordered qty instead of the picked qty",
    "no-cancel": "order.cancelled is acknowledged and ignored",
    "label-service": "every label is bought as express, whatever service the TMS planned",
    "scan-time": "tracking is posted with the current time instead of the scan's occurred_at",
    "siteless-stock": "adjustments and receipts are posted without their site (the ERP's DC1)",
    "first-signature": "a signature header sent twice is not refused: the first one is checked",
    "dedup-first": "the event id in the header is recorded as seen before the body is read, so "
    "a garbled copy makes the genuine event that follows a duplicate",
    "lines-by-sku": "an order's lines are kept one per SKU: a SKU on two lines keeps the last",
    "first-carton": "the label is bought for the first carton of an order packed in several",
    "offset-dropped": "a scan's occurred_at is posted with its UTC offset cut off, as if UTC",
    "home-country": "every ship-to is sent on with country DE, whatever the ERP says",
    "euro-only": "freight is accrued in EUR whatever currency the TMS settled it in",
    "whole-kilos": "shipments are planned with package weights rounded to the kilogram",
    "sample-shaped": "an event whose data has a field the first event of its type lacked is "
    "refused 400 (a model generated from a sample payload, with unknown fields forbidden)",
    "reserialised": "the signature is checked over the event parsed and serialised again "
    "(compact, as JSON.stringify(req.body) writes it), not over the bytes received",
    "seconds-only": "a scan's occurred_at is normalised to UTC through a fixed seconds-only "
    "format (%Y-%m-%dT%H:%M:%S%z): a time with a fraction of a second fails to parse",
    "losses-only": "an adjustment is posted as a write-off (delta -abs(delta)), whatever its "
    "sign: units a count found are taken off the ERP's books instead of added",
    "renumbered": "the WMS order's lines are numbered by position (1, 2, 3), not with the "
    "ERP's line numbers, which picks and goods issues then name",
    "once-per-order": "events are deduplicated by type and order, not by event id: a second "
    "order.updated (or any second event of a type) for an order is taken for a duplicate",
    "first-receipt-line": "a receipt is posted with its first line only, as if a delivery "
    "brought one SKU",
    "siteless-receipts": "supplier receipts are posted without their site (adjustments keep "
    "theirs): the ERP books a second site's deliveries at DC1",
    "obsolete-item-letter": "an item version the WMS refused stays dead-lettered after a newer "
    "one is on (replayed, it would put the older version back)",
    "wms-standard": "every WMS order is sent as standard (a service map written before express "
    "existed): the floor never picks express first; the TMS is still planned from the ERP",
    "shipment-as-fo": "the goods issue names the WMS fulfilment order as its shipment, not the "
    "TMS shipment",
    "tracking-label-id": "milestones are posted to the ERP under the carrier's label id, not the "
    "parcel's tracking number",
    "reason-default": "adjustments are posted with their reason mapped through a table that knows "
    "only damage; any other reason becomes cycle_count",
    "label-shipment-ref": "the label is attached to the WMS order with the label's shipment_ref "
    "(the TMS shipment it was bought for) as its label id",
    "raw-sku-path": "a SKU is put into a URL path as it is, not percent-encoded (a / splits "
    "the path, a # starts a fragment)",
    "raw-order-path": "an ERP order number is put into a URL path as it is, not percent-encoded "
    "(SO/2026/0001 splits the path)",
}
PROBES = ("none", "idle", "scheduled", "busy-waiting")


@dataclass(frozen=True)
class Config:
    urls: dict[str, str]
    secret: str
    port: int
    probe: str
    bugs: frozenset[str]


def fail(message: str) -> None:
    print(f"ministack: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load(env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ if env is None else env)
    urls = {}
    for system in SYSTEMS:
        name = f"TWINYARD_{system.upper()}_URL"
        if not env.get(name):
            fail(f"{name} is not set")
        urls[system] = env[name].rstrip("/")
    secret = env.get("TWINYARD_WEBHOOK_SECRET") or fail("TWINYARD_WEBHOOK_SECRET is not set")
    port = env.get("TWINYARD_STACK_PORT", "8700")
    if not port.isdigit():
        fail(f"TWINYARD_STACK_PORT is not a port number: {port!r}")
    probe = env.get("MINISTACK_PROBE", "none") or "none"
    if probe not in PROBES:
        fail(f"MINISTACK_PROBE must be one of {', '.join(PROBES)}, not {probe!r}")
    bugs = frozenset(b.strip() for b in env.get("MINISTACK_BUGS", "").split(",") if b.strip())
    if unknown := bugs - BUGS.keys():
        fail(f"unknown MINISTACK_BUGS {sorted(unknown)}; known: {', '.join(BUGS)}")
    return Config(urls, str(secret), int(port), probe, bugs)
