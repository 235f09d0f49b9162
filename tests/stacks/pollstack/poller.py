"""The schedule: each feed polled every interval, batch by batch, its cursor committed after.

A batch is one page. Its records run grouped by business key (an order's records one after
the other, orders side by side). The committed point moves past a record only once it and
everything before it is done: a record that failed (Later) is read again next cycle, and the
records after it, already done, are skipped by their id. The planted batch bugs (config.BUGS)
are switched here and nowhere else.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from .feeds import Expired, Page, Record, one_second_later, own_clock, read_events, read_orders
from .vendors import Later, Vendors

log = logging.getLogger("pollstack.poller")

Handler = Callable[[Record], Awaitable[None]]
KeyOf = Callable[[Record], str]


class Feed:
    """One feed: where it was committed, how to read a page, and the batch rules."""

    def __init__(self, name: str, handle: Handler, key_of: KeyOf, bugs: frozenset[str]) -> None:
        self.name = name
        self.handle = handle
        self.key_of = key_of
        self.bugs = bugs
        self.committed: str | None = None  # a cursor, or a watermark stamp
        self.done: set[str] = set()  # record ids already processed
        self.dead: list[tuple[str, str]] = []  # records a handler could not read
        self.on_commit: Callable[[], None] = lambda: None
        self.limits = asyncio.Semaphore(32)

    # -- what differs between the events feed and a change list --------------------------
    async def read(self, token: str | None) -> Page:
        raise NotImplementedError

    def end_of(self, page: Page) -> str | None:
        """The committed point once the whole page is done."""
        raise NotImplementedError

    def up_to(self, page: Page, ok: list[bool]) -> str | None:
        """The committed point when some record of the page failed."""
        raise NotImplementedError

    # -- the cycle -----------------------------------------------------------------------
    def commit(self, point: str | None) -> None:
        if point is not None and point != self.committed:
            self.committed = point
            self.on_commit()

    async def cycle(self) -> None:
        """One poll: page from the committed point until `has_more` is false."""
        token: str | None = None
        held = False  # a record failed: the committed point stays before it this cycle
        while True:
            page = await self.read(token)
            if "cursor-before-commit" in self.bugs:  # BUG cursor-before-commit
                self.commit(self.end_of(page))
                await self.process(page.records, abort=True)
            else:
                ok = await self.process(page.records, abort=False)
                if all(ok) or "partial-batch" in self.bugs:  # BUG partial-batch
                    if not held:
                        self.commit(self.end_of(page))
                elif not held:
                    self.commit(self.up_to(page, ok))
                    held = True
            if not page.has_more:
                return
            if "first-page-only" in self.bugs:  # BUG first-page-only: jump to the end
                while page.has_more:
                    page = await self.read(page.next)
                self.commit(self.end_of(page))
                return
            token = page.next

    async def process(self, records: list[Record], abort: bool) -> list[bool]:
        """Run a batch; say which records are done (abort: the first failure ends it)."""
        ok = [False] * len(records)
        groups: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            groups.setdefault(self.key_of(record), []).append(i)

        async def run(indexes: list[int]) -> None:
            async with self.limits:
                for i in indexes:
                    record = records[i]
                    if record.rid not in self.done:
                        try:
                            await self.handle(record)
                        except Later as exc:
                            log.info("%s: %s not done: %s", self.name, record.rid, exc)
                            if abort:
                                raise
                            return  # the key's later records wait behind it
                        except Exception as exc:  # a record no handler can read: set aside
                            log.exception("%s: %s is a dead letter", self.name, record.rid)
                            self.dead.append((record.rid, repr(exc)))
                        self.done.add(record.rid)
                    ok[i] = True

        tasks = [asyncio.create_task(run(indexes)) for indexes in groups.values()]
        try:
            await asyncio.gather(*tasks)
        except Later:  # only with abort: the rest of the batch is lost, as in a crash
            for task in tasks:
                task.cancel()
            raise
        return ok

    async def poll(self) -> None:
        """One cycle; a failure is logged and the next cycle starts from the committed point."""
        try:
            await self.cycle()
        except Later as exc:  # Expired too: the next cycle starts from the committed point
            log.info("%s: cycle ended early: %s", self.name, exc)
        except Exception:
            log.exception("%s: cycle failed", self.name)


async def run_forever(feeds: list[Feed], interval_s: float) -> None:
    """Poll `feeds` one after the other, every `interval_s` wall seconds, until cancelled.

    One job per vendor: the ERP's item events are read before its orders in the same cycle,
    so an item launched minutes before its first order is in the WMS before that order."""
    while True:
        for feed in feeds:
            await feed.poll()
        await asyncio.sleep(interval_s)


class EventFeed(Feed):
    """`GET /events` on one simulator: an opaque cursor per item and per page."""

    def __init__(
        self,
        vendors: Vendors,
        system: str,
        limit: int,
        handle: Handler,
        key_of: KeyOf,
        bugs: frozenset[str],
        types: tuple[str, ...] = (),
    ) -> None:
        super().__init__(f"{system}/events", handle, key_of, bugs)
        self.vendors, self.system, self.limit, self.types = vendors, system, limit, types

    async def read(self, token: str | None) -> Page:
        after = token if token is not None else self.committed
        corr = f"ps-poll-{self.system}"
        try:
            return await read_events(self.vendors, self.system, after, self.limit, corr, self.types)
        except Expired:
            if token is not None or after is None:
                raise  # a page cursor: the next cycle starts again from the committed one
            log.warning("%s: committed cursor expired; reading from the oldest event", self.name)
            self.committed = None  # done ids skip what was done already
            return await read_events(self.vendors, self.system, None, self.limit, corr, self.types)

    def end_of(self, page: Page) -> str | None:
        return page.next  # re-issued even on an empty page: keep the newest

    def up_to(self, page: Page, ok: list[bool]) -> str | None:
        first_failed = ok.index(False)
        return page.records[first_failed - 1].cursor if first_failed else None


class OrderList(Feed):
    """The ERP's orders read by what changed: a watermark of the newest stamp seen."""

    def __init__(
        self, vendors: Vendors, limit: int, handle: Handler, key_of: KeyOf, bugs: frozenset[str]
    ) -> None:
        super().__init__("erp/orders", handle, key_of, bugs)
        self.vendors, self.limit = vendors, limit
        self.poll_started: str | None = None  # own-clock: our clock at the sweep's first read

    async def read(self, token: str | None) -> Page:
        since = self.committed
        if since and "same-second" in self.bugs:  # BUG same-second: `>` on whole seconds
            since = one_second_later(since)
        if token is None and "own-clock" in self.bugs:  # BUG own-clock: note when we started
            self.poll_started = await own_clock(self.vendors)
        return await read_orders(self.vendors, since, token, self.limit, "ps-poll-erp")

    def end_of(self, page: Page) -> str | None:
        if "own-clock" in self.bugs:  # BUG own-clock: "changed since our last poll began"
            return self.poll_started
        stamps = [r.stamp for r in page.records if r.stamp]
        return max(stamps) if stamps else None

    def up_to(self, page: Page, ok: list[bool]) -> str | None:
        return page.records[ok.index(False)].stamp  # inclusive: it is read again


def save_cursors(path: Path, feeds: list[Feed]) -> Callable[[], None]:
    """A commit hook writing every feed's committed point to `path` (for the curious)."""

    def write() -> None:
        points = {feed.name: feed.committed for feed in feeds}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(points, indent=1))
        tmp.replace(path)

    return write
