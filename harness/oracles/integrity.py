"""Oracles about the exchanges themselves, judged from the simulators' journals: traceable
and not open to forgery. Without journals (an in-process day) they check nothing and pass."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.oracles.base import Judgement, oracle
from harness.oracles.view import SystemsView

REFUSED = (401, 403)


@oracle(
    "correlation_id_kept",
    "Every call about an order carries a correlation id, and all of one order's calls carry "
    "the same one, so an incident can be traced across ERP, WMS, TMS and carrier logs",
    needs_journals=True,
)
def correlation_id_kept(view: SystemsView) -> Judgement:
    judgement = Judgement()
    calls: dict[str, _Calls] = defaultdict(_Calls)
    for entries in view.journals.values():
        for entry in entries:
            if entry["direction"] != "in":
                continue
            order = view.order_of(entry.get("ref"))
            if order is not None:
                calls[order].add(entry)
    for order, seen in sorted(calls.items()):
        judgement.checked += 1
        if seen.missing:
            judgement.fail(
                order,
                f"{seen.missing} of {seen.count} calls carry no correlation id (first: "
                f"{seen.first_missing})",
                expected=seen.count,
                actual=seen.count - seen.missing,
            )
        if len(seen.ids) > 1:
            usual = seen.ids.most_common(1)[0][0]
            _, odd = min(at for cid, at in seen.first_with.items() if cid != usual)
            judgement.fail(
                order,
                f"{len(seen.ids)} correlation ids across {seen.count} calls (e.g. {odd})",
                expected=usual,
                actual=sorted(seen.ids),
            )
    return judgement


@dataclass
class _Calls:
    """One order's calls as ``correlation_id_kept`` judges them, without keeping the calls:
    how many, the ids they carried, and the first call without an id and with each id."""

    count: int = 0
    missing: int = 0
    first_missing: str = ""
    ids: Counter[str] = field(default_factory=Counter)
    first_with: dict[str, tuple[int, str]] = field(default_factory=dict)  # id -> (nth, call)

    def add(self, entry: dict[str, Any]) -> None:
        cid = entry["correlation_id"]
        if not cid:
            if not self.missing:
                self.first_missing = _call(entry)
            self.missing += 1
        else:
            self.ids[cid] += 1
            if cid not in self.first_with:
                self.first_with[cid] = (self.count, _call(entry))
        self.count += 1


def _call(entry: dict[str, Any]) -> str:
    return f"{entry['system']} {entry['method']} {entry['path']} #{entry['seq']}"


@oracle(
    "forged_events_refused",
    "A webhook that was not signed by the vendor changes nothing: every forged delivery is "
    "answered 401 or 403 (a 2xx means the stack acted on it)",
    needs_journals=True,
)
def forged_events_refused(view: SystemsView) -> Judgement:
    return _probes_refused(
        view, lambda label: label == "forged", lambda s: s in REFUSED, list(REFUSED)
    )


@oracle(
    "garbled_events_refused",
    "A delivery that is signed but is not an event (cut off, a list, no id, data encoded "
    "twice, a signature header sent twice) is refused with a 4xx: a 2xx acknowledges an event "
    "the stack could not have read, and a 5xx or no answer is a receiver broken by bad input",
    needs_journals=True,
)
def garbled_events_refused(view: SystemsView) -> Judgement:
    return _probes_refused(
        view, lambda label: label.startswith("garbled"), lambda s: 400 <= s < 500, "4xx"
    )


def _probes_refused(
    view: SystemsView,
    probe: Callable[[str], bool],
    refused: Callable[[int], bool],
    expected: Any,
) -> Judgement:
    """Every webhook delivery whose fault label ``probe`` takes was answered as ``refused``
    accepts (no answer at all is status 0: never a refusal)."""
    judgement = Judgement()
    for system, entry in view.faulted_deliveries():
        label = entry["fault"]
        if probe(label):
            judgement.checked += 1
            if not refused(entry["status"] or 0):
                ref = entry.get("ref")
                judgement.fail(
                    view.order_of(ref) or ref or f"{system} delivery #{entry['seq']}",
                    f"{label} {system} {entry.get('event_type')} (journal #{entry['seq']}) "
                    f"answered {entry['status'] or 'nothing'}",
                    expected=expected,
                    actual=entry["status"],
                )
    return judgement
