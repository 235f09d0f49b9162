"""Idempotency-Key replays, as Stripe, EasyPost and most carriers implement them.

A key is kept for ``ttl_s`` of the simulator's (virtual) clock from its first use, as Stripe
keeps keys for 24 hours: a repeat inside that window replays the first answer, a repeat after
it is a new request. At most ``max_keys`` are kept; beyond that the oldest is forgotten first,
so a long run holds a bounded number of stored answers (docs/limits.md).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from starlette.types import Scope

from simulators.common.clock import Clock
from simulators.common.compact import compact
from simulators.common.errors import unprocessable
from simulators.common.limits import DAY_S

DEFAULT_MAX_KEYS = 50_000


def url_path(scope: Scope) -> str:
    """``request.url.path`` without building the whole URL (host parsed, URL split and joined
    again: 1% of the harness's CPU on a peak day, on every request with an Idempotency-Key):
    the path as Starlette's URL writes it, with ``?``, ``#`` and ``\\`` escaped."""
    return scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")


def scoped_key(scope: Scope, key: str) -> str:
    """A key is the client's per route: the same key on another method or path is another."""
    return f"{scope['method']} {url_path(scope)} {key}"


@dataclass(slots=True)
class StoredResponse:
    body_digest: str
    status: int
    body: bytes
    at: float = 0.0  # virtual seconds the key was first used


class IdempotencyStore:
    def __init__(
        self,
        clock: Clock | None = None,
        *,
        ttl_s: float = DAY_S,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self.clock = clock  # None: nothing ever expires (a store without a clock)
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._responses: OrderedDict[str, StoredResponse] = OrderedDict()  # oldest first

    def __len__(self) -> int:
        return len(self._responses)

    def lookup(self, key: str, digest: str) -> StoredResponse | None:
        """The stored response for a replay; raises 422 when the key is reused for another body."""
        self.expire()
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
        self._responses.pop(key, None)  # two first uses at once: the later answer, kept last
        self._responses[key] = StoredResponse(digest, status, compact(body), self._now())
        while len(self._responses) > self.max_keys:
            self._responses.popitem(last=False)

    def expire(self) -> None:
        """Forget the keys first used ``ttl_s`` or more ago (oldest first, so it stops at the
        first key still in its window)."""
        if self.clock is None:
            return
        horizon = self.clock.now() - self.ttl_s
        responses = self._responses
        while responses:
            key, oldest = next(iter(responses.items()))
            if oldest.at > horizon:
                return
            del responses[key]

    def clear(self) -> None:
        self._responses.clear()

    def _now(self) -> float:
        return 0.0 if self.clock is None else self.clock.now()
