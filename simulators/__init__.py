"""The vendors' systems twinyard plays: ERP, WMS, TMS and a parcel carrier."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulators.common.clock import Clock
    from simulators.common.guard import Guard
    from simulators.common.simulator import Simulator

SYSTEMS = ("erp", "wms", "tms", "carrier")
STOCK_KEEPERS = ("erp", "wms")  # the book stock and the physical stock


def build(
    system: str,
    clock: Clock,
    *,
    stock: dict[str, int] | None = None,
    guard: Guard | None = None,
    **options: Any,
) -> Simulator:
    """A ready simulator of ``system`` (its model, HTTP face, journal and webhooks).

    ``stock`` (the catalogue with its starting quantities) goes to the systems that keep stock.
    ``guard`` closes its control plane with a token and allows webhook hosts beyond loopback
    (``simulators.common.guard``); without one it has no token, as a test's simulator needs.
    """
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; known: {', '.join(SYSTEMS)}")
    if stock is not None and system in STOCK_KEEPERS:
        options["stock"] = stock
    sim: Simulator = importlib.import_module(f"simulators.{system}.api").build(clock, **options)
    if guard is not None:
        sim.guard = guard
    return sim


MODEL_CLASSES = {"erp": "ErpModel", "wms": "WmsModel", "tms": "TmsModel", "carrier": "CarrierModel"}


def event_types(system: str) -> tuple[str, ...]:
    """The webhook event types ``system`` sends (what an event fault may name)."""
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; known: {', '.join(SYSTEMS)}")
    module = importlib.import_module(f"simulators.{system}.model")
    return tuple(getattr(module, MODEL_CLASSES[system]).event_types)
