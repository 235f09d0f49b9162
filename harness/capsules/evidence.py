"""What an incident left behind, read into one neutral form for ``twinyard import``.

Evidence comes in several shapes: a twinyard run folder (journal, final state, verdict), a
bare journal, a HAR file of vendor traffic with bodies, a JSON-lines export of webhook events
(a dead-letter queue). Each reader turns its shape into an ``Evidence``: timed ``Exchange``s
(a request to a vendor and its answer, or a webhook delivery) and ``Event``s (webhook
envelopes with their data), plus what a run folder knows outright (state, verdict). The
reconstruction (``harness.capsules.reconstruct``) then works on that one form, whatever the
source; what a reader cannot read is listed in ``unreadable``, never dropped in silence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

FORMATS = ("run", "journal", "har", "dlq")
SYSTEMS = ("erp", "wms", "tms", "carrier")
MAX_BYTES = 512 * 1024 * 1024  # evidence beyond this is refused, not read into memory
ENVELOPE_KEYS = frozenset({"id", "type", "occurred_at", "data"})

# A path's first segment -> the vendor that serves it (contracts/openapi/*.yaml). Paths every
# vendor serves (/webhooks, /events, /inventory) say nothing: the system must come from the
# recording (``_twinyard.system``) or from ``--system HOST=SYSTEM``.
ROUTE_SYSTEMS = {
    "orders": "erp",
    "backorders": "erp",
    "freight-accruals": "erp",
    "goods-receipts": "erp",
    "fulfilment-orders": "wms",
    "shipments": "tms",
    "labels": "carrier",
    "tracking": "carrier",
}
EVENT_SYSTEMS = {
    "order.released": "erp",
    "order.cancelled": "erp",
    "order.updated": "erp",
    "order.picked": "wms",
    "order.packed": "wms",
    "order.shipped": "wms",
    "inventory.adjusted": "wms",
    "receipt.confirmed": "wms",
    "freight.settled": "tms",
    "tracking.updated": "carrier",
}


class EvidenceError(Exception):
    """Evidence that cannot be read at all (missing, unreadable, not the format it claims)."""


@dataclass
class Exchange:
    """One request to a vendor and its answer (``direction`` "in"), or one webhook delivery
    of a vendor to the stack ("out"). Times: ``at`` absolute when the source has clock time,
    ``vt`` virtual seconds since the epoch when it is a twinyard journal."""

    system: str | None
    direction: str
    method: str
    path: str
    status: int  # 0: no answer came back (transport error, timeout)
    at: datetime | None = None
    vt: float | None = None
    query: str = ""
    ref: str | None = None  # the business id the exchange is about (journal: the vendor's)
    event_type: str | None = None
    event_id: str | None = None
    fault: str | None = None  # a twinyard journal says which fault it applied, outright
    error: str | None = None  # vendor error code, or the transport error's text
    retry_after: float | None = None
    duration_ms: float = 0.0
    request: Any = None  # parsed JSON body, when the source has bodies
    response: Any = None
    request_text: str = ""  # the body as text, for ``match`` (a substring of the body)
    where: str = ""  # file:line or file#entry, for messages


@dataclass
class Event:
    """A webhook envelope: ``{id, type, source, occurred_at, data}``."""

    id: str
    type: str
    system: str | None
    occurred_at: datetime | None
    data: dict[str, Any]
    delivered_at: datetime | None = None  # when it reached the stack (HAR), if known
    error: str | None = None  # why it was dead-lettered (a DLQ export), if said
    where: str = ""


@dataclass
class Evidence:
    """Everything read, from one or more files."""

    kinds: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    state: dict[str, Any] | None = None  # a run's state.json: every simulator's final state
    verdict: dict[str, Any] | None = None  # a run's verdict.json
    unreadable: list[str] = field(default_factory=list)

    def merge(self, other: Evidence) -> None:
        self.kinds += other.kinds
        self.sources += other.sources
        self.exchanges += other.exchanges
        self.events += other.events
        self.state = self.state or other.state
        self.verdict = self.verdict or other.verdict
        self.unreadable += other.unreadable


# -- detection ---------------------------------------------------------------------------


def detect(path: Path) -> str:
    """Which reader a path needs: a folder is a run; a file by its first record."""
    if path.is_dir():
        return "run"
    head = _head(path)
    if head.lstrip().startswith("{"):
        first_line = head.lstrip().split("\n", 1)[0]
        try:
            first = orjson.loads(first_line)
        except orjson.JSONDecodeError:
            first = None
        if isinstance(first, dict) and "log" in first:
            return "har"
        if isinstance(first, dict) and {"seq", "system", "direction", "virtual_time"} <= set(first):
            return "journal"
        if isinstance(first, dict) and (_envelope_in(first) is not None):
            return "dlq"
        if '"log"' in head[:4096]:  # a pretty-printed HAR
            return "har"
    if path.suffix.lower() == ".har":
        return "har"
    raise EvidenceError(
        f"{path}: cannot tell what this is (a run folder, a journal.jsonl, a HAR file or a "
        "JSON-lines export of webhook events); give --format"
    )


def _head(path: Path, size: int = 65_536) -> str:
    try:
        with path.open("rb") as file:
            return file.read(size).decode("utf-8", errors="replace")
    except OSError as exc:
        raise EvidenceError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read(path: Path, fmt: str | None = None, hosts: dict[str, str] | None = None) -> Evidence:
    """Read one piece of evidence (``fmt`` None: detected)."""
    if not path.exists():
        raise EvidenceError(f"{path}: no such file or folder")
    fmt = fmt or detect(path)
    if fmt == "run":
        return read_run(path)
    if path.is_dir():
        raise EvidenceError(f"{path}: a folder; --format {fmt} reads a file")
    if fmt == "journal":
        return read_journal(path)
    if fmt == "har":
        return read_har(path, hosts or {})
    if fmt == "dlq":
        return read_dlq(path)
    raise EvidenceError(f"--format {fmt}: unknown; give one of {', '.join(FORMATS)}")


def _bytes(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise EvidenceError(f"{path}: over {MAX_BYTES >> 20} MiB; cut it down first")
        return path.read_bytes()
    except OSError as exc:
        raise EvidenceError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _json_file(path: Path) -> Any:
    try:
        return orjson.loads(_bytes(path))
    except orjson.JSONDecodeError as exc:
        raise EvidenceError(f"{path}: not JSON ({exc})") from None


# -- a twinyard run folder and its journal -------------------------------------------------


def read_run(folder: Path) -> Evidence:
    """A ``twinyard run --report-dir`` folder: journal.jsonl, state.json, verdict.json."""
    if folder.is_file():  # a journal given as a run: its folder
        return read_journal(folder)
    journal = folder / "journal.jsonl"
    if not journal.is_file():
        raise EvidenceError(f"{folder}: no journal.jsonl: not a twinyard run folder")
    found = read_journal(journal)
    found.sources = [str(folder)]
    return found


def read_journal(path: Path) -> Evidence:
    """A twinyard journal (JSON lines of ``JournalEntry``); state.json and verdict.json
    beside it are read too when they are there."""
    evidence = Evidence(kinds=["journal"], sources=[str(path)])
    lines = _bytes(path).splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            entry = orjson.loads(line)
            evidence.exchanges.append(_journal_exchange(entry, where))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            evidence.unreadable.append(f"{where}: not a journal entry ({_why(exc)})")
    if not evidence.exchanges:
        raise EvidenceError(f"{path}: no journal entries in it")
    for name in ("state.json", "verdict.json"):
        beside = path.parent / name
        if not beside.is_file():
            continue
        try:
            data = _json_file(beside)
        except EvidenceError as exc:
            evidence.unreadable.append(str(exc))
            continue
        if not isinstance(data, dict):
            evidence.unreadable.append(f"{beside}: not a JSON object")
        elif name == "state.json":
            evidence.state = data
        else:
            evidence.verdict = data
    if evidence.state is not None:
        evidence.kinds = ["run"]
    return evidence


def _journal_exchange(entry: Any, where: str) -> Exchange:
    if not isinstance(entry, dict):
        raise TypeError("not an object")
    return Exchange(
        system=str(entry["system"]),
        direction=str(entry["direction"]),
        method=str(entry["method"]),
        path=str(entry["path"]),
        status=int(entry["status"]),
        vt=float(entry["virtual_time"]),
        query=str(entry.get("query") or ""),
        ref=entry.get("ref"),
        event_type=entry.get("event_type"),
        fault=entry.get("fault"),
        error=entry.get("error"),
        retry_after=entry.get("retry_after"),
        duration_ms=float(entry.get("duration_ms") or 0.0),
        where=where,
    )


# -- HAR -----------------------------------------------------------------------------------


def read_har(path: Path, hosts: dict[str, str]) -> Evidence:
    """A HAR 1.2 file: each entry a request to a vendor (its system from ``_twinyard.system``,
    ``hosts`` or the route), or a webhook delivery whose body is an event envelope."""
    data = _json_file(path)
    log = data.get("log") if isinstance(data, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise EvidenceError(f"{path}: not a HAR file (no log.entries)")
    evidence = Evidence(kinds=["har"], sources=[str(path)])
    for index, entry in enumerate(entries):
        where = f"{path.name}#entry{index}"
        try:
            _har_entry(entry, where, hosts, evidence)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            evidence.unreadable.append(f"{where}: not a HAR entry ({_why(exc)})")
    return evidence


def _har_entry(entry: Any, where: str, hosts: dict[str, str], evidence: Evidence) -> None:
    request, response = entry["request"], entry.get("response") or {}
    url = urlsplit(str(request["url"]))
    method = str(request["method"]).upper()
    at = parse_time(entry.get("startedDateTime"))
    text = _har_text((request.get("postData") or {}).get("text"))
    body = _loads(text)
    status = int(response.get("status") or 0)
    answer_text = _har_text((response.get("content") or {}).get("text"))
    error = entry.get("_error") or response.get("_error") or (response.get("statusText") or None)
    envelope = _envelope_in(body) if method == "POST" else None
    marked = (entry.get("_twinyard") or {}).get("system")
    host = url.netloc.lower()
    system = marked or hosts.get(host) or hosts.get(url.hostname or "")
    if envelope is not None:
        event = _event(envelope, where, marked)
        event.delivered_at = at
        evidence.events.append(event)
        evidence.exchanges.append(
            Exchange(
                system=event.system,
                direction="out",
                method=method,
                path=url.path,
                status=status,
                at=at,
                event_type=event.type,
                event_id=event.id,
                request=body,
                request_text=text,
                where=where,
            )
        )
        return
    system = system or route_system(url.path)
    if system not in SYSTEMS:
        evidence.unreadable.append(
            f"{where}: {method} {url.path} on {host or '?'}: no system known for it "
            "(give --system HOST=SYSTEM)"
        )
        return
    retry_after = None
    for header in response.get("headers") or []:
        if str(header.get("name", "")).lower() == "retry-after":
            try:
                retry_after = float(header.get("value"))
            except (TypeError, ValueError):
                retry_after = None
    evidence.exchanges.append(
        Exchange(
            system=system,
            direction="in",
            method=method,
            path=url.path,
            status=status,
            at=at,
            query=url.query,
            error=str(error) if status == 0 and error else _error_code(_loads(answer_text)),
            retry_after=retry_after,
            duration_ms=float(entry.get("time") or 0.0),
            request=body,
            response=_loads(answer_text),
            request_text=text or "",
            where=where,
        )
    )


def route_system(path: str) -> str | None:
    """The vendor that serves a path, by its first segment (None when several do)."""
    first = path.strip("/").split("/", 1)[0]
    return ROUTE_SYSTEMS.get(first)


def _har_text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _error_code(answer: Any) -> str | None:
    if isinstance(answer, dict):
        err = answer.get("error")
        if isinstance(err, dict):
            return str(err.get("code") or "") or None
        if isinstance(err, str):
            return err
    return None


# -- webhook events (a dead-letter export) --------------------------------------------------


def read_dlq(path: Path) -> Evidence:
    """JSON lines, one event envelope each, possibly wrapped (``{"event": {...}, "error":
    ...}``, ``{"body": "..."}``, ``{"payload": {...}}``); a JSON array of them is taken too."""
    raw = _bytes(path)
    evidence = Evidence(kinds=["dlq"], sources=[str(path)])
    stripped = raw.lstrip()
    records: list[tuple[str, Any]] = []
    if stripped.startswith(b"["):
        try:
            items = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise EvidenceError(f"{path}: not JSON ({exc})") from None
        records = [(f"{path.name}[{i}]", item) for i, item in enumerate(items)]
    else:
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                records.append((where, orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                evidence.unreadable.append(f"{where}: not JSON ({_why(exc)})")
    for where, record in records:
        envelope = _envelope_in(record)
        if envelope is None:
            evidence.unreadable.append(f"{where}: no event envelope (id, type, occurred_at, data)")
            continue
        event = _event(envelope, where, None)
        event.error = _dead_reason(record)
        evidence.events.append(event)
    if not evidence.events:
        raise EvidenceError(f"{path}: no webhook events in it")
    return evidence


def _envelope_in(record: Any, depth: int = 0) -> dict[str, Any] | None:
    """The event envelope in a record, looked for in the usual wrappers."""
    if depth > 3:
        return None
    if isinstance(record, str):
        return _envelope_in(_loads(record), depth + 1) if record.lstrip().startswith("{") else None
    if not isinstance(record, dict):
        return None
    if {"id", "type", "data"} <= set(record) and isinstance(record.get("data"), dict):
        return record
    for key in ("event", "envelope", "payload", "body", "message", "value", "record"):
        if key in record:
            found = _envelope_in(record[key], depth + 1)
            if found is not None:
                return found
    return None


def _dead_reason(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    for key in ("error", "last_error", "reason", "exception"):
        value = record.get(key)
        if value:
            return value if isinstance(value, str) else orjson.dumps(value).decode()[:300]
    return None


def _event(envelope: dict[str, Any], where: str, system: str | None) -> Event:
    kind = str(envelope["type"])
    source = envelope.get("source")
    return Event(
        id=str(envelope["id"]),
        type=kind,
        system=system or (source if source in SYSTEMS else None) or EVENT_SYSTEMS.get(kind),
        occurred_at=parse_time(envelope.get("occurred_at")),
        data=envelope["data"],
        where=where,
    )


# -- helpers -------------------------------------------------------------------------------

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (naive: taken as UTC); None if it is not."""
    if not isinstance(value, str) or not _ISO.match(value):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _why(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]
