"""``twinyard shrink``: the smallest day on which the same oracle still fails.

A failing scenario is a day of sixty orders and several faults; an engineer reproducing the
failure wants the two orders and the one fault that matter. Shrinking is delta debugging over
what a scenario is made of, as Hypothesis shrinks a failing example: each candidate is the
day with less in it, played against the same stack (a ``twinyard run`` of its own, so the
harness and its oracles judge it exactly as they judged the original), and kept when the
chosen oracle still fails.

1. Orders: first the orders the oracle names, alone (``demand.only``: each keeps its id,
   content, arrival time and fate; the others never arrive), then fewer of those by delta
   debugging (halves first, then smaller chunks) while the oracle still fails. When the
   named orders do not fail alone (their failure needs the others: a shelf the rest of the
   day emptied), the smallest count of the day's orders that still fails, tried upward (1,
   2, 3, 4, 5, then 8, 13, 21, ...).
   When more than five orders are still needed, the failure needs volume: the world's limits
   that only volume exceeds (the carrier's express capacity, the stock on the shelves) are
   lowered toward 0 while it still fails, and the orders are shrunk again.
2. Faults: each fault in turn is dropped for good if the oracle still fails without it.
3. Horizon: the day is cut to fewer days while it still fails (never for ``orders_terminal``,
   which a cut day fails for a reason of its own: orders not finished yet).

The result is a capsule: the original file with the reductions applied, written with a
header saying what fails, where, and how it was found.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from harness import scenario as scenarios
from harness import scenario_yaml
from harness.compare.play import Played, Side, play_one

T = TypeVar("T")
ORDER_ID = re.compile(r"\bSO-(\d{6})\b")
ORDER_STEPS = (1, 2, 3, 4, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987)
SMALL_DAY = 5  # orders: past this, the limits of the world are lowered and the orders shrunk again
# Limits of the world that only volume exceeds, lowered (toward 0) when a failure needs many orders.
LIMITS = ("carrier.express_capacity_per_day", "catalogue.initial_stock")
LIMIT_STEPS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256)
NEVER_CUT_HORIZON = frozenset({"orders_terminal"})
DAY_S = 86_400


class ShrinkError(Exception):
    """The day cannot be shrunk: it does not fail, or the stack cannot be played."""


@dataclass
class Trial:
    what: str  # "orders 3", "without fault 2 (erp error)", "horizon 2 days"
    overrides: tuple[str, ...]
    failed: bool
    oracles: list[str]
    wall_s: float


@dataclass
class Shrunk:
    scenario: Path
    oracle: str
    orders: tuple[int, int]  # before, after
    faults: tuple[int, int]
    horizon_days: tuple[float, float]
    overrides: tuple[str, ...]
    trials: list[Trial] = field(default_factory=list)
    wall_s: float = 0.0
    entities: list[str] = field(default_factory=list)  # what the oracle names in the capsule
    limits: list[tuple[str, int, int]] = field(default_factory=list)  # (field, before, after)
    script_ids: list[str] | None = None  # a scripted day: the orders it keeps


def shrink(
    scenario: Path,
    stack: str,
    oracle: str | None,
    report_dir: Path,
    out: Path,
    on_trial: Callable[[Trial], None] = lambda t: None,
) -> Shrunk:
    """Shrink ``scenario`` played against ``stack`` (a command or URL) while ``oracle`` (or
    the first oracle the full day fails) keeps failing; the capsule is written to ``out``
    and played once more as written before it is trusted."""
    started = time.perf_counter()
    day = scenarios.load(scenario)
    data = _data(scenario)
    count = 0

    def attempt(
        what: str, overrides: tuple[str, ...], file: Path | None = None
    ) -> tuple[bool, Played]:
        nonlocal count
        count += 1
        folder = report_dir / f"trial-{count:03d}"
        file = file or current_file
        trial_started = time.perf_counter()
        played = asyncio.run(play_one(file, Side("s", stack, overrides), None, folder))
        if not played.usable:
            raise ShrinkError(f"{what}: the day could not be played: {played.error}")
        failed = target in played.failing_oracles if target else not played.passed
        trial = Trial(
            what,
            overrides,
            bool(failed),
            played.failing_oracles,
            time.perf_counter() - trial_started,
        )
        result.trials.append(trial)
        on_trial(trial)
        return bool(failed), played

    target = oracle
    current_file = scenario  # a scripted day's candidates are files of their own
    faults = list(data.get("faults") or [])
    result = Shrunk(
        scenario,
        oracle or "",
        (day.demand.orders + len(day.orders), day.demand.orders + len(day.orders)),
        (len(faults), len(faults)),
        (day.horizon_days, day.horizon_days),
        (),
    )
    failed, played = attempt("the day as written", ())
    if not failed:
        said = f"does not fail {oracle}" if oracle else "passes"
        raise ShrinkError(f"{scenario}: the day {said} against this stack: nothing to shrink")
    if target is None:
        target = played.failing_oracles[0]
        result.oracle = target
    kept: dict[str, str] = {}

    def with_(**changes: str) -> tuple[str, ...]:
        return tuple(f"{k}={v}" for k, v in {**kept, **changes}.items())

    def fewer_orders(played: Played) -> None:
        """The orders the oracle names, alone and then fewer; else the smallest count."""
        if scripted:
            fewer_scripted(played)
            return
        total = day.demand.orders
        named = _order_numbers(played.named.get(target, []), total)
        failed = False
        if named and len(named) < total:
            failed, _ = attempt(f"only the orders it names ({len(named)})", with_(**_only(named)))
        if failed:
            named = ddmin(
                named,
                lambda fewer: attempt(
                    f"only orders {_span(fewer)} ({len(fewer)})", with_(**_only(fewer))
                )[0],
            )
            kept.update(_only(named))
            result.orders = (total, len(named))
            return
        for n in (n for n in ORDER_STEPS if n < result.orders[1]):
            failed, _ = attempt(f"orders {n}", with_(**{"demand.orders": str(n)}))
            if failed:
                kept["demand.orders"] = str(n)
                result.orders = (total, n)
                return

    scripted = [
        str(order.get("id")) for order in data.get("orders") or [] if isinstance(order, dict)
    ]
    kept_ids: list[str] = list(scripted)

    def script_file(ids: list[str]) -> Path:
        """The day with only these scripted orders (and the timeline about them)."""
        path = report_dir / f"script-{count + 1:03d}.yaml"
        report_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(_scripted_subset(data, ids), sort_keys=False))
        return path

    def fewer_scripted(played: Played) -> None:
        """A scripted day (an imported capsule): its orders by id, as for a generated day."""
        nonlocal current_file, kept_ids
        named = _ids_named(played.named.get(target, []), kept_ids)
        failed = False
        if named and len(named) < len(kept_ids):
            failed, _ = attempt(
                f"only the orders it names ({len(named)})", with_(), script_file(named)
            )
        if failed:
            named = ddmin(
                named,
                lambda fewer: attempt(
                    f"only orders {_span(fewer)} ({len(fewer)})", with_(), script_file(fewer)
                )[0],
            )
        else:  # the first n orders of the day, n upward
            named = kept_ids
            for n in (n for n in ORDER_STEPS if n < len(kept_ids)):
                if attempt(f"orders {n}", with_(), script_file(kept_ids[:n]))[0]:
                    named = kept_ids[:n]
                    break
        kept_ids = named
        current_file = script_file(named)
        result.orders = (len(scripted), len(named))

    fewer_orders(played)
    # A failure that still needs many orders needs volume: a limit of the world (a carrier's
    # capacity, the stock on the shelves) that only many orders exceed. Lowered, it needs fewer.
    for path in LIMITS:
        current = _get(data, path.split("."))
        if result.orders[1] <= SMALL_DAY or not isinstance(current, int) or current <= 0:
            continue
        for value in (v for v in LIMIT_STEPS if v < current):
            failed, at_limit = attempt(f"{path} {value}", with_(**{path: str(value)}))
            if failed:
                kept[path] = str(value)
                result.limits.append((path, current, value))
                fewer_orders(at_limit)
                break
    remaining = list(faults)
    for fault in faults:
        fewer = [f for f in remaining if f is not fault]
        failed, _ = attempt(
            f"without fault {_describe(fault)}", with_(faults=json.dumps(fewer, default=str))
        )
        if failed:
            remaining = fewer
            kept["faults"] = json.dumps(fewer, default=str)
    result.faults = (len(faults), len(remaining))
    if target not in NEVER_CUT_HORIZON:
        horizon = day.horizon_days
        failing = set(result.trials[-1].oracles)
        last_scripted = _last_scripted(scenarios.load(current_file)) if scripted else 0.0
        while horizon > 0.5:
            shorter = max(0.5, horizon / 2)
            if shorter * DAY_S <= last_scripted:
                break  # the script has something to happen after it
            failed, cut = attempt(f"horizon {shorter:g} days", with_(horizon_days=f"{shorter:g}"))
            if not failed or not set(cut.failing_oracles) <= failing:
                break  # passes, or fails something new (an order not finished yet)
            horizon = shorter
            kept["horizon_days"] = f"{shorter:g}"
        result.horizon_days = (day.horizon_days, horizon)
    result.overrides = with_()
    result.script_ids = kept_ids if scripted else None
    write_capsule(result, stack, out)
    failed, final = attempt("the capsule file, played as written", (), out)
    if not failed:  # a flaky reduction: say so rather than leave a capsule that passes
        raise ShrinkError(
            f"the capsule {out} passed when played as written: the failure of {target} "
            "depends on timing; shrink by hand from the trials in the report folder"
        )
    result.entities = final.named.get(target, [])
    result.wall_s = time.perf_counter() - started
    write_capsule(result, stack, out)  # the same day; the header now names what it showed
    return result


def ddmin(items: list[T], still_fails: Callable[[list[T]], bool]) -> list[T]:
    """Zeller's delta debugging, complements only: drop a chunk (halves first, then smaller)
    while the rest still fails; a failure carried by one item of fifty takes about a dozen
    plays, not fifty."""
    chunks = 2
    while len(items) >= 2:
        size = math.ceil(len(items) / chunks)
        for start in range(0, len(items), size):
            rest = items[:start] + items[start + size :]
            if rest and still_fails(rest):
                items, chunks = rest, max(chunks - 1, 2)
                break
        else:
            if chunks >= len(items):
                break
            chunks = min(len(items), chunks * 2)
    return items


def _span(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:6]))
    return shown + (", ..." if len(numbers) > 6 else "")


def _order_numbers(entities: list[str], orders: int) -> list[int]:
    """The day's order numbers the entities name (``SO-000035 line 3`` is 35)."""
    numbers = {int(m.group(1)) for e in entities for m in ORDER_ID.finditer(e)}
    return sorted(n for n in numbers if 1 <= n <= orders)


