"""Webhook signatures: HMAC-SHA256 over ``f"{timestamp}.{body}"``, sent as ``v1=<hex>``.

Shaped like ShipEngine's and Stripe's schemes: the timestamp is signed with the body so a
receiver can refuse replays outside a window.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "x-twinyard-signature"
TIMESTAMP_HEADER = "x-twinyard-timestamp"
EVENT_ID_HEADER = "x-twinyard-event-id"
EVENT_TYPE_HEADER = "x-twinyard-event-type"
DEFAULT_TOLERANCE_S = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: signature(secret, ts, body)}


def verify(
    secret: str,
    body: bytes,
    timestamp: str | None,
    sig: str | None,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> str | None:
    """Return None when the signature is good, else the reason it is not."""
    if not timestamp or not sig:
        return "missing signature headers"
    try:
        ts = int(timestamp)
    except ValueError:
        return "timestamp is not an integer"
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        return f"timestamp outside the {tolerance_s} s replay window"
    if not hmac.compare_digest(signature(secret, ts, body), sig):
        return "signature does not match"
    return None
