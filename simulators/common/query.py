"""Reading a feed's query parameters: page sizes and timestamps, refused as a vendor would.

Refusals are ``422 validation_failed`` naming the parameter, as the simulators' other list
queries answer (the ERP's ``limit``, the carrier's ``shipment_ref``): a schema-valid request
the simulator cannot serve must be a 4xx its contract documents, never a bare 400.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from starlette.datastructures import QueryParams

from simulators.common.errors import SimError, invalid_field


def bad_query(field_name: str, message: str) -> SimError:
    return invalid_field(field_name, message)


def read_limit(query: QueryParams, default: int, maximum: int) -> int:
    raw = query.get("limit")
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise bad_query("limit", f"limit must be an integer from 1 to {maximum}")
    return int(raw)


def read_since(query: QueryParams, name: str = "updated_since") -> str | None:
    """The timestamp as the simulators write theirs (whole seconds, UTC, ``Z``), rounded UP
    to the second: stamps are whole seconds, so ``updated_at >= 10:00:05.5`` holds exactly when
    ``updated_at >= 10:00:06``, and the comparison can be made on the text."""
    raw = query.get(name)
    if raw is None:
        return None
    message = f"{name} must be an ISO-8601 timestamp with a UTC offset, e.g. 2026-11-23T09:00:00Z"
    try:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            raise bad_query(name, message)
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise bad_query(name, message) from None
    whole = moment.replace(microsecond=0)
    if moment.microsecond:
        return iso_second(whole.timestamp() + 1)
    return iso_second(whole.timestamp())


def iso_second(unix_seconds: float) -> str:
    """A whole-second UTC timestamp with four-digit years, so that text order is time order."""
    try:
        moment = datetime.fromtimestamp(math.floor(unix_seconds), UTC)
    except (OverflowError, ValueError, OSError):
        return "9999-12-31T23:59:59Z" if unix_seconds > 0 else "0001-01-01T00:00:00Z"
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


def shift_second(stamp: str, seconds: int) -> str:
    """A whole-second UTC stamp moved by ``seconds`` (a skewed vendor clock's reading)."""
    moment = datetime.fromisoformat(stamp).astimezone(UTC)
    return iso_second(moment.timestamp() + seconds)
