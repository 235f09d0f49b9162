"""The vendors' systems twinyard plays: ERP, WMS, TMS and a parcel carrier."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulators.common.clock import Clock
    from simulators.common.simulator import Simulator

SYSTEMS = ("erp", "wms", "tms", "carrier")


def build(system: str, clock: Clock, **options: Any) -> Simulator:
    """A ready simulator of ``system`` (its model, HTTP face, journal and webhooks)."""
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; known: {', '.join(SYSTEMS)}")
    return importlib.import_module(f"simulators.{system}.api").build(clock, **options)
