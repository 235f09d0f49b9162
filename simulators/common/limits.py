"""How much a simulator takes in and how long it keeps things, as a vendor's API would.

A real vendor refuses a request too large to be sane before reading all of it, and forgets
idempotency keys and delivery attempts after a while; a simulator that did neither grew by
tens of megabytes per hundred thousand exchanges and could be made to hold a 100 MB body five
times over (issue 14). The defaults, and the vendors they follow, are in docs/limits.md.

Every value can be changed with a ``TWINYARD_LIMIT_<NAME>`` variable (``TWINYARD_LIMIT_BODY_
BYTES=4194304``), read when a simulator is built, or in code through ``Simulator.limits``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

from simulators.common.errors import SimError

KIB = 1024
MIB = 1024 * KIB
DAY_S = 86_400.0
ENV_PREFIX = "TWINYARD_LIMIT_"


class LimitsError(ValueError):
    """A ``TWINYARD_LIMIT_*`` variable that is not a positive number."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Request caps (bytes or characters) and retention (count, virtual seconds)."""

    body_bytes: int = 1 * MIB  # a business request's body: nginx's client_max_body_size
    control_body_bytes: int = 16 * MIB  # a /_sim/ request's body (faults, provider states)
    target_bytes: int = 16 * KIB  # the request target (path and query), as AWS's ALB and IIS
    header_bytes: int = 8 * KIB  # one header line
    headers_bytes: int = 32 * KIB  # all header lines together
    correlation_id_chars: int = 255  # X-Correlation-Id
    idempotency_key_chars: int = 255  # Idempotency-Key, as Stripe
    journal_memory_entries: int = 10_000  # newest journal entries kept in memory per simulator
    idempotency_ttl_s: float = DAY_S  # a key is forgotten this long after it was first used
    idempotency_max_keys: int = 50_000  # beyond this many, the oldest key is forgotten first
    delivery_ttl_s: float = 3 * DAY_S  # a finished delivery is listed this long after it ended
    deliveries_kept: int = 10_000  # finished deliveries listed at most (pending ones always)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The defaults, with any ``TWINYARD_LIMIT_<NAME>`` variable set instead."""
        env = os.environ if environ is None else environ
        changed: dict[str, int | float] = {}
        for field in dataclasses.fields(cls):
            name = ENV_PREFIX + field.name.upper()
            raw = env.get(name, "").strip()
            if not raw:
                continue
            kind = float if field.type == "float" else int
            try:
                value = kind(raw)
            except ValueError:
                value = 0
            if value <= 0:
                raise LimitsError(f"{name} must be a positive {kind.__name__}, not {raw!r}")
            changed[field.name] = value
        return cls(**changed)  # type: ignore[arg-type]


def too_large(cap: int, *, expected: int | None = None, received: int | None = None) -> SimError:
    """413 for a body over ``cap`` bytes, announced (``expected``) or seen (``received``)."""
    details: dict[str, int] = {"limit": cap}
    if expected is not None:
        details["content_length"] = expected
    if received is not None:
        details["received_at_least"] = received
    return SimError(
        413,
        "payload_too_large",
        f"the request body is larger than this API takes ({cap} bytes)",
        **details,
    )


def header_refusal(
    headers: list[tuple[bytes, bytes]], target_bytes: int, limits: Limits
) -> SimError | None:
    """414 for a request target (path and query) over ``target_bytes``; 431 for a header line
    over ``header_bytes`` or all of them over ``headers_bytes``; else None."""
    if target_bytes > limits.target_bytes:
        return SimError(
            414,
            "uri_too_long",
            f"the request target is longer than this API takes ({limits.target_bytes} bytes)",
            limit=limits.target_bytes,
            size=target_bytes,
        )
    total = 0
    for name, value in headers:
        line = len(name) + len(value) + 4  # "name: value\r\n"
        if line > limits.header_bytes:
            return SimError(
                431,
                "request_header_fields_too_large",
                f"the {name.decode('latin-1')} header is larger than this API takes "
                f"({limits.header_bytes} bytes a line)",
                header=name.decode("latin-1"),
                limit=limits.header_bytes,
                size=line,
            )
        total += line
    if total > limits.headers_bytes:
        return SimError(
            431,
            "request_header_fields_too_large",
            f"the request headers are larger than this API takes ({limits.headers_bytes} "
            "bytes together)",
            limit=limits.headers_bytes,
            size=total,
        )
    return None


def clip(value: str, chars: int) -> str:
    """``value`` cut to ``chars`` characters with a mark saying how much was cut: what the
    journal keeps of an over-long id (never the whole of it)."""
    if len(value) <= chars:
        return value
    return f"{value[:chars]}...(+{len(value) - chars} chars)"
