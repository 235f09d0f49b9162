"""Opaque cursors and page tokens: where a polling client stopped, and when it was told so.

A token is base64url (unpadded) of compact JSON: the feed it belongs to (``k``), the position
in it (``p``, whatever that feed pages by) and the virtual time it was issued (``t``). Clients
must treat it as opaque, as a vendor's documentation says; it is not signed, since a simulator
has nothing to protect. Anything that does not decode to a token of the right feed is refused
with ``422 invalid_cursor``. The issue time is there for the ``token_expiry`` fault: without
that fault a token never expires.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from simulators.common.errors import SimError

MAX_TOKEN_CHARS = 1_024


@dataclass(frozen=True, slots=True)
class Token:
    position: Any
    issued_at: float  # virtual seconds


def encode(feed: str, position: Any, issued_at: float) -> str:
    raw = orjson.dumps({"k": feed, "p": position, "t": issued_at})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(token: str, feed: str, field_name: str) -> Token:
    """The token, or ``422 invalid_cursor`` naming the query parameter it came in."""
    if not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise invalid(field_name)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
    except (binascii.Error, ValueError):  # orjson.JSONDecodeError is a ValueError
        raise invalid(field_name) from None
    if not isinstance(data, dict) or data.get("k") != feed or "p" not in data:
        raise invalid(field_name)
    issued = data.get("t")
    if isinstance(issued, bool) or not isinstance(issued, int | float):
        raise invalid(field_name)
    return Token(data["p"], float(issued))


def invalid(field_name: str) -> SimError:
    return SimError(
        422,
        "invalid_cursor",
        f"{field_name} is not a cursor this feed issued; send back next_cursor or "
        "next_page_token exactly as received",
        field=field_name,
    )
