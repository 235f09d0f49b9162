"""The cells a library should cover: three families of (situation x fault) pairs.

- ``routes``: each write route the stack calls x each response fault kind. The vendor's
  answer goes wrong at that call: lost after the write (``lost_response``), a 5xx
  (``error``), a 429 (``rate_limit``), a maintenance 503 with Retry-After (``outage``).
- ``events``: each event type the stack receives x each event fault kind: delivered twice
  under one id (``duplicate``), re-sent under a new id (``duplicate new_ids``), overtaken
  (``reorder``), delayed (``late``), replayed from an old capture (``replayed``).
- ``cancellations``: a customer's cancellation x the stage its order had reached in the
  warehouse when the stack heard of it.

Rows come from two places: the stack's consumer pacts (every route it calls and every event
it consumes; ``contracts/pacts`` for the reference stack) and the journals of the runs (what
a stack actually called and was sent), so a user's stack defines its own rows too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness import bundled
from harness.contracts import pacts as pact_files
from harness.coverage.routes import Templates, is_business_write

DEFAULT_PACTS = bundled.PACTS

ROUTES, EVENTS, CANCELLATIONS = "routes", "events", "cancellations"
RESPONSE_FAULTS = ("lost_response", "error", "rate_limit", "outage")
DUPLICATE, NEW_IDS, REORDER, LATE, REPLAYED = (
    "duplicate",
    "duplicate new_ids",
    "reorder",
    "late",
    "replayed",
)
EVENT_FAULTS = (DUPLICATE, NEW_IDS, REORDER, LATE, REPLAYED)
BEFORE_WMS_ORDER, ACCEPTED, PICKING, PACKED = "before WMS order", "accepted", "picking", "packed"
STAGES = (BEFORE_WMS_ORDER, ACCEPTED, PICKING, PACKED)
CANCELLED = "cancelled"  # the one column of the cancellations family

PACTS, RUNS = "pacts", "runs"  # where a row of the universe was found


@dataclass(frozen=True, order=True)
class Cell:
    family: str
    row: str
    column: str


@dataclass(frozen=True)
class Family:
    id: str
    title: str
    row_header: str
    columns: tuple[str, ...]


FAMILIES = (
    Family(ROUTES, "write routes x response faults", "route", RESPONSE_FAULTS),
    Family(EVENTS, "events received x event faults", "event", EVENT_FAULTS),
    Family(CANCELLATIONS, "cancellations x order stage", "stage", (CANCELLED,)),
)


@dataclass(frozen=True, order=True)
class Route:
    system: str
    method: str
    template: str

    def __str__(self) -> str:
        return f"{self.system} {self.method} {self.template}"


@dataclass(frozen=True, order=True)
class EventType:
    system: str
    type: str

    def __str__(self) -> str:
        return f"{self.system} {self.type}"


@dataclass
class Universe:
    """The rows of each family, each with where it was found (pacts, runs or both)."""

    routes: dict[Route, set[str]] = field(default_factory=dict)
    events: dict[EventType, set[str]] = field(default_factory=dict)
    ignored: set[str] = field(default_factory=set)  # pact calls no contract documents

    def add_routes(self, routes: Iterable[Route], source: str) -> None:
        for route in routes:
            self.routes.setdefault(route, set()).add(source)

    def add_events(self, events: Iterable[EventType], source: str) -> None:
        for event in events:
            self.events.setdefault(event, set()).add(source)

    def rows(self, family: str) -> list[tuple[str, set[str]]]:
        """Each row of a family, in a stable order, with its sources."""
        if family == ROUTES:
            return [(str(r), s) for r, s in sorted(self.routes.items())]
        if family == EVENTS:
            return [(str(e), s) for e, s in sorted(self.events.items())]
        return [(stage, set()) for stage in STAGES]

    def cells(self) -> list[Cell]:
        return [
            Cell(family.id, row, column)
            for family in FAMILIES
            for row, _ in self.rows(family.id)
            for column in family.columns
        ]


def from_pacts(folder: Path, templates: Templates) -> Universe:
    """The routes and events a stack's consumer pacts name (raises ``PactError``)."""
    universe = Universe()
    for file in pact_files.files(folder):
        pact = pact_files.load(file)
        system = pact.provider
        for interaction in pact.interactions:
            if interaction.kind == pact_files.HTTP:
                if not is_business_write(interaction.method, interaction.path):
                    continue
                template = templates.match(system, interaction.method, interaction.path)
                if template is None:
                    universe.ignored.add(f"{system} {interaction.method} {interaction.path}")
                    continue
                universe.add_routes([Route(system, interaction.method, template)], PACTS)
            elif interaction.event_type is not None:
                universe.add_events([EventType(system, interaction.event_type)], PACTS)
    return universe
