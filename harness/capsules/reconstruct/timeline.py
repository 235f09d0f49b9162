"""The capsule's ``timeline:``: the picks, cancels, address changes, scans, receipts and
adjustments the recording shows, in the order they happen, each about something placed."""

from __future__ import annotations

import math
from typing import Any

from harness.capsules.reconstruct.builder import Builder
from harness.capsules.reconstruct.orders import address, mapped_sku
from harness.scripted import moment_text

# The kinds of entry, in the order entries at the same moment are played.
KINDS = ("pick", "cancel", "address", "scans", "receipt", "adjustment")


def timeline(b: Builder, placed: dict[str, dict[str, Any]], generated: int) -> list[dict[str, Any]]:
    """Every entry, sorted; each keeps its virtual time under ``_vt`` (None: an untimed
    pick), for the caller to drop. Entries before the epoch, or about an order the capsule
    does not place, are noted instead."""
    entries = _entries(b)
    for e in entries:
        if e["_vt"] is not None and e["_vt"] < 0:
            b.note(f"{_describe(e)}: before the capsule's epoch; not replayed")
    entries = [e for e in entries if e["_vt"] is None or e["_vt"] >= 0]
    entries.sort(key=lambda e: (e["_vt"] if e["_vt"] is not None else math.inf, _rank(e)))
    generated_ids = {f"SO-{n:06d}" for n in range(1, generated + 1)}
    return [e for e in entries if _names_placed(b, e, placed, generated_ids)]


def _entries(b: Builder) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for oid, (when, shorts) in b.picks.items():
        for line, short in sorted(shorts.items()):
            entry: dict[str, Any] = {"pick": {"order": oid, "line": line, "short": short}}
            if when is not None:
                entry = {"at": _at(when), **entry}
            entries.append({"_vt": when, **entry})
    for oid, when in b.cancels.items():
        entries.append({"_vt": when, "at": _at(when), "cancel": oid})
    for oid, (when, ship_to) in b.addresses.items():
        change = {"order": oid, "ship_to": address(ship_to)}
        placed = b.orders[oid].ship_to if oid in b.orders else None
        if placed is not None and not placed.get("postal_code"):
            change["correction"] = True  # customer service fixing a typo, not a move
        entries.append({"_vt": when, "at": _at(when), "address": change})
    for oid, events in b.scans.items():
        if events:
            scanned = [{"status": status, "at": _at(when)} for status, when in events]
            entries.append({"_vt": events[0][1], "scans": {"order": oid, "events": scanned}})
    for when, sku, qty in b.receipts:
        receipt = {"sku": mapped_sku(b, sku), "qty": qty}
        entries.append({"_vt": when, "at": _at(when), "receipt": receipt})
    for when, sku, delta, reason in b.adjustments:
        if delta == 0:
            continue
        change = {"sku": mapped_sku(b, sku), "delta": delta, "reason": reason}
        entries.append({"_vt": when, "at": _at(when), "adjustment": change})
    return entries


def _at(when: float) -> str:
    return moment_text(round(when))


def _kind(entry: dict[str, Any]) -> str:
    return next(k for k in KINDS if k in entry)


def _rank(entry: dict[str, Any]) -> int:
    return KINDS.index(_kind(entry))


def _describe(entry: dict[str, Any]) -> str:
    kind = _kind(entry)
    thing = entry[kind]
    what = thing if isinstance(thing, str) else thing.get("order") or thing.get("sku")
    return f"{kind} of {what}"


def _names_placed(
    b: Builder, entry: dict[str, Any], placed: dict[str, dict[str, Any]], generated: set[str]
) -> bool:
    """A timeline entry about an order the capsule places (a pick's line within it)."""
    kind = _kind(entry)
    thing = entry[kind]
    oid = thing if isinstance(thing, str) else thing.get("order")
    if oid is None or oid in generated:
        return True
    if oid not in placed:
        b.note(f"{_describe(entry)}: the order is not in the capsule; not replayed")
        return False
    if kind == "pick":
        lines = placed[oid]["lines"]
        if thing["line"] > len(lines) or thing["short"] > lines[thing["line"] - 1]["qty"]:
            b.note(f"{_describe(entry)} line {thing['line']}: does not fit the order")
            return False
    return True
