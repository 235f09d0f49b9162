"""Lists read by what changed: ``updated_since``, page tokens, a page size, a stable order.

A change list is sorted by (last change, id): a record that changes moves to the end, so a
client paging through never loses it (it may meet it twice, once per version). The page token
is a keyset position, the (last change, id) of the page's last record, and carries the query
it was issued for (``updated_since`` and the list's filters), as vendors' page tokens do: with
a token, a filter given again must be the same. Timestamps are whole seconds, so
``updated_since`` is inclusive (``>=``): a client that asks for ``>`` its newest timestamp
misses what changed later in that same second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from starlette.requests import Request

from simulators.common import cursors
from simulators.common.feed_faults import FeedView
from simulators.common.query import bad_query, read_limit, read_since

T = TypeVar("T")
Key = tuple[str, str]  # (last change as whole-second ISO text, id)


@dataclass(frozen=True, slots=True)
class ChangeQuery:
    since: str | None  # whole-second ISO, inclusive
    limit: int
    after: Key | None  # from the page token: the last record of the page before
    filters: dict[str, str | None]


@dataclass(frozen=True, slots=True)
class ChangePage(Generic[T]):
    items: list[T]
    next_token: str | None
    has_more: bool


def read_query(
    request: Request,
    feed: str,
    view: FeedView,
    *,
    filters: dict[str, str | None],
    default_limit: int,
    max_limit: int,
) -> ChangeQuery:
    """The query, from the page token when one is given (its filters win, and a filter given
    again must agree); ``filters`` are the list's own, already validated."""
    query = request.query_params
    limit = read_limit(query, default_limit, max_limit)
    since = read_since(query)
    raw = query.get("page_token")
    if raw is None:
        return ChangeQuery(since, limit, None, filters)
    token = cursors.decode(raw, feed, "page_token")
    after, carried_since, carried = _position(token.position)
    view.check_age(token, "page_token")
    given = {"updated_since": since, **filters}
    issued = {"updated_since": carried_since, **carried}
    for name, value in given.items():
        if name in query and value != issued.get(name):
            raise bad_query(name, f"{name} differs from the query the page_token was issued for")
    return ChangeQuery(carried_since, limit, after, {**filters, **carried})


def _position(position: Any) -> tuple[Key, str | None, dict[str, str | None]]:
    ok = isinstance(position, dict)
    after = position.get("after") if ok else None
    since = position.get("since") if ok else None
    carried = position.get("filters") if ok else None
    if not (
        isinstance(after, list)
        and len(after) == 2
        and all(isinstance(part, str) for part in after)
        and (since is None or isinstance(since, str))
        and isinstance(carried, dict)
        and all(v is None or isinstance(v, str) for v in carried.values())
    ):
        raise cursors.invalid("page_token")
    return (after[0], after[1]), since, carried


def page(
    records: Iterable[T],
    key: Callable[[T], Key],
    query: ChangeQuery,
    view: FeedView,
    feed: str,
) -> ChangePage[T]:
    """One page of ``records`` (already filtered by the list's own filters) in change order."""
    rows = sorted(((key(r), r) for r in records), key=lambda row: row[0])
    if query.since is not None:
        rows = [row for row in rows if row[0][0] >= query.since]
    after = query.after
    repeat = after is not None and view.overlaps and query.limit > 1
    if after is not None:
        rows = [row for row in rows if row[0] > after or (repeat and row[0] == after)]
    newest = view.visible_until_iso()
    visible = [row for row in rows if row[0][0] <= newest]
    if len(rows) > len(visible) <= query.limit:
        view.mark("feed_lag")  # the view hid a change this page would have shown
    if repeat and visible and visible[0][0] == after:
        view.mark("feed_overlap")
    shown = visible[: query.limit]
    has_more = len(visible) > query.limit
    token = None
    if has_more:
        position = {"after": list(shown[-1][0]), "since": query.since, "filters": query.filters}
        token = cursors.encode(feed, position, view.now)
    return ChangePage([r for _, r in shown], token, has_more)
