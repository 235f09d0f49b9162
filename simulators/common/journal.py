"""The journal: every exchange a simulator takes part in, in and out.

Oracles judge only from simulator state and journals (ARCHITECTURE principle 5), so an
entry carries what they need: virtual and wall time, status, correlation id, business ref.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any


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


class Journal:
    def __init__(self, system: str) -> None:
        self.system = system
        self.entries: list[JournalEntry] = []

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
            len(self.entries) + 1,
            self.system,
            direction,
            method,
            path,
            status,
            correlation_id,
            digest,
            virtual_time,
            time.time(),
            duration_ms,
            event_type,
            ref,
            fault,
            error,
            retry_after,
            query,
        )
        self.entries.append(entry)
        return entry

    def query(
        self,
        *,
        direction: str | None = None,
        path: str | None = None,
        correlation_id: str | None = None,
        ref: str | None = None,
        since: int = 0,
        limit: int | None = None,
    ) -> list[JournalEntry]:
        """Entries after ``since`` matching every given filter; ``path`` matches as a prefix."""
        found: list[JournalEntry] = []
        for entry in self.entries[since:]:
            if direction and entry.direction != direction:
                continue
            if path and not entry.path.startswith(path):
                continue
            if correlation_id and entry.correlation_id != correlation_id:
                continue
            if ref and entry.ref != ref:
                continue
            found.append(entry)
            if limit is not None and len(found) >= limit:
                break
        return found

    def clear(self) -> None:
        self.entries.clear()
