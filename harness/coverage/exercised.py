"""What one run exercised, from its journal and final state (never from the scenario file).

A fault a scenario declares but that never hit anything exercises nothing; only a journal
entry whose ``fault`` label names the kind counts:

- a route cell: an incoming request on that route (method and path template) whose label
  names the kind (``lost_response``, ``error:503``, ``rate_limit``, ``outage``; labels joined
  with ``+`` each count, so ``latency:40ms+error:502`` is an error);
- an event cell: a delivery of that event type whose label is the kind: ``duplicate:2``,
  ``duplicate:2+new-ids``, ``reorder:600s``, ``late:600s``, and for ``replayed`` only a copy a
  stack's replay window has to refuse: signed as an old capture
  (``replayed:600s+signed-86400s-ago``), or sent at least ``REPLAY_WINDOW_S`` wall seconds
  after the genuine delivery of the same bytes (possible in realtime mode). A replay inside
  the window tests deduplication, which ``duplicate`` covers already;
- a cancellation cell: see ``harness.coverage.stages``.

The same journal names the rows the run adds to the universe: every write route the stack
called (documented by a contract) and every event type it was sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from harness.coverage import stages as stage_of
from harness.coverage.cells import (
    CANCELLATIONS,
    CANCELLED,
    DUPLICATE,
    EVENTS,
    LATE,
    NEW_IDS,
    REORDER,
    REPLAYED,
    RESPONSE_FAULTS,
    ROUTES,
    Cell,
    EventType,
    Route,
)
from harness.coverage.routes import Templates, is_business_write

JOURNAL, STATE = "journal.jsonl", "state.json"
REPLAY_WINDOW_S = 300.0  # the replay window a stack is expected to keep (docs/choreography.md)
_NOT_A_GENUINE_DELIVERY = ("forged", "garbled", "replayed")


@dataclass
class Evidence:
    """What one run shows: the rows it adds and the cells it exercised."""

    name: str
    routes: set[Route] = field(default_factory=set)
    events: set[EventType] = field(default_factory=set)
    exercised: set[Cell] = field(default_factory=set)
    undocumented: set[str] = field(default_factory=set)  # write calls no contract knows


def response_kinds(label: str | None) -> set[str]:
    """The response fault kinds a request's journal label names. An ``error`` cell is a
    vendor that failed (``error:5xx``); a refusal (``error:4xx``) tests something else."""
    if not label:
        return set()
    return {
        part.split(":", 1)[0] for part in label.split("+") if not part.startswith("error:4")
    } & set(RESPONSE_FAULTS)


def event_kind(label: str | None) -> str | None:
    """The event fault column a delivery's label belongs to (``replayed`` only when signed
    as an old capture; ``judge`` times an unsigned replay against its genuine delivery)."""
    if not label:
        return None
    kind = label.split(":", 1)[0]
    if kind == "duplicate":
        return NEW_IDS if "+new-ids" in label else DUPLICATE
    if kind == "reorder":
        return REORDER
    if kind == "late":
        return LATE
    if kind == "replayed" and "+signed-" in label:
        return REPLAYED
    return None


def read(folder: Path, name: str, templates: Templates) -> Evidence:
    """The evidence of a run folder (``journal.jsonl``, and ``state.json`` when present)."""
    state_file = folder / STATE
    state = orjson.loads(state_file.read_bytes()) if state_file.is_file() else {}
    return judge(name, _lines(folder / JOURNAL), state, templates)


def judge(
    name: str, entries: Iterable[dict[str, Any]], state: dict[str, Any], templates: Templates
) -> Evidence:
    """The evidence of a run from its journal entries and final state."""
    evidence = Evidence(name)
    deliveries = _Deliveries(evidence)
    for entry in entries:
        if entry.get("direction") == "in":
            _request(evidence, entry, templates)
        elif entry.get("direction") == "out" and entry.get("event_type"):
            deliveries.add(entry)
    deliveries.finish()
    for stage in set(stage_of.stages(state, deliveries.told_at).values()):
        evidence.exercised.add(Cell(CANCELLATIONS, stage, CANCELLED))
    return evidence


def _request(evidence: Evidence, entry: dict[str, Any], templates: Templates) -> None:
    """A request to a simulator: its route, and the response faults it was answered with."""
    system = str(entry.get("system"))
    method, path = str(entry.get("method", "")), str(entry.get("path", ""))
    if not is_business_write(method, path):
        return
    template = templates.match(system, method, path)
    if template is None:
        evidence.undocumented.add(f"{system} {method} {path}")
        return
    route = Route(system, method.upper(), template)
    evidence.routes.add(route)
    for kind in response_kinds(entry.get("fault")):
        evidence.exercised.add(Cell(ROUTES, str(route), kind))


class _Deliveries:
    """Webhook deliveries: their event fault columns, unsigned replays timed against the
    genuine delivery of the same bytes, and when the stack first accepted each order's
    ``order.cancelled``."""

    def __init__(self, evidence: Evidence) -> None:
        self.evidence = evidence
        self.genuine_wall: dict[tuple[Any, ...], float] = {}  # first delivery of these bytes
        self.unsigned_replays: list[tuple[EventType, tuple[Any, ...], float]] = []
        self.told_at: dict[str, float] = {}  # order -> virtual time

    def add(self, entry: dict[str, Any]) -> None:
        label = entry.get("fault")
        event = EventType(str(entry.get("system")), str(entry["event_type"]))
        self.evidence.events.add(event)
        kind = event_kind(label)
        if kind is not None:
            self.evidence.exercised.add(Cell(EVENTS, str(event), kind))
        same_bytes = (event.system, entry.get("path"), entry.get("body_digest"))
        wall = float(entry.get("wall_time") or 0.0)
        if label is None:
            self.genuine_wall[same_bytes] = min(wall, self.genuine_wall.get(same_bytes, wall))
        elif kind is None and str(label).startswith("replayed"):
            self.unsigned_replays.append((event, same_bytes, wall))
        if event.type == "order.cancelled" and _accepted_genuine(entry):
            ref, at = str(entry.get("ref")), float(entry.get("virtual_time") or 0.0)
            self.told_at[ref] = min(at, self.told_at.get(ref, at))

    def finish(self) -> None:
        for event, same_bytes, wall in self.unsigned_replays:
            first = self.genuine_wall.get(same_bytes)
            if first is not None and wall - first >= REPLAY_WINDOW_S:
                self.evidence.exercised.add(Cell(EVENTS, str(event), REPLAYED))


def _accepted_genuine(entry: dict[str, Any]) -> bool:
    status = entry.get("status") or 0
    label = str(entry.get("fault") or "")
    return 200 <= int(status) < 300 and not label.startswith(_NOT_A_GENUINE_DELIVERY)


def _lines(journal: Path) -> Iterator[dict[str, Any]]:
    with journal.open("rb") as lines:
        for line in lines:
            if line.strip():
                yield orjson.loads(line)
