"""Oracles about the exchanges themselves, judged from the simulators' journals: traceable
and not open to forgery. Without journals (an in-process day) they check nothing and pass."""

from __future__ import annotations

from collections import Counter, defaultdict

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
    calls: dict[str, list[dict]] = defaultdict(list)
    for entries in view.journals.values():
        for entry in entries:
            if entry["direction"] != "in":
                continue
            order = view.order_of(entry.get("ref"))
            if order is not None:
                calls[order].append(entry)
    for order, entries in sorted(calls.items()):
        judgement.checked += 1
        ids = Counter(e["correlation_id"] for e in entries if e["correlation_id"])
        missing = [e for e in entries if not e["correlation_id"]]
        if missing:
            first = missing[0]
            judgement.fail(
                order,
                f"{len(missing)} of {len(entries)} calls carry no correlation id (first: "
                f"{first['system']} {first['method']} {first['path']} #{first['seq']})",
                expected=len(entries),
                actual=len(entries) - len(missing),
            )
        if len(ids) > 1:
            usual = ids.most_common(1)[0][0]
            odd = next(e for e in entries if e["correlation_id"] not in (None, "", usual))
            judgement.fail(
                order,
                f"{len(ids)} correlation ids across {len(entries)} calls (e.g. "
                f"{odd['system']} {odd['method']} {odd['path']} #{odd['seq']})",
                expected=usual,
                actual=sorted(ids),
            )
    return judgement


@oracle(
    "forged_events_refused",
    "A webhook that was not signed by the vendor changes nothing: every forged delivery is "
    "answered 401 or 403 (a 2xx means the stack acted on it)",
    needs_journals=True,
)
def forged_events_refused(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for system, entries in view.journals.items():
        for entry in entries:
            if entry["direction"] != "out" or entry.get("fault") != "forged":
                continue
            judgement.checked += 1
            if entry["status"] not in REFUSED:
                ref = entry.get("ref")
                judgement.fail(
                    view.order_of(ref) or ref or f"{system} delivery #{entry['seq']}",
                    f"forged {system} {entry.get('event_type')} (journal #{entry['seq']}) "
                    f"answered {entry['status'] or 'nothing'}",
                    expected=list(REFUSED),
                    actual=entry["status"],
                )
    return judgement
