"""What every simulator's state machine shares: a clock, event emission, observers, ids."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from simulators.common.clock import Clock
from simulators.common.errors import not_found

T = TypeVar("T")

Emit = Callable[[str, dict[str, Any], str | None], None]
Observer = Callable[[str, Any], None]


def lookup(table: Mapping[str, T], kind: str, ident: str) -> T:
    """The entity with this id, or the vendor's 404 naming what was missing."""
    found = table.get(ident)
    if found is None:
        raise not_found(kind, ident)
    return found


class Ids:
    """Readable sequential ids (``SO-000042``), as business systems print them."""

    def __init__(self, prefix: str, width: int = 6) -> None:
        self.prefix = prefix
        self.width = width
        self.count = 0

    def next(self) -> str:
        self.count += 1
        return f"{self.prefix}-{self.count:0{self.width}d}"


class SimModel:
    """Base of a simulator's model: plain Python state, no HTTP and no clock of its own.

    ``emit`` sends an event to the stack (webhooks); ``notify`` tells in-process observers
    (the world model) that something happened, so it can schedule what comes next.
    Until a simulator binds ``emit``, events are kept in ``emitted`` (handy in unit tests).
    """

    system: ClassVar[str]
    event_types: ClassVar[tuple[str, ...]]

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.emitted: list[tuple[str, dict[str, Any], str | None]] = []
        self._emit: Emit = lambda kind, data, ref: self.emitted.append((kind, data, ref))
        self._observers: list[Observer] = []

    def bind(self, emit: Emit) -> None:
        self._emit = emit

    def emit(self, event_type: str, data: dict[str, Any], ref: str | None = None) -> None:
        self._emit(event_type, data, ref)

    def observe(self, observer: Observer) -> None:
        self._observers.append(observer)

    def notify(self, what: str, obj: Any) -> None:
        for observer in self._observers:
            observer(what, obj)

    def now(self) -> str:
        return self.clock.iso()

    def snapshot(self) -> dict[str, Any]:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError
