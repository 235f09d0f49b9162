"""Scenario files: the schema, loading, and errors that name file, field and line.

A scenario is YAML validated by pydantic. Unknown keys are errors (a typo must not be
silently ignored); every error is reported as ``file:line: field.path: message``.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _time_of_day(value: Any) -> Any:
    # YAML 1.1 reads an unquoted 06:00 as the base-60 integer 360: refuse it, never guess.
    if isinstance(value, int):
        raise ValueError('write a time of day in quotes, like "06:00"')
    return value


TimeOfDay = Annotated[time, BeforeValidator(_time_of_day)]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]
Positive = Annotated[float, Field(gt=0.0)]


class IntRange(Strict):
    min: Annotated[int, Field(ge=1)] = 1
    max: Annotated[int, Field(ge=1)] = 1

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        return self


class Demand(Strict):
    """Orders arriving over the business day."""

    orders: Annotated[int, Field(ge=0, le=1_000_000)] = 200
    open: TimeOfDay = time(6, 0)
    close: TimeOfDay = time(18, 0)
    lines_per_order: IntRange = IntRange(min=1, max=3)
    qty_per_line: IntRange = IntRange(min=1, max=3)
    express_share: Rate = 0.2

    @model_validator(mode="after")
    def _window(self) -> Demand:
        if self.close <= self.open:
            raise ValueError("close must be after open")
        return self


class Catalogue(Strict):
    skus: Annotated[int, Field(ge=1, le=100_000)] = 40
    initial_stock: Annotated[int, Field(ge=0)] = 500


class Warehouse(Strict):
    pickers: Annotated[int, Field(ge=1)] = 8
    packers: Annotated[int, Field(ge=1)] = 4
    pick_minutes_per_line: Positive = 2.0
    pack_minutes: Positive = 3.0
    short_pick_rate: Rate = 0.02
    cutoff: TimeOfDay = time(17, 0)


class Carrier(Strict):
    ground_transit_days: Annotated[int, Field(ge=0, le=30)] = 2
    express_transit_days: Annotated[int, Field(ge=0, le=30)] = 1
    delivery_hour: Annotated[int, Field(ge=0, le=23)] = 14
    settle_after_hours: Annotated[float, Field(ge=0)] = 6.0


class Expect(Strict):
    """Which oracles judge this scenario (default: all of them)."""

    oracles: list[str] | None = None


class Stack(Strict):
    """How the harness waits for the stack in lockstep."""

    idle_path: str = "/_stack/idle"
    settle_ms: Annotated[int, Field(ge=0, le=60_000)] = 50


class Scenario(Strict):
    name: str = "unnamed"
    description: str = ""
    seed: int = 1
    start: datetime = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    horizon_days: Annotated[float, Field(gt=0, le=60)] = 7.0
    demand: Demand = Demand()
    catalogue: Catalogue = Catalogue()
    warehouse: Warehouse = Warehouse()
    carrier: Carrier = Carrier()
    stack: Stack = Stack()
    expect: Expect = Expect()

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def epoch(self) -> datetime:
        """Virtual time zero: midnight of the start day, so hours of day read naturally."""
        return self.start.replace(hour=0, minute=0, second=0, microsecond=0)

    def with_seed(self, seed: int | None) -> Scenario:
        return self if seed is None else self.model_copy(update={"seed": seed})


class ScenarioError(Exception):
    """A scenario file that cannot be used; ``lines`` are ``file:line: field: message``."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def load(path: str | Path) -> Scenario:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError([f"{file}: no such scenario file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([f"{file}: cannot read: {exc}"]) from None
    return parse(text, str(file))


def parse(text: str, filename: str = "<scenario>") -> Scenario:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark else filename
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError([f"{where}: not valid YAML: {problem}"]) from None
    if root is None:
        data: Any = {}
        lines: dict[tuple[Any, ...], int] = {}
    else:
        lines = {}
        data = _to_python(root, (), lines)
    if not isinstance(data, dict):
        raise ScenarioError([f"{filename}:1: the scenario must be a mapping of fields"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(
            [_describe(err, filename, lines) for err in exc.errors(include_url=False)]
        ) from None


def _to_python(node: Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> Any:
    """Build plain data from YAML nodes, remembering the line of every field path."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = SafeConstructor().construct_object(key_node)
            lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _to_python(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, SequenceNode):
        return [_to_python(item, (*path, i), lines) for i, item in enumerate(node.value)]
    assert isinstance(node, ScalarNode)
    return SafeConstructor().construct_object(node)


def _describe(err: dict[str, Any], filename: str, lines: dict[tuple[Any, ...], int]) -> str:
    loc = tuple(err["loc"])
    field = ".".join(str(p) for p in loc) or "(top level)"
    line = None
    for depth in range(len(loc), -1, -1):  # the deepest part of the path that exists
        line = lines.get(loc[:depth])
        if line is not None:
            break
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown field (check its spelling)"
    return f"{filename}:{line or 1}: {field}: {message}"
