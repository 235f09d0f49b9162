"""One order's life across ERP, WMS, TMS and carrier, read back from a run's report folder.

An exchange belongs to the order when its business reference leads to it (the order itself,
its WMS orders, its TMS shipments) or when it carries the order's correlation id: so the
stack's calls and the vendors' webhooks about it come out together, in the order they happened
(virtual time, then when each exchange began).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from harness.oracles.view import SystemsView
from harness.report.run_files import JOURNAL, STATE
from simulators.common.journal import causal_order


class TraceError(Exception):
    """The run folder or the order cannot be traced: one line for the user."""


@dataclass(frozen=True)
class Trace:
    order_id: str
    entries: list[dict[str, Any]]
    order: dict[str, Any]
    fulfilment_orders: list[dict[str, Any]]
    shipments: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    correlation_ids: list[str]


def load(run_dir: Path, order_id: str) -> Trace:
    journal, state = run_dir / JOURNAL, run_dir / STATE
    if not journal.is_file() or not state.is_file():
        raise TraceError(f"no run in {run_dir} (it needs {JOURNAL} and {STATE} from twinyard run)")
    view = SystemsView(orjson.loads(state.read_bytes()))
    order = view.erp_orders.get(order_id)
    if order is None:
        known = sorted(view.erp_orders)
        hint = f"; orders run from {known[0]} to {known[-1]}" if known else ""
        raise TraceError(f"no order {order_id} in the run in {run_dir}{hint}")
    entries = list(_entries(journal))
    correlation_ids = sorted(
        {e["correlation_id"] for e in entries if e["correlation_id"] and _about(view, e, order_id)}
    )
    mine = [
        e for e in entries if _about(view, e, order_id) or e["correlation_id"] in correlation_ids
    ]
    # journal.jsonl lists an exchange by when it ended; an order's life reads in the order
    # things happened (a goods issue after the shipped event that asked for it)
    mine.sort(key=causal_order)
    shipments = [s for s in view.tms_shipments.values() if s["order_ref"] == order_id]
    return Trace(
        order_id,
        mine,
        order,
        view.wms_by_ref.get(order_id, []),
        shipments,
        view.labels_by_order().get(order_id, []),
        correlation_ids,
    )


def _entries(journal: Path) -> Iterator[dict[str, Any]]:
    with journal.open("rb") as lines:
        for line in lines:
            if line.strip():
                yield orjson.loads(line)


def _about(view: SystemsView, entry: dict[str, Any], order_id: str) -> bool:
    return view.order_of(entry.get("ref")) == order_id
