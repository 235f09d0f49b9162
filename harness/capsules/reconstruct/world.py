"""The world the capsule's day is played in: a run's capsule keeps its scenario's sections
(the catalogue, warehouse, carrier ...); demand and stock become what the recording shows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from harness import scenario as scenarios
from harness import scenario_yaml
from harness.capsules.reconstruct.builder import Builder

DEFAULT_STOCK = 500
# The sections of the original scenario a run's capsule keeps (demand, stock and faults are
# replaced by what the recording shows).
KEPT_SECTIONS = (
    "catalogue",
    "warehouse",
    "carrier",
    "stack",
    "clock",
    "expect",
    "on_call",
    "returns",  # returns are drawn by order id, so the scripted orders keep theirs
)
# The sections a capsule writes from the recording itself (or that name the scenario).
REBUILT_SECTIONS = frozenset(
    {
        "name",
        "description",
        "seed",
        "start",
        "horizon_days",
        "demand",
        "stock",
        "faults",
        "orders",
        "timeline",
        "capsule",
    }
)
# Every receipt and adjustment the recording shows is scripted: none may happen twice.
QUIET_STOCK = {
    "damage_rate": 0.0,
    "shrink_rate": 0.0,
    "cycle_count": {"share_per_day": 0.0},
    "replenishment": {"reorder_at": 0.0},
}


def load_original(b: Builder) -> None:
    """A run's verdict names its scenario file; when it is still there, its world sections
    (catalogue, warehouse, carrier ...) are the capsule's too."""
    verdict = b.evidence.verdict
    if not verdict:
        return
    told = verdict.get("scenario") or {}
    file = told.get("file")
    if not isinstance(file, str) or not file:
        return
    candidates = [Path(file)] + [Path(src).parent / file for src in b.evidence.sources]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            b.original = scenarios.load(path)
            root = scenario_yaml.compose(scenario_yaml.read(path))
            data, _ = scenario_yaml.to_data(root) if root is not None else ({}, {})
        except (scenarios.ScenarioError, scenario_yaml.Problem) as exc:
            b.note(f"the run's scenario {path} no longer loads ({str(exc).splitlines()[0]})")
            return
        b.base = data if isinstance(data, dict) else {}
        b.original_file = str(path)
        return
    b.note(
        f"the run's scenario file {file} is not here: catalogue, warehouse and carrier are "
        "defaults or what the state shows"
    )


def sections(b: Builder, orders: list[dict[str, Any]], top_sku: int) -> dict[str, Any]:
    """``demand``, ``catalogue``, the kept sections and ``stock``, in that order."""
    base = b.base
    data: dict[str, Any] = {}
    if b.generated:
        data["demand"] = {**(base.get("demand") or {}), "orders": b.generated}
    else:
        data["demand"] = {"orders": 0}
    catalogue = dict(base.get("catalogue") or {})
    if b.sku_map and catalogue.pop("sku_style", "plain") != "plain":
        b.note(
            "the run named its SKUs in the retail style; the capsule plays them by catalogue "
            "number (SKU-00001), as it does any SKU not of the catalogue's form"
        )
    catalogue["skus"] = max(int(catalogue.get("skus", 0)), top_sku, 1)
    if "initial_stock" not in catalogue:
        catalogue["initial_stock"] = _initial_stock(b, orders)
    data["catalogue"] = catalogue
    for section in KEPT_SECTIONS:
        if section in base and section != "catalogue":
            data[section] = base[section]
    for section in sorted(set(base) - set(KEPT_SECTIONS) - REBUILT_SECTIONS):
        b.note(
            f"the run's scenario section {section!r} is not carried into the capsule: this "
            "import does not reconstruct what it drives; that is not replayed"
        )
    if not b.generated:
        if b.original is None:
            # an order whose pick the recording does not show is picked in full
            data["warehouse"] = {**(data.get("warehouse") or {}), "short_pick_rate": 0.0}
        data["stock"] = QUIET_STOCK
    elif "stock" in base:
        data["stock"] = base["stock"]
    return data


def _initial_stock(b: Builder, orders: list[dict[str, Any]]) -> int:
    """Enough for every order, or what the run's WMS started with where the state says."""
    need: Counter[str] = Counter()
    for o in orders:
        for line in o["lines"]:
            need[line["sku"]] += line["qty"]
    stock = max(need.values(), default=0)
    state = b.evidence.state
    if state is not None:
        wms = state.get("wms") or {}
        start: Counter[str] = Counter({k: int(v) for k, v in (wms.get("stock") or {}).items()})
        for fo in (wms.get("orders") or {}).values():
            for line in fo.get("lines") or []:
                start[line["sku"]] += int(line.get("picked_qty") or 0)
        for r in wms.get("receipts") or []:
            for line in r.get("lines") or []:
                start[line["sku"]] -= int(line["qty"])
        for a in wms.get("adjustments") or []:
            start[a["sku"]] -= int(a["delta"])
        if start:
            return max(1, stock, max(start.values()))
    return max(DEFAULT_STOCK, stock)
