"""Webhook signatures, in the scheme a subscription chose (``signing`` on ``POST /webhooks``).

- ``twinyard`` (the default): HMAC-SHA256 over ``f"{timestamp}.{body}"``, sent as
  ``X-Twinyard-Signature: v1=<hex>`` with ``X-Twinyard-Timestamp``. Shaped like ShipEngine's
  and Stripe's schemes: the timestamp is signed with the body so a receiver can refuse replays
  outside a window.
- ``standard-webhooks`` (https://www.standardwebhooks.com/): ``webhook-id``,
  ``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256 of
  f"{id}.{timestamp}.{body}">``, keyed with the base64 key of a ``whsec_`` secret. Signed by
  the ``standardwebhooks`` package itself, so a receiver is tested against the real thing.

The verifiers here are strict where a lenient parser is a hole (docs/choreography.md): a
timestamp is ASCII digits in canonical form (``int()`` also takes ``+1796317186``,
``1_796_317_186`` and a leading no-break space), at most ``FUTURE_SKEW_S`` ahead of the
receiver's clock, and at most the replay window behind it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from standardwebhooks import Webhook

SIGNATURE_HEADER = "x-twinyard-signature"
TIMESTAMP_HEADER = "x-twinyard-timestamp"
EVENT_ID_HEADER = "x-twinyard-event-id"
EVENT_TYPE_HEADER = "x-twinyard-event-type"
DEFAULT_TOLERANCE_S = 300
# How far ahead of the receiver's clock a sender's may be. A timestamp from the future
# lengthens the life of a captured request: one signed 300 s ahead stays replayable for
# 600 s under a symmetric 300 s window. NTP keeps clocks within milliseconds; 30 s is room
# for a badly synchronised VM, and no more.
FUTURE_SKEW_S = 30
# Canonical Unix seconds: ASCII digits (``[0-9]``, not ``\d``, which takes any script's
# digits), no sign, no underscores, no leading zeros, at most 12 digits (year 33658).
TIMESTAMP_RE = re.compile(r"0|[1-9][0-9]{0,11}")

TWINYARD = "twinyard"
STANDARD_WEBHOOKS = "standard-webhooks"
SCHEMES = (TWINYARD, STANDARD_WEBHOOKS)

SW_ID_HEADER = "webhook-id"
SW_TIMESTAMP_HEADER = "webhook-timestamp"
SW_SIGNATURE_HEADER = "webhook-signature"
SW_SECRET_PREFIX = "whsec_"
SW_KEY_BYTES = (24, 64)  # the spec's range for a symmetric key

# The headers that carry a scheme's signature: each may appear once on a request.
SIGNATURE_HEADERS = {
    TWINYARD: (TIMESTAMP_HEADER, SIGNATURE_HEADER),
    STANDARD_WEBHOOKS: (SW_ID_HEADER, SW_TIMESTAMP_HEADER, SW_SIGNATURE_HEADER),
}

SECRET_FILE_MAX_BYTES = 4096


# -- twinyard ---------------------------------------------------------------------------------
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
    future_skew_s: int = FUTURE_SKEW_S,
    now: float | None = None,
) -> str | None:
    """Return None when the signature is good, else the reason it is not."""
    if not timestamp or not sig:
        return "missing signature headers"
    ts, reason = check_timestamp(timestamp, tolerance_s, future_skew_s, now)
    if reason is not None:
        return reason
    if not hmac.compare_digest(signature(secret, ts, body).encode(), sig.encode()):
        return "signature does not match"
    return None


# -- timestamps -------------------------------------------------------------------------------
def canonical_timestamp(raw: str) -> int | None:
    """The Unix seconds of a header in canonical form, else None."""
    return int(raw) if TIMESTAMP_RE.fullmatch(raw) else None


def check_timestamp(
    raw: str, tolerance_s: int, future_skew_s: int, now: float | None = None
) -> tuple[int, str | None]:
    """The timestamp, and why it is refused (None: it is not)."""
    ts = canonical_timestamp(raw)
    if ts is None:
        return 0, "timestamp is not canonical Unix seconds (ASCII digits, no sign, no leading zero)"
    current = time.time() if now is None else now
    if ts < current - tolerance_s:
        return ts, f"timestamp outside the {tolerance_s} s replay window"
    if ts > current + future_skew_s:
        return ts, f"timestamp more than {future_skew_s} s ahead of this clock"
    return ts, None


# -- Standard Webhooks ------------------------------------------------------------------------
def standard_key(secret: str) -> bytes:
    """The key of a ``whsec_`` secret; ValueError says why a secret is not one."""
    if not secret.startswith(SW_SECRET_PREFIX):
        raise ValueError(f"a Standard Webhooks secret starts with {SW_SECRET_PREFIX}")
    encoded = secret.removeprefix(SW_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError(f"a Standard Webhooks secret is {SW_SECRET_PREFIX} + base64") from None
    low, high = SW_KEY_BYTES
    if not low <= len(key) <= high:
        raise ValueError(f"a Standard Webhooks key is {low} to {high} bytes, this one {len(key)}")
    return key


def standard_signature(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64>`` over ``f"{msg_id}.{timestamp}." + body``, by the standardwebhooks package."""
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    return Webhook(secret).sign(msg_id=msg_id, timestamp=when, data=body)


