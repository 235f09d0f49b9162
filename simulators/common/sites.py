"""Sites (warehouses, facilities) as the ERP and the WMS both keep them.

One WMS serves several sites, as Manhattan, Blue Yonder or SAP EWM do with a facility code;
the ERP books stock per site (SAP's plant). ``DEFAULT_SITE`` is the first site: what an
order, query or posting that names no site means, and the only site of a day with one.
Each site's stock is a plain ``{sku: qty}`` dict; every site lists the whole catalogue.
"""

from __future__ import annotations

import re
from typing import Any

from simulators.common.errors import SimError, unprocessable

DEFAULT_SITE = "DC1"
SITE_NAME = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,15}$")


class Sites:
    """Stock per site; ``stock(DEFAULT_SITE)`` is the very dict the model calls ``stock``."""

    def __init__(self, default_stock: dict[str, int], others: dict[str, dict[str, int]]):
        self.by_site: dict[str, dict[str, int]] = {DEFAULT_SITE: default_stock}
        for name, stock in others.items():
            self.by_site[name] = {sku: stock.get(sku, 0) for sku in default_stock} | stock

    def names(self) -> list[str]:
        return list(self.by_site)

    def stock(self, site: str | None, field: str = "site") -> dict[str, int]:
        """The stock dict of ``site`` (None: the default), or the vendor's 422 naming it."""
        found = self.by_site.get(site or DEFAULT_SITE)
        if found is None:
            raise unknown_site(site or "", field)
        return found

    def add_sku(self, sku: str) -> None:
        """A SKU new to the catalogue is listed (with nothing) at every site."""
        for stock in self.by_site.values():
            stock.setdefault(sku, 0)

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {name: dict(stock) for name, stock in self.by_site.items()}


def unknown_site(site: str, field: str = "site") -> SimError:
    message = f"unknown site {site!r}"
    return unprocessable(
        "validation_failed", message, errors=[{"field": field, "message": message}], site=site
    )


def site_of(data: dict[str, Any]) -> str:
    return str(data.get("site") or DEFAULT_SITE)
