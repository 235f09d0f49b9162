"""Idempotency-Key replays, as Stripe, EasyPost and most carriers implement them."""

from __future__ import annotations

from dataclasses import dataclass

from simulators.common.errors import unprocessable


@dataclass(slots=True)
class StoredResponse:
    body_digest: str
    status: int
    body: bytes


class IdempotencyStore:
    def __init__(self) -> None:
        self._responses: dict[str, StoredResponse] = {}

    def lookup(self, key: str, digest: str) -> StoredResponse | None:
        """The stored response for a replay; raises 422 when the key is reused for another body."""
        stored = self._responses.get(key)
        if stored is None:
            return None
        if stored.body_digest != digest:
            raise unprocessable(
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request body",
                key=key,
            )
        return stored

    def remember(self, key: str, digest: str, status: int, body: bytes) -> None:
        self._responses[key] = StoredResponse(digest, status, body)

    def clear(self) -> None:
        self._responses.clear()
