"""The lineage engine: judges the table in ``lineage_table.py`` from simulator state.

A lineage row says that a business document crossing systems keeps its meaning on the way: for
every record of the source document there are as many records of the target document with the
same business key as the row demands, and the named fields agree, after the transformation the
row allows (an address compared field by field, an amount as money, an instant however it is
written, a carrier's service under its newer name). A causality row says that a posting is not
earlier than the event that justifies it. Both are data; this module is the one engine.

Each lineage row becomes its own oracle; the causality rows are judged together as one oracle,
``nothing_posted_before_its_event``. Findings name the order (so the report attaches its
journal), the field, the expected and the actual value.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from harness.oracles.base import REGISTRY, Judgement, Oracle
from harness.oracles.documents import DOCUMENTS, READS, Record, instant, records
from harness.oracles.view import SystemsView

Count = Literal["exactly_one", "at_least_one", "any"]
Scope = Literal["all", "where_target_has_parent"]


@dataclass(frozen=True)
class Agree:
    """One field that must agree: ``source`` in the source record, ``target`` in the target
    (same name when absent), compared ``how`` (a name in ``COMPARISONS``)."""

    source: str
    target: str | None = None
    how: str = "equal"

    @property
    def target_field(self) -> str:
        return self.target or self.source


@dataclass(frozen=True)
class Lineage:
    """One row: a document's way from one system to the next."""

    name: str
    protects: str
    source: str  # a document name (documents.DOCUMENTS)
    target: str
    agree: tuple[Agree, ...] = ()
    count: Count = "exactly_one"  # target records each source record must have
    scope: Scope = "all"  # where_target_has_parent: judge a source record only when the
    # target holds some record for its parent (key[0]): a missing whole order is another
    # oracle's finding; a missing line of an order that arrived is this row's
    unexplained_target: bool = False  # also fail target records no source record explains
    # (under where_target_has_parent: only within a parent the source has)
    allowed: tuple[str, ...] = ()  # names in ALLOWED: deviations the business accepts
    needs_journals: bool = False


@dataclass(frozen=True)
class Causality:
    """A posting (``effect``) is not earlier than the event that justifies it (``cause``),
    joined by business key; an effect with no cause is another row's finding."""

    effect: str
    cause: str
    says: str  # "goods issue posted before the WMS shipped the order"


# -- comparisons ----------------------------------------------------------------------------
def _equal(expected: Any, actual: Any) -> bool:
    return expected == actual


def _address(expected: Any, actual: Any) -> bool:
    """Every field of the source address has the same value in the target (the target may
    hold more fields, such as a contact phone)."""
    if not isinstance(expected, dict) or not isinstance(actual, dict):
        return expected == actual
    return all(actual.get(name) == value for name, value in expected.items())


def money(amount: Any) -> tuple[Decimal | None, str | None]:
    """An amount comparable however it was written ("6.9" equals "6.90"); a number in minor
    units (690 cents) is a different amount, as it would be on an invoice."""
    amount = amount if isinstance(amount, dict) else {}
    try:
        value = Decimal(str(amount.get("amount")))
    except InvalidOperation:
        value = None
    return value, amount.get("currency")


def _money(expected: Any, actual: Any) -> bool:
    return money(expected) == money(actual)


def _instant(expected: Any, actual: Any) -> bool:
    return instant(expected) is not None and instant(expected) == instant(actual)


# The carrier's services under each API version's name (v2 renamed ground to standard).
SERVICE_NAMES = {"ground": "ground", "standard": "ground", "express": "express"}


def _service(expected: Any, actual: Any) -> bool:
    return SERVICE_NAMES.get(expected, expected) == SERVICE_NAMES.get(actual, actual)


def _kilograms(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


GRAM_SLACK = Decimal("0.0005")  # half a gram: float noise (2.4200000000000004), not a weight


def _weights(expected: Any, actual: Any) -> bool:
    """The same package weights however written (2.5 equals "2.50"), in any order, each
    within half a gram (a stack's float arithmetic is not a wrong weight)."""
    if not isinstance(expected, list) or not isinstance(actual, list):
        return False
    if len(expected) != len(actual):
        return False
    ours, theirs = list(map(_kilograms, expected)), list(map(_kilograms, actual))
    if None in ours or None in theirs or any(not w.is_finite() for w in ours + theirs):
        return False
    pairs = zip(sorted(ours), sorted(theirs), strict=True)
    return all(abs(a - b) <= GRAM_SLACK for a, b in pairs)


def _when_given(expected: Any, actual: Any) -> bool:
    """A field the contract lets the target leave out (null or absent) agrees when left out;
    given, it must be equal."""
    return actual is None or expected == actual


COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "equal": _equal,
    "when_given": _when_given,
    "address": _address,
    "money": _money,
    "instant": _instant,
    "service": _service,
    "weights": _weights,
}


# -- allowed deviations ---------------------------------------------------------------------
Allowance = Callable[[SystemsView, Record, Record, Agree], bool]


def _declined_express_tender(view: SystemsView, source: Record, target: Record, agree: Agree):
    """An express order may ship by a slower service only when the TMS declined its express
    tender (the TMS keeps the declined tender): a business decision to ship today rather than
    hold the parcel, and one the TMS can show."""
    if source.values.get(agree.source) != "express":
        return False
    if target.values.get(agree.target_field) == "express":
        return False
    declined = view.snapshots.get("tms", {}).get("declined_tenders") or []
    return any(
        tender.get("order_ref") == source.order and tender.get("service_level") == "express"
        for tender in declined
    )


ALLOWED: dict[str, Allowance] = {"declined_express_tender": _declined_express_tender}


