"""Orders: what is known of each, as the readers find it, and the capsule's ``orders:``.

A fact is filled in by the best source that gives it and never overwritten by a worse one.
SKUs not of the catalogue's form get catalogue numbers, said in unmapped.
"""

from __future__ import annotations

import re
from typing import Any

from harness.capsules.reconstruct.builder import Builder, Order, line_no

SKU_FORM = re.compile(r"^SKU-(\d{5})$")
ORDER_ID_FORM = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")


def order_fact(b: Builder, oid: str, d: dict[str, Any], at: float | None, where: str) -> None:
    """Fill in what is known of an order, the better source first (it is never overwritten)."""
    if not oid:
        b.note(f"{where}: an order without an id; not replayed")
        return
    order = b.orders.setdefault(oid, Order(oid, where=where))
    if order.at is None:
        order.at = at
    lines = d.get("lines")
    if order.lines is None and isinstance(lines, list) and lines:
        order.lines = [
            {"sku": str(x["sku"]), "qty": int(x["qty"])}
            for x in sorted(lines, key=line_no)
            if isinstance(x, dict) and "sku" in x and "qty" in x
        ] or None
    if order.service_level is None and d.get("service_level") in ("standard", "express"):
        order.service_level = d["service_level"]
    if order.ship_to is None and isinstance(d.get("ship_to"), dict):
        order.ship_to = dict(d["ship_to"])
    if order.customer is None and isinstance(d.get("customer"), dict):
        order.customer = dict(d["customer"])


def map_lines(
    b: Builder, order: Order, lines: list[dict[str, Any]], where: str
) -> dict[int, int] | None:
    """The WMS's pick lines as (order line -> short), matched by SKU."""
    if not order.lines:
        return None
    free = {i + 1: line for i, line in enumerate(order.lines)}
    shorts: dict[int, int] = {}
    for line in lines:
        short = line.get("short_qty")
        if short is None and line.get("picked_qty") is not None:
            short = int(line.get("qty") or 0) - int(line["picked_qty"])
        if short is None:
            continue
        number = next((n for n, x in free.items() if x["sku"] == line.get("sku")), None)
        if number is None:
            b.note(
                f"{order.id}: the WMS picked {line.get('sku')}, which the order does not hold "
                f"({where}); that pick is not replayed"
            )
            continue
        shorts[number] = max(0, min(int(short), int(free.pop(number)["qty"])))
    return shorts or None


def placeable(b: Builder) -> tuple[list[dict[str, Any]], int]:
    """The orders a scenario can place, in the order they are placed (the rest noted), with
    every SKU in catalogue form; and the highest catalogue number the capsule names."""
    orders: list[dict[str, Any]] = []
    seen: dict[str, None] = {}  # every SKU named, in the order first seen
    for order in sorted(b.orders.values(), key=lambda o: (o.at is None, o.at or 0, o.id)):
        if not ORDER_ID_FORM.match(order.id):
            b.note(f"order {order.id[:80]!r}: not an id a scenario can hold; not replayed")
            continue
        if order.lines is None:
            b.note(f"{order.id}: its lines are not in the recording ({order.where}); not replayed")
            continue
        if order.at is None:
            b.note(f"{order.id}: when it was released is not in the recording; not replayed")
            continue
        seen.update(dict.fromkeys(line["sku"] for line in order.lines))
        orders.append(_order_data(order))
    seen.update(dict.fromkeys([r[1] for r in b.receipts] + [a[1] for a in b.adjustments]))
    _number_foreign_skus(b, list(seen))
    for o in orders:
        for line in o["lines"]:
            line["sku"] = mapped_sku(b, line["sku"])
    numbers = [int(m.group(1)) for s in seen if (m := SKU_FORM.match(mapped_sku(b, s)))]
    return orders, max(numbers, default=0)


def _number_foreign_skus(b: Builder, skus: list[str]) -> None:
    """SKUs not of the catalogue's form become the next free catalogue numbers, in the order
    first seen."""
    highest = max((int(m.group(1)) for s in skus if (m := SKU_FORM.match(s))), default=0)
    for foreign in (s for s in skus if not SKU_FORM.match(s)):
        highest += 1
        b.sku_map[foreign] = f"SKU-{highest:05d}"
        b.note(f"SKU {foreign} is played as {b.sku_map[foreign]} (the catalogue numbers its SKUs)")


def mapped_sku(b: Builder, sku: str) -> str:
    return b.sku_map.get(sku) or sku


def _order_data(order: Order) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": order.id,
        "at": order.at,
        "lines": [dict(x) for x in order.lines or []],
    }
    if order.service_level in ("standard", "express"):
        data["service_level"] = order.service_level
    if order.ship_to:
        data["ship_to"] = address(order.ship_to)
    if order.customer and order.customer.get("name"):
        data["customer"] = {
            "name": str(order.customer["name"])[:200],
            "email": str(order.customer.get("email") or "")[:200],
        }
    return data


def address(ship_to: dict[str, Any]) -> dict[str, Any]:
    """A ship-to as a scenario holds it (each field capped; a two-letter country)."""
    return {
        "name": str(ship_to.get("name") or "")[:200],
        "street": str(ship_to.get("street") or "")[:200],
        "city": str(ship_to.get("city") or "")[:200],
        "postal_code": str(ship_to.get("postal_code") or "")[:20],
        "country": (str(ship_to.get("country") or "DE")[:2].upper() + "XX")[:2],
    }
