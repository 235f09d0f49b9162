"""The events feed: every event a simulator publishes, in order, for clients that poll.

Many integration stacks never take webhooks: they poll a vendor's event list (Stripe's
``GET /v1/events``, Shopify's events) on a schedule and keep a cursor. ``WebhookDispatcher``
appends each event here as it publishes it, whether or not anyone subscribed, so the webhook
and the feed come from one code path and carry the same bytes. Positions count from 1 and are
never reused, not even after a reset empties the feed, so a cursor from before a reset reads
the events since rather than skipping some.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FeedEntry:
    position: int
    at: float  # virtual seconds it was published
    event_type: str
    body: bytes  # the envelope, byte for byte as a webhook delivery carries it


@dataclass(frozen=True, slots=True)
class FeedPage:
    entries: list[FeedEntry]
    last: int  # the position the next page starts after
    has_more: bool  # more entries are visible now past this page
    held_back: bool  # an entry this page would have shown is not visible yet (lag)
    repeated: bool  # the page starts with the entry at ``after`` again (overlap)
    torn: bool = False  # it would have shown an entry of a torn second (feed_torn_second)


class EventFeed:
    def __init__(self) -> None:
        self._entries: list[FeedEntry] = []
        self._next = 1

    def append(self, event_type: str, body: bytes, at: float) -> int:
        position = self._next
        self._entries.append(FeedEntry(position, at, event_type, body))
        self._next += 1
        return position

    def clear(self) -> None:
        """Empty the feed; positions go on from where they were."""
        self._entries.clear()

    @property
    def newest(self) -> int:
        """The position of the newest event ever published (0: none yet)."""
        return self._next - 1

    def __len__(self) -> int:
        return len(self._entries)

    def page(
        self,
        after: int,
        *,
        limit: int,
        types: Collection[str] | None = None,
        visible_until: float = float("inf"),
        hidden_from: int | None = None,
        repeat: bool = False,
    ) -> FeedPage:
        """Up to ``limit`` entries past position ``after`` of the given types, published no
        later than ``visible_until`` and before position ``hidden_from`` (the rest of a torn
        second, and anything after it); ``repeat`` starts with the entry at ``after`` itself
        when it qualifies (and ``limit`` leaves room for a new one too)."""
        entries = self._entries
        first = entries[0].position if entries else self._next
        start = max(0, after + 1 - first)
        page: list[FeedEntry] = []
        repeated = False
        if repeat and limit > 1 and 0 <= after - first < len(entries):
            previous = entries[after - first]
            if _wanted(previous, types) and previous.at <= visible_until:
                page.append(previous)
                repeated = True
        last, has_more, held_back, torn = after, False, False, False
        for entry in entries[start:]:
            if entry.at > visible_until:  # published in order: the rest is later still
                held_back = any(_wanted(e, types) for e in entries[entry.position - first :])
                break
            if hidden_from is not None and entry.position >= hidden_from:
                torn = any(_wanted(e, types) for e in entries[entry.position - first :])
                break
            if not _wanted(entry, types):
                if len(page) < limit:
                    last = entry.position  # nothing to show: the next page need not rescan it
                continue
            if len(page) == limit:
                has_more = True
                break
            page.append(entry)
            last = entry.position
        return FeedPage(page, last, has_more, held_back, repeated, torn)

    def newest_second(
        self, after: int, *, types: Collection[str] | None, visible_until: float
    ) -> list[FeedEntry]:
        """The entries past ``after`` of the given types published in the newest whole second
        that is visible by ``visible_until``, oldest first (what ``feed_torn_second`` tears)."""
        entries = self._entries
        first = entries[0].position if entries else self._next
        start = max(0, after + 1 - first)
        tail: list[FeedEntry] = []
        second: int | None = None
        for entry in reversed(entries[start:]):
            if entry.at > visible_until or not _wanted(entry, types):
                continue
            if second is None:
                second = math.floor(entry.at)
            elif math.floor(entry.at) != second:
                break
            tail.append(entry)
        tail.reverse()
        return tail


def _wanted(entry: FeedEntry, types: Collection[str] | None) -> bool:
    return types is None or entry.event_type in types
