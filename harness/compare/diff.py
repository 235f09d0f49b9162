"""Differences between two business outcomes, each classified: a real one, noise (it also
differs between two plays of A), or expected (the compare file says why).

Two values of a field are the same when equal, or for instants, amounts and latencies when
within the compare file's tolerances. A record on one side only is a difference of its field
``present``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from harness.compare.outcome import NO_ORDER, ORDER_CATEGORIES, Outcome, kind
from harness.compare.spec import CompareSpec, Tolerances

Verdict = Literal["unexplained", "noise", "expected"]


@dataclass(frozen=True)
class Difference:
    category: str
    key: str  # the business key: an order, a SKU, a receipt, a service level, an oracle
    field: str
    a: Any
    b: Any
    verdict: Verdict = "unexplained"
    reason: str = ""

    @property
    def order(self) -> str | None:
        """The ERP order it is about (a dead letter that names none is about no order)."""
        if self.category not in ORDER_CATEGORIES or self.key == NO_ORDER:
            return None
        return self.key

    @property
    def spot(self) -> tuple[str, str, str]:
        return self.category, self.key, self.field

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def differences(a: Outcome, b: Outcome, spec: CompareSpec) -> list[Difference]:
    """Every field that differs between ``a`` and ``b`` beyond the tolerances, unclassified
    (ignored fields left out)."""
    found: list[Difference] = []
    for category in sorted(set(a) & set(b)):  # a category one side cannot show is not compared
        left, right = a[category], b[category]
        for key in sorted(set(left) | set(right)):
            if key not in right or key not in left:
                if not spec.ignored(category, "present"):
                    found.append(Difference(category, key, "present", key in left, key in right))
                continue
            for name in sorted(set(left[key]) | set(right[key])):
                if spec.ignored(category, name):
                    continue
                x, y = left[key].get(name), right[key].get(name)
                if not same(kind(category, name), x, y, spec.tolerances):
                    found.append(Difference(category, key, name, x, y))
    return found


@dataclass(frozen=True)
class Noise:
    """What two plays of A taught: the spots where A differed from itself, how many keys
    differed per (category, field), and A's second outcome (B doing what A did in one of its
    plays is no difference between the stacks)."""

    spots: frozenset[tuple[str, str, str]] = frozenset()
    per_field: dict[tuple[str, str], int] = field(default_factory=dict)
    second: Outcome | None = None

    @classmethod
    def learnt(cls, a: Outcome, a2: Outcome, spec: CompareSpec) -> Noise:
        found = differences(a, a2, spec)
        per_field: dict[tuple[str, str], int] = {}
        for d in found:
            per_field[(d.category, d.field)] = per_field.get((d.category, d.field), 0) + 1
        return cls(frozenset(d.spot for d in found), per_field, a2)

    def explains(self, d: Difference, found: list[Difference], spec: CompareSpec) -> str | None:
        """Why ``d`` is noise, or None when it is not."""
        if d.spot in self.spots:
            return "A differs from itself here too"
        if self.second is not None and _value(self.second, d) == (True, d.b):
            return "B does what A did in its second play"
        n = self.per_field.get((d.category, d.field), 0)
        if n:  # a field A is unsteady in: as many differences as A shows with itself are noise
            m = sum(1 for x in found if (x.category, x.field) == (d.category, d.field))
            if m <= 2 * n + 1:
                return f"A differs from itself in {d.category}.{d.field} too ({n} keys; B {m})"
        return None


def _value(outcome: Outcome, d: Difference) -> tuple[bool, Any]:
    """(whether the record exists, the field's value) at ``d``'s spot in ``outcome``."""
    record = outcome.get(d.category, {}).get(d.key)
    if d.field == "present":
        return True, record is not None
    return (record is not None, record.get(d.field)) if record is not None else (False, None)


def classify(found: list[Difference], spec: CompareSpec, noise: Noise) -> list[Difference]:
    """Each difference as expected (a compare-file entry matches it), noise (A differs from
    itself there, see ``Noise``), or unexplained."""
    classified = []
    for d in found:
        entry = next(
            (e for e in spec.expected if e.matches(d.category, d.key, d.field, d.a, d.b)), None
        )
        if entry is not None:
            d = Difference(d.category, d.key, d.field, d.a, d.b, "expected", entry.reason)
        elif (why := noise.explains(d, found, spec)) is not None:
            d = Difference(d.category, d.key, d.field, d.a, d.b, "noise", why)
        classified.append(d)
    return classified


def same(how: str, x: Any, y: Any, tolerances: Tolerances) -> bool:
    if x == y:
        return True
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(
            same(how, p, q, tolerances) for p, q in zip(x, y, strict=True)
        )
    if how == "time":
        p, q = _instant(x), _instant(y)
        return p is not None and q is not None and abs(p - q) <= tolerances.time_s
    if how == "amount":
        p, q = _amount(x), _amount(y)
        return (
            p is not None
            and q is not None
            and p[1] == q[1]
            and abs(p[0] - q[0]) <= Decimal(str(tolerances.amount))
        )
    if how in ("latency", "count") and isinstance(x, int | float) and isinstance(y, int | float):
        gap = abs(x - y)
        if how == "latency" and gap <= (tolerances.latency_s or 0.0):
            return True
        return gap <= tolerances.latency_ratio * max(x, y)
    return False


def _instant(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _amount(value: Any) -> tuple[Decimal, str] | None:
    """``"5.40 EUR"`` as (5.40, EUR)."""
    if not isinstance(value, str):
        return None
    number, _, currency = value.partition(" ")
    try:
        return Decimal(number), currency
    except InvalidOperation:
        return None
