"""Suite-wide scheduling: the longest tests start first.

pytest-xdist hands tests to its workers in collection order, so a three-minute test collected
late runs alone at the end while the other core idles. ``@pytest.mark.long(seconds)`` names a
test's rough cost here (a fresh clone's ``--durations``); those tests are collected first,
longest first, which is the longest-processing-time rule for packing jobs onto workers.
"""

from __future__ import annotations

import pytest


def _cost(item: pytest.Item) -> float:
    marker = item.get_closest_marker("long")
    return float(marker.args[0]) if marker and marker.args else 0.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_cost, reverse=True)  # stable: the rest keep their order
