"""From evidence to a scripted day: the orders, what happened to them, and the faults seen.

``reconstruct(evidence)`` turns the neutral form of ``harness.capsules.evidence`` into the
data of a scenario (``orders:``, ``timeline:``, ``faults:``, ``capsule:``; harness/scripted.py)
that replays what the recording shows. The sources of each fact, best first:

- orders: a run's ERP state; ``order.released`` event data; ERP order GET answers; WMS
  create-order requests (no customer, and the request time as the release);
- short picks: a run's WMS state; ``order.picked`` data; WMS order GET answers;
- cancels: ERP status history; ``order.cancelled``; a cancel request to ERP or WMS;
- address changes: ``order.updated`` data (or, in a run, its delivery in the journal and the
  ERP's final ship-to);
- scans: carrier label state; ``tracking.updated``; tracking GET answers; the stack's
  tracking posts to the ERP;
- receipts and adjustments: WMS state; ``receipt.confirmed``; ``inventory.adjusted``; the
  stack's ERP postings (``POST /goods-receipts``, ``POST /inventory/adjustments``);
- faults: a twinyard journal's ``fault`` label (the kind and its parameters, outright); in a
  HAR, 5xx / 429 answers and transport errors; webhook deliveries seen twice (duplicate),
  overtaken (reorder) or long after they happened (late).
  Outage-like runs of hits are one window per route template, 429s one per vendor
  bucket, the rest per order (``faults``).

Times become virtual seconds since the capsule's epoch, midnight (UTC) of the first recorded
day (a run keeps its own epoch). Whatever cannot be mapped is listed in ``capsule.unmapped``
with the reason: nothing is dropped in silence.

The modules: ``builder`` (the facts gathered), ``state`` and ``recorded`` (reading a run's
state and journal, and what crossed the wire), ``orders``, ``timeline``, ``times`` and
``world`` (writing the scenario's sections), ``faults`` and ``event_faults``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.capsules.evidence import Evidence
from harness.capsules.reconstruct import (
    event_faults,
    faults,
    orders,
    recorded,
    state,
    timeline,
    times,
    world,
)
from harness.capsules.reconstruct.builder import Builder, Reconstruction
from harness.capsules.reconstruct.faults import validate_fault
from harness.scripted import moment_text

__all__ = ["Reconstruction", "reconstruct", "validate_fault"]

MAX_UNMAPPED = 300  # beyond this, the rest are summed up in one line


def reconstruct(evidence: Evidence, name: str | None = None) -> Reconstruction:
    """The capsule's scenario data for ``evidence`` (not yet validated: ``write`` does)."""
    b = Builder(evidence)
    b.unmapped += [f"unreadable: {line}" for line in evidence.unreadable]
    journal = [x for x in evidence.exchanges if x.vt is not None]  # a journal's: virtual times
    har = [x for x in evidence.exchanges if x.vt is None]  # a HAR's: wall times and bodies
    world.load_original(b)
    times.set_epoch(b)
    if evidence.state is not None:
        state.from_state(b, evidence.state)
    elif journal:
        state.from_bare_journal(b)
    recorded.from_events(b, evidence.events)
    recorded.from_exchanges(b, har)
    recorded.settle_pending(b)
    faults.journal_faults(b, journal)
    faults.har_faults(b, har)
    event_faults.delivery_faults(b, evidence.events)
    data = _assemble(b, name)
    return Reconstruction(
        data=data,
        orders=len(data.get("orders", ())) + b.generated,
        timeline=len(data.get("timeline", ())),
        faults=len(data.get("faults", ())),
        unmapped=list(data["capsule"]["unmapped"]),
        sources=evidence.sources,
        kinds=evidence.kinds,
        original=b.original_file,
    )


def _assemble(b: Builder, name: str | None) -> dict[str, Any]:
    """The scenario data, its sections in the order a capsule is read: which day, its world,
    its faults, its orders and what happened to them, and where it came from."""
    placed, top_sku = orders.placeable(b)
    entries = timeline.timeline(b, {o["id"]: o for o in placed}, b.generated)
    told = (b.evidence.verdict or {}).get("scenario") or {}
    sources = ", ".join(_short(src) for src in b.evidence.sources)
    data: dict[str, Any] = {
        "name": name or f"{b.base.get('name') or told.get('name') or _stem(b)}_imported",
        "description": f"imported by twinyard import from {sources}",
        "seed": int(told.get("seed") or b.base.get("seed") or 1),
    }
    start = times.start(b, placed, entries)
    if start is not None:
        data["start"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    data["horizon_days"] = times.horizon_days(b, placed, entries)
    data.update(world.sections(b, placed, top_sku))
    kept = faults.replayable(b)
    if kept:
        data["faults"] = kept
    if placed:
        data["orders"] = [{**o, "at": moment_text(round(o["at"]))} for o in placed]
    if entries:
        data["timeline"] = [{k: v for k, v in t.items() if k != "_vt"} for t in entries]
    kinds_and_sources = zip(b.evidence.kinds, b.evidence.sources, strict=False)
    data["capsule"] = {
        "source": ", ".join(f"{kind} {src}" for kind, src in kinds_and_sources)[:2000],
        "unmapped": _capped(b.unmapped),
    }
    return data


def _stem(b: Builder) -> str:
    return Path(b.evidence.sources[0]).stem if b.evidence.sources else "capsule"


def _short(source: str) -> str:
    return Path(source).name or source


def _capped(lines: list[str]) -> list[str]:
    unique = list(dict.fromkeys(line[:1_900] for line in lines))
    if len(unique) <= MAX_UNMAPPED:
        return unique
    return [*unique[:MAX_UNMAPPED], f"... and {len(unique) - MAX_UNMAPPED} more like these"]
