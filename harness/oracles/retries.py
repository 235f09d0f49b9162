"""Oracles about how a stack retries: politely, and never doing one business action twice.

Judged from the journals (what the stack sent and what each vendor answered), so without
journals (an in-process day) they check nothing and pass.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from urllib.parse import unquote

from harness.oracles.base import Judgement, oracle
from harness.oracles.orders import TERMINAL
from harness.oracles.view import SystemsView

# A client's timer and the journal's clock are not the same instant: a retry this much
# before its Retry-After has passed is still on time.
RETRY_AFTER_SLACK_S = 0.25


@oracle(
    "goods_issue_posted_once",
    "One goods issue per shipment: the stack never posts a second one for an order the ERP "
    "has already issued (an ERP without SAP's 'already issued' guard would book stock twice)",
    needs_journals=True,
)
def goods_issue_posted_once(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for entry in view.journals.get("erp", []):
        if entry["direction"] != "in" or not _is_goods_issue(entry):
            continue
        judgement.checked += 1
        if entry["error"] == "already_issued":
            order = unquote(entry["path"].split("/")[2])  # an id may hold "/" (%2F)
            judgement.fail(
                order,
                f"a second goods issue was posted (ERP journal #{entry['seq']}, answered "
                f"409 already_issued): the stack books a shipment twice on an ERP that allows it",
                expected=1,
                actual=2,
            )
    return judgement


@oracle(
    "retry_after_respected",
    "A vendor that answers 429 or 503 with Retry-After is not called again for the same "
    "request before that time has passed (a client that hammers is throttled harder, or blocked)",
    needs_journals=True,
)
def retry_after_respected(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for system, entries in view.journals.items():
        waiting: dict[tuple[str, ...], dict[str, Any]] = {}  # a request -> its last refusal
        early: dict[str, list[str]] = defaultdict(list)
        for entry in entries:
            if entry["direction"] != "in":
                continue
            key = (entry["method"], entry["path"], entry["query"], entry["body_digest"])
            refusal = waiting.pop(key, None)
            if refusal is not None:
                judgement.checked += 1
                started = entry["wall_time"] - entry["duration_ms"] / 1000
                due = refusal["wall_time"] + refusal["retry_after"]
                if started < due - RETRY_AFTER_SLACK_S:
                    entity = view.order_of(entry.get("ref")) or f"{system} {entry['path']}"
                    early[entity].append(
                        f"{entry['method']} {entry['path']} #{entry['seq']} came "
                        f"{due - started:.1f} s before the Retry-After of #{refusal['seq']} "
                        f"({refusal['retry_after']:g} s)"
                    )
            if entry["status"] in (429, 503) and entry["retry_after"] is not None:
                waiting[key] = entry
        for entity, messages in sorted(early.items()):
            judgement.fail(
                entity,
                f"{len(messages)} call(s) to {system} before Retry-After (first: {messages[0]})",
                expected="no call before Retry-After",
                actual=len(messages),
            )
    return judgement


def _is_goods_issue(entry: dict[str, Any]) -> bool:
    return entry["method"] == "POST" and entry["path"].endswith("/goods-issue")


@oracle(
    "dead_letters_only_for_undone_work",
    "A dead letter is work the vendors did not do: a day on which every released order reached "
    "its end leaves none behind (one for a call the vendor carried out pages the on-call to "
    "redo done work, or to replay it twice)",
)
def dead_letters_only_for_undone_work(view: SystemsView) -> Judgement:
    judgement = Judgement()
    if view.dead_letters is None:  # the stack lists no dead letters: nothing to judge
        return judgement
    judgement.checked = max(1, len(view.dead_letters))  # an empty list is a judged day too
    if any(o["status"] not in TERMINAL for o in view.released_orders()):
        return judgement  # work is left undone: its dead letters may well be why
    for item in view.dead_letters:
        judgement.fail(
            view.order_named_in(item) or f"dead letter {item.get('id')}",
            f"dead letter {item.get('id')} was left although every released order reached its "
            f"end: {_summary(item)}",
            expected="no dead letter",
            actual=item.get("id"),
        )
    return judgement


@oracle(
    "dead_letter_count_agrees",
    "The dead-letter count a stack reports on its idle probe (`dead`) is the one its dashboards "
    "page on: at every look by the on-call it must equal the dead letters the stack lists, or "
    "work is left dead with no alert, or the on-call is paged for letters that are not there",
)
def dead_letter_count_agrees(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for look in view.dead_counts:  # empty: no probe count, or no dead-letter route
        judgement.checked += 1
        if look.reported != look.listed:
            judgement.fail(
                f"dead letters at {look.when}",
                f"the idle probe reported {look.reported} dead letters at {look.when}, but the "
                f"stack listed {look.listed}",
                expected=look.listed,
                actual=look.reported,
            )
    return judgement


def _summary(item: dict[str, Any]) -> str:
    """A line about a dead letter from the fields stacks commonly give one."""
    parts = [
        f"{key} {item[key]}"
        for key in ("kind", "entity", "last_status", "last_error", "error", "status")
        if item.get(key) not in (None, "")
    ]
    return ", ".join(parts)[:300] or "no details"
