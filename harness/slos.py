"""Service levels: how long the stack takes to carry a business event to the next system,
in virtual time, read from the simulators' final state (never from the stack).

| measure | from | to |
| --- | --- | --- |
| ``release_latency`` | the ERP releases the order | the WMS has its fulfilment order |
| ``label_latency`` | the WMS packs the order | the carrier has sold its label |
| ``confirmation_latency`` | the WMS ships the order | the ERP has its goods issue |
| ``tracking_latency`` | the carrier scans the parcel | the ERP has the scan |
| ``accrual_latency`` | the TMS settles the freight | the ERP has its freight accrual |

Percentiles are nearest-rank over whole virtual seconds. In lockstep a stack that keeps up
shows 0 s; time passes only while it retries (an outage, a rate limit) or when it is slower
than a step. A scenario sets thresholds per measure and percentile (``expect.slos``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from harness.oracles.view import SystemsView

MEASURES: dict[str, str] = {
    "release_latency": "ERP release -> WMS fulfilment order",
    "label_latency": "WMS packed -> carrier label",
    "confirmation_latency": "WMS shipped -> ERP goods issue",
    "tracking_latency": "carrier scan -> ERP tracking",
    "accrual_latency": "TMS freight settled -> ERP freight accrual",
}
STATISTICS = ("p50", "p95", "p99", "max")


@dataclass
class ServiceLevel:
    name: str
    samples: list[float]
    thresholds: dict[str, float] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)  # when each sample's event happened (epoch s)

    @property
    def stats(self) -> dict[str, float | None]:
        ordered = sorted(self.samples)
        return {name: _statistic(ordered, name) for name in STATISTICS}

    @property
    def breaches(self) -> dict[str, tuple[float, float]]:
        """statistic -> (measured, threshold) for every threshold exceeded."""
        stats = self.stats
        return {
            name: (value, limit)
            for name, limit in self.thresholds.items()
            if (value := stats[name]) is not None and value > limit
        }

    @property
    def passed(self) -> bool:
        return not self.breaches

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measures": MEASURES[self.name],
            "count": len(self.samples),
            **self.stats,
            "thresholds": self.thresholds,
            "passed": self.passed,
        }


def measure(view: SystemsView, thresholds: dict[str, dict[str, float]]) -> list[ServiceLevel]:
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in MEASURES}
    labels = view.labels_by_order()
    for order in view.erp_orders.values():
        fos = view.wms_by_ref.get(order["id"], [])
        packed = _first_at(fos, "packed")
        bought = [epoch_seconds(label["created_at"]) for label in labels.get(order["id"], [])]
        if packed is not None and bought:
            samples["label_latency"].append((packed, min(bought) - packed))
        if order.get("released_at") and fos:
            released = epoch_seconds(order["released_at"])
            first = min(epoch_seconds(fo["created_at"]) for fo in fos)
            samples["release_latency"].append((released, first - released))
        for gi in view.goods_issues_by_order.get(order["id"], []):
            shipped = _shipped_at(fos)
            if shipped is not None and gi.get("tracking_number"):
                samples["confirmation_latency"].append(
                    (shipped, epoch_seconds(gi["posted_at"]) - shipped)
                )
        for scan in order.get("tracking_history", []):
            scanned = epoch_seconds(scan["occurred_at"])
            samples["tracking_latency"].append(
                (scanned, epoch_seconds(scan["posted_at"]) - scanned)
            )
    for shipment in view.tms_shipments.values():
        accruals = view.accruals_by_shipment.get(shipment["id"], [])
        if shipment.get("settled_at") and accruals:
            settled = epoch_seconds(shipment["settled_at"])
            posted = min(epoch_seconds(a["posted_at"]) for a in accruals)
            samples["accrual_latency"].append((settled, posted - settled))
    return [
        ServiceLevel(
            name,
            [latency for _, latency in samples[name]],
            thresholds.get(name, {}),
            [at for at, _ in samples[name]],
        )
        for name in MEASURES
    ]


def _shipped_at(fos: list[dict[str, Any]]) -> float | None:
    return _first_at(fos, "shipped")


def _first_at(fos: list[dict[str, Any]], status: str) -> float | None:
    """When the first of these WMS orders first reached ``status``."""
    times = [
        epoch_seconds(h["at"]) for fo in fos for h in fo["status_history"] if h["status"] == status
    ]
    return min(times) if times else None


def epoch_seconds(iso: str) -> float:
    """A simulator timestamp (ISO-8601 UTC) as seconds since the Unix epoch."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def statistic(ordered: list[float], name: str) -> float | None:
    """p50/p95/p99 (nearest rank) or max of values already sorted; None when there are none."""
    return _statistic(ordered, name)


def _statistic(ordered: list[float], name: str) -> float | None:
    if not ordered:
        return None
    if name == "max":
        return ordered[-1]
    rank = math.ceil(int(name[1:]) / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]