def _only(numbers: list[int]) -> dict[str, str]:
    return {"demand.only": json.dumps(sorted(numbers))}


def _data(path: Path) -> dict[str, Any]:
    root = scenario_yaml.compose(scenario_yaml.read(path))
    data, _ = scenario_yaml.to_data(root) if root is not None else ({}, {})
    return data if isinstance(data, dict) else {}


def _describe(fault: Any) -> str:
    if not isinstance(fault, dict):
        return str(fault)
    where = fault.get("route") or fault.get("event") or ""
    return " ".join(str(p) for p in (fault.get("system"), where, fault.get("kind")) if p)


def write_capsule(shrunk: Shrunk, stack: str, out: Path) -> Path:
    """The original scenario with the reductions applied, and a header saying what it shows."""
    data = _data(shrunk.scenario)
    if shrunk.script_ids is not None:
        data = _scripted_subset(data, shrunk.script_ids)
    for override in shrunk.overrides:
        key, _, raw = override.partition("=")
        _set(data, key.split("."), yaml.safe_load(raw))
    data["name"] = f"{data.get('name') or shrunk.scenario.stem}_shrunk"
    expect = dict(data.get("expect") or {})
    expect.pop("catches", None)
    if expect:
        data["expect"] = expect
    else:
        data.pop("expect", None)
    header = [
        f"# CAPSULE: {shrunk.scenario.name} shrunk by `twinyard shrink` until only what still",
        f"# fails {shrunk.oracle} was left, against: {stack}",
        f"# orders {shrunk.orders[0]} -> {shrunk.orders[1]}, faults {shrunk.faults[0]} -> "
        f"{shrunk.faults[1]}, horizon {shrunk.horizon_days[0]:g} -> "
        f"{shrunk.horizon_days[1]:g} days, in {len(shrunk.trials)} plays "
        f"({shrunk.wall_s:.0f} s)",
        f"# {shrunk.oracle} names: {', '.join(shrunk.entities[:10]) or '(nothing)'}",
    ]
    header[3:3] = [f"# {path} {before} -> {after}" for path, before, after in shrunk.limits]
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(header) + "\n" + body)
    return out


