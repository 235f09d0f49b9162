"""The journal: every exchange a simulator takes part in, in and out.

Oracles judge only from simulator state and journals (ARCHITECTURE principle 5), so an
entry carries what they need: virtual and wall time, status, correlation id, business ref.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import orjson

from simulators.common.spill import SpillFile


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:16]


@dataclass(slots=True)
class JournalEntry:
    seq: int
    system: str
    direction: str  # "in": a request to the simulator; "out": a webhook delivery it made
    method: str
    path: str
    status: int  # 0 when no response came back (transport error)
    correlation_id: str | None
    body_digest: str
    virtual_time: float
    wall_time: float
    duration_ms: float
    event_type: str | None = None
    ref: str | None = None
    fault: str | None = None
    error: str | None = None  # the vendor error code of a 4xx/5xx answer (``already_issued``)
    retry_after: float | None = None  # seconds the answer's Retry-After asked the client to wait
    query: str = ""  # the raw query string (``order_ref=SO-1``), which ``path`` leaves out

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "system": self.system,
            "direction": self.direction,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "correlation_id": self.correlation_id,
            "body_digest": self.body_digest,
            "virtual_time": self.virtual_time,
            "wall_time": self.wall_time,
            "duration_ms": round(self.duration_ms, 3),
            "event_type": self.event_type,
            "ref": self.ref,
            "fault": self.fault,
            "error": self.error,
            "retry_after": self.retry_after,
            "query": self.query,
        }


def began(entry: dict[str, Any]) -> float:
    """When an exchange began, by the wall clock: an entry is stamped when it ends. Within one
    virtual moment this is the order in which things happened: a webhook's delivery ends when
    the stack's answer is read, which can be after the call the stack made on receiving it
    has ended; it began before."""
    return float(entry.get("wall_time") or 0.0) - float(entry.get("duration_ms") or 0.0) / 1000


def causal_order(entry: dict[str, Any]) -> tuple[float, float]:
    """The key that lists exchanges as they happened: virtual time, then when each began."""
    return entry["virtual_time"], began(entry)


DEFAULT_MEMORY_ENTRIES = 10_000  # see simulators.common.limits (journal_memory_entries)

T = TypeVar("T")


class Journal:
    """Every exchange in order: the newest ``memory_entries`` in memory, the older ones spilled
    to a JSON Lines file (``simulators.common.spill``), read back as if nothing had moved.

    Readers see one sequence, oldest first, whatever is where: ``entries`` (a read-only
    sequence of ``JournalEntry``), ``iter`` and ``dicts`` (streamed), ``query`` (filtered).
    """

    def __init__(self, system: str, *, memory_entries: int = DEFAULT_MEMORY_ENTRIES) -> None:
        self.system = system
        self.memory_entries = memory_entries
        self._tail: list[JournalEntry] = []  # the newest entries; the rest are spilled
        self._spill = SpillFile(f"journal-{system}")
        self._generation = 0  # bumped by clear(): readers of the old entries stop
        self.entries: Sequence[JournalEntry] = Entries(self)
        # Every entry so far came no earlier, by (virtual, wall) time, than the one before:
        # so in lockstep, where virtual time stands while a request is in flight. A realtime
        # day records an exchange when it ends, stamped when it began, and may break it.
        self.in_time_order = True
        self._last_time = (-math.inf, -math.inf)

    def __len__(self) -> int:
        return self._spill.count + len(self._tail)

    @property
    def spilled(self) -> int:
        """How many of the oldest entries are on disk, not in memory."""
        return self._spill.count

    @property
    def spilled_bytes(self) -> int:
        """How many bytes the spilled entries take on disk."""
        return self._spill.size

    def record(
        self,
        direction: str,
        method: str,
        path: str,
        status: int,
        *,
        virtual_time: float,
        correlation_id: str | None = None,
        digest: str = "",
        duration_ms: float = 0.0,
        event_type: str | None = None,
        ref: str | None = None,
        fault: str | None = None,
        error: str | None = None,
        retry_after: float | None = None,
        query: str = "",
    ) -> JournalEntry:
        entry = JournalEntry(
            len(self) + 1,
            self.system,
            direction,
            method,
            path,
            status,
            correlation_id,
            digest,
            virtual_time,
            time.time(),
            round(duration_ms, 3),  # as to_dict gives it, so a spilled entry reads back equal
            event_type,
            ref,
            fault,
            error,
            retry_after,
            query,
        )
        self._tail.append(entry)
        if self.in_time_order:
            when = (entry.virtual_time, entry.wall_time)
            self.in_time_order = when >= self._last_time
            self._last_time = when
        if len(self._tail) > self.memory_entries:
            self._spill_oldest()
        return entry

    def _spill_oldest(self) -> None:
        """Write the oldest entries out, keeping the newest half of ``memory_entries``: one
        write per ``memory_entries / 2`` records, and the recent past stays in memory for the
        readers that follow the journal as it grows (lockstep, polling, timers)."""
        keep = max(self.memory_entries, 1) // 2
        count = len(self._tail) - keep
        self._spill.append(orjson.dumps(entry) for entry in self._tail[:count])
        del self._tail[:count]

    def iter(self, start: int = 0, stop: int | None = None) -> Iterator[JournalEntry]:
        """Entries ``start`` to ``stop`` (indexes, oldest first), streamed."""
        return self._walk(start, stop, _entry, _same)

    def dicts(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
        """Entries ``start`` to ``stop`` as ``to_dict`` gives them, streamed (a spilled entry
        is parsed straight into its dict)."""
        return self._walk(start, stop, orjson.loads, JournalEntry.to_dict)

    def _walk(
        self,
        start: int,
        stop: int | None,
        from_disk: Callable[[bytes], T],
        from_memory: Callable[[JournalEntry], T],
    ) -> Iterator[T]:
        """Entries ``start`` to ``stop`` (default: as many as there are now). A reader may
        pause between entries: what was spilled meanwhile is read from disk, and a clear()
        ends the reading."""
        stop = len(self) if stop is None else min(stop, len(self))
        generation = self._generation
        index = max(start, 0)
        while index < stop and generation == self._generation:
            spilled = self._spill.count
            if index < spilled:
                for line in self._spill.read(index, min(stop, spilled)):
                    yield from_disk(line)
                    index += 1
            else:
                yield from_memory(self._tail[index - spilled])
                index += 1

    def query(
        self,
        *,
        direction: str | None = None,
        path: str | None = None,
        correlation_id: str | None = None,
        ref: str | None = None,
        since: int = 0,
        limit: int | None = None,
    ) -> Iterator[JournalEntry]:
        """Entries after ``since`` matching every given filter, streamed; ``path`` matches as a
        prefix."""
        found = 0
        if limit is not None and limit <= 0:
            return
        for entry in self.iter(since):
            if direction and entry.direction != direction:
                continue
            if path and not entry.path.startswith(path):
                continue
            if correlation_id and entry.correlation_id != correlation_id:
                continue
            if ref and entry.ref != ref:
                continue
            yield entry
            found += 1
            if limit is not None and found >= limit:
                return

    def clear(self) -> None:
        self._generation += 1
        self.in_time_order = True
        self._last_time = (-math.inf, -math.inf)
        self._tail.clear()
        self._spill.clear()

    def close(self) -> None:
        """Give the spill file back to the system (the journal is emptied)."""
        self.clear()
        self._spill.close()


def _entry(line: bytes) -> JournalEntry:
    return JournalEntry(**orjson.loads(line))


def _same(entry: JournalEntry) -> JournalEntry:
    return entry


class Entries(Sequence[JournalEntry]):
    """A journal's entries as a read-only sequence (``len``, indexes, slices, iteration), the
    spilled ones read from disk when asked for: what the harness has always read as a list."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def __len__(self) -> int:
        return len(self._journal)

    def __iter__(self) -> Iterator[JournalEntry]:
        return self._journal.iter()

    @overload
    def __getitem__(self, index: int) -> JournalEntry: ...

    @overload
    def __getitem__(self, index: slice) -> list[JournalEntry]: ...

    def __getitem__(self, index: int | slice) -> JournalEntry | list[JournalEntry]:
        size = len(self._journal)
        if isinstance(index, slice):
            start, stop, step = index.indices(size)
            if step == 1:
                return list(self._journal.iter(start, stop))
            return [self[i] for i in range(start, stop, step)]
        position = index + size if index < 0 else index
        if not 0 <= position < size:
            raise IndexError("journal index out of range")
        return next(self._journal.iter(position, position + 1))

    def __repr__(self) -> str:
        return f"<{len(self)} {self._journal.system} journal entries>"


class Dicts(Sequence[dict[str, Any]]):
    """A journal's first ``stop`` entries as ``to_dict`` gives them, made afresh on every
    read (a spilled entry parsed from disk): how a finished day's judges and reports read the
    journal, since every entry of a large day held as a dict at once was the larger part of
    the harness's memory. Entries recorded after ``stop`` are not part of it."""

    def __init__(self, journal: Journal, stop: int | None = None) -> None:
        self._journal = journal
        self._stop = len(journal) if stop is None else min(stop, len(journal))

    def __len__(self) -> int:
        return self._stop

    @property
    def in_time_order(self) -> bool:
        """Whether the entries are in (virtual, wall) time order (``Journal.in_time_order``)."""
        return self._journal.in_time_order

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._journal.dicts(0, self._stop)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._stop)
            if step == 1:
                return list(self._journal.dicts(start, stop))
            return [self[i] for i in range(start, stop, step)]
        position = index + self._stop if index < 0 else index
        if not 0 <= position < self._stop:
            raise IndexError("journal index out of range")
        return next(self._journal.dicts(position, position + 1))

    def __repr__(self) -> str:
        return f"<{len(self)} {self._journal.system} journal entries as dicts>"
