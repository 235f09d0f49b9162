"""The correlation id of the request being handled, so events it causes carry it onward."""

from __future__ import annotations

from contextvars import ContextVar

CORRELATION_ID: ContextVar[str | None] = ContextVar("correlation_id", default=None)