def standard_headers(
    secret: str | bytes, body: bytes, msg_id: str, timestamp: int | None = None
) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        SW_ID_HEADER: msg_id,
        SW_TIMESTAMP_HEADER: str(ts),
        SW_SIGNATURE_HEADER: standard_signature(secret, msg_id, ts, body),
    }


def verify_standard(
    secret: str,
    body: bytes,
    msg_id: str | None,
    timestamp: str | None,
    signatures: str | None,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    future_skew_s: int = FUTURE_SKEW_S,
    now: float | None = None,
) -> str | None:
    """None when one of the space-separated signatures is good, else why none is.

    The spec's scheme with this module's timestamp rules: the ``standardwebhooks`` package's
    own ``verify`` parses the timestamp with ``float()`` (so ``+1796317186`` and
    ``1_796_317_186`` pass) and allows 300 s either way.
    """
    if not (msg_id and timestamp and signatures):
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    ts, reason = check_timestamp(timestamp, tolerance_s, future_skew_s, now)
    if reason is not None:
        return reason
    expected = standard_signature(secret, msg_id, ts, body).encode()
    # Several signatures (a key rotation) are space-separated; one good one is enough, and
    # the others (another version such as v1a, an old key's) are ignored.
    if not any(hmac.compare_digest(expected, s.encode()) for s in signatures.split(" ")):
        return "no signature matches"
    return None


# -- either scheme ----------------------------------------------------------------------------
def sign(
    scheme: str, secret: str, body: bytes, event_id: str, timestamp: int | None = None
) -> dict[str, str]:
    """The signature headers of ``body`` in ``scheme`` (the event id is the webhook-id)."""
    if scheme == STANDARD_WEBHOOKS:
        return standard_headers(secret, body, event_id, timestamp)
    return signed_headers(secret, body, timestamp)


def check_secret(scheme: str, secret: str) -> None:
    """ValueError when ``secret`` cannot sign in ``scheme`` (twinyard: any non-empty text)."""
    if scheme not in SCHEMES:
        raise ValueError(f"signing is one of {', '.join(SCHEMES)}, not {scheme!r}")
    if not secret:
        raise ValueError("the secret must not be empty")
    if scheme == STANDARD_WEBHOOKS:
        standard_key(secret)


def other_secret(scheme: str, secret: str) -> str:
    """A secret that is not ``secret`` but signs in the same scheme (a forger's)."""
    if scheme == STANDARD_WEBHOOKS:
        key = standard_key(secret)
        wrong = bytes(b ^ 0x5A for b in key)
        return SW_SECRET_PREFIX + base64.b64encode(wrong).decode()
    return "not-" + secret


def read_secret_file(path: str | Path) -> str:
    """A secret kept in a file: its text without trailing line breaks. ValueError says why a
    file is not usable (unreadable, empty, over 4 KiB, not UTF-8, more than one line)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(SECRET_FILE_MAX_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > SECRET_FILE_MAX_BYTES:
        raise ValueError(f"{path} is over {SECRET_FILE_MAX_BYTES} bytes: not a secret file")
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    if not text:
        raise ValueError(f"{path} is empty")
    if "\n" in text or "\r" in text:
        raise ValueError(f"{path} has more than one line: a secret file holds the secret alone")
    return text
