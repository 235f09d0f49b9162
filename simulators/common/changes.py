"""Lists read by what changed: ``updated_since``, page tokens, a page size, a stable order.

A change list is sorted by (last change, id): a record that changes moves to the end, so a
client paging through never loses it (it may meet it twice, once per version). The page token
is a keyset position, the (last change, id) of the page's last record, and carries the query
it was issued for (``updated_since`` and the list's filters), as vendors' page tokens do: with
a token, a filter given again must be the same. Timestamps are whole seconds, so
``updated_since`` is inclusive (``>=``): a client that asks for ``>`` its newest timestamp
misses what changed later in that same second (``feed_torn_second`` makes that certain).

Everything here runs on true virtual time. Under ``feed_clock_skew`` the list speaks the
vendor's skewed clock at its edge only: ``updated_since`` is taken back to true time as it is
read, and the handler writes each listed record's change stamp as the skewed clock would
(``restamp``); page tokens carry true positions, and nothing is stored skewed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from starlette.requests import Request

from simulators.common import cursors
from simulators.common.feed_faults import FeedView, newest_second
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
    if since is not None:
        since = view.true_stamp(since)  # the client speaks the feed's clock
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
    everything = sorted(((key(r), r) for r in records), key=lambda row: row[0])
    rows = everything
    if query.since is not None:
        rows = [row for row in rows if row[0][0] >= query.since]
    newest = view.visible_until_iso()
    hidden: frozenset[Key] = frozenset()
    if view.tears:  # the newest second of what the query may show now
        hidden = view.torn(feed, newest_second([row[0] for row in rows if row[0][0] <= newest]))
    after = query.after
    repeat = after is not None and view.overlaps and query.limit > 1
    if after is not None:
        rows = [row for row in rows if row[0] > after or (repeat and row[0] == after)]
    visible = [row for row in rows if row[0][0] <= newest and row[0] not in hidden]
    if len(visible) <= query.limit:  # the page reaches the end of what it may show:
        if any(row[0][0] > newest for row in rows):
            view.mark("feed_lag")  # it would have shown (or announced) a change held back
        if any(row[0] in hidden for row in rows):
            view.mark("feed_torn_second")  # or a record of the torn second
    if repeat and visible and visible[0][0] == after:
        view.mark("feed_overlap")
    shown = visible[: query.limit]
    if view.skew_s and (shown or _filter_moved(everything, query.since, view)):
        view.mark("feed_clock_skew")  # stamps written on the skewed clock, or a filter read on it
    has_more = len(visible) > query.limit
    token = None
    if has_more:
        position = {"after": list(shown[-1][0]), "since": query.since, "filters": query.filters}
        token = cursors.encode(feed, position, view.now)
    return ChangePage([r for _, r in shown], token, has_more)


def _filter_moved(rows: list[tuple[Key, T]], since: str | None, view: FeedView) -> bool:
    """Whether reading ``updated_since`` on the skewed clock let in or kept out a record."""
    if since is None:
        return False
    low, high = sorted((since, view.shown_stamp(since)))
    return any(low <= k[0] < high for k, _ in rows)


def restamp(item: dict[str, Any], view: FeedView, *path: str | int) -> dict[str, Any]:
    """``item`` (a listed record's fresh dict) with the change stamp at ``path`` written on the
    feed's clock: ``restamp(order, view, "updated_at")``; a missing stamp is left alone."""
    if not view.skew_s:
        return item
    holder: Any = item
    try:
        for step in path[:-1]:
            holder = holder[step]
        stamp = holder[path[-1]]
    except (KeyError, IndexError, TypeError):
        return item
    if isinstance(stamp, str):
        holder[path[-1]] = view.shown_stamp(stamp)
    return item
