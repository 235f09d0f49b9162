"""What the request being handled carries into the code it calls: its correlation id, so events
it causes carry it onward, and its in-flight record, so a delay the vendor makes on purpose
(a latency fault) is not taken for a stuck request by the watchdogs."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Protocol


class Holdable(Protocol):
    held_s: float


CORRELATION_ID: ContextVar[str | None] = ContextVar("correlation_id", default=None)
IN_FLIGHT: ContextVar[Holdable | None] = ContextVar("in_flight", default=None)


def hold(seconds: float) -> None:
    """The simulator delays the request being handled on purpose for ``seconds`` (wall): the
    request watchdog gives it that much longer."""
    request = IN_FLIGHT.get()
    if request is not None:
        request.held_s += seconds