# -- the engine -----------------------------------------------------------------------------
def _index(items: Sequence[Record]) -> dict[tuple[Any, ...], list[Record]]:
    indexed: dict[tuple[Any, ...], list[Record]] = defaultdict(list)
    for item in items:
        indexed[item.key].append(item)
    return indexed


def _entity(record: Record) -> str:
    """Findings are filed under the order when there is one (``SO-1``, ``SO-1 line 2``), so
    the report shows its story and ``twinyard trace`` takes it; the document is in the
    message."""
    if record.order and not record.label.startswith(record.order):
        return record.order
    return record.label or str(record.key)


def judge_lineage(row: Lineage, view: SystemsView) -> Judgement:
    judgement = Judgement()
    if row.needs_journals and not view.journals:
        return judgement
    sources, targets = records(view, row.source), records(view, row.target)
    by_key = _index(targets)
    target_parents = {t.key[0] for t in targets}
    for source in sources:
        if row.scope == "where_target_has_parent" and source.key[0] not in target_parents:
            continue
        judgement.checked += 1
        found = by_key.get(source.key, [])
        if not found and row.count != "any":
            judgement.fail(
                _entity(source),
                f"{source.label} has no {row.target} ({_hint(row, source, targets)})",
                expected=1,
                actual=0,
            )
            continue
        if len(found) > 1 and row.count == "exactly_one":
            judgement.fail(
                _entity(source),
                f"{len(found)} {row.target} for {source.label}: "
                + ", ".join(t.label for t in found),
                expected=1,
                actual=len(found),
            )
            continue
        for target in found:
            _compare(row, view, source, target, judgement)
    if row.unexplained_target:
        source_keys = {s.key for s in sources}
        source_parents = {s.key[0] for s in sources}
        for target in targets:
            if row.scope == "where_target_has_parent" and target.key[0] not in source_parents:
                continue  # a whole document with no source is another oracle's finding
            if target.key not in source_keys:
                judgement.checked += 1
                judgement.fail(
                    _entity(target),
                    f"{target.label} ({row.target}) has no {row.source} behind it",
                    expected=None,
                    actual=target.values or "present",
                )
    return judgement


def _compare(
    row: Lineage, view: SystemsView, source: Record, target: Record, judgement: Judgement
) -> None:
    """One finding per pair of records, naming every field that differs."""
    differ = [
        agree
        for agree in row.agree
        if not COMPARISONS[agree.how](
            source.values.get(agree.source), target.values.get(agree.target_field)
        )
        and not any(ALLOWED[name](view, source, target, agree) for name in row.allowed)
    ]
    if not differ:
        return
    names = ", ".join(a.target_field for a in differ)
    message = f"{names} of {target.label} ({row.target}) differs from {source.label} ({row.source})"
    if len(differ) == 1:
        (agree,) = differ
        expected = source.values.get(agree.source)
        actual = target.values.get(agree.target_field)
    else:
        expected = {a.target_field: source.values.get(a.source) for a in differ}
        actual = {a.target_field: target.values.get(a.target_field) for a in differ}
    judgement.fail(_entity(source), message, expected=expected, actual=actual)


def _hint(row: Lineage, source: Record, targets: Sequence[Record]) -> str:
    """What the target does hold for the same parent, so a near miss reads as one."""
    near = [t for t in targets if t.key[0] == source.key[0]]
    if not near:
        return f"none for {source.key[0]}"
    shown = "; ".join(_show(t) for t in near[:3])
    more = f" and {len(near) - 3} more" if len(near) > 3 else ""
    return f"it holds {shown}{more}"


def _show(record: Record) -> str:
    values = ", ".join(f"{k} {v}" for k, v in record.values.items() if not isinstance(v, dict))
    return f"{record.label}: {values}" if values else record.label


def judge_causality(rows: tuple[Causality, ...], view: SystemsView) -> Judgement:
    judgement = Judgement()
    for row in rows:
        causes = _index(records(view, row.cause))
        for effect in records(view, row.effect):
            justified = [c for c in causes.get(effect.key, []) if instant(c.at) is not None]
            posted = instant(effect.at)
            if not justified or posted is None:
                continue
            judgement.checked += 1
            cause = min(justified, key=lambda c: instant(c.at) or 0.0)
            early = (instant(cause.at) or 0.0) - posted
            if early > 0:
                judgement.fail(
                    _entity(effect),
                    f"{row.says}: {effect.label} at {effect.at}, {early:,.0f} s before "
                    f"{cause.label} at {cause.at}",
                    expected=f"not before {cause.at}",
                    actual=effect.at,
                )
    return judgement


def register(rows: tuple[Lineage, ...], causality: tuple[Causality, ...], protects: str) -> None:
    """Every lineage row as its own oracle, the causality rows as one (report order: the
    table's)."""
    for row in rows:
        _check_names(row.source, row.target, *row.allowed)
        READS.update((row.source, row.target))
        REGISTRY[row.name] = Oracle(
            row.name, row.protects, _bind(row), needs_journals=row.needs_journals
        )
    for row in causality:
        _check_names(row.effect, row.cause)
        READS.update((row.cause, row.effect))
    REGISTRY["nothing_posted_before_its_event"] = Oracle(
        "nothing_posted_before_its_event",
        protects,
        lambda view: judge_causality(causality, view),
    )


def _bind(row: Lineage) -> Callable[[SystemsView], Judgement]:
    return lambda view: judge_lineage(row, view)


def _check_names(*names: str) -> None:
    unknown = [n for n in names if n not in DOCUMENTS and n not in ALLOWED]
    if unknown:
        raise KeyError(f"lineage table names unknown documents or allowances: {unknown}")
