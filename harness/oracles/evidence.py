"""The slice of the journals behind a finding: the exchanges about the entity that failed.

An oracle judges from state and says which order broke a rule; this adds what the wire shows
for that order (requests, webhooks, statuses, vendor error codes, faults), so a reader sees
the why without opening the whole journal. Exchanges that went wrong (an error status, a
fault) are kept first; the slice is in virtual-time order and at most ``LIMIT`` long.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from harness.oracles.base import MAX_FINDINGS, OracleResult
from harness.oracles.view import SystemsView
from simulators.common.journal import causal_order

LIMIT = 16


def attach(results: list[OracleResult], view: SystemsView) -> list[OracleResult]:
    """The results with each (reported) finding's journal slice."""
    wanted = {
        order
        for result in results
        for finding in result.findings[:MAX_FINDINGS]
        if (order := _order(view, finding.entity)) is not None
    }
    if not wanted or not view.journals:
        return results
    about: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entries in view.journals.values():
        for entry in entries:
            order = view.order_of(entry.get("ref"))
            if order in wanted:
                about[order].append(entry)
    attached = []
    for result in results:
        findings = [
            dataclasses.replace(f, journal=_slice(about.get(_order(view, f.entity) or "", [])))
            if i < MAX_FINDINGS
            else f
            for i, f in enumerate(result.findings)
        ]
        attached.append(dataclasses.replace(result, findings=findings))
    return attached


def _order(view: SystemsView, entity: str) -> str | None:
    """The order a finding is about: its entity, or the first word of it (``SO-1 line 2``)."""
    head = entity.split(" ", 1)[0]
    return view.order_of(head)


def _slice(entries: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    entries = sorted(entries, key=causal_order)
    wrong = [e for e in entries if e["status"] >= 400 or not e["status"] or e.get("fault")]
    rest = [e for e in entries if e not in wrong]
    chosen = (wrong + rest)[:LIMIT]
    chosen.sort(key=causal_order)
    return tuple(exchange_line(e) for e in chosen)


def exchange_line(entry: dict[str, Any]) -> dict[str, Any]:
    """A journal entry as a swimlane draws it (the run report's lanes and compare's)."""
    call = entry.get("event_type") if entry["direction"] == "out" else None
    return {
        "system": entry["system"],
        "seq": entry["seq"],
        "virtual_time": entry["virtual_time"],
        "direction": entry["direction"],
        "call": call or f"{entry['method']} {entry['path']}",
        "status": entry["status"],
        "error": entry.get("error"),
        "fault": entry.get("fault"),
    }
