"""``twinyard trace`` on a terminal: where the order ended in each system, then every exchange
about it in virtual-time order (day and time of day, as the scenario counts them)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from harness.trace import Trace

ARROWS = {"in": "stack -> {system}", "out": "{system} -> stack"}


def render(trace: Trace, console: Console) -> None:
    order = trace.order
    console.print(
        f"[bold]{trace.order_id}[/bold]: ERP {order['status']}, "
        f"{order['service_level']}, {len(order['lines'])} lines, "
        f"ship to {order['ship_to'].get('city', '?')}",
        highlight=False,
    )
    for fo in trace.fulfilment_orders:
        console.print(f"  WMS {fo['id']}: {fo['status']}", highlight=False)
    for shipment in trace.shipments:
        console.print(
            f"  TMS {shipment['id']}: {shipment['status']} ({shipment['service']})",
            highlight=False,
        )
    for label in trace.labels:
        console.print(
            f"  carrier {label['id']} {label['tracking_number']}: {label['status']}",
            highlight=False,
        )
    if trace.correlation_ids:
        console.print(f"  correlation id: {', '.join(trace.correlation_ids)}", highlight=False)
    table = Table(show_lines=False, box=None, padding=(0, 1), header_style="bold")
    for name in ("virtual time", "exchange", "call", "status", "fault"):
        table.add_column(name, no_wrap=True)
    for entry in trace.entries:
        table.add_row(
            _when(entry["virtual_time"]),
            ARROWS.get(entry["direction"], "{system}").format(system=entry["system"]),
            _call(entry),
            _status(entry),
            entry.get("fault") or "",
        )
    width = console.width  # a trace reads one exchange per line: widen rather than wrap
    console.width = max(width, 120)
    console.print(table)
    console.width = width
    console.print(f"{len(trace.entries)} exchanges", highlight=False)


def _when(seconds: float) -> str:
    day, rest = divmod(int(seconds), 86_400)
    hours, rest = divmod(rest, 3600)
    return f"day {day} {hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def _call(entry: dict[str, Any]) -> str:
    if entry["direction"] == "out":
        return f"{entry.get('event_type') or 'webhook'}"
    query = f"?{entry['query']}" if entry.get("query") else ""
    return f"{entry['method']} {entry['path']}{query}"


def _status(entry: dict[str, Any]) -> str:
    status = str(entry["status"] or "no answer")
    if entry.get("error"):
        status += f" {entry['error']}"
    return status
