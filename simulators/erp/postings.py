"""Quantities per line of a posting against a document's lines (a goods issue against a sales
order, a transfer's goods issue or receipt against its transfer order): one set of rules for
every posting the ERP takes."""

from __future__ import annotations

from typing import Any

from simulators.common.errors import invalid_field, unprocessable


def qty_per_line(
    lines: list[dict[str, Any]],
    ordered: dict[int, int],
    *,
    document: str,
    verb: str,
    limit: str,
    detail: str,
) -> dict[int, int]:
    """The posted qty per document line: repeated lines add up (batch splits), omitted lines
    are 0. A line the document lacks or a negative qty is ``422 validation_failed``; more than
    the document holds is ``422 qty_exceeds_ordered`` (``limit`` says what it holds, with
    ``{}`` for the qty; the posted qty is in ``details[detail]``)."""
    posted = dict.fromkeys(ordered, 0)
    for index, line in enumerate(lines):
        if line["line"] not in posted:
            raise invalid_field(f"lines.{index}.line", f"{document} has no line {line['line']}")
        if line["qty"] < 0:
            raise invalid_field(f"lines.{index}.qty", "qty must not be negative")
        posted[line["line"]] += line["qty"]
    for number, qty in posted.items():
        if qty > ordered[number]:
            raise unprocessable(
                "qty_exceeds_ordered",
                f"line {number} {verb} {qty} but {limit.format(ordered[number])}",
                line=number,
                ordered=ordered[number],
                **{detail: qty},
            )
    return posted
