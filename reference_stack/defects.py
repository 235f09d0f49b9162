"""Known defects the reference stack can be started with (``REFSTACK_DEFECTS``).

Each name switches one real integration bug on, at the one place that behaviour lives; an
empty set is the correct stack. docs/defects.md tells the incident each imitates and the
business invariant that should catch it. ``DESCRIPTIONS`` are the bugs the day's oracles
catch (the selftest matrix); ``CAPACITY`` the ones only a load finds.
"""

from __future__ import annotations

NO_DEDUP = "no-dedup"
BLIND_RETRY = "blind-retry"
NO_RETRY_WMS = "no-retry-wms"
STALE_EVENTS = "stale-events"
ORDERED_QTY = "ordered-qty"
IGNORE_ADJUSTMENTS = "ignore-adjustments"
NO_WMS_CANCEL = "no-wms-cancel"
DOUBLE_GOODS_ISSUE = "double-goods-issue"
IGNORE_RETRY_AFTER = "ignore-retry-after"
SKIP_SIGNATURE = "skip-signature"
DROP_CORRELATION = "drop-correlation"
DROP_FREIGHT = "drop-freight"
DEAD_LETTER_NO_REPLAY = "dead-letter-no-replay"
STRICT_PARSING = "strict-parsing"
IGNORE_ORDER_UPDATES = "ignore-order-updates"
NO_TENDER_FALLBACK = "no-tender-fallback"
SERIAL_LABELS = "serial-labels"
DOUBLE_CREDIT = "double-credit"
RESTOCK_DAMAGED = "restock-damaged"
EACHES_AS_CASES = "eaches-as-cases"
UNKNOWN_ITEM_NOT_RETRIED = "unknown-item-not-retried"
DEFAULT_SITE = "default-site"
TRANSFER_RECEIVED_TWICE = "transfer-received-twice"
CUT_OFF_FORGOTTEN = "cut-off-forgotten"

DESCRIPTIONS: dict[str, str] = {
    NO_DEDUP: "releases are not deduplicated: a duplicate order.released creates a second "
    "WMS order",
    BLIND_RETRY: "labels are bought without an Idempotency-Key: a lost response buys a second "
    "label",
    NO_RETRY_WMS: "a WMS create that fails (5xx, 429, timeout) is dropped, not retried",
    STALE_EVENTS: "tracking scans older than the last one applied are applied too",
    ORDERED_QTY: "the goods issue posts the ordered qty instead of the picked qty",
    IGNORE_ADJUSTMENTS: "inventory.adjusted is ignored: adjustments never reach the ERP",
    NO_WMS_CANCEL: "order.cancelled is ignored: the WMS never hears of a cancellation",
    DOUBLE_GOODS_ISSUE: "a duplicate order.shipped posts the goods issue again, under a fresh "
    "Idempotency-Key",
    IGNORE_RETRY_AFTER: "a Retry-After is ignored: the call is retried at once",
    SKIP_SIGNATURE: "webhook signatures are not verified",
    DROP_CORRELATION: "outbound calls carry no X-Correlation-Id",
    DROP_FREIGHT: "freight.settled is ignored: freight is never accrued in the ERP",
    DEAD_LETTER_NO_REPLAY: "dead letters cannot be replayed (the replay route answers 409)",
    STRICT_PARSING: "a vendor answer with a field the stack does not know is refused, although "
    "the vendor did the work",
    IGNORE_ORDER_UPDATES: "order.updated is ignored: a new ship-to never reaches the WMS, and a "
    "label refused for its address is never bought again",
    NO_TENDER_FALLBACK: "an express tender the carrier declines for capacity is dead-lettered "
    "instead of shipped ground",
    DOUBLE_CREDIT: "the return disposition is keyed by the event, not the receipt: a "
    "return.received re-sent under a new id is credited again",
    RESTOCK_DAMAGED: "returned units are restocked in the ERP whatever their condition: damaged "
    "and scrapped units become available stock",
    EACHES_AS_CASES: "the goods issue posts the picked eaches in the order line's unit: a case "
    "line's eaches are posted as cases",
    UNKNOWN_ITEM_NOT_RETRIED: "a WMS 422 unknown_item on order create is taken as final: an "
    "order released before its item reached the WMS is never created",
    DEFAULT_SITE: "the WMS order is created without the ERP's site: every order goes to the "
    "default site",
    TRANSFER_RECEIVED_TWICE: "the transfer receipt is keyed by the event, not the WMS transfer: "
    "a transfer.received re-sent under a new id is received twice",
    CUT_OFF_FORGOTTEN: "after a crash, an attempt the crash cut off counts for nothing: only a "
    "recorded failure makes a create look first, so a WMS order the cut-off call made is made "
    "again",
}

# Capacity defects: the stack stays correct (every oracle passes, in lockstep and under load)
# and only its speed suffers, so the day's oracles cannot catch them and the selftest matrix
# (which iterates DESCRIPTIONS) leaves them out; ``twinyard load --find-knee`` finds them, as a
# lower knee (docs/defects.md, docs/load.md).
CAPACITY: dict[str, str] = {
    SERIAL_LABELS: "labels are bought one at a time behind one lock (a carrier client not safe "
    "for concurrent use): correct, and slow when a wave is packed at once",
}

NAMES = frozenset(DESCRIPTIONS) | frozenset(CAPACITY)

# The defects that are a missing event mapping: the event is acknowledged and then dropped.
IGNORED_EVENTS: dict[str, tuple[str, str]] = {
    IGNORE_ADJUSTMENTS: ("wms", "inventory.adjusted"),
    NO_WMS_CANCEL: ("erp", "order.cancelled"),
    DROP_FREIGHT: ("tms", "freight.settled"),
    IGNORE_ORDER_UPDATES: ("erp", "order.updated"),
}


def parse(raw: str) -> frozenset[str]:
    """A comma-separated list of names (blanks ignored); ValueError names an unknown one."""
    names = frozenset(name.strip() for name in raw.split(",") if name.strip())
    unknown = sorted(names - NAMES)
    if unknown:
        raise ValueError(
            f"unknown defect(s) {', '.join(unknown)}; known: {', '.join(sorted(NAMES))}"
        )
    return names


def ignored_events(defects: frozenset[str]) -> frozenset[tuple[str, str]]:
    return frozenset(IGNORED_EVENTS[name] for name in defects if name in IGNORED_EVENTS)