def _last_scripted(day: scenarios.Scenario) -> float:
    """When the last thing the script names happens (virtual seconds)."""
    times = [order.at for order in day.orders]
    for entry in day.timeline:
        times += [entry.at] if entry.at is not None else []
        times += [scan.at for scan in entry.scans.events] if entry.scans is not None else []
    return max(times, default=0.0)


def _ids_named(entities: list[str], ids: list[str]) -> list[str]:
    """The scripted order ids the oracle's findings name, in the day's order."""
    words = {w for e in entities for w in re.findall(r"[A-Za-z0-9._:/-]+", e)}
    return [i for i in ids if i in words]


def _entry_order(entry: Any) -> str | None:
    """The order a timeline entry is about (None: a receipt, an adjustment)."""
    if not isinstance(entry, dict):
        return None
    if isinstance(entry.get("cancel"), str):
        return entry["cancel"]
    for kind in ("pick", "address", "scans"):
        if isinstance(entry.get(kind), dict):
            return entry[kind].get("order")
    return None


def _scripted_subset(data: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """The scenario with only these scripted orders and the timeline entries about them."""
    keep = set(ids)
    orders = [o for o in data.get("orders") or [] if isinstance(o, dict) and o.get("id") in keep]
    timeline = [
        e for e in data.get("timeline") or [] if _entry_order(e) in keep or _entry_order(e) is None
    ]
    return {**data, "orders": orders, "timeline": timeline}


def _get(data: dict[str, Any], path: list[str]) -> Any:
    here: Any = data
    for part in path:
        if not isinstance(here, dict):
            return None
        here = here.get(part)
    return here


def _set(data: dict[str, Any], path: list[str], value: Any) -> None:
    here = data
    for part in path[:-1]:
        if not isinstance(here.get(part), dict):
            here[part] = {}
        here = here[part]
    here[path[-1]] = value
