"""A compare file: what ``twinyard compare`` may ignore, how close is the same, and which
differences are expected (docs/compare.md). Every field has a default, so no file is needed.

```yaml
ignore: [label.cost, "service_level.*"]    # CATEGORY.FIELD, * for every field
tolerances: {time_s: 300, amount: 0.0, latency_s: 600}
expected:
  - {category: tms_shipment, field: service, a: express, b: ground,
     reason: "B plans ground where A planned express when the tender was declined"}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness import scenario_yaml
from harness.compare.outcome import CATEGORIES


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _field_path(value: str) -> str:
    category, dot, field = value.partition(".")
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; known: {', '.join(CATEGORIES)}")
    if not dot or not field:
        raise ValueError("give CATEGORY.FIELD (or CATEGORY.* for all its fields)")
    return value


class Tolerances(Strict):
    time_s: float = Field(300.0, ge=0, description="instants this close are the same")
    amount: float = Field(0.0, ge=0, description="amounts this close are the same")
    latency_s: float | None = Field(
        None,
        ge=0,
        description="flow latency percentiles this close (default: two wall seconds of the "
        "scenario's clock, 2 x clock.pace in lockstep, 2 x clock.factor in realtime)",
    )
    latency_ratio: float = Field(
        0.2, ge=0, description="... or this close relative to the larger (also sample counts)"
    )


def timer_jitter_s(clock: Any) -> float:
    """Two wall seconds in virtual seconds: how far a stack's own retry timers (wall clock)
    can move a flow's latency between two plays of one world on a busy machine."""
    return 2.0 * (clock.factor if clock.mode == "realtime" else clock.pace)


class Expected(Strict):
    """A difference the team expects: matched by category and field (``*``: any), and when
    given, by business key and by A's and B's values."""

    category: str
    field: str = "*"
    key: str | None = None
    a: Any = None
    b: Any = None
    reason: str

    @field_validator("category")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in CATEGORIES:
            raise ValueError(f"unknown category {value!r}; known: {', '.join(CATEGORIES)}")
        return value

    def matches(self, category: str, key: str, field: str, a: Any, b: Any) -> bool:
        return (
            self.category == category
            and self.field in ("*", field)
            and self.key in (None, key)
            and (self.a is None or self.a == a)
            and (self.b is None or self.b == b)
        )


# The tail of a latency distribution is a handful of samples: one slow retry moves it. Compared
# only when a compare file lists its own ``ignore`` (which replaces this one).
DEFAULT_IGNORE = ("service_level.p99", "service_level.max")


class CompareSpec(Strict):
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    tolerances: Tolerances = Tolerances()
    expected: tuple[Expected, ...] = ()

    @field_validator("ignore")
    @classmethod
    def _paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_field_path(v) for v in value)

    def for_clock(self, clock: Any) -> CompareSpec:
        """This spec with the latency tolerance a scenario's clock implies, unless set."""
        if self.tolerances.latency_s is not None:
            return self
        tolerances = self.tolerances.model_copy(update={"latency_s": timer_jitter_s(clock)})
        return self.model_copy(update={"tolerances": tolerances})

    def ignored(self, category: str, field: str) -> bool:
        return f"{category}.{field}" in self.ignore or f"{category}.*" in self.ignore


class SpecError(Exception):
    """A compare file that cannot be used; the message is ``file:line: field: message``."""


def load(path: Path) -> CompareSpec:
    try:
        root = scenario_yaml.compose(scenario_yaml.read(path))
        data, lines = scenario_yaml.to_data(root) if root is not None else ({}, {})
    except scenario_yaml.Problem as problem:
        raise SpecError(f"{path}:{problem.line or 1}: {problem.message}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{path}:1: a compare file is a mapping (ignore, tolerances, expected)")
    try:
        return CompareSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = tuple(err["loc"])
        line = next((lines[loc[:d]] for d in range(len(loc), -1, -1) if loc[:d] in lines), 1)
        where = ".".join(map(str, loc)) or "(top level)"
        message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        more = len(exc.errors()) - 1
        extra = f" (+{more} more)" if more else ""
        raise SpecError(f"{path}:{line}: {where}: {message}{extra}") from None
