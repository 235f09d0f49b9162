"""``GET /events``: the polling twin of a simulator's webhooks (docs/feeds.md).

Each item is an event envelope exactly as its webhook delivery carries it, with its position
in the feed and a cursor to resume after it; ``next_cursor`` resumes after the page. A client
commits the cursor of what it has processed and pages until ``has_more`` is false.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulators.common import cursors
from simulators.common.errors import unprocessable
from simulators.common.feed_faults import expired, feed_view
from simulators.common.http import resource, respond
from simulators.common.query import bad_query, read_limit

if TYPE_CHECKING:
    from simulators.common.simulator import Simulator

FEED = "events"
DEFAULT_LIMIT = 100
MAX_LIMIT = 500


def events_route(sim: Simulator) -> Route:
    feed = sim.webhooks.feed
    known = sim.webhooks.event_types

    async def list_events(request: Request) -> Response:
        query = request.query_params
        limit = read_limit(query, DEFAULT_LIMIT, MAX_LIMIT)
        types = _types(query.get("types"), known)
        view = feed_view(request, sim.clock)
        after = 0
        raw = query.get("after")
        if raw is not None:
            token = cursors.decode(raw, FEED, "after")
            if isinstance(token.position, bool) or not isinstance(token.position, int):
                raise cursors.invalid("after")
            if not 0 <= token.position <= feed.newest:
                raise expired(
                    "after",
                    "after points past the newest event: it is not a cursor of this feed "
                    "(was the simulator restarted?); start again without after",
                    reason="unknown_position",
                )
            view.check_age(token, "after")
            after = token.position
        hidden_from = None
        if view.tears:
            newest = feed.newest_second(after, types=types, visible_until=view.visible_until)
            keys = [(sim.clock.iso(math.floor(e.at)), str(e.position)) for e in newest]
            hidden = view.torn(FEED, keys)
            hidden_from = min((int(position) for _, position in hidden), default=None)
        found = feed.page(
            after,
            limit=limit,
            types=types,
            visible_until=view.visible_until,
            hidden_from=hidden_from,
            repeat=view.overlaps,
        )
        if found.held_back:
            view.mark("feed_lag")
        if found.torn:
            view.mark("feed_torn_second")
        if found.repeated:
            view.mark("feed_overlap")
        now = view.now
        items = [
            {
                "position": e.position,
                "cursor": cursors.encode(FEED, e.position, now),
                "event": orjson.Fragment(e.body),
            }
            for e in found.entries
        ]
        return respond(
            {
                "items": items,
                "next_cursor": cursors.encode(FEED, found.last, now),
                "has_more": found.has_more,
            }
        )

    return resource("/events", {"GET": list_events})


def _types(raw: str | None, known: frozenset[str]) -> frozenset[str] | None:
    """``types=order.picked,order.shipped``: event types this simulator sends."""
    if raw is None:
        return None
    types = frozenset(t.strip() for t in raw.split(","))
    if "" in types:
        raise bad_query("types", "types is a comma-separated list of event types")
    unknown = sorted(types - known)
    if unknown:
        raise unprocessable(
            "unknown_event_type",
            f"this simulator sends no such events: {', '.join(unknown)}",
            field="types",
            known=sorted(known),
        )
    return types
